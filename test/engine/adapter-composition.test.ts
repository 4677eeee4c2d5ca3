/**
 * A request's weighted combination of adapters (compose.ts) serves the logits of the base with every
 * component merged by hand at its weight, alone and in a mixed batch with a plain adapter and the base.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { projectionsInMemory } from '../../src/adapters/base-projections.ts';
import { mergeAdapterIntoWeights } from '../../src/adapters/merge.ts';
import { packAdapter } from '../../src/adapters/pack.ts';
import { loadPeftAdapter } from '../../src/adapters/peft/load.ts';
import type { LoraAdapter } from '../../src/adapters/types.ts';
import { createBackend } from '../../src/backends/index.ts';
import { DEFAULT_ENGINE_OPTIONS, LLMEngine } from '../../src/engine/llm-engine.ts';
import { loadModelDir } from '../../src/model/model-dir.ts';
import { isLoraplexError } from '../../src/observability/errors.ts';

const dir = join(import.meta.dirname, '..', 'fixtures', 'tiny', 'qwen2');

/** The adapter with every module's scale multiplied by `weight`. */
function weighted(adapter: LoraAdapter, weight: number): LoraAdapter {
  const modules = new Map([...adapter.modules].map(([m, mod]) => [m, { ...mod, scale: mod.scale * weight }]));
  return { ...adapter, modules };
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

test('a combination and a per-request scale give the hand-merged logits, alone and in a mixed batch', async () => {
  const loaded = await loadModelDir(join(dir, 'model'));
  const load = (name: string) =>
    loadPeftAdapter(join(dir, 'adapters', name), loaded.config, {
      maxLoraRank: 64,
      baseWeights: projectionsInMemory(loaded.weights),
    });
  const a = await load('all-r8-rslora');
  const b = await load('qv-r8');
  const options = { ...DEFAULT_ENGINE_OPTIONS, backend: createBackend('native'), kvCacheTokens: 2048, maxLoraRank: 16 };
  const served = new LLMEngine(loaded, options);
  served.addAdapter('a', packAdapter(a, loaded.config));
  served.addAdapter('b', packAdapter(b, loaded.config));
  served.addAdapter('dora', packAdapter(await load('dora'), loaded.config));
  const mergedWith = (...parts: [LoraAdapter, number][]) => {
    let weights = loaded.weights;
    for (const [adapter, w] of parts) weights = mergeAdapterIntoWeights(weights, weighted(adapter, w), loaded.config);
    return new LLMEngine({ ...loaded, weights }, options);
  };

  const prompt = [3, 14, 15, 92, 65, 35, 89, 79, 32, 38];
  const params = { maxTokens: 8, temperature: 0, ignoreEos: true, promptLogits: true };
  const mix = [
    { name: 'a', weight: 0.7 },
    { name: 'b', weight: -1.3 },
  ];
  const half = [{ name: 'b', weight: 0.5 }];
  const [wantMix] = mergedWith([a, 0.7], [b, -1.3]).generate([{ promptIds: prompt, adapter: null, params }]);
  const [wantHalf] = mergedWith([b, 0.5]).generate([{ promptIds: prompt, adapter: null, params }]);
  const [wantA] = served.generate([{ promptIds: prompt, adapter: 'a', params }]);
  const [wantBase] = served.generate([{ promptIds: prompt, adapter: null, params }]);

  const [alone] = served.generate([{ promptIds: prompt, adapter: mix, params }]);
  assert.ok(maxDiff(alone.promptLogits!, wantMix.promptLogits!) <= 1e-4, 'combination alone');
  assert.ok(maxDiff(alone.promptLogits!, wantA.promptLogits!) > 1e-2, 'the combination is not adapter a');
  assert.deepEqual(alone.outputIds, wantMix.outputIds);

  const batch = served.generate([
    { promptIds: prompt, adapter: 'a', params },
    { promptIds: prompt, adapter: mix, params },
    { promptIds: prompt, adapter: null, params },
    { promptIds: prompt, adapter: half, params },
    { promptIds: prompt, adapter: [...mix].reverse(), params }, // the same virtual adapter
  ]);
  assert.ok(maxDiff(batch[0].promptLogits!, wantA.promptLogits!) <= 1e-5, 'plain adapter in the batch');
  assert.ok(maxDiff(batch[1].promptLogits!, wantMix.promptLogits!) <= 1e-4, 'combination in the batch');
  assert.ok(maxDiff(batch[2].promptLogits!, wantBase.promptLogits!) <= 1e-5, 'base in the batch');
  assert.ok(maxDiff(batch[3].promptLogits!, wantHalf.promptLogits!) <= 1e-4, 'scaled adapter in the batch');
  assert.ok(maxDiff(batch[4].promptLogits!, batch[1].promptLogits!) <= 1e-5, 'order-free key');
  assert.deepEqual(batch[1].outputIds, wantMix.outputIds);
  assert.deepEqual(batch[3].outputIds, wantHalf.outputIds);

  const refused = (adapter: { name: string; weight: number }[], param: string, message: RegExp) =>
    assert.throws(
      () => served.addRequest({ promptIds: prompt, adapter, params }),
      (e) => isLoraplexError(e, 'REQUEST_INVALID') && e.param === param && message.test(e.message),
    );
  refused([{ name: 'nope', weight: 1 }], 'lora[0].name', /no adapter 'nope'/);
  refused([{ name: 'dora', weight: 0.5 }], 'lora', /DoRA/);
  refused([...mix, { name: 'a', weight: 2 }], 'lora[2].name', /twice/);
  // all-r8-rslora (8) + qv-r8 (8) + … : q/v modules reach 24 > 16
  served.addAdapter('c', packAdapter(b, loaded.config));
  refused([...mix, { name: 'c', weight: 1 }], 'lora', /--max-lora-rank 16/);
  const stats = served.stats();
  assert.equal(stats.running + stats.waiting, 0, 'refused requests hold nothing');
});
