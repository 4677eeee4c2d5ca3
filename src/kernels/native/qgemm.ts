/**
 * Native quantized GEMM (C++: native/src/cpu/qgemm*.cpp): W kept in ggml's Q8_0 / Q4_K / Q6_K blocks.
 *
 *   x [M, K] f32, W [N, K] as blocks (Uint8Array, K a multiple of 32 / 256), bias [N] → y [M, N]
 *   Semantics (exactly, bit for bit, as src/kernels/reference/qgemm.ts): each x row quantized per block to
 *   int8 (dx = max|x| / 127, round half to even), exact integer dot products per block, then one f32 chain
 *   per output: acc += f32(isum) · (dx · dw) (Q4_K: minus Σ f32(Σ m_j · bsum_j) · (dmin · dx); Q6_K: isum = Σ_j sc_j · Σ_16 (q − 32) · qx);
 *   y (+)= out + bias.
 *   AVX-512 VNNI (vpdpbusd), AVX2 (maddubs / madd) on 8 weight rows interleaved, tiles of up to 4 x rows sharing
 *   each weight load, or scalar; Q4_K batches of 24 or more rows on AMX-INT8 tiles where the CPU has them (see
 *   setQgemmAmx). All give the same results.
 *   Batch-invariant: row m's result never depends on M, on its tile, on the other rows or on the thread count.
 *
 * packQuantWeight re-lays the blocks out in native memory owned by the returned object (freed when it is
 * garbage-collected); the caller may drop its own copy.
 */
import type { BlockDType, PackedWeight, WeightMatrix } from '../types.ts';
import { loadAddon } from './addon.ts';

export class NativeQuantWeight implements PackedWeight {
  constructor(
    readonly dtype: BlockDType,
    readonly rows: number,
    readonly cols: number,
    /** The addon's handle to the re-laid blocks. */
    readonly handle: unknown,
    /** Bytes the re-laid blocks hold: what batch-1 decode streams (Q4_K's f32 scales and unpacked 6-bit fields
     *  make it 160 bytes a 256-value block, against the file's 144). */
    readonly heldBytes: number,
  ) {}
}

export function packQuantWeight(w: WeightMatrix & { dtype: BlockDType }): NativeQuantWeight {
  if (!(w.data instanceof Uint8Array))
    throw new TypeError(`packWeight: ${w.dtype} data must be a Uint8Array of blocks`);
  const addon = loadAddon();
  const handle = addon.qgemmPackWeight(w.dtype, w.rows, w.cols, w.data);
  return new NativeQuantWeight(w.dtype, w.rows, w.cols, handle, addon.qgemmWeightBytes(handle));
}

export function qgemm(
  x: Float32Array,
  w: NativeQuantWeight,
  y: Float32Array,
  m: number,
  bias?: Float32Array | null,
  accumulate = false,
): void {
  loadAddon().qgemm(x, w.handle, y, m, bias ?? null, accumulate);
}

/**
 * Q4_K batches of 24 or more x rows on AMX-INT8 tiles (TDPBSUD; native/src/cpu/qgemm_amx.cpp) where the CPU has
 * them, Linux grants the tile state and the VNNI kernels are active: the same integers and f32 steps, so the same
 * bits. Allowed by default; `false` keeps the VNNI kernels for every M (tests and benchmarks of both). Returns
 * whether such batches now run on AMX.
 */
export function setQgemmAmx(allowed: boolean): boolean {
  return loadAddon().qgemmSetAmx(allowed);
}

/** Whether Q4_K batches of 24 or more rows run on AMX-INT8 tiles now. */
export function qgemmAmxActive(): boolean {
  return loadAddon().qgemmAmxActive();
}

let encoderAddon: ReturnType<typeof loadAddon> | null | undefined;

/**
 * Q4_K blocks of `values` (a multiple of 256) through the addon: encodeQ4_K's bytes (block-encode.ts), ~19× as
 * fast; null where the addon is not built (the caller falls back to the TypeScript encoder).
 */
export function nativeEncodeQ4K(values: Float32Array): Uint8Array | null {
  if (encoderAddon === undefined) {
    try {
      encoderAddon = loadAddon(); // asked once: a missing build is not looked for again per matrix
    } catch {
      encoderAddon = null;
    }
  }
  const addon = encoderAddon;
  if (!addon) return null;
  const out = new Uint8Array((values.length / 256) * 144);
  addon.qgemmEncodeQ4K(values, out);
  return out;
}
