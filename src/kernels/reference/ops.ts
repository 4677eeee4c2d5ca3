/**
 * Reference elementwise ops, rounding each step to f32 where Hugging Face (torch, f32) does.
 */
import { bf16ToF32, f16ToF32 } from '../dtype.ts';
import type { Kernels } from '../types.ts';
import { isBlockDType } from '../weight-format.ts';
import { embeddingFromBlocksReference } from './qgemm-embedding.ts';

const f = Math.fround;

function fail(message: string): never {
  throw new RangeError(`ops: ${message}`);
}

function isWhole(n: number, min: number): boolean {
  return Number.isInteger(n) && n >= min;
}

/** The ops of this file, shared with the native wrapper (native/ops.ts). */
export type OpsKernels = Pick<
  Kernels,
  | 'rmsNorm'
  | 'siluMul'
  | 'addInPlace'
  | 'embedding'
  | 'rmsNormHeads'
  | 'geluTanhMul'
  | 'softcapInPlace'
  | 'scaleInPlace'
>;

/** out[oo + d] = f32(weight[d] · f32(x[xo + d] · r)), r = f32(1 / √(f32(Σ x² / dim) + eps)) (out may alias x). */
function rmsNormRow(
  x: Float32Array,
  xo: number,
  weight: Float32Array,
  out: Float32Array,
  oo: number,
  dim: number,
  eps: number,
) {
  let sum = 0;
  for (let d = 0; d < dim; d++) sum += x[xo + d] * x[xo + d];
  const scale = f(1 / Math.sqrt(f(f(sum / dim) + f(eps))));
  for (let d = 0; d < dim; d++) out[oo + d] = f(weight[d] * f(x[xo + d] * scale));
}

/** torch's gelu(approximate='tanh'), in f64. */
export function geluTanh(g: number): number {
  return 0.5 * g * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (g + 0.044715 * g * g * g)));
}

export const referenceOpsKernels: OpsKernels = {
  /**
   * x, out [rows, dim]; weight [dim] (out may alias x).
   * Semantics: r = f32(1 / √(f32(Σ x² / dim) + eps)); out[r, d] = f32(weight[d] · f32(x[r, d] · r))
   */
  rmsNorm(x, weight, out, rows, dim, eps) {
    if (!isWhole(rows, 0) || !isWhole(dim, 1)) fail('rows must be ≥ 0 and dim ≥ 1 (whole numbers)');
    if (!(eps >= 0) || !Number.isFinite(eps)) fail('eps must be finite and ≥ 0');
    if (x.length < rows * dim || out.length < rows * dim) fail('x and out must hold rows·dim values');
    if (weight.length < dim) fail('weight must hold dim values');
    for (let r = 0; r < rows; r++) rmsNormRow(x, r * dim, weight, out, r * dim, dim, eps);
  },

  /**
   * In place; x [rows, rowStride], head h of row r at r·rowStride + offset + h·headDim; weight [headDim].
   * Semantics: each head as rmsNorm does one row of headDim values.
   */
  rmsNormHeads(x, rows, rowStride, offset, numHeads, headDim, weight, eps) {
    if (![rows, rowStride, offset, numHeads].every((n) => isWhole(n, 0)) || !isWhole(headDim, 1))
      fail('rows, rowStride, offset, numHeads must be whole numbers ≥ 0 and headDim ≥ 1');
    if (!(eps >= 0) || !Number.isFinite(eps)) fail('eps must be finite and ≥ 0');
    const span = numHeads * headDim;
    if (offset + span > rowStride) fail('offset + numHeads·headDim must fit in rowStride');
    if (rows > 0 && x.length < (rows - 1) * rowStride + offset + span)
      fail('x must hold (rows - 1)·rowStride + offset + numHeads·headDim values');
    if (weight.length < headDim) fail('weight must hold headDim values');
    for (let r = 0; r < rows; r++) {
      for (let h = 0; h < numHeads; h++) {
        const o = r * rowStride + offset + h * headDim;
        rmsNormRow(x, o, weight, x, o, headDim, eps);
      }
    }
  },

  /**
   * gateUp [rows, 2·inter] = [gate | up]; out [rows, inter].
   * Semantics: out[r, i] = f32(f32(gelu_tanh(gate[r, i])) · up[r, i]), gelu_tanh in f64 (rounded once)
   */
  geluTanhMul(gateUp, out, rows, inter) {
    if (!isWhole(rows, 0) || !isWhole(inter, 0)) fail('rows and inter must be whole numbers ≥ 0');
    if (gateUp.length < rows * 2 * inter) fail('gateUp must hold rows·2·inter values');
    if (out.length < rows * inter) fail('out must hold rows·inter values');
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < inter; i++) {
        const g = gateUp[r * 2 * inter + i];
        out[r * inter + i] = f(f(geluTanh(g)) * gateUp[r * 2 * inter + inter + i]);
      }
    }
  },

  /** Semantics: x[i] = f32(cap·tanh(x[i] / cap)) (f64 inside) for i < length */
  softcapInPlace(x, length, cap) {
    if (!isWhole(length, 0)) fail('length must be a whole number ≥ 0');
    if (!(cap > 0) || !Number.isFinite(Math.fround(cap))) fail('cap must be finite and > 0');
    if (x.length < length) fail('x must hold length values');
    const c = f(cap);
    for (let i = 0; i < length; i++) x[i] = c * Math.tanh(x[i] / c);
  },

  /** Semantics: x[i] = f32(x[i] · f32(factor)) for i < length */
  scaleInPlace(x, length, factor) {
    if (!isWhole(length, 0)) fail('length must be a whole number ≥ 0');
    if (!Number.isFinite(Math.fround(factor))) fail('factor must be finite (as f32)');
    if (x.length < length) fail('x must hold length values');
    const s = f(factor);
    for (let i = 0; i < length; i++) x[i] = f(x[i] * s);
  },

  /**
   * gateUp [rows, 2·inter] = [gate | up]; out [rows, inter].
   * Semantics: out[r, i] = silu(gate[r, i]) · up[r, i], silu(g) = g / (1 + exp(-g))
   */
  siluMul(gateUp, out, rows, inter) {
    if (!isWhole(rows, 0) || !isWhole(inter, 0)) fail('rows and inter must be whole numbers ≥ 0');
    if (gateUp.length < rows * 2 * inter) fail('gateUp must hold rows·2·inter values');
    if (out.length < rows * inter) fail('out must hold rows·inter values');
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < inter; i++) {
        const g = gateUp[r * 2 * inter + i];
        const u = gateUp[r * 2 * inter + inter + i];
        out[r * inter + i] = f(f(g / f(1 + f(Math.exp(-g)))) * u);
      }
    }
  },

  /** Semantics: x[i] += y[i] for i < length (f32) */
  addInPlace(x, y, length) {
    if (!isWhole(length, 0)) fail('length must be a whole number ≥ 0');
    if (x.length < length || y.length < length) fail('x and y must hold length values');
    for (let i = 0; i < length; i++) x[i] += y[i];
  },

  /**
   * ids [T]; table [vocab, dim] (f32, or f16/bf16 bit patterns, or q8_0/q4_k/q6_k blocks); out [T, dim].
   * Semantics: out[t, :] = f32(table[ids[t], :])
   */
  embedding(ids, table, out, numTokens) {
    const { rows: vocab, cols: dim, dtype, data } = table;
    if (isBlockDType(dtype))
      return embeddingFromBlocksReference(dtype, data as Uint8Array, vocab, dim, ids, out, numTokens);
    if (dtype !== 'f32' && dtype !== 'f16' && dtype !== 'bf16')
      throw new TypeError(`ops: unknown table dtype '${dtype}'`);
    if (!isWhole(numTokens, 0)) fail('numTokens must be a whole number ≥ 0');
    if (!isWhole(vocab, 1) || !isWhole(dim, 1)) fail('the table must have at least one row and one column');
    if (dtype === 'f32' ? !(data instanceof Float32Array) : !(data instanceof Uint16Array))
      throw new TypeError(`ops: a ${dtype} table must be a ${dtype === 'f32' ? 'Float32Array' : 'Uint16Array'}`);
    if (data.length < vocab * dim) fail('table must hold rows·cols values');
    if (ids.length < numTokens) fail('ids must hold numTokens values');
    if (out.length < numTokens * dim) fail('out must hold numTokens·dim values');
    for (let t = 0; t < numTokens; t++) {
      if (ids[t] < 0 || ids[t] >= vocab)
        fail(`token id ${ids[t]} (position ${t}) is outside the embedding table (vocab ${vocab})`);
    }
    const widen = dtype === 'f32' ? (v: number) => v : dtype === 'bf16' ? bf16ToF32 : f16ToF32;
    for (let t = 0; t < numTokens; t++) {
      for (let d = 0; d < dim; d++) out[t * dim + d] = widen(data[ids[t] * dim + d]);
    }
  },
};
