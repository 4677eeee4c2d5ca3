/**
 * Native LoRA kernels (native/src/cpu/lora_*.cpp): a bank of adapter slots held in aligned native memory,
 * SGMV over segments (prefill) and BGMV per token (decode). The binding validates every argument and
 * throws TypeError / RangeError; nothing here re-checks.
 *
 * Shapes: x [M, K]; slot a, module m: A [rank, K], Bt [rank, N]; output row t at y[t*yStride + yOffset + n].
 * Semantics: for row t with slot a ≥ 0 targeting m (rank > 0):
 *   y[t*yStride + yOffset + n] += scale_a · Σ_j (Σ_k x[t*K + k] · A_a[j, k]) · Bt_a[j, n]
 * Batch invariant: a row's result is bitwise the same in SGMV or BGMV, alone or batched, with any thread
 * count (fixed reduction order per element; it may differ between ISAs).
 * A 'bf16' bank rounds A and Bt to bf16 (nearest even) in setLoraSlot and widens them exactly in the
 * kernels: bitwise what an 'f32' bank holding the rounded weights computes, at half the weight bytes.
 * An empty slot (never set, or cleared) is an error (RangeError), not the base model: pass -1 for that.
 * setLoraSlot/clearLoraSlot copy/free synchronously; call them between steps on the thread that runs the
 * kernels (the bank has no lock). The adapter's arrays can be dropped once setLoraSlot returns.
 */
import type { Kernels, LoraBank, LoraDtype } from '../types.ts';
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

function handleOf(bank: LoraBank, fn: string): unknown {
  if (!(bank instanceof NativeLoraBank)) throw new TypeError(`${fn}: the bank was not made by the native kernels`);
  return bank.handle;
}

export const nativeLoraKernels: Pick<
  Kernels,
  'createLoraBank' | 'setLoraSlot' | 'clearLoraSlot' | 'loraSgmv' | 'loraBgmv'
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
};
