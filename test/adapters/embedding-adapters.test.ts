/**
 * Adapters that change the embedding, norms or lm_head against PEFT (oracle/embedding_adapters.py →
 * test/fixtures/embedding-adapters): LoRA on embed_tokens and lm_head, modules_to_save copies of embed_tokens /
 * lm_head / every norm, and trainable_token_indices (on a tied base, the head's columns too). Each alone, all in
 * one mixed batch with a plain LoRA adapter and the base, and that batch again under chunked prefill: prompt
 * logits within 1e-3 and greedy tokens identical, on the native and the reference backends.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { HostCache, packedBytes } from '../../src/adapters/cache/host-cache.ts';
import { edgesOf } from '../../src/adapters/kinds/edge-modules.ts';
import { InlineAdapterLoader } from '../../src/adapters/loader/adapter-loader.ts';
import { packAdapter } from '../../src/adapters/pack.ts';
import { loadPeftAdapter } from '../../src/adapters/peft/load.ts';
import { createBackend } from '../../src/backends/index.ts';
import { DEFAULT_ENGINE_OPTIONS, type GenerationRequest, LLMEngine } from '../../src/engine/llm-engine.ts';
import type { PackedAdapter } from '../../src/kernels/types.ts';
import { loadModelDir } from '../../src/model/model-dir.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { Metrics } from '../../src/observability/metrics.ts';

const root = join(import.meta.dirname, '..', '..');
// CI points this at a live oracle run (oracle/embedding_adapters.py OUT) instead of the committed files.
const expectedRoot =
  process.env.LORAPLEX_EMBEDDING_FIXTURES_DIR ?? join(root, 'test', 'fixtures', 'embedding-adapters');
const LOGIT_TOLERANCE = 1e-3;
const SETS = ['llama3-rope', 'llama-tied'];
const BACKENDS = ['native', 'reference'] as const;

interface Case {
  id: string;
  adapter: string | null;
  prompt_ids: number[];
  logits_key: string;
  greedy: { prompt_ids: number[]; tokens: number[] }[];
}

async function engineFor(set: string, backend: (typeof BACKENDS)[number], maxBatchTokens?: number) {
  const dir = join(expectedRoot, set);
  const loaded = await loadModelDir(join(root, 'test', 'fixtures', 'tiny', set, 'model'));
  const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
  const cases: Case[] = expected.cases;
  const engine = new LLMEngine(loaded, {
    ...DEFAULT_ENGINE_OPTIONS,
    backend: createBackend(backend),
    kvCacheTokens: 4096,
    maxLoras: 8,
    ...(maxBatchTokens ? { maxBatchTokens } : {}),
  });
  for (const c of cases) {
    if (c.adapter === null) continue;
    const adapter = await loadPeftAdapter(join(dir, 'adapters', c.adapter), loaded.config, { maxLoraRank: 64 });
    engine.addAdapter(c.adapter, packAdapter(adapter, loaded.config));
  }
  return { engine, cases, logits: await SafetensorsFile.open(join(dir, 'logits.safetensors')) };
}

const requestsOf = (c: Case): GenerationRequest[] => [
  {
    promptIds: c.prompt_ids,
    adapter: c.adapter,
    params: { maxTokens: 1, temperature: 0, ignoreEos: true, promptLogits: true },
  },
  ...c.greedy.map((g) => ({
    promptIds: g.prompt_ids,
    adapter: c.adapter,
    params: { maxTokens: g.tokens.length, temperature: 0, ignoreEos: true },
  })),
];

async function check(
  logits: SafetensorsFile,
  c: Case,
  [first, ...rest]: { promptLogits: Float32Array | null; outputIds: number[] }[],
  where: string,
) {
  const want = (await logits.readF32(c.logits_key)).data;
  let diff = 0;
  for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(first.promptLogits![i] - want[i]));
  assert.ok(diff <= LOGIT_TOLERANCE, `${c.id} ${where}: max |Δlogit| ${diff}`);
  for (const [i, g] of c.greedy.entries())
    assert.deepEqual(rest[i].outputIds, g.tokens, `${c.id} ${where}: greedy ${i}`);
}

for (const set of SETS) {
  describe(`${set}: embedding / lm_head / saved-module / trainable-token adapters serve PEFT's outputs`, () => {
    for (const backend of BACKENDS) {
      test(`${backend}: each alone`, async () => {
        const { engine, cases, logits } = await engineFor(set, backend);
        for (const c of cases) await check(logits, c, engine.generate(requestsOf(c)), 'alone');
      });

      for (const maxBatchTokens of [undefined, 5]) {
        const where = maxBatchTokens
          ? `in one mixed batch, chunked prefill (${maxBatchTokens} tokens a step)`
          : 'in one mixed batch';
        test(`${backend}: all ${where}`, async () => {
          const { engine, cases, logits } = await engineFor(set, backend, maxBatchTokens);
          // Interleaved so that rows of every adapter and the base share steps.
          const out = engine.generate(cases.flatMap(requestsOf));
          let at = 0;
          for (const c of cases) {
            const n = 1 + c.greedy.length;
            await check(logits, c, out.slice(at, at + n), where);
            at += n;
          }
        });
      }
    }
  });
}

test('the fixture adapters carry what they claim (edge modules present, plain LoRA without, VeRA with saved copies)', async () => {
  const dir = join(expectedRoot, 'llama3-rope');
  const loaded = await loadModelDir(join(root, 'test', 'fixtures', 'tiny', 'llama3-rope', 'model'));
  const load = async (name: string) =>
    packAdapter(await loadPeftAdapter(join(dir, 'adapters', name), loaded.config, { maxLoraRank: 64 }), loaded.config);
  const edgeLora = edgesOf(await load('edge-lora'));
  assert.ok(edgeLora?.embeddingLora && edgeLora.lmHeadLora && edgeLora.embedding && edgeLora.lmHead);
  const saved = edgesOf(await load('saved-modules'));
  assert.ok(saved?.embedding && saved.lmHead && saved.finalNorm);
  assert.equal(saved.layerNorms?.length, 2 * loaded.config.numLayers);
  const tokens = edgesOf(await load('trainable-tokens'));
  assert.equal(tokens?.tokens?.ids.length, 3);
  assert.equal(tokens?.tokens?.tiedHead, false);
  assert.equal(edgesOf(await load('qv-r8')), undefined);
  const vera = edgesOf(await load('vera-saved')); // VeRA with modules_to_save: the same saved copies
  assert.ok(vera?.embedding && vera.lmHead && vera.finalNorm && !vera.embeddingLora);
});

test('host tier: an adapter is charged its bytes, saved copies included, and a byte budget evicts by bytes', async () => {
  const dir = join(expectedRoot, 'llama3-rope');
  const loaded = await loadModelDir(join(root, 'test', 'fixtures', 'tiny', 'llama3-rope', 'model'));
  const { vocabSize: V, hiddenSize: H } = loaded.config;
  const load = async (name: string) =>
    packAdapter(await loadPeftAdapter(join(dir, 'adapters', name), loaded.config, { maxLoraRank: 64 }), loaded.config);
  const plain = await load('qv-r8');
  const saved = await load('saved-modules');
  const plainBytes = packedBytes(plain);
  const savedBytes = packedBytes(saved);
  assert.ok(plainBytes >= plain.weights.byteLength && plainBytes < plain.weights.byteLength + 4096);
  assert.ok(savedBytes >= packedBytes({ ...saved, edges: undefined } as PackedAdapter) + 2 * V * H * 4);

  // Room for the heavy adapter and one plain one: putting it evicts the oldest unpinned plain adapters.
  const cache = new HostCache(8, savedBytes + plainBytes);
  for (const key of ['a', 'b', 'c']) cache.put(key, plain);
  assert.equal(cache.bytes, 3 * plainBytes);
  cache.put('heavy', saved, (k) => k === 'a');
  assert.deepEqual([...cache.keys()], ['a', 'heavy']);
  assert.equal(cache.bytes, plainBytes + savedBytes);
  // Pinned entries stay even over budget; deleting gives their bytes back.
  cache.put('d', plain, (k) => k === 'a' || k === 'heavy');
  assert.deepEqual([...cache.keys()], ['a', 'heavy', 'd']);
  cache.delete('heavy');
  assert.equal(cache.bytes, 2 * plainBytes);
  // makeRoom still counts adapters.
  assert.equal(
    cache.makeRoom(6, () => false),
    true,
  );
  assert.equal(cache.size, 2);
});

test('--max-cpu-lora-bytes: an engine whose host tier has a byte budget evicts plain adapters for a heavy one', async () => {
  const dir = join(expectedRoot, 'llama3-rope', 'adapters');
  const loaded = await loadModelDir(join(root, 'test', 'fixtures', 'tiny', 'llama3-rope', 'model'));
  const load = async (name: string) =>
    packAdapter(await loadPeftAdapter(join(dir, name), loaded.config, { maxLoraRank: 64 }), loaded.config);
  const plainBytes = packedBytes(await load('qv-r8'));
  const savedBytes = packedBytes(await load('saved-modules'));
  const engine = new LLMEngine(loaded, {
    ...DEFAULT_ENGINE_OPTIONS,
    backend: createBackend('reference'),
    kvCacheTokens: 256,
    maxLoras: 2,
    maxCpuLoras: 8, // room for every adapter by count: only bytes evict
    maxCpuLoraBytes: savedBytes + plainBytes,
    loader: new InlineAdapterLoader(loaded.config, 64),
  });
  for (const name of ['a', 'b', 'c']) await engine.adapters.register(name, join(dir, 'qv-r8'), 'api');
  const tiers = () => Object.fromEntries(engine.adapters.list().map((a) => [a.name, a.tier]));
  assert.deepEqual(tiers(), { a: 'host', b: 'host', c: 'host' });
  await engine.adapters.register('heavy', join(dir, 'saved-modules'), 'api');
  assert.deepEqual(tiers(), { a: 'disk', b: 'disk', c: 'host', heavy: 'host' });
  assert.equal(engine.stats().adapterCache.hostUsed, 2);
  // /metrics shows the budget and what the host tier holds against it.
  const exposition = await new Metrics('m', () => engine.stats()).registry.metrics();
  assert.match(
    exposition,
    new RegExp(`loraplex_adapter_host_bytes\\{state="capacity"[^}]*\\} ${savedBytes + plainBytes}\n`),
  );
  assert.match(
    exposition,
    new RegExp(`loraplex_adapter_host_bytes\\{state="used"[^}]*\\} ${savedBytes + plainBytes}\n`),
  );
});
