/**
 * DoRA (weight-decomposed LoRA), as PEFT 0.21 computes it (peft/tuners/lora/dora.py): a targeted projection
 * W [N, K] with factors A, B, scale s and magnitude m [N] serves
 *
 *   y = (m / ‖W + s·B·A‖) ⊙ (x·Wᵀ + s·(x·Aᵀ)·Bᵀ) + bias
 *
 * where ‖·‖ is taken per output row (over the K inputs) and, at inference, is a constant: computed once here,
 * when the adapter is loaded against the base weights it will be served with. The bias is not rescaled.
 */
import { createError } from '../observability/errors.ts';
import type { LoraModuleWeights } from './types.ts';

/** ‖W_i + scale·(B·A)_i‖ for every output row i of W [N, K] (f64 sums). */
export function doraWeightNorm(w: Float32Array, n: number, k: number, mod: LoraModuleWeights): Float64Array {
  const { rank: r, a, b, scale } = mod;
  const norms = new Float64Array(n);
  const row = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < k; c++) row[c] = w[i * k + c];
    for (let j = 0; j < r; j++) {
      const bij = scale * b[i * r + j];
      if (bij === 0) continue;
      const aRow = j * k;
      for (let c = 0; c < k; c++) row[c] += bij * a[aRow + c];
    }
    let sum = 0;
    for (let c = 0; c < k; c++) sum += row[c] * row[c];
    norms[i] = Math.sqrt(sum);
  }
  return norms;
}

/**
 * m / ‖W + scale·B·A‖ per output row, in f32: the factor the kernels apply to the rows of a DoRA slot.
 * A zero norm (PEFT would divide by zero) or a non-finite factor is refused, naming the module.
 */
export function doraOutScale(
  w: Float32Array,
  n: number,
  k: number,
  mod: LoraModuleWeights,
  magnitude: Float32Array,
  file: string,
): Float32Array {
  const norms = doraWeightNorm(w, n, k, mod);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const factor = magnitude[i] / norms[i];
    if (!Number.isFinite(Math.fround(factor))) {
      throw createError('ADAPTER_WEIGHTS_INVALID', {
        file,
        field: `lora_magnitude_vector of ${mod.kind} in layer ${mod.layer}`,
        problem: `gives output ${i} the scale ${magnitude[i]} / ${norms[i]} (magnitude / ‖W + ΔW‖), which is not finite`,
        hint: 'the adapter does not fit this base model (a zero row in W + ΔW), or its magnitudes are damaged',
      });
    }
    out[i] = factor;
  }
  return out;
}
