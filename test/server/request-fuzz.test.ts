/**
 * Request fuzzing (seeded, bounded): random mutations of valid completion, chat and admin bodies — fields of
 * the wrong type, edge numbers, missing and unknown fields, deep nesting, odd strings, and raw-text damage
 * to the JSON itself — sent to a real app. Every one must end in a clean answer: a 2xx, or a 4xx in
 * OpenAI's error shape; never a 5xx, a crash or a hang; and the engine is idle afterwards.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BenchRandom } from '../../src/bench/random.ts';
import { ensureDemo } from '../../src/demo/demo-model.ts';
import { AsyncEngine } from '../../src/engine/async-engine.ts';
import type { buildApp } from '../../src/server/app.ts';
import { loadTextCodec } from '../../src/tokenizer/text-codec.ts';
import { engineIdle, testApp } from './loopback.ts';

const SEED = 20261204;
const MUTATIONS = 600;
const BUDGET_MS = 20_000;

let cache: string;
let engine: AsyncEngine;
let app: ReturnType<typeof buildApp>;

before(async () => {
  cache = await mkdtemp(join(tmpdir(), 'loraplex-fuzz-'));
  const demo = await ensureDemo(cache);
  // A short context: a mutation that drops max_tokens generates the rest of it (the default), quickly.
  engine = await AsyncEngine.start({
    modelDir: demo.modelDir,
    adapters: demo.adapters,
    kvCacheTokens: 8192,
    maxModelLen: 128,
  });
  app = testApp(engine, await loadTextCodec(demo.modelDir), {
    admin: { allowedRoots: [join(cache, 'uploads')] },
    limits: { maxBodyBytes: 256 * 1024 },
  });
});
after(async () => {
  await app.close();
  await engine.close();
  await rm(cache, { recursive: true, force: true });
});

const VALID: { url: string; body: Record<string, unknown> }[] = [
  {
    url: '/v1/completions',
    body: { model: 'base', prompt: 'Once upon a time', max_tokens: 3, temperature: 0.7, seed: 1, n: 2, stop: ['.'] },
  },
  { url: '/v1/completions', body: { model: 'base', prompt: [1, 2, 3], max_tokens: 2, logprobs: 2, stream: true } },
  {
    url: '/v1/chat/completions',
    body: {
      model: 'base',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
      ],
      max_tokens: 3,
      top_p: 0.9,
      top_k: 5,
      logprobs: true,
      top_logprobs: 2,
      stream: true,
      stream_options: { include_usage: true },
    },
  },
  { url: '/v1/load_lora_adapter', body: { lora_name: 'new', lora_path: 'nowhere', load_inplace: false } },
  { url: '/v1/unload_lora_adapter', body: { lora_name: 'nobody' } },
  { url: '/v1/pin_lora_adapter', body: { lora_name: 'nobody', pinned: true } },
];

const EDGE_VALUES: unknown[] = [
  null,
  true,
  false,
  0,
  -0,
  -1,
  1,
  2,
  1.5,
  -1.5,
  1e308,
  -1e308,
  5e-324,
  2 ** 31,
  2 ** 32 + 1,
  2 ** 53 + 2,
  -(2 ** 53),
  '',
  ' ',
  '1',
  'true',
  'null',
  '\u0000',
  '\ud800',
  '🦊'.repeat(50),
  '../../etc/passwd',
  'x'.repeat(5000),
  [],
  [null],
  [1, 'a'],
  [[[]]],
  {},
  { type: 'text' },
  { __proto__: { polluted: true } },
];

type Mutation = (body: Record<string, unknown>, rng: BenchRandom) => void;

const pick = <T>(rng: BenchRandom, xs: readonly T[]): T => xs[rng.int(xs.length)];

function deep(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v };
  return v;
}

const MUTATIONS_OF_VALUES: Mutation[] = [
  (b, rng) => {
    b[pick(rng, Object.keys(b))] = pick(rng, EDGE_VALUES);
  },
  (b, rng) => {
    delete b[pick(rng, Object.keys(b))];
  },
  (b, rng) => {
    b[pick(rng, ['foo', 'logit_bias', 'echo', 'tools', 'best_of', 'max_completion_tokens', 'min_tokens'])] = pick(
      rng,
      EDGE_VALUES,
    );
  },
  (b, rng) => {
    const messages = b.messages;
    if (Array.isArray(messages) && messages.length > 0) {
      const i = rng.int(messages.length);
      const m = messages[i];
      if (m && typeof m === 'object')
        (m as Record<string, unknown>)[pick(rng, ['role', 'content', 'name'])] = pick(rng, EDGE_VALUES);
      else messages[i] = pick(rng, EDGE_VALUES);
    } else b.messages = pick(rng, EDGE_VALUES);
  },
  (b, rng) => {
    b[pick(rng, Object.keys(b))] = deep(1 + rng.int(2000));
  },
  (b, rng) => {
    if (Array.isArray(b.prompt)) (b.prompt as unknown[]).push(pick(rng, EDGE_VALUES));
    else b.prompt = Array.from({ length: 1 + rng.int(8) }, () => rng.int(200_000) - 1000);
  },
];

/** Raw-text damage: truncation, a flipped character, an inserted token, a duplicated key. */
function damageText(text: string, rng: BenchRandom): string {
  const at = rng.int(text.length + 1);
  switch (rng.int(5)) {
    case 0:
      return text.slice(0, at);
    case 1:
      return text.slice(0, at) + String.fromCharCode(rng.int(128)) + text.slice(at + 1);
    case 2:
      return (
        text.slice(0, at) + pick(rng, ['NaN', 'Infinity', '-', ',', '}', '{', '"', '\\', 'undefined']) + text.slice(at)
      );
    case 3:
      return text.replace('{', '{"model": 1, ');
    default:
      return text.replace(/"(\w+)":/, '"constructor": {"prototype": {"x": 1}}, "$1":');
  }
}

test('mutated requests get a 2xx or a clean 4xx, never a 5xx or a hang', { timeout: 120_000 }, async () => {
  const rng = new BenchRandom(SEED);
  const failures: string[] = [];
  const counts = new Map<number, number>();
  const started = performance.now();
  let sent = 0;
  for (; sent < MUTATIONS && performance.now() - started < BUDGET_MS; sent++) {
    const { url, body } = pick(rng, VALID);
    const mutated = structuredClone(body);
    for (let k = 1 + rng.int(3); k > 0; k--) pick(rng, MUTATIONS_OF_VALUES)(mutated, rng);
    let payload = JSON.stringify(mutated);
    if (rng.next() < 0.25) payload = damageText(payload, rng);
    const res = await app.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/json' } });
    counts.set(res.statusCode, (counts.get(res.statusCode) ?? 0) + 1);
    const describe = () => `${url} ${payload.slice(0, 300)} → ${res.statusCode} ${res.body.slice(0, 300)}`;
    if (res.statusCode >= 500) failures.push(describe());
    else if (res.statusCode >= 400) {
      const error = (() => {
        try {
          return res.json().error;
        } catch {
          return null;
        }
      })();
      if (!error || typeof error.message !== 'string' || typeof error.type !== 'string') failures.push(describe());
    }
  }
  assert.deepEqual(failures, []);
  assert.ok(sent >= 100, `only ${sent} mutations ran within the budget`);
  assert.ok((counts.get(200) ?? 0) > 0 && [...counts.keys()].some((s) => s >= 400), JSON.stringify([...counts]));
  await engineIdle(engine, 10_000);
});
