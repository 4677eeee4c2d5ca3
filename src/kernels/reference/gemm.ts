/**
 * GEMM reference: the base projections in plain loops, every product and sum rounded to f32, f16/bf16
 * weights decoded exactly. Slow and obvious; the native kernels are tested against it.
 *
 *   x [M, K] f32, W [N, K] (f32 | f16 | bf16), bias [N] → y [M, N]
 *   Semantics: y[m, n] (+)= Σ_k x[m, k] · W[n, k] + bias[n]
 * q8_0 / q4_k / q6_k weights run the quantized GEMM's reference instead (qgemm.ts: x quantized per block, int8 dots);
 * a stacked matrix of parts in different block formats runs part by part (stacked-weight.ts).
 */

import { StackedWeight } from '../stacked-weight.ts';
import type { BlockDType, Kernels, PackedWeight, WeightMatrix } from '../types.ts';
import { isBlockDType, weightFormat } from '../weight-format.ts';
import { qgemmReference } from './qgemm.ts';

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

function checkWeight(w: WeightMatrix): void {
  if (!isCount(w.rows) || !isCount(w.cols)) throw new TypeError('packWeight: rows and cols must be integers ≥ 0');
  const want =
    w.dtype === 'f32'
      ? Float32Array
      : w.dtype === 'f16' || w.dtype === 'bf16'
        ? Uint16Array
        : isBlockDType(w.dtype)
          ? Uint8Array
          : null;
  if (!want)
    throw new TypeError(`packWeight: dtype must be 'f32', 'f16', 'bf16', 'q8_0', 'q4_k' or 'q6_k', got '${w.dtype}'`);
  if (!(w.data instanceof want)) throw new TypeError(`packWeight: ${w.dtype} data must be a ${want.name}`);
  const format = weightFormat(w.dtype);
  if (w.cols % format.blockElements !== 0)
    throw new TypeError(
      `packWeight: ${w.dtype} rows must be whole blocks of ${format.blockElements}, got K = ${w.cols}`,
    );
  const need = isBlockDType(w.dtype) ? format.bytes(w.rows, w.cols) : w.rows * w.cols;
  if (w.data.length < need) throw new TypeError(`packWeight: data has ${w.data.length} elements, needs ${need}`);
}

function checkGemmArgs(
  x: Float32Array,
  w: PackedWeight,
  y: Float32Array,
  m: number,
  bias: Float32Array | undefined,
): void {
  if (!(x instanceof Float32Array) || !(y instanceof Float32Array))
    throw new TypeError('gemm: x and y must be Float32Arrays');
  if (!isCount(m)) throw new TypeError(`gemm: m must be an integer ≥ 0, got ${m}`);
  if (x.length < m * w.cols) throw new TypeError(`gemm: x has ${x.length} elements, needs m · K = ${m * w.cols}`);
  if (y.length < m * w.rows) throw new TypeError(`gemm: y has ${y.length} elements, needs m · N = ${m * w.rows}`);
  if (bias !== undefined && bias !== null) {
    if (!(bias instanceof Float32Array)) throw new TypeError('gemm: bias must be a Float32Array');
    if (bias.length < w.rows) throw new TypeError(`gemm: bias has ${bias.length} elements, needs N = ${w.rows}`);
  }
}

/** The reference keeps W [N, K] decoded to f32 (sharing the caller's array when it is f32 already). */
class ReferencePackedWeight implements PackedWeight {
  constructor(
    readonly dtype: WeightMatrix['dtype'],
    readonly rows: number,
    readonly cols: number,
    readonly values: Float32Array,
  ) {}
}

/** Q8_0 / Q4_K / Q6_K: the blocks themselves, run by the quantized GEMM's reference (qgemm.ts). */
class ReferenceQuantWeight implements PackedWeight {
  constructor(
    readonly dtype: BlockDType,
    readonly rows: number,
    readonly cols: number,
    readonly blocks: Uint8Array,
  ) {}
}

export const referenceGemmKernels: Pick<Kernels, 'packWeight' | 'gemm'> = {
  packWeight(w: WeightMatrix): PackedWeight {
    if (w.parts) return StackedWeight.pack(w, referenceGemmKernels.packWeight);
    checkWeight(w);
    if (isBlockDType(w.dtype)) return new ReferenceQuantWeight(w.dtype, w.rows, w.cols, w.data as Uint8Array);
    const values = weightFormat(w.dtype).decode(w);
    return new ReferencePackedWeight(w.dtype, w.rows, w.cols, values);
  },

  gemm(x, w, y, m, bias, accumulate = false) {
    if (w instanceof StackedWeight) return w.gemm(referenceGemmKernels.gemm, x, y, m, bias, accumulate);
    if (w instanceof ReferenceQuantWeight) {
      checkGemmArgs(x, w, y, m, bias);
      qgemmReference(w.dtype, w.blocks, w.rows, w.cols, x, m, y, bias ?? undefined, accumulate);
      return;
    }
    if (!(w instanceof ReferencePackedWeight)) throw new TypeError("gemm: w must come from this backend's packWeight");
    checkGemmArgs(x, w, y, m, bias);
    const { rows: n, cols: k, values } = w;
    for (let r = 0; r < m; r++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let i = 0; i < k; i++) sum = Math.fround(sum + Math.fround(x[r * k + i] * values[j * k + i]));
        if (bias) sum = Math.fround(sum + bias[j]);
        y[r * n + j] = accumulate ? Math.fround(y[r * n + j] + sum) : sum;
      }
    }
  },
};
