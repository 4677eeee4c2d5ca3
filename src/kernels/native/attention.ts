/**
 * Native RoPE + cache write and paged attention (native/src/cpu/attention*.cpp), AVX2/AVX-512 at run time.
 */
import type { Kernels } from '../types.ts';
import { loadAddon } from './addon.ts';

export const nativeAttentionKernels: Pick<Kernels, 'ropeAndCacheWrite' | 'pagedAttention'> = {
  /**
   * qkv [T, (Hq+2Hkv)·D] → qOut [T, Hq·D], kCache/vCache rows slotMapping[t] (-1: skipped), [rows, Hkv·D];
   * caches both Float32Array, or both Uint16Array (bf16: each written value rounded to nearest even).
   * Semantics (R = shape.rotaryDim ?? D, partial rotary when R < D): angle = f32(pos[t]·invFreq[i]), i < R/2;
   *   x'[i] = x[i]·cos - x[i+R/2]·sin; x'[i+R/2] = x[i+R/2]·cos + x[i]·sin; x'[i] = x[i] for R ≤ i < D
   *   qOut[t] = q'; kCache[slot[t]] = k'; vCache[slot[t]] = v
   */
  ropeAndCacheWrite(qkv, numTokens, shape, positions, invFreq, qOut, kCache, vCache, slotMapping) {
    loadAddon().ropeAndCacheWrite(
      qkv,
      numTokens,
      shape.numHeads,
      shape.numKvHeads,
      shape.headDim,
      shape.blockSize,
      positions,
      invFreq,
      qOut,
      kCache,
      vCache,
      slotMapping,
      shape.rotaryDim, // undefined: headDim
    );
  },

  /**
   * q, out [T, Hq·D]; caches [blocks·bs, Hkv·D], f32 or bf16 (widened exactly, then the f32 arithmetic:
   * a bf16 cache gives the bits of an f32 cache holding the same values). Query i of sequence s sits at
   * p = kvLen[s] - qLen + i.
   * Semantics: score_j = (q[t,h]·k[j, g])·scale, g = h / (Hq/Hkv), scale = shape.scale ?? 1/√D (f32);
   *   softcap c > 0: score_j = c·tanh(score_j / c); out[t, h] = Σ_{p-W < j ≤ p} softmax_j(score_j) · v[j, g]
   * Bitwise batch-invariant: a (query, head) gives the same bits in any batch, chunking or thread count.
   */
  pagedAttention(q, kCache, vCache, out, shape, batch) {
    loadAddon().pagedAttention(
      q,
      kCache,
      vCache,
      out,
      shape.numHeads,
      shape.numKvHeads,
      shape.headDim,
      shape.blockSize,
      batch.qStart,
      batch.kvLen,
      batch.blockTables,
      batch.blockTableStart,
      batch.numSeqs,
      shape.slidingWindow ?? 0,
      shape.scale, // undefined: 1/√D in the kernel
      shape.softcap ?? 0,
    );
  },
};
