/**
 * The `lora` request field on a real loopback server through the official `openai` client: a weighted
 * combination and a per-request scale answer what the offline engine generates for the same combination,
 * streamed too, and bad entries are 400s naming the field.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import type { AdapterChoice } from '../../src/adapters/compose.ts';
import { ensureDemo } from '../../src/demo/demo-model.ts';
import { AsyncEngine } from '../../src/engine/async-engine.ts';
import { buildEngine } from '../../src/engine/build-engine.ts';
import type { LLMEngine } from '../../src/engine/llm-engine.ts';
import type { TextCodec } from '../../src/tokenizer/text-codec.ts';
import { loadTextCodec } from '../../src/tokenizer/text-codec.ts';
import { chunksOf, testApp } from './loopback.ts';

let cache: string;
let engine: AsyncEngine;
let app: ReturnType<typeof testApp>;
let address: string;
let client: OpenAI;
let codec: TextCodec;
let local: LLMEngine;

const MIX = [
  { name: 'demo-pirate', scale: 0.6 },
  { name: 'demo-chef', scale: -0.8 },
];
const PROMPT = 'Once upon a time';

function greedy(adapter: AdapterChoice, maxTokens: number): string {
  const promptIds = codec.encode(PROMPT);
  const params = { maxTokens, temperature: 0, ignoreEos: true };
  return codec.decode(local.generate([{ promptIds, adapter, params }])[0].outputIds);
}

before(async () => {
  cache = await mkdtemp(join(tmpdir(), 'loraplex-compose-'));
  const demo = await ensureDemo(cache);
  const build = { modelDir: demo.modelDir, adapters: demo.adapters, kvCacheTokens: 1024, maxLoraRank: 32 };
  engine = await AsyncEngine.start(build);
  codec = await loadTextCodec(demo.modelDir);
  app = testApp(engine, codec);
  address = await app.listen({ host: '127.0.0.1', port: 0 });
  client = new OpenAI({ baseURL: `${address}/v1`, apiKey: 'unused', maxRetries: 0 });
  local = (await buildEngine(build)).engine;
});

after(async () => {
  await app.close();
  await engine.close();
  await rm(cache, { recursive: true, force: true });
});

const complete = (body: Record<string, unknown>) =>
  client.completions.create({
    model: 'base',
    prompt: PROMPT,
    max_tokens: 8,
    temperature: 0,
    ignore_eos: true,
    ...body,
  } as never) as unknown as Promise<OpenAI.Completion>;

async function refused(body: Record<string, unknown>, param: string, message: RegExp) {
  const res = await fetch(`${address}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'base', prompt: PROMPT, max_tokens: 2, ...body }),
  });
  const json = await res.json();
  assert.equal(res.status, 400, JSON.stringify(json));
  assert.equal(json.error.param, param, JSON.stringify(json));
  assert.match(json.error.message, message);
}

describe('the lora field', () => {
  test('a weighted combination answers what the engine generates for it, and differs from each part', async () => {
    const parts = MIX.map((p) => ({ name: p.name, weight: p.scale }));
    const want = greedy(parts, 8);
    const r = await complete({ lora: MIX });
    assert.equal(r.choices[0].text, want);
    const pirate = await complete({ model: 'demo-pirate' });
    assert.notEqual(want, pirate.choices[0].text);
    // model may name one of the listed adapters
    assert.equal((await complete({ model: 'demo-chef', lora: MIX })).choices[0].text, want);
  });

  test('a per-request scale of one adapter; scale 1 is the adapter itself', async () => {
    const scaled = await complete({ model: 'demo-robot', lora: [{ name: 'demo-robot', scale: 0.25 }] });
    assert.equal(scaled.choices[0].text, greedy([{ name: 'demo-robot', weight: 0.25 }], 8));
    const one = await complete({ model: 'demo-robot', lora: [{ name: 'demo-robot' }] });
    assert.equal(one.choices[0].text, (await complete({ model: 'demo-robot' })).choices[0].text);
  });

  test('streamed chat with a combination gives the whole answer’s text', async () => {
    const body = {
      model: 'base',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 6,
      temperature: 0,
      ignore_eos: true,
      lora: MIX,
    };
    const whole = await client.chat.completions.create(body as never);
    const stream = await client.chat.completions.create({ ...body, stream: true } as never);
    const chunks = await chunksOf<OpenAI.ChatCompletionChunk>(stream);
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    assert.equal(text, (whole as OpenAI.ChatCompletion).choices[0].message.content);
  });

  test('bad entries are 400s naming the field', async () => {
    await refused({ lora: [{ name: 'nope' }] }, 'lora[0].name', /no adapter 'nope'/);
    // schema errors name the top-level field in param and the path in the message
    await refused({ lora: [MIX[0], { name: 'demo-chef', scale: 'big' }] }, 'lora', /lora\/1\/scale must be number/);
    await refused({ lora: [{ scale: 1 }] }, 'lora', /lora\/0 must have required property 'name'/);
    await refused({ model: 'demo-poet', lora: MIX }, 'model', /'lora' does not list/);
    await refused({ lora: [...MIX, MIX[0]] }, 'lora[2].name', /twice/);
    const many = Array.from({ length: 9 }, () => ({ name: 'demo-chef' }));
    await refused({ lora: many }, 'lora', /at most 8/);
    // demo-robot (32) + demo-pirate (8) on q and v: 40 > --max-lora-rank 32
    await refused({ lora: [{ name: 'demo-robot' }, { name: 'demo-pirate' }] }, 'lora', /--max-lora-rank 32/);
  });

  test('a scale too large for a double is refused, not served', async () => {
    const res = await fetch(`${address}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"model": "base", "prompt": "hi", "lora": [{"name": "demo-chef", "scale": 1e999}]}`,
    });
    const json = await res.json();
    assert.equal(res.status, 400, JSON.stringify(json));
    assert.equal(json.error.param, 'lora');
    assert.match(json.error.message, /lora\/0\/scale/);
  });
});
