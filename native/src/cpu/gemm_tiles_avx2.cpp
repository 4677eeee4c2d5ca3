// AVX2 + FMA GEMM tiles: up to 6 rows × 16 columns at a time (12 ymm accumulators), the 32-column panel
// in two halves; f16 panels widen with F16C, bf16 pairs with a shift / mask.
#include <cpuid.h>
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <utility>

#include "gemm_tiles.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

#include "gemm_pack_x.h"

namespace loraplex {
namespace {

constexpr int kRows = 6;

template <int R>
inline void step(__m256 (&acc)[R][2], const float* xk, __m256 w0, __m256 w1) {
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    const __m256 b = _mm256_broadcast_ss(xk + r);
    acc[r][0] = _mm256_fmadd_ps(b, w0, acc[r][0]);
    acc[r][1] = _mm256_fmadd_ps(b, w1, acc[r][1]);
  }
}

// The next `lines` cache lines of the prefetch stream; only the first half-tile prefetches.
template <int Lines>
inline void prefetch(const char*& p) {
  _mm_prefetch(p, _MM_HINT_T1);
  if constexpr (Lines == 2) _mm_prefetch(p + 64, _MM_HINT_T1);
  p += 64 * Lines;
}

// Columns [16·h, 16·h + 16) of the panel.
template <WeightDType D, int R, bool PF>
inline void half_tile(const TileArgs& a, int h) {
  const float* x = static_cast<const float*>(a.x);
  const char* pf = a.prefetch;
  float* y = a.y + 16 * h;
  __m256 acc[R][2];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    acc[r][0] = a.load_y ? _mm256_loadu_ps(y + r * a.ldy) : _mm256_setzero_ps();
    acc[r][1] = a.load_y ? _mm256_loadu_ps(y + r * a.ldy + 8) : _mm256_setzero_ps();
  }
  if constexpr (D == WeightDType::F32) {
    const float* w = static_cast<const float*>(a.w) + 16 * h;
    for (int64_t k = 0; k < a.k; ++k, w += kGemmPanel) {
      if constexpr (PF) prefetch<2>(pf);
      step<R>(acc, x + k * R, _mm256_load_ps(w), _mm256_load_ps(w + 8));
    }
  } else if constexpr (D == WeightDType::F16) {
    const uint16_t* w = static_cast<const uint16_t*>(a.w) + 16 * h;
    for (int64_t k = 0; k < a.k; ++k, w += kGemmPanel) {
      if constexpr (PF) prefetch<1>(pf);
      const __m256 w0 = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(w)));
      const __m256 w1 = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(w + 8)));
      step<R>(acc, x + k * R, w0, w1);
    }
  } else {
    const uint16_t* w = static_cast<const uint16_t*>(a.w) + 32 * h;  // pairs of columns 16h..16h+15
    const __m256i high = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
    for (int64_t k = 0; k < a.k; k += 2, w += 2 * kGemmPanel) {
      if constexpr (PF) prefetch<2>(pf);
      const __m256i v0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w));
      const __m256i v1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + 16));
      step<R>(acc, x + k * R, _mm256_castsi256_ps(_mm256_slli_epi32(v0, 16)),
              _mm256_castsi256_ps(_mm256_slli_epi32(v1, 16)));
      step<R>(acc, x + (k + 1) * R, _mm256_castsi256_ps(_mm256_and_si256(v0, high)),
              _mm256_castsi256_ps(_mm256_and_si256(v1, high)));
    }
  }
  if (a.bias) {
    const __m256 b0 = _mm256_loadu_ps(a.bias + 16 * h), b1 = _mm256_loadu_ps(a.bias + 16 * h + 8);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      acc[r][0] = _mm256_add_ps(acc[r][0], b0);
      acc[r][1] = _mm256_add_ps(acc[r][1], b1);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_ps(y + r * a.ldy, acc[r][0]);
    _mm256_storeu_ps(y + r * a.ldy + 8, acc[r][1]);
  }
}

template <WeightDType D, int R, bool PF>
void tile(const TileArgs& a) {
  half_tile<D, R, PF>(a, 0);
  half_tile<D, R, false>(a, 1);  // the first half already streamed the panel rows into L1
}

void widen_f16(const void* w_, int64_t k, float* out) {
  const uint16_t* w = static_cast<const uint16_t*>(w_);
  for (int64_t i = 0; i < k; ++i, w += kGemmPanel, out += kGemmPanel)
    for (int j = 0; j < kGemmPanel; j += 8)
      _mm256_store_ps(out + j, _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(w + j))));
}

void widen_bf16_pairs(const void* w_, int64_t k, float* out) {
  const uint16_t* w = static_cast<const uint16_t*>(w_);
  const __m256i high = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  for (int64_t i = 0; i < k; i += 2, w += 2 * kGemmPanel, out += 2 * kGemmPanel) {
    for (int j = 0; j < kGemmPanel; j += 8) {  // pairs of columns j .. j+7
      const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + 2 * j));
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + j), _mm256_slli_epi32(v, 16));
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + kGemmPanel + j), _mm256_and_si256(v, high));
    }
  }
}

template <WeightDType D, int... R>
GemmTiles make_tiles(std::integer_sequence<int, R...>) {
  GemmTiles t{};
  t.max_rows = kRows;
  t.x_bytes_per_k = 4;
  t.pack_x = pack_x_f32;
  ((t.tile[R + 1] = tile<D, R + 1, false>), ...);
  ((t.tile_prefetch[R + 1] = tile<D, R + 1, true>), ...);
  return t;
}

}  // namespace
#pragma GCC pop_options

static bool cpu_has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}

const GemmTiles* gemm_tiles_avx2(WeightDType dtype) {
  static const GemmTiles f32 = make_tiles<WeightDType::F32>(std::make_integer_sequence<int, kRows>());
  static const GemmTiles f16 =
      with_widen(make_tiles<WeightDType::F16>(std::make_integer_sequence<int, kRows>()), widen_f16, &f32);
  static const GemmTiles bf16 =
      with_widen(make_tiles<WeightDType::Bf16>(std::make_integer_sequence<int, kRows>()), widen_bf16_pairs, &f32);
  static const bool f16c = cpu_has_f16c();
  switch (dtype) {
    case WeightDType::F32: return &f32;
    case WeightDType::F16: return f16c ? &f16 : nullptr;
    case WeightDType::Bf16: return &bf16;
  }
  return nullptr;
}

}  // namespace loraplex
