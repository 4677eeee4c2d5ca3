/**
 * Native elementwise ops (native/src/cpu/ops*.cpp), AVX2/AVX-512 at run time; rows split over the thread pool.
 */
import type { Kernels } from '../types.ts';
import { loadAddon } from './addon.ts';

export const nativeOpsKernels: Pick<Kernels, 'rmsNorm' | 'siluMul' | 'addInPlace' | 'embedding'> = {
  /**
   * x, out [rows, dim]; weight [dim] (out may alias x).
   * Semantics: r = 1 / √(mean(x[r, :]²) + eps) in f32; out[r, d] = weight[d] · (x[r, d] · r)
   */
  rmsNorm(x, weight, out, rows, dim, eps) {
    loadAddon().rmsNorm(x, weight, out, rows, dim, eps);
  },

  /**
   * gateUp [rows, 2·inter] = [gate | up]; out [rows, inter] (must not overlap gateUp).
   * Semantics: out[r, i] = gate[r, i] / (1 + exp(-gate[r, i])) · up[r, i]
   */
  siluMul(gateUp, out, rows, inter) {
    loadAddon().siluMul(gateUp, out, rows, inter);
  },

  /** Semantics: x[i] += y[i] for i < length */
  addInPlace(x, y, length) {
    loadAddon().addInPlace(x, y, length);
  },

  /**
   * ids [T]; table [vocab, dim] (f32, or f16/bf16 bit patterns); out [T, dim].
   * Semantics: out[t, :] = f32(table[ids[t], :])
   */
  embedding(ids, table, out, numTokens) {
    loadAddon().embedding(ids, numTokens, table.dtype, table.rows, table.cols, table.data, out);
  },
};
