// AVX-512 LoRA row kernels. Register-blocked over rows × j (shrink) and rows × columns (expand); every
// accumulator runs the same FMA sequence as it would unblocked, so blocking never changes a result.
// Templated on the weights' element W (float; uint16_t bf16 bits widened by a shift on load; Half f16 bits
// widened by vcvtph2ps; int8_t sign-extended and converted; all exact; with more than one row group, widened
// once per weight tile into a buffer).
// Headers come before the target pragma so no library inline is compiled for AVX-512 (it could be picked
// by the linker for the portable code too).
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "lora_rows.h"
#include "ops_simd_math.h"

// f16c as well: the simd helpers carry LORAPLEX_TARGET_AVX512, which has it, and GCC inlines a function only where
// the caller's target includes the callee's (they are always_inline, so without it this file does not compile).
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")

namespace loraplex {
namespace {

constexpr int kLanes = 16;
// One row's shrink streams A from memory: each row of A is fetched this far ahead (the hardware prefetchers
// ramp up too late on A's short rows, read 8 at a time).
constexpr int kShrinkAheadBytes = 4096;

inline __mmask16 tail_mask(int64_t remaining) { return static_cast<__mmask16>((1u << remaining) - 1u); }

// 16 weights as f32: loaded, or bf16 widened exactly (bits << 16). Masked loads zero the other lanes.
// The all-ones maskz forms compile to the plain instructions; GCC 12 warns spuriously on the plain intrinsics.
inline __m512 widen(__m256i bf16) {
  constexpr __mmask16 all = 0xffff;
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(all, _mm512_maskz_cvtepu16_epi32(all, bf16), 16));
}
inline __m512 load(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load(const uint16_t* p) { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
inline __m512 load(__mmask16 m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 load(__mmask16 m, const uint16_t* p) { return widen(_mm256_maskz_loadu_epi16(m, p)); }
inline __m512 widen_half(__m256i f16) { return _mm512_maskz_cvtph_ps(0xffff, f16); }
inline __m512 load(const Half* p) { return widen_half(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
inline __m512 load(__mmask16 m, const Half* p) { return widen_half(_mm256_maskz_loadu_epi16(m, p)); }
inline __m512 widen_i8(__m128i q) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)); }  // exact
inline __m512 load(const int8_t* p) { return widen_i8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m512 load(__mmask16 m, const int8_t* p) { return widen_i8(_mm_maskz_loadu_epi8(m, p)); }

// The expand's per-column factor c_n: column[n] where the module has column scales, else the broadcast scale.
struct ColumnFactor {
  __m512 broadcast;
  const float* column;  // [ldb] or nullptr

  __m512 at(int64_t n) const { return column ? _mm512_loadu_ps(column + n) : broadcast; }
  __m512 at(__mmask16 m, int64_t n) const { return column ? _mm512_maskz_loadu_ps(m, column + n) : broadcast; }
};

// Semantics: h[r][j0 + j] = Σ_k x[r][k] · a[j0 + j, k] for r < R, j < J.
// Each (r, j) has one accumulator: lanes over k in steps of 16 (a masked last step), then a fixed reduce_add.
// a holds the weights' rows from a_first on (0: the whole matrix; a widened tile: its first j).
template <int R, int J, typename W>
inline void shrink_tile(const float* const* x, const W* a, int a_first, int64_t k, int j0, float* const* h) {
  __m512 acc[R][J];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < J; ++j) acc[r][j] = _mm512_setzero_ps();
  const W* aj = a + (j0 - a_first) * k;
  int64_t i = 0;
  for (; i + kLanes <= k; i += kLanes) {
    __m512 av[J];
    if constexpr (R == 1)
      for (int j = 0; j < J; ++j)
        _mm_prefetch(reinterpret_cast<const char*>(aj + j * k + i) + kShrinkAheadBytes, _MM_HINT_T0);
    for (int j = 0; j < J; ++j) av[j] = load(aj + j * k + i);
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_loadu_ps(x[r] + i);
      for (int j = 0; j < J; ++j) acc[r][j] = _mm512_fmadd_ps(xv, av[j], acc[r][j]);
    }
  }
  if (i < k) {
    const __mmask16 m = tail_mask(k - i);
    __m512 av[J];
    for (int j = 0; j < J; ++j) av[j] = load(m, aj + j * k + i);
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x[r] + i);
      for (int j = 0; j < J; ++j) acc[r][j] = _mm512_fmadd_ps(xv, av[j], acc[r][j]);
    }
  }
  if constexpr (R == 4 && J == 4) {
    __m512 v[16];  // v[4j + r]: row r's sums land in 128-bit lane r, j ascending
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < J; ++j) v[4 * j + r] = acc[r][j];
    const __m512 sums = simd::reduce_add_16_avx512(v);  // the same bits as reduce_add_avx512 on each
    _mm_storeu_ps(h[0] + j0, _mm512_maskz_extractf32x4_ps(0xf, sums, 0));
    _mm_storeu_ps(h[1] + j0, _mm512_maskz_extractf32x4_ps(0xf, sums, 1));
    _mm_storeu_ps(h[2] + j0, _mm512_maskz_extractf32x4_ps(0xf, sums, 2));
    _mm_storeu_ps(h[3] + j0, _mm512_maskz_extractf32x4_ps(0xf, sums, 3));
  } else {
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < J; ++j) h[r][j0 + j] = simd::reduce_add_avx512(acc[r][j]);
  }
}

template <int R, int JB, typename W>
inline void shrink_row_group(const float* const* x, const W* a, int rank, int64_t k, float* const* h) {
  int j = 0;
  for (; j + JB <= rank; j += JB) shrink_tile<R, JB>(x, a, 0, k, j, h);
  switch (rank - j) {
    case 7: shrink_tile<R, 7>(x, a, 0, k, j, h); break;
    case 6: shrink_tile<R, 6>(x, a, 0, k, j, h); break;
    case 5: shrink_tile<R, 5>(x, a, 0, k, j, h); break;
    case 4: shrink_tile<R, 4>(x, a, 0, k, j, h); break;
    case 3: shrink_tile<R, 3>(x, a, 0, k, j, h); break;
    case 2: shrink_tile<R, 2>(x, a, 0, k, j, h); break;
    case 1: shrink_tile<R, 1>(x, a, 0, k, j, h); break;
    default: break;
  }
}

// Widened weights: n values of bf16 / f16 bits as f32 (exact, as every load widens them).
template <typename W>
inline void widen_into(float* out, const W* in, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) _mm512_storeu_ps(out + i, load(in + i));
  if (i < n) _mm512_mask_storeu_ps(out + i, tail_mask(n - i), load(tail_mask(n - i), in + i));
}

// bf16 / f16 weights on three or more row groups: 4 rows of a widened to f32 once, then the f32 tiles on
// every row group (widening at each load would redo it per group, on the ports the FMAs use; with two groups
// the buffer's stores and loads cost more than that measured). Each (r, j) still has its one accumulator
// over the same values, so results are those of the widening loads.
constexpr int kWidenMinRows = 9;
constexpr int64_t kWidenMaxK = 4096;

template <int J>
inline void shrink_widened_tile(const float* const* x, int rows, const float* aj, int64_t k, int j0,
                                float* const* h) {
  int r = 0;
  for (; r + 4 <= rows; r += 4) shrink_tile<4, J>(x + r, aj, j0, k, j0, h + r);
  switch (rows - r) {
    case 3: shrink_tile<3, J>(x + r, aj, j0, k, j0, h + r); break;
    case 2: shrink_tile<2, J>(x + r, aj, j0, k, j0, h + r); break;
    case 1: shrink_tile<1, J>(x + r, aj, j0, k, j0, h + r); break;
    default: break;
  }
}

template <typename W>
void shrink_widened(const float* const* x, int rows, const W* a, int rank, int64_t k, float* const* h) {
  alignas(64) float wide[4 * kWidenMaxK];  // a[j0 .. j0 + 4, :]
  for (int j0 = 0; j0 < rank; j0 += 4) {
    const int tile = rank - j0 < 4 ? rank - j0 : 4;
    for (int j = 0; j < tile; ++j) widen_into(wide + j * k, a + (j0 + j) * k, k);
    switch (tile) {
      case 4: shrink_widened_tile<4>(x, rows, wide, k, j0, h); break;
      case 3: shrink_widened_tile<3>(x, rows, wide, k, j0, h); break;
      case 2: shrink_widened_tile<2>(x, rows, wide, k, j0, h); break;
      default: shrink_widened_tile<1>(x, rows, wide, k, j0, h); break;
    }
  }
}

template <typename W>
void shrink_avx512(const float* const* x, int rows, const StoredAs<W>* a_stored, int rank, int64_t k,
                   float* const* h) {
  const W* a = as_weights<W>(a_stored);
  if constexpr (!std::is_same_v<W, float>) {
    if (rows >= kWidenMinRows && k <= kWidenMaxK) {
      shrink_widened(x, rows, a, rank, k, h);
      return;
    }
  }
  int r = 0;
  for (; r + 4 <= rows; r += 4) shrink_row_group<4, 4>(x + r, a, rank, k, h + r);
  switch (rows - r) {
    case 3: shrink_row_group<3, 4>(x + r, a, rank, k, h + r); break;
    case 2: shrink_row_group<2, 6>(x + r, a, rank, k, h + r); break;
    case 1: shrink_row_group<1, 8>(x + r, a, rank, k, h + r); break;
    default: break;
  }
}

// Semantics: y[r][n0 + n] += c_n · Σ_j h[r][j] · bt[j, n0 + n] for r < R, n < 16·C (the last vector
// masked to `last` when Masked). Per element: acc = fma chain over j ascending, then y = fma(acc, c_n, y).
// bt holds the weights' columns from bt_first on (0: the whole matrix; a widened tile: its first column).
template <int R, int C, bool Masked, typename W>
inline void expand_tile(const float* const* h, const W* bt, int64_t bt_first, int rank, int64_t ldb, int64_t n0,
                        __mmask16 last, const ColumnFactor& scale, float* const* y) {
  if constexpr (R > 1) {
    // The tile's y, requested before the rank loop: the updates at its end otherwise wait on them.
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) _mm_prefetch(reinterpret_cast<const char*>(y[r] + n0 + c * kLanes), _MM_HINT_T0);
  }
  __m512 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int j = 0; j < rank; ++j) {
    const W* bj = bt + j * ldb + (n0 - bt_first);
    if constexpr (R == 1 && !Masked) {
      // One row streams Bt from memory: fetch each row's columns two tiles ahead (the hardware's streams
      // ramp up too late on rank-many short runs).
      constexpr int kTileBytes = C * kLanes * static_cast<int>(sizeof(W));
      for (int line = 0; line < kTileBytes; line += 64)
        _mm_prefetch(reinterpret_cast<const char*>(bj) + 2 * kTileBytes + line, _MM_HINT_T0);
    }
    __m512 b[C];
    for (int c = 0; c < C; ++c) b[c] = Masked && c == C - 1 ? load(last, bj + c * kLanes) : load(bj + c * kLanes);
    for (int r = 0; r < R; ++r) {
      const __m512 hv = _mm512_set1_ps(h[r][j]);
      for (int c = 0; c < C; ++c) acc[r][c] = _mm512_fmadd_ps(hv, b[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r) {
    float* yr = y[r] + n0;
    for (int c = 0; c < C; ++c) {
      if (Masked && c == C - 1) {
        const __m512 yv = _mm512_maskz_loadu_ps(last, yr + c * kLanes);
        const __m512 cv = scale.at(last, n0 + c * kLanes);
        _mm512_mask_storeu_ps(yr + c * kLanes, last, _mm512_fmadd_ps(acc[r][c], cv, yv));
      } else {
        const __m512 yv = _mm512_loadu_ps(yr + c * kLanes);
        _mm512_storeu_ps(yr + c * kLanes, _mm512_fmadd_ps(acc[r][c], scale.at(n0 + c * kLanes), yv));
      }
    }
  }
}

template <int R, int C, typename W>
inline void expand_row_group(const float* const* h, const W* bt, int64_t bt_first, int rank, int64_t ldb, int64_t n0,
                             int64_t n_end, const ColumnFactor& scale, float* const* y) {
  if (n_end - n0 == C * kLanes) {
    expand_tile<R, C, false>(h, bt, bt_first, rank, ldb, n0, 0, scale, y);
    return;
  }
  // A partial column tile: whole vectors, then one masked vector.
  for (; n0 + kLanes <= n_end; n0 += kLanes) expand_tile<R, 1, false>(h, bt, bt_first, rank, ldb, n0, 0, scale, y);
  if (n0 < n_end) expand_tile<R, 1, true>(h, bt, bt_first, rank, ldb, n0, tail_mask(n_end - n0), scale, y);
}

template <int C, typename W>
inline void expand_rows(const float* const* h, int rows, const W* bt, int64_t bt_first, int rank, int64_t ldb, int64_t n0,
                        int64_t n_end, const ColumnFactor& scale, float* const* y) {
  int r = 0;
  for (; r + 4 <= rows; r += 4) expand_row_group<4, C>(h + r, bt, bt_first, rank, ldb, n0, n_end, scale, y + r);
  switch (rows - r) {
    case 3: expand_row_group<3, C>(h + r, bt, bt_first, rank, ldb, n0, n_end, scale, y + r); break;
    case 2: expand_row_group<2, C>(h + r, bt, bt_first, rank, ldb, n0, n_end, scale, y + r); break;
    case 1: expand_row_group<1, C>(h + r, bt, bt_first, rank, ldb, n0, n_end, scale, y + r); break;
    default: break;
  }
}

// Column tiles outer so a tile of Bt [rank, 64] stays in L1 across the row groups.
template <typename W>
void expand_avx512(const float* const* h, int rows, const StoredAs<W>* bt_stored, int rank, int64_t ldb,
                   int64_t n_begin, int64_t n_end, float scale, const float* column_scale, float* const* y) {
  const W* bt = as_weights<W>(bt_stored);
  const ColumnFactor sv{_mm512_set1_ps(scale), column_scale};
  if (rows == 1) {
    // Decode's row: 8 accumulator vectors per tile, Bt prefetched ahead (expand_tile). (An f32 buffer of 1024
    // columns updated once per j measured 1.4-1.9× slower: a load and a store per FMA.)
    constexpr int64_t kOneRowTile = 8 * kLanes;
    for (int64_t n0 = n_begin; n0 < n_end; n0 += kOneRowTile) {
      const int64_t end = n0 + kOneRowTile < n_end ? n0 + kOneRowTile : n_end;
      expand_row_group<1, 8>(h, bt, 0, rank, ldb, n0, end, sv, y);
    }
    return;
  }
  constexpr int64_t kTile = 4 * kLanes;
  // bf16 / f16 on three or more row groups: each tile of Bt widened once into f32 (as shrink_widened does).
  constexpr int kWidenMaxRank = 64;
  if (!std::is_same_v<W, float> && rows >= kWidenMinRows && rank <= kWidenMaxRank) {
    alignas(64) float wide[kWidenMaxRank * kTile];  // bt[:, n0 .. n0 + kTile) at stride kTile
    for (int64_t n0 = n_begin; n0 < n_end; n0 += kTile) {
      const int64_t end = n0 + kTile < n_end ? n0 + kTile : n_end;
      for (int j = 0; j < rank; ++j) widen_into(wide + j * kTile, bt + j * ldb + n0, end - n0);
      expand_rows<4>(h, rows, wide, n0, rank, kTile, n0, end, sv, y);
    }
    return;
  }
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kTile) {
    const int64_t end = n0 + kTile < n_end ? n0 + kTile : n_end;
    expand_rows<4>(h, rows, bt, 0, rank, ldb, n0, end, sv, y);
  }
}

}  // namespace
}  // namespace loraplex

#pragma GCC pop_options

namespace loraplex {

const LoraRowKernels& lora_rows_avx512() {
  static const LoraRowKernels kernels{shrink_avx512<float>, expand_avx512<float>,    shrink_avx512<uint16_t>,
                                      expand_avx512<uint16_t>, shrink_avx512<Half>, expand_avx512<Half>,
                                      shrink_avx512<int8_t>,  expand_avx512<int8_t>};
  return kernels;
}

}  // namespace loraplex
