/**
 * Native GEMM for the base projections (C++: native/src/cpu/gemm*.cpp), and the machine peaks the
 * benchmark compares it with (native/src/cpu/peak.cpp).
 *
 *   x [M, K] f32, W [N, K] (f32 | f16 | bf16), bias [N] → y [M, N]
 *   Semantics: y[m, n] (+)= Σ_k x[m, k] · W[n, k] + bias[n]
 *   One f32 FMA chain per element, k ascending, starting from y when accumulating; x stays f32. The one
 *   exception, off by default (see setBf16Dot): bf16 weights through bf16 dot products (vdpbf16ps, or AMX's
 *   TDPBF16PS where the CPU has it), x rounded to bf16.
 *   Batch-invariant: row m's result never depends on M, on the other rows or on the thread count.
 *
 * packWeight re-lays W into 32-column panels in native memory owned by the returned object and freed
 * when it is garbage-collected; the caller may drop its own copy. q8_0 / q4_k / q6_k weights go to the quantized
 * GEMM (qgemm.ts); a stacked matrix of parts in different block formats runs part by part (stacked-weight.ts).
 */

import { StackedWeight } from '../stacked-weight.ts';
import type { BlockDType, Kernels, PackedWeight, WeightMatrix } from '../types.ts';
import { isBlockDType } from '../weight-format.ts';
import { loadAddon } from './addon.ts';
import { NativeQuantWeight, packQuantWeight, qgemm } from './qgemm.ts';

class NativePackedWeight implements PackedWeight {
  constructor(
    readonly dtype: WeightMatrix['dtype'],
    readonly rows: number,
    readonly cols: number,
    /** The addon's handle to the packed panels. */
    readonly handle: unknown,
  ) {}
}

export const nativeGemmKernels: Pick<Kernels, 'packWeight' | 'gemm'> = {
  packWeight(w: WeightMatrix): PackedWeight {
    if (w.parts) return StackedWeight.pack(w, nativeGemmKernels.packWeight);
    if (isBlockDType(w.dtype)) return packQuantWeight(w as WeightMatrix & { dtype: BlockDType });
    const handle = loadAddon().gemmPackWeight(w.dtype, w.rows, w.cols, w.data);
    return new NativePackedWeight(w.dtype, w.rows, w.cols, handle);
  },

  gemm(x, w, y, m, bias, accumulate = false) {
    if (w instanceof NativeQuantWeight) return qgemm(x, w, y, m, bias, accumulate);
    if (w instanceof StackedWeight) return w.gemm(nativeGemmKernels.gemm, x, y, m, bias, accumulate);
    if (!(w instanceof NativePackedWeight))
      throw new TypeError("gemm: w must come from the native backend's packWeight");
    loadAddon().gemm(x, w.handle, y, m, bias ?? null, accumulate);
  },
};

/**
 * bf16 weights under AVX-512 BF16: `true` runs bf16 dot products (x rounded to bf16, products exact, f32
 * sums), `false` widens W to f32 for FMAs (x exact). Off by default, as on the Xeons measured vdpbf16ps
 * reaches half the FLOP rate of FMA; --bf16-dot (LORAPLEX_BF16_DOT=1) turns it on at load, through
 * configureNative. Where the CPU has AMX-BF16 (and Linux grants it) the dot products are TDPBF16PS, 32 k per
 * instruction, for every M (decode too, so a row's result never depends on M), and bf16 LoRA slots' shrink runs on
 * AMX tiles too (x rounded the same way; native/src/cpu/lora_amx.h); `amx: false` keeps the vdpbf16ps tiles
 * instead (tests of both). Returns whether a dot path is now in use (it also needs the
 * avx512bf16 ISA active); bf16DotPath() says which.
 */
export function setBf16Dot(enabled: boolean, options: { amx?: boolean } = {}): boolean {
  return loadAddon().gemmSetBf16Dot(enabled, options.amx ?? true);
}

/** Whether bf16 weights currently run through bf16 dot products (enabled and the avx512bf16 ISA active). */
export function bf16DotActive(): boolean {
  return loadAddon().gemmBf16DotActive();
}

export type Bf16DotPath = 'amx' | 'vdpbf16ps' | 'off';

/** What bf16 weights run through now: AMX tiles, the vdpbf16ps tiles, or neither (W widened to f32). */
export function bf16DotPath(): Bf16DotPath {
  return loadAddon().gemmBf16DotPath();
}

/** A measured machine peak: GFLOP/s or GB/s (1e9), and the instruction set it was measured with. */
export interface PeakFigure {
  value: number;
  isa: string;
}

/** f32 FMA throughput of all pool threads on register-resident accumulators (widest active ISA). */
export function measureFmaPeak(seconds = 0.5): PeakFigure {
  return loadAddon().measureFmaPeak(seconds);
}

/**
 * The f32 GEMM's register tile (the widest active ISA's, its most rows × 32 columns, k = 256) on operands that
 * stay in L1, all threads: the most the f32 path's GEMM can reach.
 */
export function measureF32TileInL1(seconds = 0.5): PeakFigure {
  return loadAddon().measureF32TileInL1(seconds);
}

/** vdpbf16ps throughput (64 FLOP per instruction), all threads; value 0 without AVX-512 BF16. */
export function measureBf16DotPeak(seconds = 0.5): PeakFigure {
  return loadAddon().measureBf16DotPeak(seconds);
}

/** AMX TDPBF16PS throughput (16384 FLOP per instruction), all threads; value 0 without AMX-BF16. */
export function measureAmxBf16Peak(seconds = 0.5): PeakFigure {
  return loadAddon().measureAmxBf16Peak(seconds);
}

/** Read bandwidth: all threads sum a `bytes` buffer; the best of `passes`. */
export function measureReadBandwidth(bytes = 1 << 30, passes = 5): PeakFigure {
  return loadAddon().measureReadBandwidth(bytes, passes);
}

/** Copy bandwidth (bytes read + written per second, as STREAM counts it); the best of `passes`. */
export function measureCopyBandwidth(bytes = 512 << 20, passes = 5): PeakFigure {
  return loadAddon().measureCopyBandwidth(bytes, passes);
}
