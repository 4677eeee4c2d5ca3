/**
 * Reference LoRA kernels: the math written plainly, f32 accumulation (Math.fround at every step).
 * Validates its arguments like the native binding (same error classes), so one suite tests both.
 *
 * Shapes: x [M, K]; slot a, module m: A [rank, K], Bt [rank, N]; out.y rows of out.yStride,
 * out.modules = [{module m_i, yOffset o_i, n N_i}] with disjoint column ranges [o_i, o_i + N_i).
 * applyAdapters over a row layout (setLoraRows: row t uses slot rowSlot[t], -1 = base).
 * Semantics: for each i, for row t with slot a ≥ 0 targeting m_i:
 *   y[t*yStride + o_i + n] += scale_a,m_i · Σ_j (Σ_k x[t*K + k] · A_a,m_i[j, k]) · Bt_a,m_i[j, n]
 *   (rows and modules independent of each other)
 * A slot whose adapter has an output scale s_m for a module (DoRA) then rescales those rows' columns:
 *   y[t*yStride + yOffset + n] = s_m[n] · (y[t*yStride + yOffset + n] + delta)   (s_m kept in f32)
 * A slot that was never set or was cleared is an error (RangeError), not the base model: pass -1 for that.
 * A 'bf16' / 'f16' bank rounds A and Bt to bf16 / f16 (nearest even) in setLoraSlot; the math after that is
 * the same.
 */
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../dtype.ts';
import type { Kernels, LoraBank, LoraDtype, LoraMultiOutput, LoraRows, PackedAdapter } from '../types.ts';

/** Where one module's rows go: y[t*yStride + yOffset + n], n < N. */
interface ModuleOutput {
  y: Float32Array;
  yStride: number;
  yOffset: number;
}

interface StoredModule {
  rank: number;
  inFeatures: number;
  outFeatures: number;
  scale: number;
  a: Float32Array; // [rank, K]
  bt: Float32Array; // [rank, N]
  outScale: Float32Array | null; // [N]: y = outScale · (y + delta) (DoRA)
}

class ReferenceLoraBank implements LoraBank {
  readonly slots: (StoredModule[] | null)[];
  constructor(
    readonly numSlots: number,
    readonly numModules: number,
    readonly dtype: LoraDtype,
  ) {
    this.slots = new Array(numSlots).fill(null);
  }

  /** A copy of weights[begin, end) as this bank stores it (rounded to bf16 / f16 in a 16-bit bank). */
  stored(weights: Float32Array, begin: number, end: number): Float32Array {
    const copy = weights.slice(begin, end);
    if (this.dtype === 'bf16') for (let i = 0; i < copy.length; i++) copy[i] = bf16ToF32(f32ToBf16(copy[i]));
    if (this.dtype === 'f16') for (let i = 0; i < copy.length; i++) copy[i] = f16ToF32(f32ToF16(copy[i]));
    return copy;
  }
}

class ReferenceLoraRows implements LoraRows {
  rowSlot = new Int32Array(0);
  get numRows() {
    return this.rowSlot.length;
  }
}

function referenceBank(bank: LoraBank, fn: string): ReferenceLoraBank {
  if (!(bank instanceof ReferenceLoraBank)) throw new TypeError(`${fn}: the bank was not made by this implementation`);
  return bank;
}

function slotShape(bank: ReferenceLoraBank, module: number): (slot: number) => LoraSlotShape | null {
  return (slot) => {
    const modules = bank.slots[slot];
    if (!modules) return null;
    const m = modules[module];
    return { rank: m.rank, inFeatures: m.inFeatures, outFeatures: m.outFeatures };
  };
}

/** Semantics: y[yBase + n] += scale · Σ_j (Σ_k x[xBase + k] · A[j, k]) · Bt[j, n]; then *= outScale[n] if any. */
function applyRow(m: StoredModule, x: Float32Array, xBase: number, k: number, y: Float32Array, yBase: number) {
  const h = new Float32Array(m.rank);
  for (let j = 0; j < m.rank; j++) {
    let acc = 0;
    for (let i = 0; i < k; i++) acc = Math.fround(acc + Math.fround(x[xBase + i] * m.a[j * k + i]));
    h[j] = acc;
  }
  const n = m.outFeatures;
  for (let c = 0; c < n; c++) {
    let acc = 0;
    for (let j = 0; j < m.rank; j++) acc = Math.fround(acc + Math.fround(h[j] * m.bt[j * n + c]));
    y[yBase + c] = Math.fround(y[yBase + c] + Math.fround(m.scale * acc));
  }
  if (m.outScale) for (let c = 0; c < n; c++) y[yBase + c] = Math.fround(y[yBase + c] * m.outScale[c]);
}

function applyRows(
  bank: ReferenceLoraBank,
  module: number,
  slot: number,
  x: Float32Array,
  k: number,
  out: ModuleOutput,
  first: number,
  end: number,
) {
  if (slot < 0) return;
  const m = bank.slots[slot]![module];
  if (m.rank === 0) return;
  for (let t = first; t < end; t++) applyRow(m, x, t * k, k, out.y, t * out.yStride + out.yOffset);
}

export const referenceLoraKernels: Pick<
  Kernels,
  'createLoraBank' | 'setLoraSlot' | 'clearLoraSlot' | 'createLoraRows' | 'setLoraRows' | 'applyAdapters'
> = {
  createLoraBank(numSlots, numModules, dtype = 'f32') {
    integer(numSlots, 'numSlots', 1, 1 << 16);
    integer(numModules, 'numModules', 1, 1 << 20);
    if (typeof dtype !== 'string')
      throw new TypeError(`createLoraBank: 'dtype' must be a string ('f32', 'bf16' or 'f16')`);
    if (dtype !== 'f32' && dtype !== 'bf16' && dtype !== 'f16')
      throw new RangeError(`createLoraBank: 'dtype' must be 'f32', 'bf16' or 'f16', got '${dtype}'`);
    return new ReferenceLoraBank(numSlots, numModules, dtype);
  },

  setLoraSlot(bank, slot, adapter: PackedAdapter) {
    const b = referenceBank(bank, 'setLoraSlot');
    integer(slot, 'slot', 0, b.numSlots - 1);
    checkPackedAdapter(adapter, b.numModules);
    const modules: StoredModule[] = [];
    for (let m = 0; m < b.numModules; m++) {
      const rank = adapter.rank[m];
      const k = rank > 0 ? adapter.inFeatures[m] : 0;
      const n = rank > 0 ? adapter.outFeatures[m] : 0;
      modules.push({
        rank,
        inFeatures: k,
        outFeatures: n,
        scale: adapter.scale[m],
        a: b.stored(adapter.weights, adapter.offsetA[m], adapter.offsetA[m] + rank * k),
        bt: b.stored(adapter.weights, adapter.offsetB[m], adapter.offsetB[m] + rank * n),
        outScale:
          adapter.offsetOutScale && adapter.offsetOutScale[m] >= 0
            ? adapter.outScale!.slice(adapter.offsetOutScale[m], adapter.offsetOutScale[m] + n)
            : null,
      });
    }
    b.slots[slot] = modules;
  },

  clearLoraSlot(bank, slot) {
    const b = referenceBank(bank, 'clearLoraSlot');
    integer(slot, 'slot', 0, b.numSlots - 1);
    b.slots[slot] = null;
  },

  createLoraRows() {
    return new ReferenceLoraRows();
  },

  setLoraRows(rows, rowSlot, numRows) {
    const fn = 'setLoraRows';
    if (!(rows instanceof ReferenceLoraRows)) throw new TypeError(`${fn}: 'rows' must be made by createLoraRows`);
    if (!(rowSlot instanceof Int32Array)) throw new TypeError(`${fn}: rowSlot must be an Int32Array`);
    integer(numRows, 'numRows', 0, 0x7fffffff);
    if (rowSlot.length < numRows) throw new RangeError(`${fn}: rowSlot has fewer than ${numRows} entries`);
    for (let t = 0; t < numRows; t++) {
      if (rowSlot[t] < -1 || rowSlot[t] >= MAX_SLOTS) {
        throw new RangeError(
          `${fn}: rowSlot[${t}] = ${rowSlot[t]} is outside [-1, ${MAX_SLOTS - 1}] (-1 = base model)`,
        );
      }
    }
    rows.rowSlot = rowSlot.slice(0, numRows);
  },

  applyAdapters(bank, rows, x, k, out) {
    const fn = 'applyAdapters';
    const b = referenceBank(bank, fn);
    const outputs = checkMultiOutput(fn, b, x, k, out);
    if (!(rows instanceof ReferenceLoraRows)) throw new TypeError(`${fn}: 'rows' must be made by createLoraRows`);
    if (outputs.length === 0) return;
    const { rowSlot, numRows } = rows;
    for (const slot of new Set(rowSlot))
      for (const o of outputs) checkLoraSlot(fn, slot, b.numSlots, o.module, k, o.n, slotShape(b, o.module));
    for (const o of outputs) checkLoraRows(fn, x, k, o.out, o.n, 0, numRows);
    for (let t = 0; t < numRows; t++)
      for (const o of outputs) applyRows(b, o.module, rowSlot[t], x, k, o.out, t, t + 1);
  },
};

const MAX_SLOTS = 1 << 16;

const MAX_OUTPUTS = 1024;

/** out.modules checked (integers in range, disjoint columns), each as one module's output. */
function checkMultiOutput(fn: string, b: ReferenceLoraBank, x: Float32Array, k: number, out: LoraMultiOutput) {
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
    integer(m.module, `out.modules[${i}].module`, 0, b.numModules - 1);
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

// ── argument checks (the binding's, in TypeScript) ──────────────────────────────────────────────

interface LoraSlotShape {
  rank: number;
  inFeatures: number;
  outFeatures: number;
}

function integer(value: number, name: string, lo: number, hi: number) {
  if (typeof value !== 'number') throw new TypeError(`'${name}' must be a number`);
  if (!Number.isInteger(value) || value < lo || value > hi) {
    throw new RangeError(`'${name}' must be an integer in [${lo}, ${hi}], got ${value}`);
  }
}

const MAX_RANK = 1024;

function checkPackedAdapter(adapter: PackedAdapter, numModules: number) {
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
  checkOutScale(adapter, numModules);
}

/** outScale and offsetOutScale: both or neither; each offset -1 or a targeted module's [N] inside outScale. */
function checkOutScale(adapter: PackedAdapter, numModules: number) {
  const { outScale, offsetOutScale } = adapter;
  if (outScale === undefined && offsetOutScale === undefined) return;
  if (outScale === undefined || offsetOutScale === undefined) {
    throw new TypeError('setLoraSlot: adapter.outScale and adapter.offsetOutScale come together (DoRA) or not at all');
  }
  if (!(outScale instanceof Float32Array)) throw new TypeError('setLoraSlot: adapter.outScale must be a Float32Array');
  if (!(offsetOutScale instanceof Int32Array))
    throw new TypeError('setLoraSlot: adapter.offsetOutScale must be an Int32Array');
  if (offsetOutScale.length !== numModules) {
    throw new RangeError(
      `setLoraSlot: adapter.offsetOutScale has ${offsetOutScale.length} entries but the bank has ${numModules} modules`,
    );
  }
  for (let m = 0; m < numModules; m++) {
    const at = offsetOutScale[m];
    if (at === -1) continue;
    const where = `setLoraSlot: module ${m}: `;
    if (at < -1) throw new RangeError(`${where}offsetOutScale ${at} must be ≥ -1 (-1 = none)`);
    if (adapter.rank[m] === 0) throw new RangeError(`${where}an output scale on a module the adapter does not target`);
    const n = adapter.outFeatures[m];
    if (at + n > outScale.length) throw new RangeError(`${where}outScale does not fit in adapter.outScale`);
    for (let c = 0; c < n; c++)
      if (!Number.isFinite(outScale[at + c])) throw new RangeError(`${where}outScale values must be finite`);
  }
}

function checkLoraSlot(
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
function checkLoraRows(
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
