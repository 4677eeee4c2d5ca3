// Per-ISA inner step of paged attention: fold one chunk of keys into one (query, head) online-softmax state.
// Shared by attention.cpp (the driver) and attention_{scalar,avx2,avx512}.cpp (the ISA variants).
#pragma once

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

// Prefill's form of attention_chunk_avx512 (AVX-512 only, head dims 64 and 128: attention_kt_supported): the
// chunk's keys transposed once for all its queries (transpose_keys_avx512: kt[d·16 + u] = key u's element d,
// keys ≥ n zero), so a query's scores need no horizontal sums. `shift` keys at the chunk's start are skipped (a
// sliding window), then it folds keys [shift, shift + n) — v_rows and n as attention_chunk_avx512 gets them.
// Each (query, head) gets attention_chunk_avx512's bits: the same products, sums and order.
constexpr int kAttentionKtMaxHeadDim = 128;
bool attention_kt_supported(int head_dim);
void transpose_keys_avx512(const float* const* k_rows, int n, int head_dim, float* kt);
void attention_chunk_kt_avx512(const float* q, int heads, AttentionState* states, const float* kt, int shift,
                               const float* const* v_rows, int n, int head_dim, float scale, float softcap);

}  // namespace loraplex
