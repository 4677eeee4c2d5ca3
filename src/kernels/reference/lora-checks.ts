/**
 * The reference LoRA kernels' argument checks: the binding's (native/binding/lora_binding.cpp) in TypeScript,
 * with the same error classes (TypeError for types, RangeError for values), so one suite tests both.
 */
import type { LoraMultiOutput, PackedAdapter } from '../types.ts';

/** Where one module's rows go: y[t*yStride + yOffset + n], n < N. */
export interface ModuleOutput {
  y: Float32Array;
  yStride: number;
  yOffset: number;
}

export const MAX_SLOTS = 1 << 16;

const MAX_OUTPUTS = 1024;

/** out.modules checked (integers in range, disjoint columns), each as one module's output. */
export function checkMultiOutput(fn: string, numModules: number, x: Float32Array, k: number, out: LoraMultiOutput) {
  if (!(x instanceof Float32Array)) throw new TypeError(`${fn}: x must be a Float32Array`);
  integer(k, 'k', 1, 1 << 24);
  if (!(out?.y instanceof Float32Array)) throw new TypeError(`${fn}: out.y must be a Float32Array`);
  integer(out.yStride, 'out.yStride', 1, 0x7fffffff);
  if (!Array.isArray(out.modules)) throw new TypeError(`${fn}: 'out.modules' must be an array of {module, yOffset, n}`);
  if (out.modules.length > MAX_OUTPUTS) {
    throw new RangeError(`${fn}: out.modules has ${out.modules.length} entries, at most ${MAX_OUTPUTS} are allowed`);
  }
  const outputs = out.modules.map((m, i) => {
    if (typeof m !== 'object' || m === null) {
      throw new TypeError(`${fn}: 'out.modules[${i}]' must be an object {module, yOffset, n}`);
    }
    integer(m.module, `out.modules[${i}].module`, 0, numModules - 1);
    integer(m.yOffset, `out.modules[${i}].yOffset`, 0, 0x7fffffff);
    integer(m.n, `out.modules[${i}].n`, 1, 1 << 24);
    return { index: i, module: m.module, n: m.n, out: { y: out.y, yStride: out.yStride, yOffset: m.yOffset } };
  });
  const byOffset = [...outputs].sort((p, q) => p.out.yOffset - q.out.yOffset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1];
    if (prev.out.yOffset + prev.n > byOffset[i].out.yOffset) {
      throw new RangeError(
        `${fn}: the columns of out.modules[${prev.index}] and out.modules[${byOffset[i].index}] overlap`,
      );
    }
  }
  return outputs;
}

export interface LoraSlotShape {
  rank: number;
  inFeatures: number;
  outFeatures: number;
}

export function integer(value: number, name: string, lo: number, hi: number) {
  if (typeof value !== 'number') throw new TypeError(`'${name}' must be a number`);
  if (!Number.isInteger(value) || value < lo || value > hi) {
    throw new RangeError(`'${name}' must be an integer in [${lo}, ${hi}], got ${value}`);
  }
}

const MAX_RANK = 1024;

export function checkPackedAdapter(adapter: PackedAdapter, numModules: number) {
  if (!(adapter?.weights instanceof Float32Array))
    throw new TypeError('setLoraSlot: adapter.weights must be a Float32Array');
  if (!(adapter.scale instanceof Float32Array))
    throw new TypeError('setLoraSlot: adapter.scale must be a Float32Array');
  const ints = {
    rank: adapter.rank,
    offsetA: adapter.offsetA,
    offsetB: adapter.offsetB,
    inFeatures: adapter.inFeatures,
    outFeatures: adapter.outFeatures,
  };
  for (const [name, array] of Object.entries(ints)) {
    if (!(array instanceof Int32Array)) throw new TypeError(`setLoraSlot: adapter.${name} must be an Int32Array`);
  }
  for (const [name, array] of [...Object.entries(ints), ['scale', adapter.scale] as const]) {
    if (array.length !== numModules) {
      throw new RangeError(
        `setLoraSlot: adapter.${name} has ${array.length} entries but the bank has ${numModules} modules`,
      );
    }
  }
  const total = adapter.weights.length;
  for (let m = 0; m < numModules; m++) {
    const r = adapter.rank[m];
    const where = `setLoraSlot: module ${m}: `;
    if (r < 0 || r > MAX_RANK) throw new RangeError(`${where}rank ${r} is outside [0, ${MAX_RANK}]`);
    if (r === 0) continue;
    const k = adapter.inFeatures[m];
    const n = adapter.outFeatures[m];
    if (k < 1 || k > 1 << 24 || n < 1 || n > 1 << 24)
      throw new RangeError(`${where}inFeatures/outFeatures out of range`);
    const oa = adapter.offsetA[m];
    const ob = adapter.offsetB[m];
    if (oa < 0 || oa + r * k > total || ob < 0 || ob + r * n > total) {
      throw new RangeError(`${where}A or Bt does not fit in adapter.weights (length ${total})`);
    }
    if (!Number.isFinite(adapter.scale[m])) throw new RangeError(`${where}scale must be finite`);
  }
  for (const pair of VECTOR_PAIRS) checkVectors(adapter, numModules, pair);
}

/** One optional pair of per-module vectors of a PackedAdapter. */
interface VectorPair {
  values: 'outScale' | 'rankScale' | 'columnScale';
  offsets: 'offsetOutScale' | 'offsetRankScale' | 'offsetColumnScale';
  noun: string; // 'an output scale'
  why: string; // why the two come together
  perRank: boolean; // module m's vector has rank[m] entries, else outFeatures[m]
}

const VECTOR_PAIRS: VectorPair[] = [
  { values: 'outScale', offsets: 'offsetOutScale', noun: 'an output scale', why: '(DoRA)', perRank: false },
  { values: 'rankScale', offsets: 'offsetRankScale', noun: 'a rank scale', why: "(VeRA's λd)", perRank: true },
  { values: 'columnScale', offsets: 'offsetColumnScale', noun: 'a column scale', why: "(VeRA's λb)", perRank: false },
];

/** Values and offsets: both or neither; each offset -1 or a targeted module's [N] (or [rank]) inside the values. */
function checkVectors(adapter: PackedAdapter, numModules: number, pair: VectorPair) {
  const values = adapter[pair.values];
  const offsets = adapter[pair.offsets];
  if (values === undefined && offsets === undefined) return;
  if (values === undefined || offsets === undefined) {
    throw new TypeError(
      `setLoraSlot: adapter.${pair.values} and adapter.${pair.offsets} come together ${pair.why} or not at all`,
    );
  }
  if (!(values instanceof Float32Array))
    throw new TypeError(`setLoraSlot: adapter.${pair.values} must be a Float32Array`);
  if (!(offsets instanceof Int32Array))
    throw new TypeError(`setLoraSlot: adapter.${pair.offsets} must be an Int32Array`);
  if (offsets.length !== numModules) {
    throw new RangeError(
      `setLoraSlot: adapter.${pair.offsets} has ${offsets.length} entries but the bank has ${numModules} modules`,
    );
  }
  for (let m = 0; m < numModules; m++) {
    const at = offsets[m];
    if (at === -1) continue;
    const where = `setLoraSlot: module ${m}: `;
    if (at < -1) throw new RangeError(`${where}${pair.offsets} ${at} must be ≥ -1 (-1 = none)`);
    if (adapter.rank[m] === 0) throw new RangeError(`${where}${pair.noun} on a module the adapter does not target`);
    const n = pair.perRank ? adapter.rank[m] : adapter.outFeatures[m];
    if (at + n > values.length) {
      throw new RangeError(
        `${where}${pair.values} [${n}] at ${pair.offsets} ${at} does not fit in adapter.${pair.values} ` +
          `(length ${values.length})`,
      );
    }
    for (let c = 0; c < n; c++)
      if (!Number.isFinite(values[at + c])) throw new RangeError(`${where}${pair.values} values must be finite`);
  }
}

export function checkLoraSlot(
  fn: string,
  slot: number,
  numSlots: number,
  module: number,
  k: number,
  n: number,
  shapeOf: (slot: number) => LoraSlotShape | null,
) {
  if (slot === -1) return;
  if (slot < -1 || slot >= numSlots) throw new RangeError(`${fn}: slot ${slot} is outside [-1, ${numSlots - 1}]`);
  const shape = shapeOf(slot);
  if (!shape) throw new RangeError(`${fn}: slot ${slot} is empty (never set, or cleared)`);
  if (shape.rank > 0 && (shape.inFeatures !== k || shape.outFeatures !== n)) {
    throw new RangeError(
      `${fn}: slot ${slot}, module ${module}: the adapter has K=${shape.inFeatures}, N=${shape.outFeatures} ` +
        `but the call passes K=${k}, N=${n}`,
    );
  }
}

/** Rows [first, end) must lie inside x and out.y, and x must not overlap the output rows. */
export function checkLoraRows(
  fn: string,
  x: Float32Array,
  k: number,
  out: ModuleOutput,
  n: number,
  first: number,
  end: number,
) {
  if (end <= first) return;
  if (out.yOffset + n > out.yStride) throw new RangeError(`${fn}: out.yOffset + n exceeds out.yStride`);
  if (end * k > x.length)
    throw new RangeError(`${fn}: x has ${x.length} elements, ${end} rows of K=${k} need ${end * k}`);
  const yEnd = (end - 1) * out.yStride + out.yOffset + n;
  if (yEnd > out.y.length) throw new RangeError(`${fn}: out.y has ${out.y.length} elements, needs ${yEnd}`);
  if (x.buffer === out.y.buffer) {
    const x0 = x.byteOffset + first * k * 4;
    const x1 = x.byteOffset + end * k * 4;
    const y0 = out.y.byteOffset + (first * out.yStride + out.yOffset) * 4;
    const y1 = out.y.byteOffset + yEnd * 4;
    if (x0 < y1 && y0 < x1) throw new TypeError(`${fn}: x and out.y must not overlap`);
  }
}
