/**
 * What the quantized GEMM suites share: weights quantized from f32 (as --quantize makes them), random raw blocks
 * (every bit pattern of values, scales and mins, with finite f16 scales), and one GEMM call on a fresh copy of y.
 */
import { f32ToF16 } from '../../src/kernels/dtype.ts';
import type { BlockDType, Kernels, WeightMatrix } from '../../src/kernels/types.ts';
import { weightFormat } from '../../src/kernels/weight-format.ts';
import { rng } from './implementations.ts';

/** Where each block keeps its f16 scales (Q6_K's int8 sub-block scales stay random bytes). */
const HALVES: Record<BlockDType, number[]> = { q8_0: [0], q4_k: [0, 2], q6_k: [208] };

/** Weights quantized from f32 values (as --quantize makes them). */
export function quantizedWeight(type: BlockDType, rows: number, cols: number, seed: number): WeightMatrix {
  return weightFormat(type).encode(rng(seed).f32(rows * cols, 0.5), rows, cols);
}

/** Random raw blocks: random bytes, with finite f16 scales (d, dmin) so the values stay finite. */
export function rawWeight(type: BlockDType, rows: number, cols: number, seed: number): WeightMatrix {
  const r = rng(seed);
  const format = weightFormat(type);
  const data = new Uint8Array(format.bytes(rows, cols));
  for (let i = 0; i < data.length; i++) data[i] = r.int(0, 255);
  for (let at = 0; at < data.length; at += format.blockBytes) {
    for (const off of HALVES[type]) {
      const bits = f32ToF16((r.next() * 2 - 1) * 0.01);
      data[at + off] = bits & 0xff;
      data[at + off + 1] = bits >> 8;
    }
  }
  return { dtype: type, rows, cols, data };
}

/** y0 (+)= x · Wᵀ (+ bias) on a copy of y0, W packed for `kernels`. */
export function runGemm(
  kernels: Kernels,
  w: WeightMatrix,
  x: Float32Array,
  m: number,
  y0: Float32Array,
  bias?: Float32Array,
  accumulate = false,
) {
  const y = y0.slice();
  kernels.gemm(x, kernels.packWeight(w), y, m, bias, accumulate);
  return y;
}
