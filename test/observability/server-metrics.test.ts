/**
 * /metrics and the request log on a real loopback server (the demo model, its engine in the worker thread):
 * each metric operators read is exported, and moves by what the requests did — tokens, TTFT, inter-token
 * gaps, e2e, finish reasons, statuses and error codes, a client that leaves mid-stream — with one log line
 * per request that holds no prompt or output text. Every wait is on an event (a response, a log line).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { ensureDemo } from '../../src/demo/demo-model.ts';
import { AsyncEngine } from '../../src/engine/async-engine.ts';
import { loadTextCodec } from '../../src/tokenizer/text-codec.ts';
import { deadline, metricValue, testApp } from '../server/loopback.ts';
import { exportedSeries } from './exported-series.ts';

type Line = { msg: string; fields: Record<string, unknown> };

/** The request log, kept in memory; `next(n)` resolves when n more lines have come. */
function captureLog() {
  const lines: Line[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  return {
    lines,
    info(msg: string, fields?: Record<string, unknown>) {
      lines.push({ msg, fields: fields ?? {} });
      for (const w of waiters.splice(0)) {
        if (lines.length >= w.count) w.resolve();
        else waiters.push(w);
      }
    },
    /** Resolves once the log holds `count` lines (at most 10 s: a guard against a hang, never a wait). */
    reach(count: number): Promise<void> {
      const reached = new Promise<void>((resolve) => {
        if (lines.length >= count) resolve();
        else waiters.push({ count, resolve });
      });
      return deadline(reached, 10_000, () => `the log has ${lines.length} of ${count} lines`);
    },
  };
}

let cache: string;
let engine: AsyncEngine;
let app: ReturnType<typeof testApp>;
let address: string;
let client: OpenAI;
const log = captureLog();
const scrape = async () => (await fetch(`${address}/metrics`)).text();

before(async () => {
  cache = await mkdtemp(join(tmpdir(), 'loraplex-metrics-'));
  const demo = await ensureDemo(cache);
  engine = await AsyncEngine.start({ modelDir: demo.modelDir, adapters: demo.adapters, kvCacheTokens: 4096 });
  app = testApp(engine, await loadTextCodec(demo.modelDir), { requestLog: log });
  address = await app.listen({ host: '127.0.0.1', port: 0 });
  client = new OpenAI({ baseURL: `${address}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  await app.close();
  await engine.close();
  await rm(cache, { recursive: true, force: true });
});

const PROMPT = 'Once upon a time in a quiet harbour town';

describe('/metrics and the request log', () => {
  test('the series operators read are exported before any request', async () => {
    const series = exportedSeries(await scrape());
    for (const name of [
      'vllm:e2e_request_latency_seconds_bucket',
      'vllm:inter_token_latency_seconds_bucket',
      'vllm:time_per_output_token_seconds_bucket',
      'vllm:request_time_per_output_token_seconds_bucket',
      'vllm:time_to_first_token_seconds_bucket',
      'vllm:request_success_total',
      'vllm:kv_cache_usage_perc',
      'vllm:gpu_cache_usage_perc',
      'vllm:num_requests_running',
      'vllm:num_requests_waiting',
      'loraplex_http_requests_total',
      'loraplex_request_errors_total',
      'loraplex_adapter_loads_total',
      'loraplex_adapter_load_seconds_bucket',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
    ]) {
      assert.ok(series.has(name), `${name} is not exported`);
    }
  });

  test('a completion and a streamed chat on an adapter move every request metric by what they did', async () => {
    const before = await scrape();
    const logged = log.lines.length;
    const whole = await client.completions.create({
      model: 'base',
      prompt: PROMPT,
      max_tokens: 4,
      temperature: 0,
      ignore_eos: true,
    } as never);
    const stream = await client.chat.completions.create({
      model: 'demo-pirate',
      messages: [{ role: 'user', content: PROMPT }],
      max_tokens: 5,
      temperature: 0,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
    } as never);
    let chatUsage: OpenAI.CompletionUsage | undefined;
    let chatText = '';
    for await (const chunk of stream as unknown as AsyncIterable<OpenAI.ChatCompletionChunk>) {
      chatText += chunk.choices[0]?.delta?.content ?? '';
      chatUsage = chunk.usage ?? chatUsage;
    }
    await log.reach(logged + 2);
    const after = await scrape();
    const moved = (name: string, label = '') =>
      metricValue(after, name, label) - (metricValue(before, name, label) || 0);

    assert.equal(moved('vllm:e2e_request_latency_seconds_count'), 2);
    assert.equal(moved('vllm:time_to_first_token_seconds_count'), 2);
    // 4 and 5 tokens: 3 + 4 gaps between successive tokens, one per-choice TPOT each
    assert.equal(moved('vllm:inter_token_latency_seconds_count'), 7);
    assert.equal(moved('vllm:time_per_output_token_seconds_count'), 7);
    assert.equal(moved('vllm:request_time_per_output_token_seconds_count'), 2);
    assert.equal(moved('vllm:request_success_total', 'finished_reason="length"'), 2);
    assert.equal(moved('vllm:generation_tokens_total'), 9);
    assert.equal(moved('vllm:prompt_tokens_total'), whole.usage!.prompt_tokens + chatUsage!.prompt_tokens);
    assert.equal(moved('loraplex_adapter_generation_tokens_total', 'adapter="demo-pirate"'), 5);
    assert.equal(moved('loraplex_http_requests_total', 'route="/v1/completions",method="POST",status="200"'), 1);
    assert.equal(moved('loraplex_http_requests_total', 'route="/v1/chat/completions",method="POST",status="200"'), 1);
    assert.ok(moved('vllm:e2e_request_latency_seconds_sum') > 0);

    const lines = log.lines.slice(logged);
    const byRoute = new Map(lines.map((l) => [l.fields.route, l.fields]));
    assert.deepEqual(
      { ...byRoute.get('/v1/completions'), reqId: null, ttftMs: null, durationMs: null },
      {
        reqId: null,
        route: '/v1/completions',
        status: 200,
        adapter: null,
        promptTokens: whole.usage!.prompt_tokens,
        completionTokens: 4,
        finishReason: 'length',
        ttftMs: null,
        durationMs: null,
      },
    );
    const chat = byRoute.get('/v1/chat/completions')!;
    assert.equal(chat.adapter, 'demo-pirate');
    assert.equal(chat.completionTokens, 5);
    assert.equal(chat.status, 200);
    for (const l of lines) {
      assert.ok((l.fields.ttftMs as number) > 0 && (l.fields.ttftMs as number) <= (l.fields.durationMs as number));
    }
    // names, counts and times only: neither the prompt nor the output appears
    const written = JSON.stringify(lines);
    for (const text of [PROMPT, 'harbour', whole.choices[0].text.trim(), chatText.trim()].filter((t) => t.length > 2)) {
      assert.ok(!written.includes(text), `the log holds '${text}'`);
    }
  });

  test('refusals are counted by status and error code, and logged with the code', async () => {
    const before = await scrape();
    const logged = log.lines.length;
    const unknown = await fetch(`${address}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'no-such-adapter', prompt: PROMPT, max_tokens: 2 }),
    });
    assert.equal(unknown.status, 404);
    const code = ((await unknown.json()) as { error: { code: string } }).error.code;
    const invalid = await fetch(`${address}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'base', prompt: PROMPT, max_tokens: 'two' }),
    });
    assert.equal(invalid.status, 400);
    await invalid.arrayBuffer();
    await log.reach(logged + 2);
    const after = await scrape();
    const moved = (name: string, label: string) =>
      metricValue(after, name, label) - (metricValue(before, name, label) || 0);
    assert.equal(moved('loraplex_request_errors_total', `status="404",code="${code}"`), 1);
    assert.equal(moved('loraplex_request_errors_total', 'status="400"'), 1);
    assert.equal(moved('loraplex_http_requests_total', 'route="/v1/completions",method="POST",status="404"'), 1);
    const lines = log.lines.slice(logged).map((l) => l.fields);
    assert.deepEqual(
      lines.map((l) => [l.status, l.code === code || l.status === 400, 'promptTokens' in l]),
      [
        [404, true, false],
        [400, true, false],
      ],
    );
  });

  test('a client gone mid-stream: logged as 499, its choice counted as aborted', async () => {
    const before = await scrape();
    const logged = log.lines.length;
    const ctrl = new AbortController();
    const res = await fetch(`${address}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'demo-robot', prompt: PROMPT, max_tokens: 2000, ignore_eos: true, stream: true }),
      signal: ctrl.signal,
    });
    const reader = res.body!.getReader();
    await reader.read(); // the first event: the request is running
    ctrl.abort();
    await reader.read().catch(() => null);
    await log.reach(logged + 1);
    const line = log.lines[logged].fields;
    assert.equal(line.status, 499);
    assert.equal(line.adapter, 'demo-robot');
    assert.equal(line.finishReason, 'abort');
    assert.ok((line.completionTokens as number) < 2000);
    const after = await scrape();
    const moved = (name: string, label: string) =>
      metricValue(after, name, label) - (metricValue(before, name, label) || 0);
    assert.equal(moved('vllm:request_success_total', 'finished_reason="abort"'), 1);
    assert.equal(moved('loraplex_http_requests_total', 'status="499"'), 1);
  });
});
