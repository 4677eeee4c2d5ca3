/** Merging an adapter into the base weights serves the same outputs as applying it with the LoRA kernels. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { projectionsInMemory } from '../../src/adapters/base-projections.ts';
import { mergeAdapterIntoWeights } from '../../src/adapters/merge.ts';
import { packAdapter } from '../../src/adapters/pack.ts';
import { loadPeftAdapter } from '../../src/adapters/peft/load.ts';
import { createBackend } from '../../src/backends/index.ts';
import { DEFAULT_ENGINE_OPTIONS, LLMEngine } from '../../src/engine/llm-engine.ts';
import { loadModelDir } from '../../src/model/model-dir.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';

const fixture = join(import.meta.dirname, '..', 'fixtures', 'tiny', 'qwen2');

for (const dtype of ['f32', 'bf16'] as const) {
  test(`${dtype}: a merged adapter gives the LoRA-served logits and greedy tokens`, async () => {
    const loaded = await loadModelDir(join(fixture, 'model'), { dtype });
    const adapter = await loadPeftAdapter(join(fixture, 'adapters', 'all-r8-rslora'), loaded.config, {
      maxLoraRank: 64,
    });
    const options = { ...DEFAULT_ENGINE_OPTIONS, backend: createBackend('native'), kvCacheTokens: 1024 };
    const served = new LLMEngine(loaded, options);
    served.addAdapter('a', packAdapter(adapter, loaded.config));
    const merged = new LLMEngine(
      { ...loaded, weights: mergeAdapterIntoWeights(loaded.weights, adapter, loaded.config) },
      options,
    );
    const prompt = [3, 14, 15, 92, 65, 35, 89, 79, 32, 38];
    const params = { maxTokens: 16, temperature: 0, ignoreEos: true, promptLogits: true };
    const [viaLora] = served.generate([{ promptIds: prompt, adapter: 'a', params }]);
    const [viaMerge] = merged.generate([{ promptIds: prompt, adapter: null, params }]);
    const [base] = served.generate([{ promptIds: prompt, adapter: null, params }]);
    let diff = 0;
    let fromBase = 0;
    for (let i = 0; i < viaLora.promptLogits!.length; i++) {
      diff = Math.max(diff, Math.abs(viaLora.promptLogits![i] - viaMerge.promptLogits![i]));
      fromBase = Math.max(fromBase, Math.abs(viaLora.promptLogits![i] - base.promptLogits![i]));
    }
    // bf16 rounds the merged weights (and the activations in the bf16 GEMM): only a relative bound holds
    if (dtype === 'f32') assert.ok(diff <= 1e-4, `max |Δlogit| merged vs served ${diff}`);
    const ratio = dtype === 'f32' ? 100 : 4;
    assert.ok(fromBase > ratio * diff, `the adapter's effect (${fromBase}) dwarfs the merge error (${diff})`);
    if (dtype === 'f32') assert.deepEqual(viaMerge.outputIds, viaLora.outputIds);
  });
}

// PEFT's merge_and_unload() of these DoRA adapters gives the fixtures' (unmerged) logits within 3.5e-5
// (qwen2, llama-tied, phi3; measured with oracle/ when they were made), so the oracle's cases pin the merge too.
for (const [set, name] of [
  ['qwen2', 'dora'],
  ['qwen2', 'dora-all-rslora'],
  ['phi3', 'dora-all-rslora'],
] as const) {
  test(`${set}: the merged DoRA adapter '${name}' serves PEFT's logits and greedy tokens as the base`, async () => {
    const dir = join(import.meta.dirname, '..', 'fixtures', 'tiny', set);
    const loaded = await loadModelDir(join(dir, 'model'));
    const adapter = await loadPeftAdapter(join(dir, 'adapters', name), loaded.config, {
      maxLoraRank: 64,
      baseWeights: projectionsInMemory(loaded.weights),
    });
    const options = { ...DEFAULT_ENGINE_OPTIONS, backend: createBackend('native'), kvCacheTokens: 1024 };
    const merged = new LLMEngine(
      { ...loaded, weights: mergeAdapterIntoWeights(loaded.weights, adapter, loaded.config) },
      options,
    );
    const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
    const logits = await SafetensorsFile.open(join(dir, 'logits.safetensors'));
    for (const c of expected.cases.filter((c: { adapter: string | null }) => c.adapter === name)) {
      const params = { maxTokens: c.greedy_tokens.length, temperature: 0, ignoreEos: true, promptLogits: true };
      const [seq] = merged.generate([{ promptIds: c.prompt_ids, adapter: null, params }]);
      const want = (await logits.readF32(c.logits_key)).data;
      let diff = 0;
      for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(seq.promptLogits![i] - want[i]));
      assert.ok(diff <= 1e-3, `${c.id}: merged max |Δlogit| ${diff}`);
      assert.deepEqual(seq.outputIds, c.greedy_tokens, `${c.id}: greedy tokens`);
    }
  });
}

// --merge-adapter merges in memory (no file written): adapters with edge modules give PEFT's served outputs
// (test/fixtures/embedding-adapters), a tied base's head coming apart from its embedding where the adapter says so.
for (const set of ['llama3-rope', 'llama-tied']) {
  test(`${set}: merged in memory, embedding / lm_head / saved-module / token adapters serve PEFT's outputs`, async () => {
    const dir = join(import.meta.dirname, '..', 'fixtures', 'embedding-adapters', set);
    const loaded = await loadModelDir(join(import.meta.dirname, '..', 'fixtures', 'tiny', set, 'model'));
    const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
    const logits = await SafetensorsFile.open(join(dir, 'logits.safetensors'));
    const options = { ...DEFAULT_ENGINE_OPTIONS, backend: createBackend('native'), kvCacheTokens: 1024 };
    for (const c of expected.cases.filter((c: { adapter: string | null }) => c.adapter && c.adapter !== 'qv-r8')) {
      const adapter = await loadPeftAdapter(join(dir, 'adapters', c.adapter), loaded.config, { maxLoraRank: 64 });
      assert.ok(adapter.edges);
      const weights = mergeAdapterIntoWeights(loaded.weights, adapter, loaded.config);
      const headApart = set === 'llama-tied' && c.adapter !== 'trainable-tokens';
      assert.equal(weights.lmHead !== weights.embedding, set !== 'llama-tied' || headApart, `${c.id}: tied or not`);
      const merged = new LLMEngine({ ...loaded, weights }, options);
      const greedy = c.greedy.map((g: { prompt_ids: number[]; tokens: number[] }) => ({
        promptIds: g.prompt_ids,
        adapter: null,
        params: { maxTokens: g.tokens.length, temperature: 0, ignoreEos: true },
      }));
      const [scored, ...rest] = merged.generate([
        { promptIds: c.prompt_ids, adapter: null, params: { maxTokens: 1, promptLogits: true } },
        ...greedy,
      ]);
      const want = (await logits.readF32(c.logits_key)).data;
      let diff = 0;
      for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(scored.promptLogits![i] - want[i]));
      assert.ok(diff <= 1e-3, `${c.id}: merged max |Δlogit| ${diff}`);
      assert.deepEqual(
        rest.map((s) => s.outputIds),
        c.greedy.map((g: { tokens: number[] }) => g.tokens),
        `${c.id}: greedy tokens`,
      );
    }
  });
}
