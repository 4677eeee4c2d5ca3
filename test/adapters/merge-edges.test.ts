/**
 * kinds/edge-merge.ts against a plain f64 reference on random tables of odd sizes: LoRA on embed_tokens and
 * lm_head, saved copies and norms, trainable token rows; f32 and bf16 matrices; and when a tied base stays tied.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mergeEdges, untiedByMerge } from '../../src/adapters/kinds/edge-merge.ts';
import type { EdgeModules, LowRankTable } from '../../src/adapters/kinds/edge-modules.ts';
import type { WeightDType, WeightMatrix } from '../../src/kernels/types.ts';
import { weightFormat } from '../../src/kernels/weight-format.ts';
import type { ModelWeights } from '../../src/model/weights.ts';
import { BASE } from './helpers.ts';

const V = 13;
const H = 7;

function seeded(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

const random = (n: number, seed: number) => {
  const rnd = seeded(seed);
  return new Float32Array(n).map(() => rnd());
};
const table = (rows: number, cols: number, rank: number, scale: number, seed: number): LowRankTable => ({
  rank,
  scale,
  a: random(rows * rank, seed),
  b: random(cols * rank, seed + 1),
});

function base(tied: boolean, dtype: WeightDType): { weights: ModelWeights; config: typeof BASE } {
  const config = { ...BASE, vocabSize: V, hiddenSize: H, numLayers: 2, tieWordEmbeddings: tied };
  const matrix = (seed: number) => weightFormat(dtype).encode(random(V * H, seed), V, H);
  const embedding = matrix(1);
  const layer = (seed: number) => ({
    linear: {},
    bias: {},
    norms: { input_layernorm: random(H, seed), post_attention_layernorm: random(H, seed + 1) },
  });
  const weights = {
    embedding,
    lmHead: tied ? embedding : matrix(2),
    layers: [layer(3), layer(5)],
    finalNorm: random(H, 7),
  };
  return { weights, config };
}

const values = (m: WeightMatrix) => weightFormat(m.dtype).decode(m);

/** The reference: dense deltas in f64 (embedding: s·Aᵀ·Bᵀ; head: s·B·A), rows replaced, then rounded once. */
function reference(w: WeightMatrix, e: EdgeModules, which: 'embedding' | 'head'): Float32Array {
  const saved = which === 'embedding' ? e.embedding : e.lmHead;
  const out = Float64Array.from(saved ?? values(w));
  const t = which === 'embedding' ? e.embeddingLora : e.lmHeadLora;
  if (t) {
    for (let v = 0; v < V; v++) {
      for (let h = 0; h < H; h++) {
        let s = 0;
        for (let j = 0; j < t.rank; j++) {
          s += which === 'embedding' ? t.a[v * t.rank + j] * t.b[h * t.rank + j] : t.b[v * t.rank + j] * t.a[j * H + h];
        }
        out[v * H + h] += t.scale * s;
      }
    }
  }
  const f32 = Float32Array.from(out);
  if (e.tokens && (which === 'embedding' || e.tokens.tiedHead)) {
    for (const [j, id] of e.tokens.ids.entries()) f32.set(e.tokens.rows.subarray(j * H, (j + 1) * H), id * H);
  }
  return values(weightFormat(w.dtype).encode(f32, V, H));
}

function close(got: Float32Array, want: Float32Array, dtype: WeightDType, what: string) {
  // bf16: the two sides may round a value that sits near a tie apart (one bf16 ulp: 2^-8 relative).
  const rel = dtype === 'bf16' ? 2 ** -7 : 1e-6;
  for (let i = 0; i < got.length; i++) {
    assert.ok(
      Math.abs(got[i] - want[i]) <= rel * Math.max(1, Math.abs(want[i])),
      `${what} [${i}]: ${got[i]} vs ${want[i]}`,
    );
  }
}

describe('mergeEdges', () => {
  for (const dtype of ['f32', 'bf16'] as const) {
    for (const tied of [false, true]) {
      test(`${dtype}, ${tied ? 'tied' : 'untied'} base: LoRA on embed_tokens and lm_head, saved norms, token rows`, () => {
        const { weights, config } = base(tied, dtype);
        const edges: EdgeModules = {
          embeddingLora: table(V, H, 3, 1.5, 11),
          lmHeadLora: table(H, V, 2, 0.75, 21),
          finalNorm: random(H, 31),
          layerNorms: [{ layer: 1, norm: 'mlpIn', weight: random(H, 41) }],
          tokens: { ids: Int32Array.of(0, 12, 5), rows: random(3 * H, 51), tiedHead: tied },
        };
        const merged = mergeEdges(weights, edges, config);
        close(values(merged.embedding), reference(weights.embedding, edges, 'embedding'), dtype, 'embedding');
        close(values(merged.lmHead), reference(weights.lmHead, edges, 'head'), dtype, 'lm_head');
        assert.equal(untiedByMerge(weights, merged), tied, 'a tied base whose head moved apart is untied');
        assert.deepEqual(merged.finalNorm, edges.finalNorm);
        assert.deepEqual(merged.layers[1].norms.post_attention_layernorm, edges.layerNorms![0].weight);
        assert.equal(merged.layers[0], weights.layers[0], 'a layer without saved norms is the same object');
        assert.deepEqual(weights.layers[1].norms.post_attention_layernorm, random(H, 6), 'the base is untouched');
      });
    }
  }

  test('a tied base stays tied: token rows change both alike; a saved copy equal to the base changes nothing', () => {
    const { weights, config } = base(true, 'f32');
    const tokens = { ids: Int32Array.of(2), rows: random(H, 61), tiedHead: true };
    const merged = mergeEdges(weights, { tokens }, config);
    assert.equal(merged.lmHead, merged.embedding);
    assert.deepEqual(values(merged.embedding).subarray(2 * H, 3 * H), tokens.rows);
    const same = mergeEdges(weights, { lmHead: values(weights.embedding) }, config);
    assert.equal(untiedByMerge(weights, same), false);
  });

  test('a saved embed_tokens on a tied base leaves the head the base’s (untied)', () => {
    const { weights, config } = base(true, 'f32');
    const copy = random(V * H, 71);
    const merged = mergeEdges(weights, { embedding: copy }, config);
    assert.deepEqual(values(merged.embedding), copy);
    assert.equal(merged.lmHead, weights.embedding);
    assert.equal(untiedByMerge(weights, merged), true);
  });
});
