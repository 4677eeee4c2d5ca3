// Prefill attention with (query, head) pairs in lanes, AVX-512 (see attention_kernels.h for the contract).
// Sixteen pairs of one kv head step through a chunk of keys together: a key's 16 scores are vertical FMAs of the
// pairs' query elements (transposed once per task) by the key's element, broadcast straight from its cache row,
// and the values are broadcast the same way, so nothing is transposed per chunk and no sum is horizontal. Each
// lane repeats attention_chunk_avx512's arithmetic for its pair in that kernel's order: accumulator lane L's FMA
// chain over the blocks, reduce_add_avx512's tree over those chains, the scale, cap, max, exp and the sum's tree
// over the keys, the values' FMAs key by key. So every pair keeps its lone decode's bits.
#include <algorithm>
#include <cmath>

#include "attention_kernels.h"
#include "loraplex/attention.h"
#include "ops_simd_math.h"

namespace loraplex {
namespace {

constexpr int kLanes = kAttentionLanes;
constexpr int kChunk = kAttentionKeyChunk;
static_assert(kLanes == 16 && kChunk == 16, "one zmm of f32 lanes, one lane per key of a chunk");
// Keys per score pass: the tree keeps up to four pending sums per key besides the leaf's own, 5 × 4 registers.
constexpr int kKeysAtOnce = 4;

// Chain L of a score for kKeysAtOnce keys: x[k] = Σ_b q[16b + L]·key_k[16b + L] as FMAs from zero over the blocks
// in order (attention_chunk_avx512's accumulator lane L for that key). Blocks: D / 16, at compile time for head
// dims 64 and 128 (Count; 0: `blocks` at run time).
template <int Count, int L>
LORAPLEX_TARGET_AVX512 inline void score_chain(const float* qt, const float* const* keys, int blocks,
                                               __m512 (&x)[kKeysAtOnce]) {
  for (int k = 0; k < kKeysAtOnce; ++k) x[k] = _mm512_setzero_ps();
  for (int b = 0; b < (Count > 0 ? Count : blocks); ++b) {
    const __m512 qv = _mm512_loadu_ps(qt + (16 * b + L) * kLanes);
    for (int k = 0; k < kKeysAtOnce; ++k) x[k] = _mm512_fmadd_ps(qv, _mm512_set1_ps(keys[k][16 * b + L]), x[k]);
  }
}

// node<L, S>: the sum of the chains L, L + S, L + 2S, … in reduce_add_avx512's tree (chain l + 8 into l, then
// + 4, + 2, + 1), so node<0, 1> is a key's score with the bits of the row kernel's reduction.
template <int Count, int L, int S>
LORAPLEX_TARGET_AVX512 inline void score_node(const float* qt, const float* const* keys, int blocks,
                                              __m512 (&x)[kKeysAtOnce]) {
  if constexpr (S == 16) {
    score_chain<Count, L>(qt, keys, blocks, x);
  } else {
    __m512 other[kKeysAtOnce];
    score_node<Count, L, 2 * S>(qt, keys, blocks, x);
    score_node<Count, L + S, 2 * S>(qt, keys, blocks, other);
    for (int k = 0; k < kKeysAtOnce; ++k) x[k] = _mm512_add_ps(x[k], other[k]);
  }
}

// Raw scores s[u] of keys 0 .. keys - 1 (rounded up to kKeysAtOnce; the extra ones repeat a live key).
template <int Count>
LORAPLEX_TARGET_AVX512 inline void score_keys(const float* qt, const float* const* k_rows, int keys, int blocks,
                                              __m512* s) {
  for (int u0 = 0; u0 < keys; u0 += kKeysAtOnce) {
    const float* group[kKeysAtOnce];
    for (int k = 0; k < kKeysAtOnce; ++k) group[k] = k_rows[u0 + k < keys ? u0 + k : u0];
    __m512 x[kKeysAtOnce];
    score_node<Count, 0, 1>(qt, group, blocks, x);
    for (int k = 0; k < kKeysAtOnce; ++k) s[u0 + k] = x[k];
  }
}

}  // namespace

LORAPLEX_TARGET_AVX512 void attention_lanes_begin_avx512(AttentionLanes& lanes, const float* const* q_rows,
                                                         int head_dim) {
  for (int b = 0; b < head_dim / 16; ++b) {
    __m512 r[kLanes];
    for (int i = 0; i < kLanes; ++i) r[i] = q_rows[i] ? _mm512_loadu_ps(q_rows[i] + 16 * b) : _mm512_setzero_ps();
    simd::transpose_16x16_avx512(r, lanes.qt + 16 * b * kLanes);
  }
  std::fill(lanes.acc, lanes.acc + int64_t(head_dim) * kLanes, 0.0f);
  std::fill(lanes.max, lanes.max + kLanes, -INFINITY);
  std::fill(lanes.sum, lanes.sum + kLanes, 0.0f);
}

LORAPLEX_TARGET_AVX512 void attention_lanes_chunk_avx512(AttentionLanes& lanes, int key0,
                                                         const float* const* k_rows, const float* const* v_rows,
                                                         int n, int head_dim, float scale, float softcap) {
  // Key u is live in lane i when first_key[i] ≤ key0 + u ≤ last_key[i]; keys past the last live one are skipped.
  const __m512i first = _mm512_loadu_si512(lanes.first_key), last = _mm512_loadu_si512(lanes.last_key);
  __mmask16 live[kChunk] = {};
  __mmask16 touched = 0;  // lanes with a live key: the others keep their state untouched
  int keys = 0;
  for (int u = 0; u < n; ++u) {
    const __m512i pos = _mm512_set1_epi32(key0 + u);
    live[u] = _mm512_cmple_epi32_mask(first, pos) & _mm512_cmple_epi32_mask(pos, last);
    if (live[u]) keys = u + 1;
    touched |= live[u];
  }
  if (touched == 0) return;

  const int blocks = head_dim / 16;
  const __m512 old_max = _mm512_loadu_ps(lanes.max);
  __m512 new_max = old_max;
  __m512 s[kChunk + kKeysAtOnce - 1];
  switch (blocks) {  // past `keys`, s repeats a live key; those lanes are dropped below
    case 4: score_keys<4>(lanes.qt, k_rows, keys, blocks, s); break;
    case 8: score_keys<8>(lanes.qt, k_rows, keys, blocks, s); break;
    default: score_keys<0>(lanes.qt, k_rows, keys, blocks, s); break;
  }
  const __m512 minus_inf = _mm512_set1_ps(-INFINITY);
  for (int u = 0; u < keys; ++u) {
    __m512 sv = _mm512_mul_ps(s[u], _mm512_set1_ps(scale));
    if (softcap > 0.0f) sv = simd::softcap_avx512(sv, _mm512_set1_ps(softcap));
    s[u] = _mm512_mask_mov_ps(minus_inf, live[u], sv);
    new_max = _mm512_max_ps(new_max, s[u]);
  }

  // The rescale of the old sum and acc: 0 on a lane's first live chunk, exp(old - new) as the row kernel takes
  // it (std::exp; exactly 1 where the max held), 1 on a lane without live keys (untouched).
  alignas(64) float old_m[kLanes], new_m[kLanes], correction[kLanes];
  _mm512_store_ps(old_m, old_max);
  _mm512_store_ps(new_m, new_max);
  bool rescale = false;
  for (int i = 0; i < kLanes; ++i) {
    if (!((touched >> i) & 1)) {
      correction[i] = 1.0f;
    } else {
      correction[i] = old_m[i] == -INFINITY ? 0.0f : old_m[i] == new_m[i] ? 1.0f : std::exp(old_m[i] - new_m[i]);
    }
    rescale |= correction[i] != 1.0f;
  }
  const __m512 c = _mm512_load_ps(correction);

  alignas(64) float weights[kChunk][kLanes];  // the weights p, for the accumulation
  __m512 p[kChunk];
  for (int u = 0; u < kChunk; ++u) {
    p[u] = u < keys ? _mm512_maskz_mov_ps(live[u], simd::exp_avx512(_mm512_sub_ps(s[u], new_max)))
                    : _mm512_setzero_ps();
    _mm512_store_ps(weights[u], p[u]);
  }
  // reduce_add_avx512's tree over the keys. A window's start needs no shift: the row kernel, given the keys from
  // j0 on, sums these 16 weights rotated by j0 (the wrapped ones are dead, zero), and a tree that adds lane
  // i + 8, then i + 4, i + 2, i + 1 (mod its width) gives the same sums for any rotation.
  __m512 half[8], quarter[4], pair[2];
  for (int u = 0; u < 8; ++u) half[u] = _mm512_add_ps(p[u], p[u + 8]);
  for (int u = 0; u < 4; ++u) quarter[u] = _mm512_add_ps(half[u], half[u + 4]);
  for (int u = 0; u < 2; ++u) pair[u] = _mm512_add_ps(quarter[u], quarter[u + 2]);
  _mm512_storeu_ps(lanes.sum, _mm512_fmadd_ps(_mm512_loadu_ps(lanes.sum), c, _mm512_add_ps(pair[0], pair[1])));
  _mm512_storeu_ps(lanes.max, new_max);

  // acc[d] = acc[d]·c + Σ_u p_u·v_u[d], key by key in order; dead keys leave a lane's acc as it is.
  constexpr int kDims = 16;  // elements of d per pass: 16 accumulators
  for (int d0 = 0; d0 < head_dim; d0 += kDims) {
    __m512 a[kDims];
    for (int e = 0; e < kDims; ++e) {
      a[e] = _mm512_loadu_ps(lanes.acc + (d0 + e) * kLanes);
      if (rescale) a[e] = _mm512_mul_ps(a[e], c);
    }
    for (int u = 0; u < keys; ++u) {
      const __m512 pu = _mm512_load_ps(weights[u]);
      const float* v = v_rows[u] + d0;
      if (live[u] == 0xffff) {  // the same FMAs, unmasked, so the broadcasts fold into them
        for (int e = 0; e < kDims; ++e) a[e] = _mm512_fmadd_ps(pu, _mm512_set1_ps(v[e]), a[e]);
      } else {
        for (int e = 0; e < kDims; ++e) a[e] = _mm512_mask3_fmadd_ps(pu, _mm512_set1_ps(v[e]), a[e], live[u]);
      }
    }
    for (int e = 0; e < kDims; ++e) _mm512_storeu_ps(lanes.acc + (d0 + e) * kLanes, a[e]);
  }
}

LORAPLEX_TARGET_AVX512 void attention_lanes_finish_avx512(const AttentionLanes& lanes, float* const* out_rows,
                                                          int head_dim) {
  const __m512 sum = _mm512_loadu_ps(lanes.sum);
  alignas(64) float by_lane[kLanes * 16];  // by_lane[i·16 + e]: lane i's output element d0 + e
  for (int d0 = 0; d0 < head_dim; d0 += 16) {
    __m512 r[16];
    for (int e = 0; e < 16; ++e) r[e] = _mm512_div_ps(_mm512_loadu_ps(lanes.acc + (d0 + e) * kLanes), sum);
    simd::transpose_16x16_avx512(r, by_lane);
    for (int i = 0; i < kLanes; ++i)
      if (out_rows[i]) _mm512_storeu_ps(out_rows[i] + d0, _mm512_load_ps(by_lane + i * 16));
  }
}

bool attention_lanes_supported(int head_dim) { return head_dim % 16 == 0; }

}  // namespace loraplex
