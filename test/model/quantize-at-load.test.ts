/**
 * --quantize q8_0 | q4_k on a safetensors checkpoint: the projections whose rows are whole blocks are stored
 * in those blocks (the rest, and the embedding / lm_head, keep --dtype), they equal the format's encoding of
 * the checkpoint's values, and the model served through the quantized GEMM stays close to the float one
 * (tiny llama-tied, hidden 64, logits up to ±10: weights and x both quantized, prompt logits within 0.8 of the
 * f32 model's; measured 0.52).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createBackend } from '../../src/backends/index.ts';
import { DEFAULT_ENGINE_OPTIONS, LLMEngine } from '../../src/engine/llm-engine.ts';
import { weightFormat } from '../../src/kernels/weight-format.ts';
import { concatRows } from '../../src/model/fused-weights.ts';
import { loadModelDir } from '../../src/model/model-dir.ts';
import { maxAbsDiff, rng } from '../kernels/implementations.ts';

const MODEL = join(import.meta.dirname, '..', 'fixtures', 'tiny', 'llama-tied', 'model');

describe('--quantize at load', () => {
  test('q8_0: projections with K a multiple of 32 become blocks; down_proj (K = 112), the embedding stay f32', async () => {
    const f32 = await loadModelDir(MODEL, { dtype: 'f32' });
    // The head (and so the tied embedding) in blocks is test/kernels/qgemm-lm-head.test.ts's.
    const q = await loadModelDir(MODEL, { dtype: 'f32', quantize: 'q8_0', quantizeLmHead: false });
    assert.equal(q.config.dtype, 'f32');
    assert.equal(q.weights.embedding.dtype, 'f32');
    for (const [i, layer] of q.weights.layers.entries()) {
      for (const [kind, w] of Object.entries(layer.linear)) {
        const want = f32.weights.layers[i].linear[kind as keyof typeof layer.linear]!;
        if (want.cols % 32 !== 0) {
          assert.equal(w.dtype, 'f32', `${kind} stays f32`);
          continue;
        }
        assert.equal(w.dtype, 'q8_0', kind);
        assert.deepEqual(w.data, weightFormat('q8_0').encode(want.data as Float32Array, want.rows, want.cols).data);
      }
    }
  });

  test('q4_k: no projection of a hidden-64 model has rows of 256, so all keep the float dtype', async () => {
    const q = await loadModelDir(MODEL, { dtype: 'f32', quantize: 'q4_k' });
    for (const layer of q.weights.layers) for (const w of Object.values(layer.linear)) assert.equal(w.dtype, 'f32');
  });

  test('served through the quantized GEMM, the logits stay within 0.8 of the float model’s', async () => {
    const backend = createBackend('native');
    const prompt = [1, 5, 9, 17, 33, 40, 2, 7];
    const logits = async (quantize?: 'q8_0') => {
      const model = await loadModelDir(MODEL, { dtype: 'f32', ...(quantize ? { quantize } : {}) });
      const engine = new LLMEngine(model, { ...DEFAULT_ENGINE_OPTIONS, kvCacheTokens: 256, backend });
      const [seq] = engine.generate([
        {
          promptIds: prompt,
          adapter: null,
          params: { maxTokens: 1, temperature: 0, ignoreEos: true, promptLogits: true },
        },
      ]);
      return seq.promptLogits!;
    };
    const diff = maxAbsDiff(await logits('q8_0'), await logits());
    assert.ok(diff > 0 && diff <= 0.8, `max |Δlogit| ${diff}`);
  });
});

describe('fusing quantized projections (q|k|v, gate|up)', () => {
  const part = (rows: number, seed: number) => weightFormat('q8_0').encode(rng(seed).f32(rows * 64), rows, 64);

  test('parts in one block format stack their blocks', () => {
    const [a, b] = [part(3, 1), part(5, 2)];
    const fused = concatRows([a, b]);
    assert.equal(fused.dtype, 'q8_0');
    assert.equal(fused.rows, 8);
    assert.deepEqual(fused.data, new Uint8Array([...(a.data as Uint8Array), ...(b.data as Uint8Array)]));
  });

  test('mixed formats (a GGUF v in Q6_K, dequantized) go to the float part’s dtype, blocks decoded', () => {
    const q = part(3, 3);
    const v = weightFormat('bf16').encode(rng(4).f32(2 * 64), 2, 64);
    const fused = concatRows([q, v]);
    assert.equal(fused.dtype, 'bf16');
    const want = new Float32Array([
      ...weightFormat('bf16').decode(weightFormat('bf16').encode(weightFormat('q8_0').decode(q), 3, 64)),
      ...weightFormat('bf16').decode(v),
    ]);
    assert.deepEqual(weightFormat('bf16').decode(fused), want);
  });

  test('parts all in blocks of different formats (Q4_K q, Q6_K v) stay in their blocks, stacked', () => {
    const q = weightFormat('q4_k').encode(rng(5).f32(3 * 256), 3, 256);
    const v = weightFormat('q6_k').encode(rng(6).f32(2 * 256), 2, 256);
    const fused = concatRows([q, v]);
    assert.equal(fused.rows, 5);
    assert.deepEqual(fused.parts, [q, v]);
  });
});
