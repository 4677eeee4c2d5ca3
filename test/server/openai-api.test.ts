/**
 * The OpenAI API on a real loopback server (engine in its worker thread), driven by the official `openai`
 * client: models, completions and chat, streaming and not, base and adapters — each greedy response equal to
 * the offline engine's — and errors in OpenAI's shape.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { ensureDemo } from '../../src/demo/demo-model.ts';
import { AsyncEngine } from '../../src/engine/async-engine.ts';
import { buildEngine } from '../../src/engine/build-engine.ts';
import { buildApp } from '../../src/server/app.ts';
import { Lifecycle } from '../../src/server/lifecycle.ts';
import { loadTextCodec, type TextCodec } from '../../src/tokenizer/text-codec.ts';
import { engineIdle, metricValue } from './loopback.ts';

let cache: string;
let engine: AsyncEngine;
let app: ReturnType<typeof buildApp>;
let client: OpenAI;
let address: string;
let codec: TextCodec;
let offline: (prompt: string, adapter: string | null, maxTokens: number) => string;

before(async () => {
  cache = await mkdtemp(join(tmpdir(), 'loraplex-server-'));
  const demo = await ensureDemo(cache);
  engine = await AsyncEngine.start({ modelDir: demo.modelDir, adapters: demo.adapters, kvCacheTokens: 4096 });
  codec = await loadTextCodec(demo.modelDir);
  app = buildApp({
    engine,
    codec,
    baseModel: 'base',
    startedAt: Date.now(),
    lifecycle: new Lifecycle(),
  });
  address = await app.listen({ host: '127.0.0.1', port: 0 });
  client = new OpenAI({ baseURL: `${address}/v1`, apiKey: 'unused', maxRetries: 0 });
  const local = (await buildEngine({ modelDir: demo.modelDir, adapters: demo.adapters, kvCacheTokens: 4096 })).engine;
  offline = (prompt, adapter, maxTokens) => {
    const [seq] = local.generate([
      { promptIds: codec.encode(prompt), adapter, params: { maxTokens, temperature: 0, ignoreEos: true } },
    ]);
    return codec.decode(seq.outputIds);
  };
});

after(async () => {
  await app.close();
  await engine.close();
  await rm(cache, { recursive: true, force: true });
});

describe('OpenAI API', () => {
  test('/v1/models lists the base and every adapter with its parent', async () => {
    const models = (await client.models.list()).data;
    assert.deepEqual(
      models.map((m) => m.id),
      ['base', 'demo-pirate', 'demo-poet', 'demo-chef', 'demo-robot'],
    );
    assert.equal((models[1] as unknown as { parent: string }).parent, 'base');
  });

  test('completions, base and adapters, concurrently: each equals the offline engine', async () => {
    const names = ['base', 'demo-pirate', 'demo-poet', 'demo-chef', 'demo-robot'];
    const results = await Promise.all(
      names.map((model) =>
        client.completions.create({
          model,
          prompt: 'Once upon a time',
          max_tokens: 12,
          temperature: 0,
          ignore_eos: true,
        } as never),
      ),
    );
    results.forEach((r, i) => {
      const want = offline('Once upon a time', names[i] === 'base' ? null : names[i], 12);
      assert.equal(r.choices[0].text, want, names[i]);
      assert.equal(r.usage?.completion_tokens, 12);
      assert.equal(r.choices[0].finish_reason, 'length');
    });
  });

  test('streaming gives the same text, and usage in the final chunk when asked', async () => {
    const stream = await client.completions.create({
      model: 'demo-poet',
      prompt: 'Once upon a time',
      max_tokens: 12,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
      ignore_eos: true,
    } as never);
    let text = '';
    let usage: { completion_tokens: number } | undefined;
    for await (const chunk of stream as unknown as AsyncIterable<OpenAI.Completion>) {
      if (chunk.choices[0]) text += chunk.choices[0].text;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, offline('Once upon a time', 'demo-poet', 12));
    assert.equal(usage?.completion_tokens, 12);
  });

  test('chat completions, streaming and not, agree', async () => {
    const messages = [{ role: 'user' as const, content: 'Tell me a story' }];
    const whole = await client.chat.completions.create({ model: 'demo-chef', messages, max_tokens: 8, temperature: 0 });
    const stream = await client.chat.completions.create({
      model: 'demo-chef',
      messages,
      max_tokens: 8,
      temperature: 0,
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    assert.equal(text, whole.choices[0].message.content);
    assert.equal(whole.choices[0].message.role, 'assistant');
  });

  test('an unknown model is a 404 in OpenAI shape, never the base', async () => {
    await assert.rejects(client.completions.create({ model: 'nope', prompt: 'x' }), (e: unknown) => {
      const err = e as { status: number; code: string; param: string };
      return err.status === 404 && err.code === 'MODEL_NOT_FOUND' && err.param === 'model';
    });
  });

  test('invalid parameters are 400s', async () => {
    await assert.rejects(client.completions.create({ model: 'base', prompt: 'x', max_tokens: 0 }), (e: unknown) => {
      return (e as { status: number }).status === 400;
    });
    await assert.rejects(
      client.completions.create({ model: 'base', prompt: 'x', max_tokens: 100000 }),
      (e: unknown) => {
        return (e as { status: number }).status === 400;
      },
    );
  });

  test('a client that disconnects mid-stream is aborted; the server keeps serving', async () => {
    const controller = new AbortController();
    const stream = await client.completions.create(
      { model: 'demo-robot', prompt: 'Once', max_tokens: 400, temperature: 0, stream: true, ignore_eos: true } as never,
      { signal: controller.signal },
    );
    let chunks = 0;
    try {
      for await (const _ of stream as unknown as AsyncIterable<unknown>) {
        if (++chunks === 3) controller.abort();
      }
    } catch {
      // the client may surface the abort as an error or just end the stream
    }
    assert.ok(chunks < 400, `the stream stopped early (${chunks} chunks)`);
    const r = await client.completions.create({
      model: 'base',
      prompt: 'Once upon a time',
      max_tokens: 4,
      temperature: 0,
    });
    assert.equal(r.choices[0].text.length > 0, true);
    // the aborted sequence's KV blocks and slot are freed: the metrics return to idle
    // Synchronised on the worker's stats message; the server counts the abort before that message can arrive.
    await engineIdle(engine, 10_000);
    const idle = await (await fetch(`${address}/metrics`)).text();
    assert.equal(metricValue(idle, 'vllm:num_requests_running'), 0);
    assert.equal(metricValue(idle, 'loraplex_kv_blocks_used'), 0);
    assert.match(idle, /loraplex_adapter_requests_total\{[^}]*adapter="demo-robot"[^}]*finish_reason="abort"/);
  });

  test('/metrics: vLLM names, lora_requests_info for routers, per-adapter counters', async () => {
    const tokensOf = (m: string) =>
      Number(/^loraplex_adapter_generation_tokens_total\{[^}]*adapter="demo-pirate"[^}]*\} (\d+)$/m.exec(m)?.[1] ?? 0);
    const before = tokensOf(await (await fetch(`${address}/metrics`)).text());
    await client.completions.create({
      model: 'demo-pirate',
      prompt: 'Hi',
      max_tokens: 3,
      temperature: 0,
      ignore_eos: true,
    } as never);
    const m = await (await fetch(`${address}/metrics`)).text();
    assert.equal(tokensOf(m) - before, 3);
    assert.match(m, /^vllm:lora_requests_info\{[^}]*max_lora="\d+"/m);
    assert.match(m, /^vllm:num_requests_waiting\{[^}]*\} 0$/m);
    assert.match(m, /^vllm:gpu_cache_usage_perc/m);
    assert.match(m, /^vllm:time_to_first_token_seconds_count/m);
    assert.ok(metricValue(m, 'vllm:generation_tokens_total') > 0);
  });
});
