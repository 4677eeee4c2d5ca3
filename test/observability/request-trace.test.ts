/**
 * RequestTrace on a hand-driven clock: which metrics one request moves and by how much (TTFT, inter-token
 * latency, per-choice time per output token, e2e, finish reasons, statuses and error codes), and its one log
 * line (names, counts and times; nothing else).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CLIENT_CLOSED_STATUS, Metrics, VLLM_BUCKETS } from '../../src/observability/metrics.ts';
import { errorCodeOf, RequestTrace } from '../../src/observability/request-trace.ts';
import { sampleOf } from './metric-samples.ts';

function setup() {
  const metrics = new Metrics('base-model', () => null);
  const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
  const log = { info: (msg: string, fields?: Record<string, unknown>) => lines.push({ msg, fields }) };
  let clock = 1000; // ms
  const trace = (route: string | null, method = 'POST') =>
    new RequestTrace(metrics, log, { id: 'req-7', route, method }, () => clock);
  return {
    metrics,
    lines,
    trace,
    at(ms: number) {
      clock = 1000 + ms;
    },
  };
}

describe('RequestTrace', () => {
  test('a two-choice generation: TTFT, inter-token gaps, per-choice TPOT, e2e, finish reasons, one log line', async () => {
    const { metrics, lines, trace, at } = setup();
    const t = trace('/v1/completions');
    t.generating('demo-pirate', 5, 2);
    at(40);
    t.token(0); // TTFT 40 ms
    at(50);
    t.token(1);
    at(70);
    t.token(0); // gap 30 ms
    at(100);
    t.token(0); // gap 30 ms
    t.choiceFinished(0, 'demo-pirate', 3, 'length'); // 3 tokens over 60 ms: 30 ms each after the first
    at(130);
    t.token(1); // gap 80 ms
    t.choiceFinished(1, 'demo-pirate', 2, 'stop');
    at(250);
    t.end(200);

    const r = metrics.registry;
    assert.equal(await sampleOf(r, 'vllm:time_to_first_token_seconds_count'), 1);
    assert.ok(Math.abs((await sampleOf(r, 'vllm:time_to_first_token_seconds_sum')) - 0.04) < 1e-9);
    assert.equal(await sampleOf(r, 'vllm:time_to_first_token_seconds_bucket', { le: 0.04 }), 1);
    assert.equal(await sampleOf(r, 'vllm:time_to_first_token_seconds_bucket', { le: 0.02 }), 0);
    for (const name of ['vllm:inter_token_latency_seconds', 'vllm:time_per_output_token_seconds']) {
      assert.equal(await sampleOf(r, `${name}_count`), 3, name);
      assert.ok(Math.abs((await sampleOf(r, `${name}_sum`)) - 0.14) < 1e-9, name);
    }
    assert.equal(await sampleOf(r, 'vllm:request_time_per_output_token_seconds_count'), 2);
    assert.ok(Math.abs((await sampleOf(r, 'vllm:request_time_per_output_token_seconds_sum')) - 0.11) < 1e-9);
    assert.equal(await sampleOf(r, 'vllm:e2e_request_latency_seconds_count'), 1);
    assert.ok(Math.abs((await sampleOf(r, 'vllm:e2e_request_latency_seconds_sum')) - 0.25) < 1e-9);
    assert.equal(await sampleOf(r, 'vllm:request_success_total', { finished_reason: 'length' }), 1);
    assert.equal(await sampleOf(r, 'vllm:request_success_total', { finished_reason: 'stop' }), 1);
    assert.equal(await sampleOf(r, 'vllm:prompt_tokens_total'), 5);
    assert.equal(await sampleOf(r, 'vllm:generation_tokens_total'), 5);
    assert.equal(await sampleOf(r, 'vllm:request_prompt_tokens_bucket', { le: 5 }), 1);
    assert.equal(await sampleOf(r, 'vllm:request_generation_tokens_count'), 2);
    assert.equal(await sampleOf(r, 'loraplex_adapter_generation_tokens_total', { adapter: 'demo-pirate' }), 5);
    assert.equal(
      await sampleOf(r, 'loraplex_http_requests_total', { route: '/v1/completions', method: 'POST', status: 200 }),
      1,
    );

    assert.deepEqual(lines, [
      {
        msg: 'request',
        fields: {
          reqId: 'req-7',
          route: '/v1/completions',
          status: 200,
          adapter: 'demo-pirate',
          promptTokens: 5,
          completionTokens: 5,
          finishReason: 'length,stop',
          ttftMs: 40,
          durationMs: 250,
        },
      },
    ]);
  });

  test('a refused request: counted by status and code, logged without token fields, no e2e', async () => {
    const { metrics, lines, trace, at } = setup();
    const t = trace('/v1/chat/completions');
    t.failed('ADAPTER_NOT_FOUND');
    at(3);
    t.end(404);
    t.end(200); // only the first end counts
    const r = metrics.registry;
    assert.equal(await sampleOf(r, 'loraplex_request_errors_total', { status: 404, code: 'ADAPTER_NOT_FOUND' }), 1);
    assert.equal(await sampleOf(r, 'loraplex_http_requests_total', { status: 404 }), 1);
    assert.equal(await sampleOf(r, 'loraplex_http_requests_total', { status: 200 }), 0);
    assert.equal(await sampleOf(r, 'vllm:e2e_request_latency_seconds_count'), 0);
    assert.deepEqual(lines, [
      {
        msg: 'request',
        fields: {
          reqId: 'req-7',
          route: '/v1/chat/completions',
          status: 404,
          code: 'ADAPTER_NOT_FOUND',
          durationMs: 3,
        },
      },
    ]);
  });

  test('a plain successful request is counted but not logged; unknown routes and methods keep the labels few', async () => {
    const { metrics, lines, trace } = setup();
    trace('/v1/models', 'GET').end(200);
    trace(null, 'BREW').end(404);
    const r = metrics.registry;
    assert.equal(await sampleOf(r, 'loraplex_http_requests_total', { route: '/v1/models', method: 'GET' }), 1);
    assert.equal(
      await sampleOf(r, 'loraplex_http_requests_total', { route: 'unmatched', method: 'other', status: 404 }),
      1,
    );
    assert.equal(await sampleOf(r, 'loraplex_request_errors_total', { status: 404, code: 'none' }), 1);
    assert.deepEqual(
      lines.map((l) => [l.fields?.route, l.fields?.status]),
      [['unmatched', 404]],
    );
  });

  test('a client gone before its first token: 499, the choice counted as aborted, no TTFT', async () => {
    const { metrics, lines, trace } = setup();
    const t = trace('/v1/completions');
    t.generating(null, 4, 1);
    t.end(CLIENT_CLOSED_STATUS);
    assert.equal(lines.length, 0, 'the record waits for the aborted choice');
    t.choiceFinished(0, null, 0, 'abort');
    const r = metrics.registry;
    assert.equal(await sampleOf(r, 'vllm:request_success_total', { finished_reason: 'abort' }), 1);
    assert.equal(await sampleOf(r, 'loraplex_adapter_requests_total', { adapter: 'base', finish_reason: 'abort' }), 1);
    assert.equal(await sampleOf(r, 'vllm:time_to_first_token_seconds_count'), 0);
    assert.equal(await sampleOf(r, 'vllm:request_time_per_output_token_seconds_count'), 0);
    assert.equal(lines[0].fields?.status, 499);
    assert.equal(lines[0].fields?.ttftMs, null);
    assert.equal(lines[0].fields?.adapter, null);
  });
});

describe('Metrics', () => {
  test("histograms use vLLM's bucket boundaries", async () => {
    const { metrics } = setup();
    const bounds = async (name: string) => {
      const values = (await metrics.registry.getSingleMetric(name)!.get()).values as {
        labels: Record<string, unknown>;
        metricName?: string;
      }[];
      return values
        .filter((v) => v.metricName === `${name}_bucket` && v.labels.le !== '+Inf')
        .map((v) => Number(v.labels.le));
    };
    assert.deepEqual(await bounds('vllm:time_to_first_token_seconds'), VLLM_BUCKETS.timeToFirstToken);
    assert.equal(VLLM_BUCKETS.timeToFirstToken.length, 22);
    assert.deepEqual(await bounds('vllm:inter_token_latency_seconds'), VLLM_BUCKETS.tokenLatency);
    assert.equal(VLLM_BUCKETS.tokenLatency.length, 19);
    assert.deepEqual(await bounds('vllm:e2e_request_latency_seconds'), VLLM_BUCKETS.requestLatency);
    assert.equal(VLLM_BUCKETS.requestLatency.length, 21);
    assert.deepEqual((await bounds('vllm:request_prompt_tokens')).slice(0, 7), [1, 2, 5, 10, 20, 50, 100]);
  });

  test('adapter loads: counted and timed by outcome', async () => {
    const { metrics } = setup();
    metrics.adapterLoaded(0.02, true);
    metrics.adapterLoaded(0.3, false);
    metrics.adapterLoaded(0.04, true);
    const r = metrics.registry;
    assert.equal(await sampleOf(r, 'loraplex_adapter_loads_total', { outcome: 'ok' }), 2);
    assert.equal(await sampleOf(r, 'loraplex_adapter_loads_total', { outcome: 'failed' }), 1);
    assert.equal(await sampleOf(r, 'loraplex_adapter_load_seconds_bucket', { outcome: 'ok', le: 0.025 }), 1);
    assert.equal(await sampleOf(r, 'loraplex_adapter_load_seconds_count', { outcome: 'failed' }), 1);
  });

  test("prom-client's process metrics are exported, with the model's label", async () => {
    const { metrics } = setup();
    const text = await metrics.registry.metrics();
    for (const name of ['process_resident_memory_bytes', 'process_cpu_seconds_total', 'nodejs_heap_size_used_bytes']) {
      assert.match(text, new RegExp(`^${name}\\{[^}]*model_name="base-model"[^}]*\\} \\d`, 'm'), name);
    }
  });
});

test('errorCodeOf reads an OpenAI error body and nothing else', () => {
  assert.equal(
    errorCodeOf('{"error":{"message":"m","type":"t","param":null,"code":"REQUEST_INVALID"}}'),
    'REQUEST_INVALID',
  );
  assert.equal(errorCodeOf('{"error":{"code":null}}'), null);
  assert.equal(errorCodeOf('not json'), null);
  assert.equal(errorCodeOf({ error: { code: 'X' } }), null);
});
