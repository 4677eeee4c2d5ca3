/**
 * Merges an adapter into the base weights, for single-task deployments: W' = W + scale · B · A for every
 * targeted projection (DoRA: W' = (m / ‖W + scale·B·A‖) ⊙ (W + scale·B·A), the norm per output row, as PEFT's
 * merge_and_unload), computed in f64 per row and stored back in W's dtype. VeRA merges as PEFT's get_delta_weight,
 * (diag(λb)·B) · (diag(λd)·A), from its shared slices and vectors. Edge modules (LoRA on
 * embed_tokens / lm_head, saved copies, trainable token rows) merge in kinds/edge-merge.ts; a tied base whose head
 * then differs from its embedding comes out untied. The result serves the adapter's outputs with the base
 * model's speed (no LoRA kernels at all).
 */

import type { WeightMatrix } from '../kernels/types.ts';
import { weightFormat } from '../kernels/weight-format.ts';
import type { ModelConfig } from '../model/config.ts';
import type { ModelWeights } from '../model/weights.ts';
import { mergeEdges } from './kinds/edge-merge.ts';
import type { LoraAdapter, LoraModuleWeights } from './types.ts';

/**
 * W [N, K] + scale · B [N, r] · A [r, K], in W's dtype; for DoRA each row then times m / its norm (from this
 * W and the adapter's magnitude m). A new matrix; W is untouched.
 */
export function mergeModule(w: WeightMatrix, mod: LoraModuleWeights): WeightMatrix {
  const { rows: n, cols: k } = w;
  if (mod.a.length !== mod.rank * k || mod.b.length !== n * mod.rank) {
    throw new Error(
      `merge: ${mod.kind} of layer ${mod.layer} has shape [${n}, ${k}], which the adapter's factors do not fit`,
    );
  }
  const format = weightFormat(w.dtype);
  const magnitude = mod.dora?.magnitude;
  if (magnitude && magnitude.length !== n) {
    throw new Error(
      `merge: ${mod.kind} of layer ${mod.layer} has ${n} outputs, its DoRA magnitude ${magnitude.length}`,
    );
  }
  const merged = Float32Array.from(format.decode(w));
  const delta = new Float64Array(k);
  for (let row = 0; row < n; row++) {
    delta.fill(0);
    const column = mod.columnScale ? mod.columnScale[row] : 1;
    for (let j = 0; j < mod.rank; j++) {
      const bj = mod.b[row * mod.rank + j] * mod.scale * column * (mod.rankScale ? mod.rankScale[j] : 1);
      if (bj === 0) continue;
      const aRow = j * k;
      for (let c = 0; c < k; c++) delta[c] += bj * mod.a[aRow + c];
    }
    const base = row * k;
    if (!magnitude) {
      for (let c = 0; c < k; c++) merged[base + c] += delta[c];
      continue;
    }
    let sum = 0;
    for (let c = 0; c < k; c++) {
      delta[c] += merged[base + c];
      sum += delta[c] * delta[c];
    }
    const factor = magnitude[row] / Math.sqrt(sum);
    for (let c = 0; c < k; c++) merged[base + c] = factor * delta[c];
  }
  return format.encode(merged, n, k);
}

/** Base weights with the adapter merged in; layers the adapter does not touch share the original objects. */
export function mergeAdapterIntoWeights(
  weights: ModelWeights,
  adapter: LoraAdapter,
  config: ModelConfig,
): ModelWeights {
  const layers = weights.layers.map((l) => ({ ...l, linear: { ...l.linear } }));
  for (const mod of adapter.modules.values()) {
    if (mod.layer < 0 || mod.layer >= config.numLayers)
      throw new Error(`merge: layer ${mod.layer} is not in the model`);
    const layer = layers[mod.layer];
    const w = layer.linear[mod.kind];
    if (!w) throw new Error(`merge: the model has no ${mod.kind}`);
    layer.linear[mod.kind] = mergeModule(w, mod);
  }
  const merged = { ...weights, layers };
  return adapter.edges ? mergeEdges(merged, adapter.edges, config) : merged;
}
