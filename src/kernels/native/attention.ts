/**
 * Native RoPE + cache write and paged attention (native/src/cpu/attention*.cpp), AVX2/AVX-512 at run time.
 */
import type { Kernels } from '../types.ts';
import { loadAddon } from './addon.ts';

export const nativeAttentionKernels: Pick<Kernels, 'ropeAndCacheWrite' | 'pagedAttention'> = {
  /**
   * qkv [T, (Hq+2Hkv)·D] → qOut [T, Hq·D], kCache/vCache rows slotMapping[t] (-1: skipped), [rows, Hkv·D].
   * Semantics: angle = f32(pos[t]·invFreq[i]); x'[i] = x[i]·cos - x[i+D/2]·sin; x'[i+D/2] = x[i+D/2]·cos + x[i]·sin
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
    );
  },

  /**
   * q, out [T, Hq·D]; caches [blocks·bs, Hkv·D]. Query i of sequence s sits at p = kvLen[s] - qLen + i.
   * Semantics: out[t, h] = Σ_{p-W < j ≤ p} softmax_j(q[t,h]·k[j, h / (Hq/Hkv)] / √D) · v[j, h / (Hq/Hkv)]
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
    );
  },
};
