/**
 * Embedding rows read from a table kept in Q8_0 / Q4_K / Q6_K blocks (a tied model's lm_head blocks serve the lookup).
 *
 *   table [vocab, dim] as ggml blocks (Uint8Array, dim a multiple of 32 / 256), ids [T] → out [T, dim] f32
 *   Semantics: out[t, :] = dequantize(table[ids[t], :]), ggml's dequantize_row exactly:
 *     Q8_0: d · q;  Q4_K: (d · sc_j) · q − dmin · m_j (products exact, one rounding in the subtraction);
 *     Q6_K: (d · sc_j) · (q − 32) (d · sc_j exact, one rounding in the second product)
 * The native kernel (native/src/cpu/qgemm_embedding.cpp) computes the same values bit for bit.
 */
import { BLOCK_FORMATS } from '../block-formats.ts';
import type { BlockDType } from '../types.ts';

const FORMAT = { q8_0: BLOCK_FORMATS.Q8_0, q4_k: BLOCK_FORMATS.Q4_K, q6_k: BLOCK_FORMATS.Q6_K } as const;

export function embeddingFromBlocksReference(
  type: BlockDType,
  table: Uint8Array,
  vocab: number,
  dim: number,
  ids: Int32Array,
  out: Float32Array,
  numTokens: number,
): void {
  const format = FORMAT[type];
  if (!Number.isInteger(dim) || dim < 1 || dim % format.values !== 0)
    throw new TypeError(`embedding: dim (${dim}) must be a multiple of ${format.values} for ${type}`);
  const rowBytes = (dim / format.values) * format.bytes;
  if (table.length < vocab * rowBytes) throw new TypeError('embedding: the table must hold vocab rows of blocks');
  if (ids.length < numTokens || out.length < numTokens * dim)
    throw new TypeError('embedding: ids must hold numTokens values and out numTokens·dim');
  for (let t = 0; t < numTokens; t++) {
    const id = ids[t];
    if (id < 0 || id >= vocab)
      throw new TypeError(`embedding: token id ${id} (position ${t}) is outside the embedding table (vocab ${vocab})`);
    for (let b = 0; b < dim / format.values; b++)
      format.decode(table, id * rowBytes + b * format.bytes, out, t * dim + b * format.values);
  }
}
