/**
 * Native elementwise ops (native/src/cpu/ops*.cpp), AVX2/AVX-512 at run time; rows split over the thread pool.
 */
import type { OpsKernels } from '../reference/ops.ts';
import { isBlockDType } from '../weight-format.ts';
import { loadAddon } from './addon.ts';
import { embeddingFromBlocks } from './qgemm-embedding.ts';

export const nativeOpsKernels: OpsKernels = {
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
   * In place; x [rows, rowStride], head h of row r at r·rowStride + offset + h·headDim; weight [headDim]
   * (must not overlap x). Semantics: each head as rmsNorm does one row of headDim values.
   */
  rmsNormHeads(x, rows, rowStride, offset, numHeads, headDim, weight, eps) {
    loadAddon().rmsNormHeads(x, rows, rowStride, offset, numHeads, headDim, weight, eps);
  },

  /**
   * gateUp [rows, 2·inter] = [gate | up]; out [rows, inter] (must not overlap gateUp).
   * Semantics: out[r, i] = 0.5·g·(1 + tanh(√(2/π)·(g + 0.044715·g³))) · up[r, i], g = gate[r, i] (f32, vector tanh)
   */
  geluTanhMul(gateUp, out, rows, inter) {
    loadAddon().geluTanhMul(gateUp, out, rows, inter);
  },

  /** Semantics: x[i] = cap·tanh(x[i] / cap) for i < length (f32, vector tanh) */
  softcapInPlace(x, length, cap) {
    loadAddon().softcapInPlace(x, length, cap);
  },

  /** Semantics: x[i] = x[i] · f32(factor) for i < length */
  scaleInPlace(x, length, factor) {
    loadAddon().scaleInPlace(x, length, factor);
  },

  /**
   * ids [T]; table [vocab, dim] (f32, or f16/bf16 bit patterns, or q8_0/q4_k/q6_k blocks); out [T, dim].
   * Semantics: out[t, :] = f32(table[ids[t], :])
   */
  embedding(ids, table, out, numTokens) {
    if (isBlockDType(table.dtype))
      return embeddingFromBlocks(table.dtype, table.data as Uint8Array, table.rows, table.cols, ids, out, numTokens);
    loadAddon().embedding(ids, numTokens, table.dtype, table.rows, table.cols, table.data, out);
  },
};
