/**
 * Native LoRA kernels (native/src/cpu/lora_*.cpp): a bank of adapter slots held in aligned native memory,
 * SGMV over segments (prefill) and BGMV per token (decode). The binding validates every argument and
 * throws TypeError / RangeError; nothing here re-checks (out.modules of the Multi forms is flattened here,
 * its types checked on the way).
 *
 * Shapes: x [M, K]; slot a, module m: A [rank, K], Bt [rank, N]; output row t at y[t*yStride + yOffset + n].
 * Semantics: for row t with slot a ≥ 0 targeting m (rank > 0):
 *   y[t*yStride + yOffset + n] += scale_a · Σ_j (Σ_k x[t*K + k] · A_a[j, k]) · Bt_a[j, n]
 * Multi forms: out.modules = [{module m_i, yOffset o_i, n N_i}] sharing x and out.y (q|k|v, gate|up), with
 * disjoint column ranges. Semantics: for each i, the single-module call with m_i, o_i, N_i, bitwise; in one
 * native call, each row block running every module while its x rows are in cache.
 * applyAdapters: the multi form over a row layout made once per step (createLoraRows/setLoraRows: the rows
 * grouped by slot natively, so the step's calls do not regroup them); bitwise what loraBgmvMulti computes
 * with tokenSlot = rowSlot.
 * Batch invariant: a row's result is bitwise the same in SGMV or BGMV, alone or batched, with any thread
 * count (fixed reduction order per element; it may differ between ISAs).
 * A 'bf16' / 'f16' bank rounds A and Bt to bf16 / f16 (nearest even) in setLoraSlot and widens them exactly
 * in the kernels (f16: F16C where the ISA has it): bitwise what an 'f32' bank holding the rounded weights
 * computes, at half the weight bytes.
 * An adapter with output scales (DoRA, PackedAdapter.outScale) rescales its rows: y = s · (y + delta), s in f32.
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

/** out.modules of a Multi call as (module, yOffset, n) triples; grown as needed, reused across calls. */
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
  | 'createLoraBank'
  | 'setLoraSlot'
  | 'clearLoraSlot'
  | 'loraSgmv'
  | 'loraBgmv'
  | 'loraSgmvMulti'
  | 'loraBgmvMulti'
  | 'createLoraRows'
  | 'setLoraRows'
  | 'applyAdapters'
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
    );
  },

  clearLoraSlot(bank, slot) {
    loadAddon().loraBankClear(handleOf(bank, 'clearLoraSlot'), slot);
  },

  /** SGMV: rows segStart[s] .. segStart[s+1]-1 use slot segSlot[s] (-1: base, untouched). */
  loraSgmv(bank, module, x, k, out, n, segStart, segSlot, numSegments) {
    loadAddon().loraSgmv(
      handleOf(bank, 'loraSgmv'),
      module,
      x,
      k,
      out.y,
      out.yStride,
      out.yOffset,
      n,
      segSlot,
      numSegments,
      segStart,
    );
  },

  /** BGMV: row t uses slot tokenSlot[t] (-1: base, untouched); same per-row math as SGMV. */
  loraBgmv(bank, module, x, k, out, n, tokenSlot, numTokens) {
    loadAddon().loraBgmv(
      handleOf(bank, 'loraBgmv'),
      module,
      x,
      k,
      out.y,
      out.yStride,
      out.yOffset,
      n,
      tokenSlot,
      numTokens,
    );
  },

  /** SGMV over out.modules (disjoint column ranges of out.y), one native call. */
  loraSgmvMulti(bank, x, k, out, segStart, segSlot, numSegments) {
    const handle = handleOf(bank, 'loraSgmvMulti');
    const count = packModules('loraSgmvMulti', out.modules);
    loadAddon().loraSgmvMulti(handle, x, k, out.y, out.yStride, packedModules, count, segSlot, numSegments, segStart);
  },

  /** BGMV over out.modules (disjoint column ranges of out.y), one native call. */
  loraBgmvMulti(bank, x, k, out, tokenSlot, numTokens) {
    const handle = handleOf(bank, 'loraBgmvMulti');
    const count = packModules('loraBgmvMulti', out.modules);
    loadAddon().loraBgmvMulti(handle, x, k, out.y, out.yStride, packedModules, count, tokenSlot, numTokens);
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
