// AVX-512 BF16 GEMM tiles for bf16 weights: x is rounded to bf16 and packed in k pairs, each vdpbf16ps
// adds x[2i]·W[n, 2i] + x[2i+1]·W[n, 2i+1] into 16 f32 lanes. Up to 12 rows × 32 columns per tile.
// f32 and f16 weights never come here: rounding x is only acceptable when W is bf16 already.
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <utility>

#include "gemm_tiles.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")

#include "gemm_pack_x.h"

namespace loraplex {
namespace {

constexpr int kRows = 12;

template <int R, bool PF>
void tile(const TileArgs& a) {
  const uint32_t* x = static_cast<const uint32_t*>(a.x);  // [k/2][R] bf16 pairs
  const uint16_t* w = static_cast<const uint16_t*>(a.w);  // [k/2][32][2]
  const char* pf = a.prefetch;
  __m512 acc[R][2];
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
    acc[r][0] = a.load_y ? _mm512_loadu_ps(a.y + r * a.ldy) : _mm512_setzero_ps();
    acc[r][1] = a.load_y ? _mm512_loadu_ps(a.y + r * a.ldy + 16) : _mm512_setzero_ps();
  }
  const int64_t pairs = a.k / 2;
  for (int64_t i = 0; i < pairs; ++i, w += 2 * kGemmPanel, x += R) {
    if constexpr (PF) {
      _mm_prefetch(pf, _MM_HINT_T1);
      _mm_prefetch(pf + 64, _MM_HINT_T1);
      pf += 128;
    }
    const __m512bh w0 = (__m512bh)_mm512_load_si512(w);
    const __m512bh w1 = (__m512bh)_mm512_load_si512(w + 32);
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      const __m512bh b = (__m512bh)_mm512_set1_epi32(static_cast<int>(x[r]));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], b, w0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], b, w1);
    }
  }
  if (a.bias) {
    const __m512 b0 = _mm512_loadu_ps(a.bias), b1 = _mm512_loadu_ps(a.bias + 16);
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      acc[r][0] = _mm512_add_ps(acc[r][0], b0);
      acc[r][1] = _mm512_add_ps(acc[r][1], b1);
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
    _mm512_storeu_ps(a.y + r * a.ldy, acc[r][0]);
    _mm512_storeu_ps(a.y + r * a.ldy + 16, acc[r][1]);
  }
}

template <int... R>
GemmTiles make_tiles(std::integer_sequence<int, R...>) {
  GemmTiles t{};
  t.max_rows = kRows;
  t.x_bytes_per_k = 2;
  t.pack_x = pack_x_bf16_pairs;
  ((t.tile[R + 1] = tile<R + 1, false>), ...);
  ((t.tile_prefetch[R + 1] = tile<R + 1, true>), ...);
  return t;
}

}  // namespace
#pragma GCC pop_options

const GemmTiles* gemm_tiles_avx512bf16(WeightDType dtype) {
  static const GemmTiles bf16 = make_tiles(std::make_integer_sequence<int, kRows>());
  return dtype == WeightDType::Bf16 ? &bf16 : nullptr;
}

}  // namespace loraplex
