/**
 * Native embedding rows from Q8_0 / Q4_K / Q6_K blocks (C++: native/src/cpu/qgemm_embedding.cpp).
 *
 *   table [vocab, dim] as ggml blocks (Uint8Array), ids [T] → out [T, dim] f32
 *   Semantics (bit for bit as src/kernels/reference/qgemm-embedding.ts): out[t, :] = dequantize(table[ids[t], :]),
 *   ggml's dequantize_row (Q8_0 d · q; Q4_K (d · sc) · q − dmin · m; Q6_K (d · sc) · (q − 32)). Ids outside the table throw.
 */
import type { BlockDType } from '../types.ts';
import { loadAddon } from './addon.ts';

export function embeddingFromBlocks(
  type: BlockDType,
  table: Uint8Array,
  vocab: number,
  dim: number,
  ids: Int32Array,
  out: Float32Array,
  numTokens: number,
): void {
  loadAddon().qgemmEmbedding(type, vocab, dim, table, ids, numTokens, out);
}
