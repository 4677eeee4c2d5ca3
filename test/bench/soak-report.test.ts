/** The soak's verdict: RSS flatness after warm-up, idle at the end, and the pass/fail criteria. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildReport, isIdle, type RequestRecord, renderReport, rssSummary } from '../../bench/soak/report.ts';
import { metricValue, parseGauges, type Sample, type ServerGauges } from '../../bench/soak/sampler.ts';

const IDLE: ServerGauges = {
  running: 0,
  waiting: 0,
  kvUsage: 0,
  kvBlocksUsed: 0,
  slotsUsed: 4,
  slotsCapacity: 4,
  hostUsed: 16,
  hostCapacity: 16,
  loadsInFlight: 0,
  loadsOk: 40,
  loadsFailed: 3,
};

/** One sample every 10 s over 100 s with RSS (MiB) given by `mib(t)`. */
function samples(mib: (t: number) => number): Sample[] {
  return Array.from({ length: 11 }, (_, i) => ({
    t: i * 10,
    rssKb: mib(i * 10) * 1024,
    gauges: IDLE,
    inFlight: 0,
    finished: 0,
  }));
}

function record(over: Partial<RequestRecord>): RequestRecord {
  return {
    outcome: 'ok',
    detail: '200',
    injected: false,
    kind: 'completion-stream',
    startMs: 0,
    endMs: 100,
    ttftMs: 20,
    status: 200,
    errorCode: null,
    errorMessage: null,
    ...over,
  };
}

describe('soak RSS flatness', () => {
  test('growth during warm-up does not count; a plateau after it is flat', () => {
    const r = rssSummary(
      samples((t) => (t <= 20 ? 300 + t * 5 : 400 + (t % 20 === 0 ? 20 : 0))),
      100,
    );
    assert.ok(r);
    assert.equal(r.warmupEndS, 20);
    assert.equal(r.atWarmupEndMb, 400);
    assert.equal(r.maxAfterWarmupMb, 420);
    assert.equal(r.startMb, 300);
    assert.ok(r.flat);
  });

  test('steady growth after warm-up beyond 10 % is a leak', () => {
    const r = rssSummary(
      samples((t) => 400 + t),
      100,
    );
    assert.ok(r);
    assert.equal(r.maxAfterWarmupMb, 500);
    assert.ok(!r.flat);
    assert.ok(Math.abs(r.growth - 500 / 420) < 1e-9);
  });

  test('exactly +10 % is still flat; too few samples is no verdict', () => {
    assert.ok(
      rssSummary(
        samples((t) => (t > 20 ? 440 : 400)),
        100,
      )?.flat,
    );
    assert.equal(rssSummary(samples(() => 1).slice(0, 1), 100), null);
  });
});

describe('soak criteria', () => {
  const flat = samples(() => 400);

  test('ok traffic, expected refusals and disconnects, flat RSS and an idle end pass', () => {
    const report = buildReport({
      records: [
        record({}),
        record({ outcome: 'expected_4xx', detail: '400', kind: 'bad-adapter:nan-weights', status: 400 }),
        record({ outcome: 'disconnect', detail: 'after first tokens', kind: 'disconnect-after-first' }),
      ],
      samples: flat,
      durationS: 100,
      end: IDLE,
      idleWaitS: 0.5,
      serverExit: null,
    });
    assert.ok(report.pass, renderReport(report));
    assert.equal(report.byOutcome.ok, 1);
    assert.equal(report.byOutcomeDetail['expected_4xx 400'], 1);
    assert.equal(report.latencyMs.ttft?.count, 1);
  });

  test('a 5xx, a hang, a busy end or a dead server each fail their own criterion', () => {
    const report = buildReport({
      records: [record({ outcome: '5xx', detail: '503' }), record({ outcome: 'hang', detail: 'no status' })],
      samples: flat,
      durationS: 100,
      end: { ...IDLE, running: 2 },
      idleWaitS: null,
      serverExit: { code: 1, signal: null, atS: 42 },
    });
    assert.ok(!report.pass);
    const failed = report.criteria.filter((c) => !c.pass).map((c) => c.name);
    assert.deepEqual(failed, [
      'no 5xx (except injected faults)',
      'no hangs (client timeouts)',
      'idle at the end (running, waiting, KV, loads = 0)',
      'server alive to the end',
    ]);
    assert.equal(report.failures.length, 2);
    assert.match(renderReport(report), /soak: FAIL/);
  });

  test('an injected 5xx does not fail; idle needs running, waiting, KV and loads at zero', () => {
    const report = buildReport({
      records: [record({ outcome: '5xx', detail: '503', injected: true })],
      samples: flat,
      durationS: 100,
      end: IDLE,
      idleWaitS: 0,
      serverExit: null,
    });
    assert.ok(report.pass);
    assert.ok(isIdle(IDLE));
    assert.ok(!isIdle({ ...IDLE, kvBlocksUsed: 1 }));
    assert.ok(!isIdle({ ...IDLE, loadsInFlight: 1 }));
    assert.ok(!isIdle(null));
  });
});

describe('soak metrics scrape', () => {
  test('gauges are read by name and label, not by prefix', () => {
    const text = [
      '# HELP vllm:num_requests_running Requests being computed',
      'vllm:num_requests_running{model_name="m"} 3',
      'vllm:num_requests_running_total{model_name="m"} 99',
      'loraplex_adapter_slot_entries{state="used",model_name="m"} 2',
      'loraplex_adapter_slot_entries{state="capacity",model_name="m"} 4',
    ].join('\n');
    assert.equal(metricValue(text, 'vllm:num_requests_running'), 3);
    assert.equal(metricValue(text, 'loraplex_adapter_slot_entries', 'state="capacity"'), 4);
    const g = parseGauges(text);
    assert.equal(g.slotsUsed, 2);
    assert.ok(Number.isNaN(g.waiting));
  });
});
