// Paged attention chunk step, AVX-512 path (see attention_kernels.h for the semantics).
// Up to 4 heads of one kv group are folded together: scores two heads at a time with the keys in lanes, so each
// key row is loaded once per pair, and each value vector once for all of them; every (query, head) still sees
// exactly the arithmetic of a lone head, in the same order. Prefill takes attention_lanes_avx512.cpp, which
// repeats this arithmetic with one (query, head) per lane.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "attention_kernels.h"
#include "loraplex/attention.h"
#include "ops_simd_math.h"

namespace loraplex {
namespace {

constexpr int kMaxHeadsAtOnce = 4;

struct Blocks {
  int count;        // ceil(D / 16)
  __mmask16 last;   // lanes of the last block
  __mmask16 mask(int b) const { return b == count - 1 ? last : __mmask16(0xffff); }
};

// A head dimension of 16·Count (64 and 128 in the models served): full blocks known at compile time, so the loops
// unroll and every mask is all lanes — the same loads and FMAs as Blocks gives, in the same order.
template <int Count>
struct FullBlocks {
  static constexpr int count = Count;
  static constexpr __mmask16 mask(int) { return 0xffff; }
};

// Scores of one pass, keys in lanes: one head × 16 keys (HB = 1) or two heads × 8 keys (HB = 2) from key0 on,
// s = Σ_d q_h[d]·k_j[d] as one accumulator per (head, key) over the blocks in order, the 16 reduced together
// (reduce_add_16_avx512: each sum the bits of a lone reduce_add_avx512). Lane 8·h + u (HB = 2) or u (HB = 1)
// holds (head h, key key0 + u); keys ≥ n read key 0's row, and their lanes are masked off by the caller.
template <int HB, typename B>
LORAPLEX_TARGET_AVX512 inline __m512 score_pass(const float* q, int head_dim, const float* const* k_rows, int key0,
                                                int n, B blocks) {
  constexpr int KB = 16 / HB;
  const float* k[KB];
  for (int u = 0; u < KB; ++u) k[u] = k_rows[key0 + u < n ? key0 + u : 0];
  __m512 acc[HB][KB];
  for (int h = 0; h < HB; ++h)
    for (int u = 0; u < KB; ++u) acc[h][u] = _mm512_setzero_ps();
  for (int b = 0; b < blocks.count; ++b) {
    const __mmask16 m = blocks.mask(b);
    __m512 qv[HB];
    for (int h = 0; h < HB; ++h) qv[h] = _mm512_maskz_loadu_ps(m, q + h * head_dim + 16 * b);
    for (int u = 0; u < KB; ++u) {
      const __m512 kv = _mm512_maskz_loadu_ps(m, k[u] + 16 * b);
      for (int h = 0; h < HB; ++h) acc[h][u] = _mm512_fmadd_ps(qv[h], kv, acc[h][u]);
    }
  }
  __m512 v[16];  // result position 4·l + e comes from v[4·e + l]
  for (int p = 0; p < 16; ++p) v[4 * (p % 4) + p / 4] = acc[p / KB][p % KB];
  return simd::reduce_add_16_avx512(v);
}

// acc_h[blocks b0 .. b0+BB) = acc_h·c_h (if rescale_h), then += p_h[j]·v_j for j < n in key order.
template <int HB, int BB, typename B>
LORAPLEX_TARGET_AVX512 inline void accumulate(AttentionState* states, const float (*p)[kAttentionKeyChunk],
                                              const float* correction, const float* const* v_rows, int n, int b0,
                                              B blocks) {
  __m512 a[HB][BB];
  for (int h = 0; h < HB; ++h)
    for (int u = 0; u < BB; ++u) {
      a[h][u] = _mm512_maskz_loadu_ps(blocks.mask(b0 + u), states[h].acc + 16 * (b0 + u));
      if (correction[h] != 1.0f) a[h][u] = _mm512_mul_ps(a[h][u], _mm512_set1_ps(correction[h]));
    }
  for (int j = 0; j < n; ++j) {
    __m512 v[BB];
    for (int u = 0; u < BB; ++u) v[u] = _mm512_maskz_loadu_ps(blocks.mask(b0 + u), v_rows[j] + 16 * (b0 + u));
    for (int h = 0; h < HB; ++h) {
      const __m512 pj = _mm512_set1_ps(p[h][j]);
      for (int u = 0; u < BB; ++u) a[h][u] = _mm512_fmadd_ps(pj, v[u], a[h][u]);
    }
  }
  for (int h = 0; h < HB; ++h)
    for (int u = 0; u < BB; ++u) _mm512_mask_storeu_ps(states[h].acc + 16 * (b0 + u), blocks.mask(b0 + u), a[h][u]);
}

// The online-softmax step of HB heads from their raw scores (keys in lanes, lanes ≥ n ignored): scale, cap,
// fold into each state's max and sum, then the weighted values into its acc.
template <int HB, typename B>
LORAPLEX_TARGET_AVX512 inline void fold_scores(AttentionState* states, const __m512 (&scores)[HB],
                                               const float* const* v_rows, int n, float scale, float softcap,
                                               B blocks) {
  // Blocks per pass of the accumulation loop (any gives the same bits: the order is per element): HB × BB
  // accumulators, each weight broadcast once per pass; 16 of them at head dims 64 and 128, 8 where the head
  // dimension is only known at run time (up to 256 and more: fewer registers).
  constexpr int BB = std::is_same_v<B, Blocks> ? (8 / HB > 0 ? 8 / HB : 1) : 16 / HB;
  alignas(64) float s[HB][kAttentionKeyChunk];  // the weights p, for the accumulation's broadcasts
  const __mmask16 live = simd::tail_mask16(n);  // n ≤ 16
  float correction[HB];
  for (int h = 0; h < HB; ++h) {
    AttentionState& st = states[h];
    __m512 sv = _mm512_mul_ps(scores[h], _mm512_set1_ps(scale));
    if (softcap > 0.0f) sv = simd::softcap_avx512(sv, _mm512_set1_ps(softcap));
    sv = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), live, sv);
    const float new_max = std::fmax(st.max, _mm512_reduce_max_ps(sv));
    correction[h] = st.max == -INFINITY ? 0.0f : std::exp(st.max - new_max);
    const __m512 pv = _mm512_maskz_mov_ps(live, simd::exp_avx512(_mm512_sub_ps(sv, _mm512_set1_ps(new_max))));
    _mm512_store_ps(s[h], pv);
    st.sum = std::fma(st.sum, correction[h], simd::reduce_add_avx512(pv));  // as the lanes kernel's FMA
    st.max = new_max;
  }
  if constexpr (std::is_same_v<B, Blocks>) {
    int b = 0;
    for (; b + BB <= blocks.count; b += BB) accumulate<HB, BB, B>(states, s, correction, v_rows, n, b, blocks);
    for (; b < blocks.count; ++b) accumulate<HB, 1, B>(states, s, correction, v_rows, n, b, blocks);
  } else {
    constexpr int step = [] {  // the largest divisor of the block count that is at most BB
      int d = BB < B::count ? BB : B::count;
      while (B::count % d != 0) --d;
      return d;
    }();
    for (int b = 0; b < B::count; b += step) accumulate<HB, step, B>(states, s, correction, v_rows, n, b, blocks);
  }
}

template <int HB, typename B>
LORAPLEX_TARGET_AVX512 void fold_heads(const float* q, AttentionState* states, const float* const* k_rows,
                                       const float* const* v_rows, int n, int head_dim, float scale, float softcap,
                                       B blocks) {
  constexpr __mmask16 all = 0xffff;  // the maskz form: GCC 12 warns spuriously on the plain shuffle
  __m512 scores[HB];                 // keys in lanes
  int h = 0;
  for (; h + 2 <= HB; h += 2) {
    const __m512 first = score_pass<2, B>(q + h * head_dim, head_dim, k_rows, 0, n, blocks);
    const __m512 second = n > 8 ? score_pass<2, B>(q + h * head_dim, head_dim, k_rows, 8, n, blocks) : first;
    scores[h] = _mm512_maskz_shuffle_f32x4(all, first, second, _MM_SHUFFLE(1, 0, 1, 0));
    scores[h + 1] = _mm512_maskz_shuffle_f32x4(all, first, second, _MM_SHUFFLE(3, 2, 3, 2));
  }
  if (h < HB) scores[h] = score_pass<1, B>(q + h * head_dim, head_dim, k_rows, 0, n, blocks);
  fold_scores<HB, B>(states, scores, v_rows, n, scale, softcap, blocks);
}

template <typename B>
LORAPLEX_TARGET_AVX512 void fold_all(const float* q, int heads, AttentionState* states, const float* const* k_rows,
                                     const float* const* v_rows, int n, int head_dim, float scale, float softcap,
                                     B blocks) {
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

}  // namespace

LORAPLEX_TARGET_AVX512 void attention_chunk_avx512(const float* q, int heads, AttentionState* states,
                                                   const float* const* k_rows, const float* const* v_rows, int n,
                                                   int head_dim, float scale, float softcap) {
  switch (head_dim) {
    case 64: return fold_all(q, heads, states, k_rows, v_rows, n, head_dim, scale, softcap, FullBlocks<4>{});
    case 128: return fold_all(q, heads, states, k_rows, v_rows, n, head_dim, scale, softcap, FullBlocks<8>{});
    default: {
      const Blocks blocks{(head_dim + 15) / 16, simd::tail_mask16(head_dim % 16 == 0 ? 16 : head_dim % 16)};
      return fold_all(q, heads, states, k_rows, v_rows, n, head_dim, scale, softcap, blocks);
    }
  }
}

}  // namespace loraplex
