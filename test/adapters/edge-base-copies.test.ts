/**
 * Saved embed_tokens / lm_head copies equal to the base (PEFT's save_embedding_layers) are dropped at load, with a
 * warning; a copy that differs in one value is kept; without the base's weights nothing is dropped. The tiny
 * edge-lora fixture was saved by PEFT with those copies.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { projectionsFromModelDir, projectionsInMemory } from '../../src/adapters/base-projections.ts';
import { withoutBaseCopies } from '../../src/adapters/kinds/edge-base-copies.ts';
import { loadPeftAdapter } from '../../src/adapters/peft/load.ts';
import { loadModelDir } from '../../src/model/model-dir.ts';

const root = join(import.meta.dirname, '..', '..');
const modelDir = join(root, 'test', 'fixtures', 'tiny', 'llama3-rope', 'model');
const adapterDir = join(root, 'test', 'fixtures', 'embedding-adapters', 'llama3-rope', 'adapters', 'edge-lora');

describe('saved copies equal to the base', async () => {
  const loaded = await loadModelDir(modelDir);
  const options = { maxLoraRank: 64 };

  test('edge-lora: kept without the base weights, dropped with them (in memory or read from the model dir)', async () => {
    const bare = await loadPeftAdapter(adapterDir, loaded.config, options);
    assert.ok(bare.edges?.embedding && bare.edges.lmHead, 'the fixture carries both copies');
    for (const baseWeights of [projectionsInMemory(loaded.weights), projectionsFromModelDir(modelDir, loaded.config)]) {
      const adapter = await loadPeftAdapter(adapterDir, loaded.config, { ...options, baseWeights });
      assert.equal(adapter.edges?.embedding, undefined);
      assert.equal(adapter.edges?.lmHead, undefined);
      assert.ok(adapter.edges?.embeddingLora, 'its LoRA on embed_tokens stays');
      const copies: number = (bare.edges?.embedding?.byteLength ?? 0) + (bare.edges?.lmHead?.byteLength ?? 0);
      assert.equal(adapter.sizeBytes, bare.sizeBytes - copies);
      assert.ok(adapter.warnings?.some((w) => /saved embed_tokens and lm_head equal the base model's/.test(w)));
    }
  });

  test('a copy that differs in one value is kept; the other dropped', async () => {
    const base = projectionsInMemory(loaded.weights);
    const embedding = await base.table('embedding');
    const lmHead = (await base.table('lmHead')).slice();
    lmHead[lmHead.length - 1] += 1;
    const { edges, dropped } = await withoutBaseCopies({ embedding, lmHead }, base);
    assert.deepEqual(dropped, ['embed_tokens']);
    assert.equal(edges?.lmHead, lmHead);
    assert.equal(edges?.embedding, undefined);
    const nan = embedding.slice();
    nan[0] = Number.NaN;
    assert.equal((await withoutBaseCopies({ embedding: nan }, base)).edges?.embedding, nan);
  });
});
