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
 * With VeRA's vectors (PackedAdapter.rankScale λd, columnScale λb) on a module, per row:
 *   h[j] = fround(h[j] · λd[j])   after the shrink, h[j] = Σ_k x[k] · A[j, k]
 *   c_n = fround(scale · λb[n])   (once, in setLoraSlot), else c_n = scale
 *   y[n] = fround(y[n] + fround(c_n · Σ_j h[j] · Bt[j, n]))
 * A slot whose adapter has an output scale s_m for a module (DoRA) then rescales those rows' columns:
 *   y[t*yStride + yOffset + n] = s_m[n] · (y[t*yStride + yOffset + n] + delta)   (s_m kept in f32)
 * The vectors stay f32 in every bank dtype.
 * A slot that was never set or was cleared is an error (RangeError), not the base model: pass -1 for that.
 * A 'bf16' / 'f16' bank rounds A and Bt to bf16 / f16 (nearest even) in setLoraSlot; the math after that is
 * the same. An 'int8' bank quantizes each row of A and of Bt (quantizeRowInt8: values q, one scale per row, sa for
 * A, sb for Bt) and applies the scales to h: h[j] = fround(fround(Σ_k x[k] · qa[j, k]) · sa[j]), then λd, then
 * h[j] = fround(h[j] · sb[j]); the expand sums h[j] · qb[j, n].
 */
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, quantizeRowInt8 } from '../dtype.ts';
import type { Kernels, LoraBank, LoraDtype, LoraRows, PackedAdapter } from '../types.ts';
import {
  checkLoraRows,
  checkLoraSlot,
  checkMultiOutput,
  checkPackedAdapter,
  integer,
  type LoraSlotShape,
  MAX_SLOTS,
  type ModuleOutput,
} from './lora-checks.ts';

interface StoredModule {
  rank: number;
  inFeatures: number;
  outFeatures: number;
  scale: number;
  a: Float32Array; // [rank, K] (an int8 bank: the int8 values)
  bt: Float32Array; // [rank, N] (likewise)
  aScale: Float32Array | null; // [rank]: an int8 bank's row scales of A
  btScale: Float32Array | null; // [rank]: an int8 bank's row scales of Bt
  outScale: Float32Array | null; // [N]: y = outScale · (y + delta) (DoRA)
  rankScale: Float32Array | null; // [rank]: h[j] *= rankScale[j] (VeRA's λd)
  columnScale: Float32Array | null; // [N]: c_n = fround(scale · λb[n]), in place of scale (VeRA's λb)
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

  /**
   * A copy of weights[begin, end) ([rows, …]) as this bank stores it: rounded to bf16 / f16 in a 16-bit bank,
   * quantized per row in an int8 bank (with the rows' scales; null otherwise).
   */
  stored(weights: Float32Array, begin: number, end: number, rows: number) {
    const copy = weights.slice(begin, end);
    let scales: Float32Array | null = null;
    if (this.dtype === 'bf16') for (let i = 0; i < copy.length; i++) copy[i] = bf16ToF32(f32ToBf16(copy[i]));
    if (this.dtype === 'f16') for (let i = 0; i < copy.length; i++) copy[i] = f16ToF32(f32ToF16(copy[i]));
    if (this.dtype === 'int8') {
      const len = rows > 0 ? copy.length / rows : 0;
      scales = new Float32Array(rows);
      for (let r = 0; r < rows; r++) scales[r] = quantizeRowInt8(copy, r * len, len, copy, r * len);
    }
    return { values: copy, scales };
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

/**
 * Semantics: y[yBase + n] += c_n · Σ_j (Σ_k x[xBase + k] · A[j, k]) · λd[j] · Bt[j, n], c_n = columnScale[n] or
 * scale, λd = rankScale or 1; then *= outScale[n] if any.
 */
function applyRow(m: StoredModule, x: Float32Array, xBase: number, k: number, y: Float32Array, yBase: number) {
  const h = new Float32Array(m.rank);
  for (let j = 0; j < m.rank; j++) {
    let acc = 0;
    for (let i = 0; i < k; i++) acc = Math.fround(acc + Math.fround(x[xBase + i] * m.a[j * k + i]));
    if (m.aScale) acc = Math.fround(acc * m.aScale[j]);
    if (m.rankScale) acc = Math.fround(acc * m.rankScale[j]);
    h[j] = m.btScale ? Math.fround(acc * m.btScale[j]) : acc;
  }
  const n = m.outFeatures;
  for (let c = 0; c < n; c++) {
    let acc = 0;
    for (let j = 0; j < m.rank; j++) acc = Math.fround(acc + Math.fround(h[j] * m.bt[j * n + c]));
    const scale = m.columnScale ? m.columnScale[c] : m.scale;
    y[yBase + c] = Math.fround(y[yBase + c] + Math.fround(scale * acc));
  }
  if (m.outScale) for (let c = 0; c < n; c++) y[yBase + c] = Math.fround(y[yBase + c] * m.outScale[c]);
}

/** A copy of module m's `length` values, or null where it has none (offsets absent, or -1). */
function vectorOf(values: Float32Array | undefined, offsets: Int32Array | undefined, m: number, length: number) {
  const at = offsets ? offsets[m] : -1;
  return at >= 0 ? values!.slice(at, at + length) : null;
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
      throw new TypeError(`createLoraBank: 'dtype' must be a string ('f32', 'bf16', 'f16' or 'int8')`);
    if (dtype !== 'f32' && dtype !== 'bf16' && dtype !== 'f16' && dtype !== 'int8')
      throw new RangeError(`createLoraBank: 'dtype' must be 'f32', 'bf16', 'f16' or 'int8', got '${dtype}'`);
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
      const a = b.stored(adapter.weights, adapter.offsetA[m], adapter.offsetA[m] + rank * k, rank);
      const bt = b.stored(adapter.weights, adapter.offsetB[m], adapter.offsetB[m] + rank * n, rank);
      modules.push({
        rank,
        inFeatures: k,
        outFeatures: n,
        scale: adapter.scale[m],
        a: a.values,
        bt: bt.values,
        aScale: a.scales,
        btScale: bt.scales,
        outScale: vectorOf(adapter.outScale, adapter.offsetOutScale, m, n),
        rankScale: vectorOf(adapter.rankScale, adapter.offsetRankScale, m, rank),
        columnScale:
          vectorOf(adapter.columnScale, adapter.offsetColumnScale, m, n)?.map((c) => adapter.scale[m] * c) ?? null,
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
    const outputs = checkMultiOutput(fn, b.numModules, x, k, out);
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
