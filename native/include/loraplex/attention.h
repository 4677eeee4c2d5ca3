// Attention over the paged KV cache: RoPE + cache write, and causal grouped-query attention.
//
// Layouts (row-major; activations f32):
//   qkv    [T, (Hq + 2·Hkv)·D]   per row: Hq query heads, then Hkv key heads, then Hkv value heads
//   q, out [T, Hq·D]
//   caches [numBlocks·blockSize, Hkv·D]   cache row = block·blockSize + offset; f32, or bf16 bit patterns
//          (written rounded to nearest even, widened exactly on read: attention then runs as on an f32
//          cache holding the rounded values, bit for bit)
#pragma once

#include <cstdint>
#include <string>

namespace loraplex {

enum class KvDtype { F32, Bf16 };

struct AttentionShape {
  int num_heads;     // Hq
  int num_kv_heads;  // Hkv; Hq % Hkv == 0
  int head_dim;      // D
  int block_size;    // tokens per KV block
  int sliding_window = 0;  // > 0: a query at p attends to keys p-W+1..p only (Mistral); 0: all keys ≤ p
  float scale = 0.0f;      // score = (q·k)·scale; 0: 1/√D (Gemma: query_pre_attn_scalar^-0.5)
  float softcap = 0.0f;    // > 0: score = softcap·tanh(score/softcap) before the mask (Gemma 2); 0: off
  int rotary_dim = 0;      // RoPE on dims [0, R) of each q/k head, the rest passed through (partial rotary); 0: D
};

struct AttentionBatch {
  const int32_t* q_start;            // [num_seqs + 1]
  const int32_t* kv_len;             // [num_seqs]
  const int32_t* block_tables;       // flattened, [block_tables_length]
  const int32_t* block_table_start;  // [num_seqs]
  int64_t block_tables_length;
  int num_seqs;
};

// Empty string when the shape is usable; otherwise what is wrong with it.
std::string check_attention_shape(const AttentionShape& shape);

// Checks everything rope_and_cache_write reads or writes is in bounds. Lengths are in elements.
std::string check_rope_and_cache_write(int64_t qkv_length, int64_t num_tokens, const AttentionShape& shape,
                                       const int32_t* positions, int64_t positions_length, int64_t inv_freq_length,
                                       int64_t q_out_length, int64_t k_cache_length, int64_t v_cache_length,
                                       const int32_t* slot_mapping, int64_t slot_mapping_length);

// RoPE (Hugging Face Llama rotate_half) on q and k, then q → q_out and k, v → caches.
// Partial rotary (R = shape.rotary_dim < D): rotate-half over dims [0, R) with inv_freq [R/2], dims [R, D) copied.
// Shapes: qkv [T, (Hq+2Hkv)·D], positions [T], inv_freq [R/2], q_out [T, Hq·D], caches as above,
//         slot_mapping [T] (-1: padding, the token's k/v are not written).
// Semantics: angle = f32(pos[t]·invFreq[i]); c = f32(cos angle); s = f32(sin angle); for i < R/2:
//   x'[i] = x[i]·c - x[i+R/2]·s ; x'[i+R/2] = x[i+R/2]·c + x[i]·s   (each product rounded to f32, no FMA)
//   x'[i] = x[i] for R ≤ i < D
//   q_out[t, h] = q'(t, h) ; kCache[slot[t], g] = k'(t, g) ; vCache[slot[t], g] = v(t, g)
//   (bf16 caches: each written value is f32_to_bf16(value), round to nearest even)
void rope_and_cache_write(const float* qkv, int64_t num_tokens, const AttentionShape& shape, const int32_t* positions,
                          const float* inv_freq, float* q_out, void* k_cache, void* v_cache, KvDtype kv_dtype,
                          const int32_t* slot_mapping);

// Checks the batch against the buffers (block ids, lengths, query ranges) and scale/softcap (finite, ≥ 0).
std::string check_paged_attention(int64_t q_length, int64_t k_cache_length, int64_t v_cache_length,
                                  int64_t out_length, const AttentionShape& shape, const AttentionBatch& batch);

// Causal grouped-query attention over the paged cache.
// Shapes: q, out [T, Hq·D] with T = q_start[num_seqs]; caches as above.
// Semantics: for sequence s, query i (row t = q_start[s] + i) at position p = kv_len[s] - qLen + i, head h,
//   kv head g = h / (Hq/Hkv), key j ≤ p at cache row block_tables[start[s] + j/bs]·bs + j%bs:
//   score_j = (q[t,h]·k[j,g])·scale, then softcap·tanh(score_j/softcap) when softcap > 0;
//   out[t, h] = Σ_j softmax_j(score_j) · v[j,g]   (keys p-W < j ≤ p with a sliding window W)
// Batch invariance: each (query, head) is reduced by one fixed routine (online softmax over keys in
// position order, in chunks of kAttentionKeyChunk aligned to position 0), so its bits depend only on its
// own query, its keys and the ISA, never on the batch, the chunking of the prefill or the thread count.
// bf16 caches are widened to f32 (exactly) chunk by chunk; the arithmetic is then that of the f32 path.
void paged_attention(const float* q, const void* k_cache, const void* v_cache, KvDtype kv_dtype, float* out,
                     const AttentionShape& shape, const AttentionBatch& batch);

// Round to nearest even f32 → bf16 bits (NaN stays a quiet NaN), as src/kernels/dtype.ts f32ToBf16.
inline uint16_t f32_to_bf16(float value) {
  uint32_t x;
  __builtin_memcpy(&x, &value, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40u);
  return uint16_t((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

constexpr int kAttentionKeyChunk = 16;

}  // namespace loraplex
