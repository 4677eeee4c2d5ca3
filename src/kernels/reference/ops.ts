/**
 * Reference elementwise ops, rounding each step to f32 where Hugging Face (torch, f32) does.
 */
import { bf16ToF32, f16ToF32 } from '../dtype.ts';
import type { Kernels } from '../types.ts';

const f = Math.fround;

function fail(message: string): never {
  throw new RangeError(`ops: ${message}`);
}

function isWhole(n: number, min: number): boolean {
  return Number.isInteger(n) && n >= min;
}

export const referenceOpsKernels: Pick<Kernels, 'rmsNorm' | 'siluMul' | 'addInPlace' | 'embedding'> = {
  /**
   * x, out [rows, dim]; weight [dim] (out may alias x).
   * Semantics: r = f32(1 / √(f32(Σ x² / dim) + eps)); out[r, d] = f32(weight[d] · f32(x[r, d] · r))
   */
  rmsNorm(x, weight, out, rows, dim, eps) {
    if (!isWhole(rows, 0) || !isWhole(dim, 1)) fail('rows must be ≥ 0 and dim ≥ 1 (whole numbers)');
    if (!(eps >= 0) || !Number.isFinite(eps)) fail('eps must be finite and ≥ 0');
    if (x.length < rows * dim || out.length < rows * dim) fail('x and out must hold rows·dim values');
    if (weight.length < dim) fail('weight must hold dim values');
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      let sum = 0;
      for (let d = 0; d < dim; d++) sum += x[o + d] * x[o + d];
      const scale = f(1 / Math.sqrt(f(f(sum / dim) + f(eps))));
      for (let d = 0; d < dim; d++) out[o + d] = f(weight[d] * f(x[o + d] * scale));
    }
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
   * ids [T]; table [vocab, dim] (f32, or f16/bf16 bit patterns); out [T, dim].
   * Semantics: out[t, :] = f32(table[ids[t], :])
   */
  embedding(ids, table, out, numTokens) {
    const { rows: vocab, cols: dim, dtype, data } = table;
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
