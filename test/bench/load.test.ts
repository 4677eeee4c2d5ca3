/**
 * The load generator with a fake sender: the closed loop never exceeds its concurrency and sends exactly
 * the count; the open loop follows its schedule; a duration stops issuing and cancels after the grace period.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
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
      const start = performance.now();
      log.starts.push(start);
      log.inFlight++;
      log.peak = Math.max(log.peak, log.inFlight);
      const done = (cancelled: boolean) => {
        log.inFlight--;
        const end = performance.now();
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

describe('closed loop', () => {
  test('keeps exactly `concurrency` requests in flight and sends the count', async () => {
    const log = newLog();
    const records = await runLoad(
      { concurrency: 3, arrivals: null, requestCount: 10, durationSeconds: null, gracePeriodSeconds: 0 },
      () => spec,
      fakeSend((i) => 5 + (i % 3) * 5, log),
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
  test('sends on the schedule (constant 100/s: 10 ms apart), unbounded without a concurrency', async () => {
    const log = newLog();
    const t0 = performance.now();
    await runLoad(
      { concurrency: null, arrivals: () => 0.01, requestCount: 8, durationSeconds: null, gracePeriodSeconds: 0 },
      () => spec,
      fakeSend(() => 50, log),
    );
    const offsets = log.starts.map((t) => t - t0);
    // Never early; late only by timer jitter (the schedule is absolute, so lateness does not add up). The
    // upper bounds are loose: a shared, busy machine can stall a timer by hundreds of milliseconds.
    offsets.forEach((o, i) => {
      assert.ok(o >= i * 10 - 1 && o < i * 10 + 1000, `request ${i} at ${o.toFixed(1)} ms`);
    });
    assert.ok(offsets[7] < 70 + 1000, `last at ${offsets[7]}`);
    assert.ok(log.peak >= 4, 'requests overlap: the schedule does not wait for answers');
  });

  test('--concurrency caps an open loop', async () => {
    const log = newLog();
    await runLoad(
      { concurrency: 2, arrivals: () => 0.001, requestCount: 6, durationSeconds: null, gracePeriodSeconds: 0 },
      () => spec,
      fakeSend(() => 20, log),
    );
    assert.equal(log.peak, 2);
  });
});

describe('duration', () => {
  test('stops issuing at the deadline and cancels what outlives the grace period', async () => {
    const log = newLog();
    const t0 = performance.now();
    const records = await runLoad(
      { concurrency: 2, arrivals: null, requestCount: null, durationSeconds: 0.1, gracePeriodSeconds: 0.05 },
      () => spec,
      fakeSend((i) => (i < 4 ? 30 : 1000), log),
    );
    const elapsed = performance.now() - t0;
    assert.ok(elapsed < 2000, `took ${elapsed} ms`);
    assert.ok(log.starts.every((t) => t - t0 < 100 + 50));
    const cancelled = records.filter((r) => r.error?.kind === 'cancelled');
    assert.equal(cancelled.length, 2);
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
