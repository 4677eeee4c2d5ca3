/**
 * Per-request scale and composition: several packed adapters, each with a weight, served as ONE virtual
 * adapter, so a sequence that combines them takes one slot in the same mixed batch as everything else.
 *
 * Semantics, per module m (rank r_i, scale s_i, weight w_i of component i):
 *   A = [A_1; A_2; …]                       [Σ r_i, K]   (ranks add)
 *   Bt = [w_1·s_1·Bt_1; w_2·s_2·Bt_2; …]    [Σ r_i, N]   (the packed scale folded in), scale = 1
 * so y += x·Aᵀ·Bᵀ = Σ_i w_i·s_i·(x·A_iᵀ)·B_iᵀ exactly — PEFT's add_weighted_adapter(combination_type="cat").
 * DoRA components are refused: DoRA rescales the whole output by magnitude / ‖W + s·B·A‖, a per-adapter
 * factor that is not linear in B·A, so no concatenation of factors reproduces a weighted sum of DoRA outputs.
 * VeRA components compose through their folded factors (plainPacked: A·diag(λd), Bt·diag(λb)).
 * Edge modules (embed_tokens / lm_head LoRA, saved copies, token rows) compose in kinds/edge-compose.ts: the LoRA
 * ones by the same concatenation, the saved ones only as one adapter at weight 1 (else a 400 naming them).
 */
import { plainPacked } from '../kernels/packed-plain.ts';
import type { PackedAdapter } from '../kernels/types.ts';
import { createError } from '../observability/errors.ts';
import { composeEdges } from './kinds/edge-compose.ts';
import { edgesOf } from './kinds/edge-modules.ts';

/** At most this many adapters in one combination. */
export const MAX_COMPONENTS = 8;

/** One adapter of a request's combination (the server's `lora: [{name, scale}]`). */
export interface AdapterPart {
  name: string;
  weight: number;
}

/** What a request asks the engine for: the base (null), one adapter by name, or a weighted combination. */
export type AdapterChoice = string | readonly AdapterPart[] | null;

/** A component resolved to its version's key (`name@version`). */
export interface ResolvedPart {
  key: string;
  weight: number;
}

/**
 * The virtual adapter's key: equal combinations share it (and its host entry and slot). Order-free (sorted by
 * key); '(' cannot start an adapter name, so it never meets a real adapter's key.
 */
export function compositionKey(parts: readonly ResolvedPart[]): string {
  const sorted = [...parts].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return `(${sorted.map((p) => `${p.key}*${p.weight}`).join('+')})`;
}

/** How a combination is named in stats and logs: `sql*0.7+chat*0.3`. */
export function compositionLabel(parts: readonly AdapterPart[]): string {
  return parts.map((p) => `${p.name}*${p.weight}`).join('+');
}

/** Checks a request's parts (count, finite weights, no repeats); `field` names them in the 400. */
export function checkParts(parts: readonly AdapterPart[], field = 'lora'): void {
  const invalid = (message: string, param: string) => createError('REQUEST_INVALID', { message }, { param });
  if (parts.length === 0) throw invalid(`'${field}' must name at least one adapter`, field);
  if (parts.length > MAX_COMPONENTS) {
    throw invalid(`'${field}' combines at most ${MAX_COMPONENTS} adapters (got ${parts.length})`, field);
  }
  const seen = new Set<string>();
  for (const [i, p] of parts.entries()) {
    if (!Number.isFinite(p.weight)) {
      throw invalid(`'${field}[${i}].scale' must be a finite number`, `${field}[${i}].scale`);
    }
    if (seen.has(p.name)) {
      throw invalid(`'${field}[${i}].name': adapter '${p.name}' appears twice; give it once`, `${field}[${i}].name`);
    }
    seen.add(p.name);
  }
}

/** Builds the virtual adapter (see the header); throws a 400 naming `field` for DoRA or a rank over maxRank. */
export function composePacked(
  components: readonly { packed: PackedAdapter; weight: number; name: string }[],
  maxRank: number,
  field = 'lora',
): PackedAdapter {
  const invalid = (message: string) => createError('REQUEST_INVALID', { message }, { param: field });
  // VeRA's vectors folded into each module's own factors first: concatenation needs plain factors.
  const parts = components.map((p) => ({ ...p, packed: plainPacked(p.packed) }));
  const first = parts[0].packed;
  const count = first.rank.length;
  for (const p of parts) {
    if (p.packed.rank.length !== count) throw new Error(`adapter '${p.name}' was packed for another model`);
    if (p.packed.offsetOutScale?.some((o) => o >= 0)) {
      throw invalid(
        `adapter '${p.name}' is a DoRA adapter and cannot be scaled or combined: DoRA rescales each output by ` +
          'magnitude / ‖W + s·B·A‖, which is not linear in its factors; request it alone by model',
      );
    }
  }
  const rank = new Int32Array(count);
  const offsetA = new Int32Array(count);
  const offsetB = new Int32Array(count);
  const scale = new Float32Array(count);
  let total = 0;
  for (let m = 0; m < count; m++) {
    for (const p of parts) rank[m] += p.packed.rank[m];
    if (rank[m] > maxRank) {
      throw invalid(
        `the combination has rank ${rank[m]} on module ${m} (ranks add), above --max-lora-rank ${maxRank}; ` +
          'combine fewer adapters or raise --max-lora-rank',
      );
    }
    total += rank[m] * (first.inFeatures[m] + first.outFeatures[m]);
  }
  const weights = new Float32Array(total);
  let pos = 0;
  for (let m = 0; m < count; m++) {
    if (rank[m] === 0) continue;
    const k = first.inFeatures[m];
    const n = first.outFeatures[m];
    scale[m] = 1;
    offsetA[m] = pos;
    for (const { packed: p } of parts) {
      const r = p.rank[m];
      weights.set(p.weights.subarray(p.offsetA[m], p.offsetA[m] + r * k), pos);
      pos += r * k;
    }
    offsetB[m] = pos;
    for (const { packed: p, weight } of parts) {
      const r = p.rank[m];
      const f = Math.fround(weight * p.scale[m]);
      const src = p.weights.subarray(p.offsetB[m], p.offsetB[m] + r * n);
      for (let i = 0; i < src.length; i++) weights[pos + i] = src[i] * f;
      pos += r * n;
    }
  }
  const edges = composeEdges(
    parts.map((p) => ({ edges: edgesOf(p.packed), weight: p.weight, name: p.name })),
    maxRank,
    field,
  );
  return {
    weights,
    rank,
    offsetA,
    offsetB,
    scale,
    inFeatures: first.inFeatures.slice(),
    outFeatures: first.outFeatures.slice(),
    ...(edges ? { edges } : {}),
  };
}
