/**
 * The load generator with a fake sender: the closed loop never exceeds its concurrency and sends exactly
 * the count; the open loop follows its schedule; a duration stops issuing and cancels after the grace period.
 * All in virtual time (node:test's mock timers, advanced only when nothing else can run), so the schedule is
 * checked exactly and no assertion leans on how fast the machine is.
 */
import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import type { RequestSpec } from '../../src/bench/endpoint.ts';
import { runLoad, type Send } from '../../src/bench/load.ts';
import {
  DEFAULT_OPTIONS,
  loadPoints,
  parseExtraInputs,
  parseNumberList,
  validateOptions,
} from '../../src/bench/options.ts';
import type { RequestRecord } from '../../src/bench/record.ts';

const spec: RequestSpec = { model: 'a', prompt: { text: 'x' }, inputTokens: 1, maxTokens: 1 };

function fakeSend(
  durationMs: (index: number) => number,
  log: { inFlight: number; peak: number; starts: number[] },
): Send {
  return (s, index, signal) =>
    new Promise<RequestRecord>((resolve) => {
      const start = Date.now();
      log.starts.push(start);
      log.inFlight++;
      log.peak = Math.max(log.peak, log.inFlight);
      const done = (cancelled: boolean) => {
        log.inFlight--;
        const end = Date.now();
        resolve({
          index,
          model: s.model,
          startMs: start,
          firstContentMs: cancelled ? null : end,
          lastContentMs: cancelled ? null : end,
          endMs: end,
          contentResponses: cancelled ? 0 : 1,
          inputTokens: 1,
          requestedOutputTokens: 1,
          usage: null,
          outputTokens: cancelled ? null : 1,
          outputTokensSource: cancelled ? null : 'tokenizer',
          error: cancelled ? { kind: 'cancelled', message: 'cancelled' } : null,
        });
      };
      const timer = setTimeout(() => done(false), durationMs(index));
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        done(true);
      });
    });
}

const newLog = () => ({ inFlight: 0, peak: 0, starts: [] as number[] });

/**
 * Runs `run` with setTimeout and Date mocked, from time 0: whenever nothing else can run (a real setImmediate
 * has come round), virtual time moves on 1 ms. `now` is the virtual clock, for runLoad's hook.
 */
async function inVirtualTime<T>(t: TestContext, run: (now: () => number) => Promise<T>): Promise<T> {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  let settled = false;
  const result = run(() => Date.now()).finally(() => {
    settled = true;
  });
  for (let ms = 0; !settled; ms++) {
    await new Promise((resolve) => setImmediate(resolve));
    if (settled) break;
    if (ms > 60_000) throw new Error('still running after 60 virtual seconds');
    t.mock.timers.tick(1);
  }
  return result;
}

describe('closed loop', () => {
  test('keeps exactly `concurrency` requests in flight and sends the count', async (t) => {
    const log = newLog();
    const records = await inVirtualTime(t, (now) =>
      runLoad(
        { concurrency: 3, arrivals: null, requestCount: 10, durationSeconds: null, gracePeriodSeconds: 0 },
        () => spec,
        fakeSend((i) => 5 + (i % 3) * 5, log),
        { now },
      ),
    );
    assert.equal(records.length, 10);
    assert.deepEqual(
      records.map((r) => r.index),
      [...Array(10).keys()],
    );
    assert.equal(log.peak, 3);
  });
});

describe('open loop', () => {
  test('sends on the schedule (constant 100/s: 10 ms apart), unbounded without a concurrency', async (t) => {
    const log = newLog();
    await inVirtualTime(t, (now) =>
      runLoad(
        { concurrency: null, arrivals: () => 0.01, requestCount: 8, durationSeconds: null, gracePeriodSeconds: 0 },
        () => spec,
        fakeSend(() => 50, log),
        { now },
      ),
    );
    assert.deepEqual(log.starts, [0, 10, 20, 30, 40, 50, 60, 70], 'exactly on the schedule: never early, never late');
    assert.equal(log.peak, 5, 'requests overlap: the schedule does not wait for answers (50 ms each, 10 ms apart)');
  });

  test('--concurrency caps an open loop', async (t) => {
    const log = newLog();
    await inVirtualTime(t, (now) =>
      runLoad(
        { concurrency: 2, arrivals: () => 0.001, requestCount: 6, durationSeconds: null, gracePeriodSeconds: 0 },
        () => spec,
        fakeSend(() => 20, log),
        { now },
      ),
    );
    assert.equal(log.peak, 2);
  });
});

describe('duration', () => {
  test('stops issuing at the deadline and cancels what outlives the grace period', async (t) => {
    const log = newLog();
    const records = await inVirtualTime(t, (now) =>
      runLoad(
        { concurrency: 2, arrivals: null, requestCount: null, durationSeconds: 0.1, gracePeriodSeconds: 0.05 },
        () => spec,
        fakeSend((i) => (i < 4 ? 30 : 1000), log),
        { now },
      ),
    );
    // Two at a time, 30 ms each: pairs at 0, 30, 60 (the third pair outlives the run), none issued at 100.
    assert.deepEqual(log.starts, [0, 0, 30, 30, 60, 60]);
    const cancelled = records.filter((r) => r.error?.kind === 'cancelled');
    assert.deepEqual(
      cancelled.map((r) => [r.index, r.endMs]),
      [
        [4, 150],
        [5, 150],
      ],
      'cancelled at the deadline plus the grace period',
    );
    assert.equal(records.length - cancelled.length, 4);
  });
});

describe('options', () => {
  test('lists, extra inputs and checks', () => {
    assert.deepEqual(parseNumberList('1, 2,4', '--concurrency', { integer: true, min: 1 }), [1, 2, 4]);
    assert.throws(() => parseNumberList('1,0', '--concurrency', { integer: true, min: 1 }), /--concurrency/);
    assert.throws(() => parseNumberList('1.5', '--concurrency', { integer: true, min: 1 }), /integers/);
    assert.deepEqual(parseExtraInputs(['ignore_eos:true', 'temperature:0.5', 'stop:none', '{"top_k": 5}']), {
      ignore_eos: true,
      temperature: 0.5,
      stop: 'none',
      top_k: 5,
    });
    assert.throws(() => validateOptions({ ...DEFAULT_OPTIONS, concurrency: [1, 2], requestRate: [1, 2] }), /not both/);
    assert.throws(() => validateOptions({ ...DEFAULT_OPTIONS, requestCount: 5, durationSeconds: 5 }), /not both/);
  });

  test('load points: one per swept value, counts defaulting to max(10, 2 × concurrency)', () => {
    const points = loadPoints({ ...DEFAULT_OPTIONS, concurrency: [1, 8] }, null);
    assert.deepEqual(
      points.map((p) => [p.label, p.concurrency, p.requestCount]),
      [
        ['concurrency=1', 1, 10],
        ['concurrency=8', 8, 16],
      ],
    );
    const rates = loadPoints({ ...DEFAULT_OPTIONS, requestRate: [2, 4], concurrency: [3], durationSeconds: 5 }, null);
    assert.deepEqual(
      rates.map((p) => [p.label, p.concurrency, p.requestRate, p.requestCount]),
      [
        ['rate=2', 3, 2, null],
        ['rate=4', 3, 4, null],
      ],
    );
    assert.equal(loadPoints(DEFAULT_OPTIONS, 25)[0].requestCount, 25);
  });
});
