/**
 * Native LoRA kernels (native/src/cpu/lora_*.cpp): a bank of adapter slots held in aligned native memory,
 * and applyAdapters over a row layout made once per step (createLoraRows/setLoraRows: the rows grouped by
 * slot natively, so the step's calls do not regroup them). The binding validates every argument and
 * throws TypeError / RangeError; nothing here re-checks (out.modules is flattened here, its types checked
 * on the way).
 *
 * Shapes: x [M, K]; slot a, module m: A [rank, K], Bt [rank, N]; out.modules = [{module m_i, yOffset o_i,
 * n N_i}] sharing x and out.y (q|k|v, gate|up), with disjoint column ranges.
 * Semantics: for each i, for row t with slot a = rowSlot[t] ≥ 0 targeting m_i (rank > 0):
 *   h[j] = Σ_k x[t*K + k] · A_a[j, k]
 *   h[j] = h[j] · rankScale_a[j]                   where the module has a rank scale (VeRA's λd), f32 product
 *   c_n = f32(scale_a · columnScale_a[n])          where it has a column scale (VeRA's λb; once, in setLoraSlot)
 *         else scale_a
 *   y[t*yStride + o_i + n] = fma(Σ_j h[j] · Bt_a[j, n], c_n, y[...])   (scalar ISA: rounded product, then sum)
 * in one native call, each row block running every module while its x rows are in cache.
 * Batch invariant: a row's result is bitwise the same alone or batched, with any module list, any thread
 * count (fixed reduction order per element; it may differ between ISAs).
 * A 'bf16' / 'f16' bank rounds A and Bt to bf16 / f16 (nearest even) in setLoraSlot and widens them exactly
 * in the kernels (f16: F16C where the ISA has it): bitwise what an 'f32' bank holding the rounded weights
 * computes, at half the weight bytes.
 * An adapter with output scales (DoRA, PackedAdapter.outScale) rescales its rows: y = s · (y + delta), s in f32.
 * Rank and column scales stay f32 too. Modules pointing at the same region of adapter.weights (same offset and
 * element count: VeRA's or Tied-LoRA's shared A / B) share one copy in the slot, read once per step.
 * An empty slot (never set, or cleared) is an error (RangeError), not the base model: pass -1 for that.
 * setLoraSlot/clearLoraSlot copy/free synchronously; call them between steps on the thread that runs the
 * kernels (the bank has no lock). The adapter's arrays can be dropped once setLoraSlot returns.
 */
import type { Kernels, LoraBank, LoraDtype, LoraModuleOutput, LoraRows } from '../types.ts';
import { loadAddon } from './addon.ts';

class NativeLoraBank implements LoraBank {
  constructor(
    readonly numSlots: number,
    readonly numModules: number,
    readonly dtype: LoraDtype,
    /** The addon's External; its finalizer frees the adapters' native copies. */
    readonly handle: unknown,
  ) {}
}

const MAX_MODULES_PER_CALL = 1024; // the binding's limit too

/** out.modules of a call as (module, yOffset, n) triples; grown as needed, reused across calls. */
let packedModules = new Float64Array(3 * 8);

/**
 * Flattens out.modules into packedModules for the binding, which checks the values (ranges, overlaps);
 * only their types are checked here. Reading the objects natively would cost microseconds per call.
 */
function packModules(fn: string, modules: readonly LoraModuleOutput[]): number {
  if (!Array.isArray(modules)) throw new TypeError(`${fn}: 'out.modules' must be an array of {module, yOffset, n}`);
  const count = modules.length;
  if (count > MAX_MODULES_PER_CALL) {
    throw new RangeError(`${fn}: out.modules has ${count} entries, at most ${MAX_MODULES_PER_CALL} are allowed`);
  }
  if (packedModules.length < 3 * count) packedModules = new Float64Array(3 * count);
  for (let i = 0; i < count; i++) {
    const m = modules[i];
    if (typeof m !== 'object' || m === null)
      throw new TypeError(`${fn}: 'out.modules[${i}]' must be an object {module, yOffset, n}`);
    const { module, yOffset, n } = m;
    if (typeof module !== 'number' || typeof yOffset !== 'number' || typeof n !== 'number')
      throw new TypeError(`${fn}: 'out.modules[${i}]': module, yOffset and n must be numbers`);
    packedModules[3 * i] = module;
    packedModules[3 * i + 1] = yOffset;
    packedModules[3 * i + 2] = n;
  }
  return count;
}

class NativeLoraRows implements LoraRows {
  numRows = 0;
  /** The addon's External (a native LoraRowLayout, freed by its finalizer). */
  constructor(readonly handle: unknown) {}
}

function rowsHandleOf(rows: LoraRows, fn: string): unknown {
  if (!(rows instanceof NativeLoraRows)) throw new TypeError(`${fn}: 'rows' must be made by createLoraRows`);
  return rows.handle;
}

function handleOf(bank: LoraBank, fn: string): unknown {
  if (!(bank instanceof NativeLoraBank)) throw new TypeError(`${fn}: the bank was not made by the native kernels`);
  return bank.handle;
}

export const nativeLoraKernels: Pick<
  Kernels,
  'createLoraBank' | 'setLoraSlot' | 'clearLoraSlot' | 'createLoraRows' | 'setLoraRows' | 'applyAdapters'
> = {
  createLoraBank(numSlots, numModules, dtype = 'f32') {
    const handle = loadAddon().loraBankCreate(numSlots, numModules, dtype);
    return new NativeLoraBank(numSlots, numModules, dtype, handle);
  },

  setLoraSlot(bank, slot, adapter) {
    loadAddon().loraBankSet(
      handleOf(bank, 'setLoraSlot'),
      slot,
      adapter.weights,
      adapter.rank,
      adapter.offsetA,
      adapter.offsetB,
      adapter.scale,
      adapter.inFeatures,
      adapter.outFeatures,
      adapter.outScale,
      adapter.offsetOutScale,
      adapter.rankScale,
      adapter.offsetRankScale,
      adapter.columnScale,
      adapter.offsetColumnScale,
    );
  },

  clearLoraSlot(bank, slot) {
    loadAddon().loraBankClear(handleOf(bank, 'clearLoraSlot'), slot);
  },

  createLoraRows() {
    return new NativeLoraRows(loadAddon().loraRowsCreate());
  },

  /** Groups the rows by slot once; every applyAdapters call of the step reads the grouping. */
  setLoraRows(rows, rowSlot, numRows) {
    loadAddon().loraRowsSet(rowsHandleOf(rows, 'setLoraRows'), rowSlot, numRows);
    (rows as NativeLoraRows).numRows = numRows;
  },

  /** Every module of out.modules (disjoint column ranges of out.y) over the step's rows, one native call. */
  applyAdapters(bank, rows, x, k, out) {
    const handle = handleOf(bank, 'applyAdapters');
    const count = packModules('applyAdapters', out.modules);
    loadAddon().loraApply(handle, x, k, out.y, out.yStride, packedModules, count, rowsHandleOf(rows, 'applyAdapters'));
  },
};
