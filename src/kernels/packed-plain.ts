/**
 * A packed adapter with its scaling vectors folded into per-module factors, for consumers that only take plain
 * LoRA slots (the CUDA bank, composition). Shared factors (VeRA, Tied-LoRA: several modules at one offset) are
 * copied per module, as the adapter was before slots could share them.
 *
 * Semantics, per module m with rank scales rs (λd) and column scales cs (λb):
 *   A'_m[j, k]  = A_m[j, k] · rs[j]          (f32 products)
 *   Bt'_m[j, n] = Bt_m[j, n] · cs[n]
 * so y += scale_m · Σ_j (Σ_k x[k] · A'_m[j, k]) · Bt'_m[j, n] is the vectored delta up to f32 rounding.
 */
import type { PackedAdapter } from './types.ts';

/** Whether the adapter has rank or column scales (VeRA), which not every bank applies. */
export function hasScalingVectors(p: PackedAdapter): boolean {
  return Boolean(p.offsetRankScale?.some((o) => o >= 0) || p.offsetColumnScale?.some((o) => o >= 0));
}

/** The same adapter with every module's factors its own and no rank / column scales (the adapter itself if it has none). */
export function plainPacked(p: PackedAdapter): PackedAdapter {
  if (!hasScalingVectors(p)) return p;
  const count = p.rank.length;
  let total = 0;
  for (let m = 0; m < count; m++) total += p.rank[m] * (p.inFeatures[m] + p.outFeatures[m]);
  const weights = new Float32Array(total);
  const offsetA = new Int32Array(count);
  const offsetB = new Int32Array(count);
  let pos = 0;
  for (let m = 0; m < count; m++) {
    const r = p.rank[m];
    if (r === 0) continue;
    const k = p.inFeatures[m];
    const n = p.outFeatures[m];
    const rs = p.offsetRankScale?.[m] ?? -1;
    const cs = p.offsetColumnScale?.[m] ?? -1;
    offsetA[m] = pos;
    for (let j = 0; j < r; j++) {
      const s = rs >= 0 ? p.rankScale![rs + j] : 1;
      for (let c = 0; c < k; c++) weights[pos + j * k + c] = p.weights[p.offsetA[m] + j * k + c] * s;
    }
    pos += r * k;
    offsetB[m] = pos;
    for (let j = 0; j < r; j++) {
      for (let c = 0; c < n; c++) {
        const s = cs >= 0 ? p.columnScale![cs + c] : 1;
        weights[pos + j * n + c] = p.weights[p.offsetB[m] + j * n + c] * s;
      }
    }
    pos += r * n;
  }
  const { rankScale: _rs, offsetRankScale: _ors, columnScale: _cs, offsetColumnScale: _ocs, ...rest } = p;
  return { ...rest, weights, offsetA, offsetB };
}
