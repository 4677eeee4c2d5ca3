/**
 * Metrics against hand-computed values and AIPerf's definitions: numpy-style percentiles, population std,
 * ITL = (latency − TTFT)/(OSL − 1), throughput over first start → last response, errors kept apart.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseGoodput } from '../../src/bench/goodput.ts';
import { benchmarkDuration, recordMetrics, summarizeByModel, summarizeRecords } from '../../src/bench/metrics.ts';
import type { RequestRecord } from '../../src/bench/record.ts';
import { percentile, summarize } from '../../src/bench/stats.ts';

function record(over: Partial<RequestRecord>): RequestRecord {
  return {
    index: 0,
    model: 'a',
    startMs: 0,
    firstContentMs: 100,
    lastContentMs: 1000,
    endMs: 1001,
    contentResponses: 10,
    inputTokens: 50,
    requestedOutputTokens: 10,
    usage: { promptTokens: 60, completionTokens: 10 },
    outputTokens: 10,
    outputTokensSource: 'usage',
    error: null,
    ...over,
  };
}

const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) <= eps, `${a} ≉ ${b}`);

describe('stats', () => {
  test('percentiles interpolate linearly between ranks, as numpy.percentile does', () => {
    const v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    // numpy: percentile(v, 90) = 9.1, percentile(v, 99) = 9.91, percentile(v, 50) = 5.5, percentile(v, 1) = 1.09
    close(percentile(v, 90), 9.1);
    close(percentile(v, 99), 9.91);
    close(percentile(v, 50), 5.5);
    close(percentile(v, 1), 1.09);
    close(percentile([7], 99), 7);
  });

  test('summarize: avg, min, max, population std and the AIPerf percentile set', () => {
    const s = summarize([4, 1, 3, 2]);
    assert.ok(s);
    assert.equal(s.count, 4);
    close(s.avg, 2.5);
    assert.equal(s.min, 1);
    assert.equal(s.max, 4);
    close(s.std, Math.sqrt(1.25)); // numpy.std([1,2,3,4]) (ddof 0)
    close(s.p25, 1.75);
    close(s.p75, 3.25);
    close(s.p95, 3.85);
    assert.equal(summarize([]), null);
  });
});

describe('per-request metrics', () => {
  test('TTFT, latency, ITL and per-user throughput follow the AIPerf formulas', () => {
    const m = recordMetrics(record({ startMs: 10, firstContentMs: 110, lastContentMs: 1010, outputTokens: 10 }), true);
    assert.equal(m.time_to_first_token, 100);
    assert.equal(m.request_latency, 1000);
    close(m.inter_token_latency as number, 900 / 9);
    close(m.output_token_throughput_per_user as number, 10); // 1 / 100 ms
    assert.equal(m.output_sequence_length, 10);
    assert.equal(m.input_sequence_length, 50);
  });

  test("input length: the tokenizer's count, or usage.prompt_tokens as with AIPerf's --use-server-token-count", () => {
    assert.equal(recordMetrics(record({}), true).input_sequence_length, 50);
    assert.equal(recordMetrics(record({}), true, true).input_sequence_length, 60);
    assert.equal(recordMetrics(record({ usage: null }), true, true).input_sequence_length, 50);
  });

  test('no ITL for a one-token answer; no TTFT or ITL without streaming', () => {
    const one = recordMetrics(record({ outputTokens: 1 }), true);
    assert.equal(one.inter_token_latency, undefined);
    assert.equal(one.time_to_first_token, 100);
    const whole = recordMetrics(record({}), false);
    assert.equal(whole.time_to_first_token, undefined);
    assert.equal(whole.inter_token_latency, undefined);
    assert.equal(whole.request_latency, 1000);
  });
});

describe('run metrics', () => {
  const records = [
    record({ index: 0, model: 'a', startMs: 0, firstContentMs: 50, lastContentMs: 500, outputTokens: 10 }),
    record({ index: 1, model: 'b', startMs: 100, firstContentMs: 300, lastContentMs: 2100, outputTokens: 30 }),
    record({ index: 2, model: 'a', startMs: 200, firstContentMs: 260, lastContentMs: 1200, outputTokens: 20 }),
    record({
      index: 3,
      model: 'b',
      startMs: 50,
      firstContentMs: null,
      lastContentMs: null,
      endMs: 5000,
      outputTokens: null,
      error: { kind: 'http', status: 500, message: 'HTTP 500: boom' },
    }),
  ];

  test('duration runs from the first valid start to the last valid response; errors are left out', () => {
    assert.equal(benchmarkDuration(records), 2.1);
    const s = summarizeRecords(records, { streaming: true });
    assert.equal(s.request_count, 3);
    assert.equal(s.error_request_count, 1);
    assert.equal(s.total_output_tokens, 60);
    close(s.output_token_throughput, 60 / 2.1);
    close(s.request_throughput, 3 / 2.1);
    close(s.stats.time_to_first_token?.avg as number, (50 + 200 + 60) / 3);
    assert.deepEqual(s.errors, [{ kind: 'http', status: 500, count: 1, example: 'HTTP 500: boom' }]);
  });

  test('output lengths that differ from max_tokens are reported', () => {
    const s = summarizeRecords(records, { streaming: true });
    assert.equal(s.output_length_mismatch.count, 2); // asked 10, got 30 and 20
    assert.equal(s.output_length_mismatch.meanDifference, 15);
  });

  test('goodput counts requests meeting every SLO, per second of the run', () => {
    const slos = parseGoodput('time_to_first_token:100 inter_token_latency:60');
    // ITLs: (500−50)/9 = 50, (2100−300)/29 = 62.1, (1200−260)/19 = 49.5; TTFTs 50, 200, 60
    const s = summarizeRecords(records, { streaming: true, slos });
    assert.equal(s.good_request_count, 2);
    close(s.goodput as number, 2 / 2.1);
    const larger = summarizeRecords(records, { streaming: true, slos: parseGoodput('output_sequence_length:20') });
    assert.equal(larger.good_request_count, 2); // larger is better: 30 and 20 pass
  });

  test('per-model entries share the run duration, so their throughputs add up to the total', () => {
    const { overall, perModel } = summarizeByModel(records, { streaming: true });
    assert.deepEqual(Object.keys(perModel), ['a', 'b']);
    assert.equal(perModel.a.request_count, 2);
    assert.equal(perModel.b.error_request_count, 1);
    close(perModel.a.output_token_throughput + perModel.b.output_token_throughput, overall.output_token_throughput);
  });

  test('goodput specs are checked', () => {
    assert.throws(() => parseGoodput('ttft:200'), /unknown metric 'ttft'/);
    assert.throws(() => parseGoodput('time_to_first_token=200'), /metric:value/);
    assert.deepEqual(parseGoodput('request_latency:250'), [
      { metric: 'request_latency', threshold: 250, largerIsBetter: false },
    ]);
  });
});
