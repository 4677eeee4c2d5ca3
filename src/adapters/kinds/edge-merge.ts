/**
 * Merges an adapter's edge modules (edge-modules.ts) into the base weights, as PEFT's merge_and_unload does
 * (V = vocab, H = hidden; E the embedding [V, H], W the lm_head [V, H]; f64 sums, stored in the matrix's dtype):
 *
 *   saved copies      E = embedding, W = lmHead, norms = theirs (modules_to_save / save_embedding_layers)
 *   embeddingLora     E[v, h] += scale · Σ_j Aᵀ[v, j] · B[h, j]        (applied after a saved copy, as PEFT loads it)
 *   lmHeadLora        W[v, h] += scale · Σ_j B[v, j] · A[j, h]
 *   tokens            E[ids[j]] = rows[j]; on a tied base W is E, so the head's rows follow
 *
 * A tied base (lm_head is the embedding object) stays tied unless the head and the embedding end up different;
 * then each gets its own matrix and the writer must write lm_head.weight and tie_word_embeddings: false. That is
 * PEFT's advice for tied layers in an adapter ("merge the adapter after cloning the weights (to untie the
 * embeddings)") and what merge_and_unload itself does for a saved copy of either; merging a LoRA delta into the
 * one shared matrix instead would change both and no longer give the adapter's outputs.
 */
import type { WeightMatrix } from '../../kernels/types.ts';
import { weightFormat } from '../../kernels/weight-format.ts';
import type { ModelConfig } from '../../model/config.ts';
import { specOf } from '../../model/spec/index.ts';
import type { ModelWeights } from '../../model/weights.ts';
import type { EdgeModules, LowRankTable } from './edge-modules.ts';

/** Weights with the edge modules merged; untouched parts are the original objects. */
export function mergeEdges(weights: ModelWeights, edges: EdgeModules, config: ModelConfig): ModelWeights {
  const V = config.vocabSize;
  const H = config.hiddenSize;
  const tied = weights.lmHead === weights.embedding;
  let embedding = weights.embedding;
  let lmHead = weights.lmHead;
  const replaced = (from: WeightMatrix, values: Float32Array) => weightFormat(from.dtype).encode(values, V, H);
  if (edges.embedding) embedding = replaced(embedding, edges.embedding);
  if (edges.lmHead) lmHead = replaced(lmHead, edges.lmHead);
  if (edges.embeddingLora) embedding = addLowRank(embedding, edges.embeddingLora, 'embedding');
  if (edges.lmHeadLora) lmHead = addLowRank(lmHead, edges.lmHeadLora, 'head');
  if (edges.tokens) {
    const sameHead = lmHead === embedding;
    embedding = replaceRows(embedding, edges.tokens.ids, edges.tokens.rows);
    if (sameHead) lmHead = embedding;
    else if (edges.tokens.tiedHead) lmHead = replaceRows(lmHead, edges.tokens.ids, edges.tokens.rows);
  }
  // Still tied when both came out equal (e.g. a saved copy that is the base's own).
  if (tied && lmHead !== embedding && sameValues(lmHead, embedding)) lmHead = embedding;

  const spec = specOf(config.family);
  const layers = [...weights.layers];
  for (const n of edges.layerNorms ?? []) {
    const layer = layers[n.layer];
    const copied = layer === weights.layers[n.layer] ? { ...layer, norms: { ...layer.norms } } : layer;
    copied.norms[spec.norms[n.norm]] = n.weight.slice();
    layers[n.layer] = copied;
  }
  return {
    ...weights,
    embedding,
    lmHead,
    layers,
    finalNorm: edges.finalNorm ? edges.finalNorm.slice() : weights.finalNorm,
  };
}

/** True when merging changed a tied base's head apart from its embedding (write it untied). */
export function untiedByMerge(base: ModelWeights, merged: ModelWeights): boolean {
  return base.lmHead === base.embedding && merged.lmHead !== merged.embedding;
}

function addLowRank(w: WeightMatrix, t: LowRankTable, kind: 'embedding' | 'head'): WeightMatrix {
  const { rows: V, cols: H } = w;
  const { rank: r, a, b, scale } = t;
  const format = weightFormat(w.dtype);
  const out = Float32Array.from(format.decode(w));
  const row = new Float64Array(H);
  for (let v = 0; v < V; v++) {
    row.fill(0);
    for (let j = 0; j < r; j++) {
      // embedding: Aᵀ [V, r], B [H, r]; head: B [V, r], A [r, H]
      const coef = scale * (kind === 'embedding' ? a[v * r + j] : b[v * r + j]);
      if (coef === 0) continue;
      if (kind === 'embedding') for (let h = 0; h < H; h++) row[h] += coef * b[h * r + j];
      else for (let h = 0; h < H; h++) row[h] += coef * a[j * H + h];
    }
    for (let h = 0; h < H; h++) out[v * H + h] += row[h];
  }
  return format.encode(out, V, H);
}

function replaceRows(w: WeightMatrix, ids: Int32Array, rows: Float32Array): WeightMatrix {
  const format = weightFormat(w.dtype);
  const out = Float32Array.from(format.decode(w));
  for (const [j, id] of ids.entries()) out.set(rows.subarray(j * w.cols, (j + 1) * w.cols), id * w.cols);
  return format.encode(out, w.rows, w.cols);
}

function sameValues(x: WeightMatrix, y: WeightMatrix): boolean {
  if (x.dtype !== y.dtype || x.rows !== y.rows || x.cols !== y.cols || x.data.length !== y.data.length) return false;
  for (let i = 0; i < x.data.length; i++) if (x.data[i] !== y.data[i]) return false;
  return true;
}
