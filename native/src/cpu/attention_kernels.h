// Per-ISA inner step of paged attention: fold one chunk of keys into one (query, head) online-softmax state.
// Shared by attention.cpp (the driver) and attention_{scalar,avx2,avx512}.cpp (the ISA variants).
#pragma once

#include <cstdint>

namespace loraplex {

// State of one (query, head): running max, running sum of exp, acc [D] = Σ exp(s_j - max) · v_j.
struct AttentionState {
  float max;
  float sum;
  float* acc;
};

// Folds one chunk of keys into the states of `heads` heads of one query that share a kv head:
// q [heads, D] (contiguous), states [heads].
// Semantics, per head h: s_j = (q_h · k_rows[j]) · scale for j < n (n ≤ kAttentionKeyChunk), then
//   s_j = softcap · tanh(s_j / softcap) when softcap > 0;
//   m' = max(m, max_j s_j); c = exp(m - m') (0 on the first chunk);
//   sum = sum·c + Σ_j exp(s_j - m'); acc = acc·c + Σ_j exp(s_j - m')·v_rows[j] (j in order); m = m'.
// A head's arithmetic never depends on n, on `heads` or on which other heads are folded with it: each key's
// score and each element's update are computed the same way in every case.
using AttentionChunkFn = void (*)(const float* q, int heads, AttentionState* states, const float* const* k_rows,
                                  const float* const* v_rows, int n, int head_dim, float scale, float softcap);

void attention_chunk_scalar(const float* q, int heads, AttentionState* states, const float* const* k_rows,
                            const float* const* v_rows, int n, int head_dim, float scale, float softcap);
void attention_chunk_avx2(const float* q, int heads, AttentionState* states, const float* const* k_rows,
                          const float* const* v_rows, int n, int head_dim, float scale, float softcap);
void attention_chunk_avx512(const float* q, int heads, AttentionState* states, const float* const* k_rows,
                            const float* const* v_rows, int n, int head_dim, float scale, float softcap);

// Prefill on AVX-512 (attention_lanes_avx512.cpp; head dims that are multiples of 16: attention_lanes_supported):
// 16 (query, head) pairs of one kv head, one per lane, step through each chunk of keys together. Every pair gets
// attention_chunk_avx512's bits, as its lone decode does.
constexpr int kAttentionLanes = 16;
struct AttentionLanes {
  float* qt;   // [head_dim][16]: lane i's query element d at qt[d·16 + i]
  float* acc;  // [head_dim][16], likewise: Σ exp(s_j - max)·v_j[d]
  alignas(64) float max[kAttentionLanes];
  alignas(64) float sum[kAttentionLanes];
  // A lane sees keys first_key ≤ j ≤ last_key (its query's position; a window's start): an unused lane has
  // first_key > last_key.
  alignas(64) int32_t first_key[kAttentionLanes];
  alignas(64) int32_t last_key[kAttentionLanes];
};
bool attention_lanes_supported(int head_dim);
// Loads the queries (q_rows[i]: lane i's D floats, null for an unused lane) and clears the states.
void attention_lanes_begin_avx512(AttentionLanes& lanes, const float* const* q_rows, int head_dim);
// Folds keys key0 .. key0 + n - 1 (n ≤ kAttentionKeyChunk, key0 a multiple of it) into each lane's state, only
// those the lane sees; k_rows / v_rows [n] as attention_chunk_avx512 gets them.
void attention_lanes_chunk_avx512(AttentionLanes& lanes, int key0, const float* const* k_rows,
                                  const float* const* v_rows, int n, int head_dim, float scale, float softcap);
// out_rows[i] (D floats, null for an unused lane) = lane i's acc / sum.
void attention_lanes_finish_avx512(const AttentionLanes& lanes, float* const* out_rows, int head_dim);

}  // namespace loraplex
