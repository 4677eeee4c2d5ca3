/**
 * Packs an adapter into the kernels' slot layout (PackedAdapter, src/kernels/types.ts): one Float32Array
 * holding, for every targeted module m in index order, A_m [rank, K] then Bt_m = B_mᵀ [rank, N].
 *
 * Semantics (what a kernel computes with it): y[t, n] += scale[m] · Σ_j (Σ_k x[t, k] · A_m[j, k]) · Bt_m[j, n]
 * Modules the adapter does not target get rank 0, scale 0 and offsets 0; in/outFeatures are set for all.
 * A DoRA adapter also gets outScale (each DoRA module's [N] factors, in module order) and offsetOutScale
 * (-1 for the other modules); a plain LoRA adapter has neither. Modules holding the same `a` (or `b`) array — VeRA's
 * and Tied-LoRA's shared factors — get one copy and the same offset; VeRA's vectors go to rankScale / columnScale
 * with their offsets, as DoRA's do. An adapter with edge modules (embed_tokens,
 * lm_head, norms, token rows) carries them as `edges`, served per row by kinds/edge-slots.ts.
 */
import type { PackedAdapter } from '../kernels/types.ts';
import type { ModelConfig } from '../model/config.ts';
import { moduleKinds, moduleShape, numModules } from '../model/modules.ts';
import { createError } from '../observability/errors.ts';
import type { LoraAdapter, LoraModuleWeights } from './types.ts';

const MAX_INT32 = 2 ** 31 - 1;

export function packAdapter(adapter: LoraAdapter, base: ModelConfig): PackedAdapter {
  const count = numModules(base);
  const kinds = moduleKinds(base);
  const rank = new Int32Array(count);
  const offsetA = new Int32Array(count);
  const offsetB = new Int32Array(count);
  const scale = new Float32Array(count);
  const inFeatures = new Int32Array(count);
  const outFeatures = new Int32Array(count);
  for (let m = 0; m < count; m++) {
    const shape = moduleShape(base, kinds[m % kinds.length]);
    inFeatures[m] = shape.inFeatures;
    outFeatures[m] = shape.outFeatures;
  }

  for (const [m, mod] of adapter.modules) {
    const fits =
      m >= 0 &&
      m < count &&
      kinds[m % kinds.length] === mod.kind &&
      mod.a.length === mod.rank * inFeatures[m] &&
      mod.b.length === outFeatures[m] * mod.rank &&
      (!mod.dora || (mod.dora.outScale.length === outFeatures[m] && mod.rank > 0)) &&
      (!mod.rankScale || mod.rankScale.length === mod.rank) &&
      (!mod.columnScale || mod.columnScale.length === outFeatures[m]);
    if (!fits) {
      throw createError('ADAPTER_BASE_MISMATCH', {
        file: `adapter '${adapter.name}'`,
        problem:
          `${mod.kind} of layer ${mod.layer} (rank ${mod.rank}, A ${mod.a.length} values, B ${mod.b.length}` +
          `${mod.dora ? `, DoRA scales ${mod.dora.outScale.length}` : ''}) does not fit ` +
          `module ${m} of the base model it is packed for (${base.numLayers} layers, hidden_size ${base.hiddenSize})`,
        baseModel: adapter.config.baseModelNameOrPath,
      });
    }
  }
  // A shared factor (one array held by several modules) is stored once.
  const mods = [...adapter.modules.values()];
  const total = distinctLength(mods.map((m) => m.a)) + distinctLength(mods.map((m) => m.b));
  if (total > MAX_INT32) {
    throw createError('INTERNAL_ERROR', {
      message: `adapter '${adapter.name}' has ${total} LoRA weights, more than one slot can address`,
    });
  }

  const weights = new Float32Array(total);
  const placedA = new Map<Float32Array, number>();
  const placedB = new Map<Float32Array, number>();
  let pos = 0;
  for (let m = 0; m < count; m++) {
    const mod = adapter.modules.get(m);
    if (!mod || mod.rank === 0) continue;
    const r = mod.rank;
    const n = outFeatures[m];
    rank[m] = r;
    scale[m] = mod.scale;
    const atA = placedA.get(mod.a);
    if (atA !== undefined) {
      offsetA[m] = atA;
    } else {
      offsetA[m] = pos;
      placedA.set(mod.a, pos);
      weights.set(mod.a, pos);
      pos += mod.a.length;
    }
    const atB = placedB.get(mod.b);
    if (atB !== undefined) {
      offsetB[m] = atB;
      continue;
    }
    offsetB[m] = pos;
    placedB.set(mod.b, pos);
    // B is [N, r]; Bt[j, i] = B[i, j], so the expand step reads contiguous rows of length N.
    for (let i = 0; i < n; i++) {
      const row = i * r;
      for (let j = 0; j < r; j++) weights[pos + j * n + i] = mod.b[row + j];
    }
    pos += r * n;
  }
  const packed: PackedAdapter = { weights, rank, offsetA, offsetB, scale, inFeatures, outFeatures };
  // Edge modules ride along on the packed object (kinds/edge-modules.ts: edgesOf); the kernels never read them.
  const edges = adapter.edges ? { edges: adapter.edges } : {};
  const dora = hasDora(adapter) ? packOutScales(adapter, outFeatures) : {};
  return { ...packed, ...dora, ...packScalingVectors(adapter, count), ...edges };
}

/** VeRA's λd and λb as rankScale / columnScale with their offsets (-1: none); nothing for other adapters. */
function packScalingVectors(adapter: LoraAdapter, count: number) {
  const mods = [...adapter.modules.values()];
  const packed: Partial<PackedAdapter> = {};
  if (mods.some((m) => m.rankScale)) {
    const { values, offsets } = packVectors(adapter, count, (m) => m.rankScale);
    packed.rankScale = values;
    packed.offsetRankScale = offsets;
  }
  if (mods.some((m) => m.columnScale)) {
    const { values, offsets } = packVectors(adapter, count, (m) => m.columnScale);
    packed.columnScale = values;
    packed.offsetColumnScale = offsets;
  }
  return packed;
}

function packVectors(
  adapter: LoraAdapter,
  count: number,
  vectorOf: (m: LoraModuleWeights) => Float32Array | undefined,
): { values: Float32Array; offsets: Int32Array } {
  const offsets = new Int32Array(count).fill(-1);
  let total = 0;
  for (const mod of adapter.modules.values()) if (mod.rank > 0) total += vectorOf(mod)?.length ?? 0;
  const values = new Float32Array(total);
  let pos = 0;
  for (let m = 0; m < count; m++) {
    const mod = adapter.modules.get(m);
    const v = mod && mod.rank > 0 ? vectorOf(mod) : undefined;
    if (!v) continue;
    offsets[m] = pos;
    values.set(v, pos);
    pos += v.length;
  }
  return { values, offsets };
}

function distinctLength(arrays: Float32Array[]): number {
  let n = 0;
  for (const t of new Set(arrays)) n += t.length;
  return n;
}

function hasDora(adapter: LoraAdapter): boolean {
  for (const mod of adapter.modules.values()) if (mod.dora) return true;
  return false;
}

function packOutScales(adapter: LoraAdapter, outFeatures: Int32Array) {
  const offsetOutScale = new Int32Array(outFeatures.length).fill(-1);
  let total = 0;
  for (let m = 0; m < outFeatures.length; m++) {
    if (adapter.modules.get(m)?.dora) total += outFeatures[m];
  }
  const outScale = new Float32Array(total);
  let pos = 0;
  for (let m = 0; m < outFeatures.length; m++) {
    const dora = adapter.modules.get(m)?.dora;
    if (!dora) continue;
    offsetOutScale[m] = pos;
    outScale.set(dora.outScale, pos);
    pos += outFeatures[m];
  }
  return { outScale, offsetOutScale };
}
