// Paged attention chunk step, AVX2 + FMA path (see attention_kernels.h for the semantics).
// The heads of one kv group are folded together so each key and value vector is loaded once for all of them;
// every (query, head) still sees exactly the arithmetic of a lone head, in the same order.
#include <algorithm>
#include <cmath>

#include "attention_kernels.h"
#include "loraplex/attention.h"
#include "ops_simd_math.h"

namespace loraplex {
namespace {

using simd::hmax_avx2;
using simd::hsum_avx2;

constexpr int kMaxHeadsAtOnce = 4;

struct Blocks {
  int count;      // ceil(D / 8)
  bool has_tail;  // D % 8 != 0: the last block is partial
  __m256i last;   // lanes of the last block
};

LORAPLEX_TARGET_AVX2 inline __m256 load_block(const float* p, int b, const Blocks& blocks) {
  return b == blocks.count - 1 && blocks.has_tail ? _mm256_maskload_ps(p + 8 * b, blocks.last)
                                                  : _mm256_loadu_ps(p + 8 * b);
}

LORAPLEX_TARGET_AVX2 inline void store_block(float* p, int b, const Blocks& blocks, __m256 v) {
  if (b == blocks.count - 1 && blocks.has_tail)
    _mm256_maskstore_ps(p + 8 * b, blocks.last, v);
  else
    _mm256_storeu_ps(p + 8 * b, v);
}

// s[h][j] = Σ_d q_h[d]·k_j[d]: one accumulator per (head, key) over the blocks in order, then a fixed hsum.
template <int HB, int KB>
LORAPLEX_TARGET_AVX2 inline void scores(const float* q, int head_dim, const float* const* k_rows, int j,
                                        const Blocks& blocks, float (*s)[kAttentionKeyChunk]) {
  __m256 a[HB][KB];
  for (int h = 0; h < HB; ++h)
    for (int u = 0; u < KB; ++u) a[h][u] = _mm256_setzero_ps();
  for (int b = 0; b < blocks.count; ++b) {
    __m256 k[KB];
    for (int u = 0; u < KB; ++u) k[u] = load_block(k_rows[j + u], b, blocks);
    for (int h = 0; h < HB; ++h) {
      const __m256 qv = load_block(q + h * head_dim, b, blocks);
      for (int u = 0; u < KB; ++u) a[h][u] = _mm256_fmadd_ps(qv, k[u], a[h][u]);
    }
  }
  for (int h = 0; h < HB; ++h)
    for (int u = 0; u < KB; ++u) s[h][j + u] = hsum_avx2(a[h][u]);
}

// acc_h[blocks b0 .. b0+BB) = acc_h·c_h (if c_h ≠ 1), then += p_h[j]·v_j for j < n in key order.
template <int HB, int BB>
LORAPLEX_TARGET_AVX2 inline void accumulate(AttentionState* states, const float (*p)[kAttentionKeyChunk],
                                            const float* correction, const float* const* v_rows, int n, int b0,
                                            const Blocks& blocks) {
  __m256 a[HB][BB];
  for (int h = 0; h < HB; ++h)
    for (int u = 0; u < BB; ++u) {
      a[h][u] = load_block(states[h].acc, b0 + u, blocks);
      if (correction[h] != 1.0f) a[h][u] = _mm256_mul_ps(a[h][u], _mm256_set1_ps(correction[h]));
    }
  for (int j = 0; j < n; ++j) {
    __m256 v[BB];
    for (int u = 0; u < BB; ++u) v[u] = load_block(v_rows[j], b0 + u, blocks);
    for (int h = 0; h < HB; ++h) {
      const __m256 pj = _mm256_set1_ps(p[h][j]);
      for (int u = 0; u < BB; ++u) a[h][u] = _mm256_fmadd_ps(pj, v[u], a[h][u]);
    }
  }
  for (int h = 0; h < HB; ++h)
    for (int u = 0; u < BB; ++u) store_block(states[h].acc, b0 + u, blocks, a[h][u]);
}

// Scores times scale, soft-capped when softcap > 0; lanes past n become -inf.
LORAPLEX_TARGET_AVX2 inline __m256 scaled(const float* s8, __m256 vscale, float softcap, __m256 vcap, __m256 live) {
  __m256 v = _mm256_mul_ps(_mm256_load_ps(s8), vscale);
  if (softcap > 0.0f) v = simd::softcap_avx2(v, vcap);
  return _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), v, live);
}

template <int HB>
LORAPLEX_TARGET_AVX2 void fold_heads(const float* q, AttentionState* states, const float* const* k_rows,
                                     const float* const* v_rows, int n, int head_dim, float scale, float softcap,
                                     const Blocks& blocks) {
  constexpr int KB = 8 / HB > 0 ? 8 / HB : 1;  // keys per pass of the score loop
  constexpr int BB = 8 / HB > 0 ? 8 / HB : 1;  // blocks per pass of the accumulation loop
  alignas(32) float s[HB][kAttentionKeyChunk];
  int j = 0;
  for (; j + KB <= n; j += KB) scores<HB, KB>(q, head_dim, k_rows, j, blocks, s);
  for (; j < n; ++j) scores<HB, 1>(q, head_dim, k_rows, j, blocks, s);

  const __m256 live_lo = _mm256_castsi256_ps(simd::tail_mask8(n));
  const __m256 live_hi = _mm256_castsi256_ps(simd::tail_mask8(n - 8));
  const __m256 vscale = _mm256_set1_ps(scale);
  const __m256 vcap = _mm256_set1_ps(softcap);
  float correction[HB];
  for (int h = 0; h < HB; ++h) {
    AttentionState& st = states[h];
    for (int jj = n; jj < kAttentionKeyChunk; ++jj) s[h][jj] = 0.0f;
    __m256 s_lo = scaled(s[h], vscale, softcap, vcap, live_lo);
    __m256 s_hi = scaled(s[h] + 8, vscale, softcap, vcap, live_hi);
    const float new_max = std::fmax(st.max, hmax_avx2(_mm256_max_ps(s_lo, s_hi)));
    correction[h] = st.max == -INFINITY ? 0.0f : std::exp(st.max - new_max);
    const __m256 vmax = _mm256_set1_ps(new_max);
    s_lo = _mm256_and_ps(simd::exp_avx2(_mm256_sub_ps(s_lo, vmax)), live_lo);
    s_hi = _mm256_and_ps(simd::exp_avx2(_mm256_sub_ps(s_hi, vmax)), live_hi);
    _mm256_store_ps(s[h], s_lo);  // s now holds the weights p
    _mm256_store_ps(s[h] + 8, s_hi);
    st.sum = st.sum * correction[h] + hsum_avx2(_mm256_add_ps(s_lo, s_hi));
    st.max = new_max;
  }
  int b = 0;
  for (; b + BB <= blocks.count; b += BB) accumulate<HB, BB>(states, s, correction, v_rows, n, b, blocks);
  for (; b < blocks.count; ++b) accumulate<HB, 1>(states, s, correction, v_rows, n, b, blocks);
}

}  // namespace

LORAPLEX_TARGET_AVX2 void attention_chunk_avx2(const float* q, int heads, AttentionState* states,
                                               const float* const* k_rows, const float* const* v_rows, int n,
                                               int head_dim, float scale, float softcap) {
  const Blocks blocks{(head_dim + 7) / 8, head_dim % 8 != 0, simd::tail_mask8(head_dim % 8 == 0 ? 8 : head_dim % 8)};
  for (int h0 = 0; h0 < heads; h0 += kMaxHeadsAtOnce) {
    const float* qh = q + int64_t(h0) * head_dim;
    switch (std::min(kMaxHeadsAtOnce, heads - h0)) {
      case 1: fold_heads<1>(qh, states + h0, k_rows, v_rows, n, head_dim, scale, softcap, blocks); break;
      case 2: fold_heads<2>(qh, states + h0, k_rows, v_rows, n, head_dim, scale, softcap, blocks); break;
      case 3: fold_heads<3>(qh, states + h0, k_rows, v_rows, n, head_dim, scale, softcap, blocks); break;
      default: fold_heads<4>(qh, states + h0, k_rows, v_rows, n, head_dim, scale, softcap, blocks); break;
    }
  }
}

}  // namespace loraplex
