// AVX2+FMA LoRA row kernels: the AVX-512 scheme on 8 lanes, blocked for 16 ymm registers.
// Every accumulator runs the same FMA sequence as it would unblocked, so blocking never changes a result.
// Templated on the weights' element W (float; uint16_t bf16 bits widened by a shift on load; Half f16 bits
// widened by F16C's vcvtph2ps, exact, without F16C the table's f16 entries are the scalar kernels; int8_t
// sign-extended and converted, exact).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "lora_rows.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace loraplex {
namespace {

constexpr int kLanes = 8;
// One row streams A and Bt from memory: each of their rows is fetched this far ahead (the AVX-512 kernel's
// distances; the hardware's streams ramp up too late on these short rows).
constexpr int kShrinkAheadBytes = 4096;
constexpr int kExpandAheadBytes = 512;

// Lanes below `remaining` (1..7) set; maskload/maskstore never touch the others.
inline __m256i tail_mask(int64_t remaining) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(remaining)), lane);
}

// 8 weights as f32: loaded, or bf16 widened exactly (bits << 16). Masked loads zero the other lanes; AVX2
// has no 16-bit masked load, so a bf16 tail goes through a zeroed buffer (never reading past the row).
inline __m256 widen(__m128i bf16) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bf16), 16)); }
inline __m256 load(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load(const uint16_t* p) { return widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m256 load(__m256i m, const float* p) { return _mm256_maskload_ps(p, m); }
inline __m256 load(__m256i m, const uint16_t* p) {
  alignas(16) uint16_t buffer[kLanes] = {};
  const int remaining = _mm256_movemask_ps(_mm256_castsi256_ps(m));
  for (int i = 0; i < kLanes; ++i)
    if (remaining & (1 << i)) buffer[i] = p[i];
  return widen(_mm_load_si128(reinterpret_cast<const __m128i*>(buffer)));
}
inline __m256 load(const Half* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
// int8: sign-extended, then converted (exact).
inline __m256 widen_i8(__m128i q) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)); }
inline __m256 load(const int8_t* p) { return widen_i8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
inline __m256 load(__m256i m, const int8_t* p) {
  alignas(16) int8_t buffer[16] = {};
  const int remaining = __builtin_popcount(_mm256_movemask_ps(_mm256_castsi256_ps(m)));  // a prefix of lanes
  std::memcpy(buffer, p, static_cast<size_t>(remaining));
  return widen_i8(_mm_load_si128(reinterpret_cast<const __m128i*>(buffer)));
}
inline __m256 load(__m256i m, const Half* p) {
  alignas(16) uint16_t buffer[kLanes] = {};
  const int remaining = __builtin_popcount(_mm256_movemask_ps(_mm256_castsi256_ps(m)));  // a prefix of lanes
  std::memcpy(buffer, p, static_cast<size_t>(remaining) * sizeof(uint16_t));
  return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(buffer)));
}

// A fixed lane reduction: (lo + hi), then pairs, then the last two.
inline float reduce_add(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// reduce_add on 8 vectors at once: each step's adds are reduce_add's adds (halves, pairs, then the last
// two) on the same operands, two to four accumulators per instruction. Element e of 128-bit lane l of the
// result is reduce_add(v[2·e + l]).
inline __m256 reduce_add_8(const __m256 (&v)[8]) {
  __m256 halves[4];  // [v[2p]'s 4 sums | v[2p + 1]'s 4 sums], each lo + hi of its vector
  for (int p = 0; p < 4; ++p)
    halves[p] = _mm256_add_ps(_mm256_permute2f128_ps(v[2 * p], v[2 * p + 1], 0x20),
                              _mm256_permute2f128_ps(v[2 * p], v[2 * p + 1], 0x31));
  __m256 pairs[2];  // per 128-bit lane: two sums of halves[2t], then two of halves[2t + 1]
  for (int t = 0; t < 2; ++t)
    pairs[t] = _mm256_add_ps(_mm256_shuffle_ps(halves[2 * t], halves[2 * t + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(halves[2 * t], halves[2 * t + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  return _mm256_add_ps(_mm256_shuffle_ps(pairs[0], pairs[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm256_shuffle_ps(pairs[0], pairs[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// The expand's per-column factor c_n: column[n] where the module has column scales, else the broadcast scale.
struct ColumnFactor {
  __m256 broadcast;
  const float* column;  // [ldb] or nullptr

  __m256 at(int64_t n) const { return column ? _mm256_loadu_ps(column + n) : broadcast; }
  __m256 at(__m256i m, int64_t n) const { return column ? _mm256_maskload_ps(column + n, m) : broadcast; }
};

// Semantics: h[r][j0 + j] = Σ_k x[r][k] · a[j0 + j, k] for r < R, j < J (one accumulator per (r, j)).
template <int R, int J, typename W>
inline void shrink_tile(const float* const* x, const W* a, int64_t k, int j0, float* const* h) {
  __m256 acc[R][J];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < J; ++j) acc[r][j] = _mm256_setzero_ps();
  const W* aj = a + j0 * k;
  int64_t i = 0;
  for (; i + kLanes <= k; i += kLanes) {
    __m256 av[J];
    if constexpr (R == 1)  // one row streams A from memory (as the AVX-512 kernel)
      for (int j = 0; j < J; ++j)
        _mm_prefetch(reinterpret_cast<const char*>(aj + j * k + i) + kShrinkAheadBytes, _MM_HINT_T0);
    for (int j = 0; j < J; ++j) av[j] = load(aj + j * k + i);
    for (int r = 0; r < R; ++r) {
      const __m256 xv = _mm256_loadu_ps(x[r] + i);
      for (int j = 0; j < J; ++j) acc[r][j] = _mm256_fmadd_ps(xv, av[j], acc[r][j]);
    }
  }
  if (i < k) {
    const __m256i m = tail_mask(k - i);
    __m256 av[J];
    for (int j = 0; j < J; ++j) av[j] = load(m, aj + j * k + i);
    for (int r = 0; r < R; ++r) {
      const __m256 xv = _mm256_maskload_ps(x[r] + i, m);
      for (int j = 0; j < J; ++j) acc[r][j] = _mm256_fmadd_ps(xv, av[j], acc[r][j]);
    }
  }
  if constexpr (R == 2 && J == 4) {
    __m256 v[8];  // v[2j + r]: row r's sums land in 128-bit lane r, j ascending
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < J; ++j) v[2 * j + r] = acc[r][j];
    const __m256 sums = reduce_add_8(v);
    _mm_storeu_ps(h[0] + j0, _mm256_castps256_ps128(sums));
    _mm_storeu_ps(h[1] + j0, _mm256_extractf128_ps(sums, 1));
  } else {
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < J; ++j) h[r][j0 + j] = reduce_add(acc[r][j]);
  }
}

template <int R, typename W>
inline void shrink_row_group(const float* const* x, const W* a, int rank, int64_t k, float* const* h) {
  int j = 0;
  for (; j + 4 <= rank; j += 4) shrink_tile<R, 4>(x, a, k, j, h);
  switch (rank - j) {
    case 3: shrink_tile<R, 3>(x, a, k, j, h); break;
    case 2: shrink_tile<R, 2>(x, a, k, j, h); break;
    case 1: shrink_tile<R, 1>(x, a, k, j, h); break;
    default: break;
  }
}

template <typename W>
void shrink_avx2(const float* const* x, int rows, const StoredAs<W>* a_stored, int rank, int64_t k,
                 float* const* h) {
  const W* a = as_weights<W>(a_stored);
  int r = 0;
  for (; r + 2 <= rows; r += 2) shrink_row_group<2>(x + r, a, rank, k, h + r);
  if (r < rows) shrink_row_group<1>(x + r, a, rank, k, h + r);
}

// Semantics: y[r][n0 + n] += c_n · Σ_j h[r][j] · bt[j, n0 + n], n < 8·C (the last vector masked when
// Masked). Per element: acc = fma chain over j ascending, then y = fma(acc, c_n, y).
template <int R, int C, bool Masked, typename W>
inline void expand_tile(const float* const* h, const W* bt, int rank, int64_t ldb, int64_t n0, __m256i last,
                        const ColumnFactor& scale, float* const* y) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  for (int j = 0; j < rank; ++j) {
    const W* bj = bt + j * ldb + n0;
    if constexpr (R == 1 && !Masked) {  // one row streams Bt: each row's columns 512 bytes ahead
      constexpr int kTileBytes = C * kLanes * static_cast<int>(sizeof(W));
      for (int line = 0; line < kTileBytes; line += 64)
        _mm_prefetch(reinterpret_cast<const char*>(bj) + kExpandAheadBytes + line, _MM_HINT_T0);
    }
    __m256 b[C];
    for (int c = 0; c < C; ++c) b[c] = Masked && c == C - 1 ? load(last, bj + c * kLanes) : load(bj + c * kLanes);
    for (int r = 0; r < R; ++r) {
      const __m256 hv = _mm256_set1_ps(h[r][j]);
      for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(hv, b[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r) {
    float* yr = y[r] + n0;
    for (int c = 0; c < C; ++c) {
      if (Masked && c == C - 1) {
        const __m256 yv = _mm256_maskload_ps(yr + c * kLanes, last);
        const __m256 cv = scale.at(last, n0 + c * kLanes);
        _mm256_maskstore_ps(yr + c * kLanes, last, _mm256_fmadd_ps(acc[r][c], cv, yv));
      } else {
        const __m256 yv = _mm256_loadu_ps(yr + c * kLanes);
        _mm256_storeu_ps(yr + c * kLanes, _mm256_fmadd_ps(acc[r][c], scale.at(n0 + c * kLanes), yv));
      }
    }
  }
}

template <int R, typename W>
inline void expand_row_group(const float* const* h, const W* bt, int rank, int64_t ldb, int64_t n0,
                             int64_t n_end, const ColumnFactor& scale, float* const* y) {
  constexpr int C = 4;
  const __m256i none = _mm256_setzero_si256();
  if (n_end - n0 == C * kLanes) {
    expand_tile<R, C, false>(h, bt, rank, ldb, n0, none, scale, y);
    return;
  }
  for (; n0 + kLanes <= n_end; n0 += kLanes) expand_tile<R, 1, false>(h, bt, rank, ldb, n0, none, scale, y);
  if (n0 < n_end) expand_tile<R, 1, true>(h, bt, rank, ldb, n0, tail_mask(n_end - n0), scale, y);
}

template <typename W>
void expand_avx2(const float* const* h, int rows, const StoredAs<W>* bt_stored, int rank, int64_t ldb,
                 int64_t n_begin, int64_t n_end, float scale, const float* column_scale, float* const* y) {
  const W* bt = as_weights<W>(bt_stored);
  const ColumnFactor sv{_mm256_set1_ps(scale), column_scale};
  constexpr int64_t kTile = 4 * kLanes;
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kTile) {
    const int64_t end = n0 + kTile < n_end ? n0 + kTile : n_end;
    int r = 0;
    for (; r + 2 <= rows; r += 2) expand_row_group<2>(h + r, bt, rank, ldb, n0, end, sv, y + r);
    if (r < rows) expand_row_group<1>(h + r, bt, rank, ldb, n0, end, sv, y + r);
  }
}

}  // namespace
}  // namespace loraplex

#pragma GCC pop_options

namespace loraplex {

const LoraRowKernels& lora_rows_avx2() {
  static const bool f16c = __builtin_cpu_supports("f16c");
  static const LoraRowKernels kernels{shrink_avx2<float>,
                                      expand_avx2<float>,
                                      shrink_avx2<uint16_t>,
                                      expand_avx2<uint16_t>,
                                      f16c ? shrink_avx2<Half> : lora_rows_scalar().shrink_f16,
                                      f16c ? expand_avx2<Half> : lora_rows_scalar().expand_f16,
                                      shrink_avx2<int8_t>,
                                      expand_avx2<int8_t>};
  return kernels;
}

}  // namespace loraplex
