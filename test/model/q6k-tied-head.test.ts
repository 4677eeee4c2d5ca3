/**
 * A tied model whose token_embd is Q6_K (as in the Q4_K_M files of tied models: Llama-3.2-1B, SmolLM2): the
 * one q6_k block matrix serves the embedding rows (dequantized at lookup, exactly) and the head (the quantized
 * GEMM). Made from the random K-quant GGUF fixture by tying its Q6_K lm_head, projections decoded to f32 so
 * only the head runs quantized: native equals the reference engine within 1e-4, and the logits stay within a
 * measured bound of the same weights all in f32 (0.039 here, x quantized in front of the head; bound 0.08).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { convertWeight } from '../../src/kernels/weight-format.ts';
import { loadModelDir } from '../../src/model/model-dir.ts';
import type { LoadedModel } from '../../src/model/weights.ts';
import { maxAbsDiff } from '../kernels/implementations.ts';
import { promptLogits } from './prompt-logits.ts';

const FILE = join(import.meta.dirname, '..', 'fixtures', 'gguf-model', 'random-kquants.gguf');
const PROMPT = [1, 5, 9, 17, 33, 40, 2, 7, 11, 95, 0];

/** Tied to the file's Q6_K lm_head (or to its f32 decoding); projections in f32. */
async function tied(head: 'q6_k' | 'f32'): Promise<LoadedModel> {
  const model = await loadModelDir(FILE, { dtype: 'f32' });
  const table = convertWeight(model.weights.lmHead, head);
  for (const l of model.weights.layers) {
    for (const [kind, w] of Object.entries(l.linear)) l.linear[kind as keyof typeof l.linear] = convertWeight(w, 'f32');
  }
  return {
    ...model,
    config: { ...model.config, tieWordEmbeddings: true },
    weights: { ...model.weights, embedding: table, lmHead: table },
  };
}

describe('a tied Q6_K embedding and head', () => {
  test('one q6_k block matrix serves both; native equals the reference; bounded against f32', async () => {
    const blocks = await tied('q6_k');
    assert.equal(blocks.weights.lmHead.dtype, 'q6_k');
    assert.equal(blocks.weights.embedding, blocks.weights.lmHead);
    const native = promptLogits(blocks, 'native', PROMPT);
    const reference = promptLogits(blocks, 'reference', PROMPT);
    assert.ok(maxAbsDiff(native, reference) <= 1e-4, `native vs reference ${maxAbsDiff(native, reference)}`);
    const diff = maxAbsDiff(native, promptLogits(await tied('f32'), 'native', PROMPT));
    assert.ok(diff > 0 && diff <= 0.08, `q6_k head vs f32: max |Δlogit| ${diff}`);
  });
});
