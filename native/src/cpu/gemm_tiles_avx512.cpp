// AVX-512 GEMM tiles: up to 12 rows × 32 columns (24 zmm accumulators), the x value broadcast, the panel
// row loaded as two vectors; f16 panels widen with vcvtph2ps, bf16 pairs with a shift / mask.
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <utility>

#include "gemm_tiles.h"
#include "ops_simd_math.h"

// Only the kernels get the target: the exported getter stays callable on any CPU.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
// GCC 12 flags the deliberately undefined vector inside _mm512_cvtph_ps.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "gemm_pack_x.h"

namespace loraplex {
namespace {

constexpr int kRows = 12;

// acc[r] += x[r] · (w0 | w1)  for the R rows of one k step. Each FMA reads x[r] as an embedded broadcast of its
// memory operand ({1to16}): one fused µop per FMA, where a broadcast into a register and two FMAs on it (what
// the compiler makes of _mm512_set1_ps here) held the tile to 76 % of the FMA peak on operands in L1, this to
// 84 % (bench:gemm-peak's tile ceiling). The same products and sums, so the same bits.
template <int R>
inline void step(__m512 (&acc)[R][2], const float* xk, __m512 w0, __m512 w1) {
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
    asm("vfmadd231ps %2%{1to16%}, %3, %0\n\t"
        "vfmadd231ps %2%{1to16%}, %4, %1"
        : "+v"(acc[r][0]), "+v"(acc[r][1])
        : "m"(xk[r]), "v"(w0), "v"(w1));
  }
}

// The next `lines` cache lines of the prefetch stream (PF tiles only).
template <bool PF, int Lines>
inline void prefetch(const char*& p) {
  if constexpr (PF) {
    _mm_prefetch(p, _MM_HINT_T1);
    if constexpr (Lines == 2) _mm_prefetch(p + 64, _MM_HINT_T1);
    p += 64 * Lines;
  }
}

template <WeightDType D, int R, bool PF>
void tile(const TileArgs& a) {
  const float* x = static_cast<const float*>(a.x);
  const char* pf = a.prefetch;
  __m512 acc[R][2];
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
    acc[r][0] = a.load_y ? _mm512_loadu_ps(a.y + r * a.ldy) : _mm512_setzero_ps();
    acc[r][1] = a.load_y ? _mm512_loadu_ps(a.y + r * a.ldy + 16) : _mm512_setzero_ps();
  }
  if constexpr (D == WeightDType::F32) {
    const float* w = static_cast<const float*>(a.w);
    for (int64_t k = 0; k < a.k; ++k, w += kGemmPanel) {
      prefetch<PF, 2>(pf);
      step<R>(acc, x + k * R, _mm512_load_ps(w), _mm512_load_ps(w + 16));
    }
  } else if constexpr (D == WeightDType::F16) {
    const uint16_t* w = static_cast<const uint16_t*>(a.w);
    for (int64_t k = 0; k < a.k; ++k, w += kGemmPanel) {
      prefetch<PF, 1>(pf);
      const __m512 w0 = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(w)));
      const __m512 w1 = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(w + 16)));
      step<R>(acc, x + k * R, w0, w1);
    }
  } else {
    const uint16_t* w = static_cast<const uint16_t*>(a.w);
    const __m512i high = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
    for (int64_t k = 0; k < a.k; k += 2, w += 2 * kGemmPanel) {
      prefetch<PF, 2>(pf);
      const __m512i v0 = _mm512_load_si512(w);
      const __m512i v1 = _mm512_load_si512(w + 32);
      step<R>(acc, x + k * R, _mm512_castsi512_ps(_mm512_slli_epi32(v0, 16)),
              _mm512_castsi512_ps(_mm512_slli_epi32(v1, 16)));
      step<R>(acc, x + (k + 1) * R, _mm512_castsi512_ps(_mm512_and_si512(v0, high)),
              _mm512_castsi512_ps(_mm512_and_si512(v1, high)));
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

void widen_f16(const void* w_, int64_t k, float* out) {
  const uint16_t* w = static_cast<const uint16_t*>(w_);
  for (int64_t i = 0; i < k; ++i, w += kGemmPanel, out += kGemmPanel) {
    _mm512_store_ps(out, _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(w))));
    _mm512_store_ps(out + 16, _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(w + 16))));
  }
}

void widen_bf16_pairs(const void* w_, int64_t k, float* out) {
  const uint16_t* w = static_cast<const uint16_t*>(w_);
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  for (int64_t i = 0; i < k; i += 2, w += 2 * kGemmPanel, out += 2 * kGemmPanel) {
    const __m512i v0 = _mm512_load_si512(w), v1 = _mm512_load_si512(w + 32);
    _mm512_store_si512(out, _mm512_slli_epi32(v0, 16));
    _mm512_store_si512(out + 16, _mm512_slli_epi32(v1, 16));
    _mm512_store_si512(out + 32, _mm512_and_si512(v0, high));
    _mm512_store_si512(out + 48, _mm512_and_si512(v1, high));
  }
}

// pack_x_f32 16 k at a time: the rows' runs of 16 floats transposed as a 16 × 16 block (rows past `rows` zero),
// then each k's `rows` values stored in one masked vector — the values pack_x_f32 writes, where it writes them
// (scalar, it was 5 % of a 128-row GEMM's time).
void pack_x_f32_avx512(const float* x, int64_t ldx, int rows, int64_t k_valid, int64_t k_padded, void* out_) {
  float* out = static_cast<float*>(out_);
  if (rows == 1) {  // a decode's row is its own packing
    std::memcpy(out, x, sizeof(float) * k_valid);
    std::memset(out + k_valid, 0, sizeof(float) * (k_padded - k_valid));
    return;
  }
  const __mmask16 row_lanes = static_cast<__mmask16>((1u << rows) - 1u);
  int64_t k0 = 0;
  for (; k0 + 16 <= k_valid; k0 += 16) {
    __m512 r[16];
    for (int i = 0; i < 16; ++i) r[i] = i < rows ? _mm512_loadu_ps(x + i * ldx + k0) : _mm512_setzero_ps();
    alignas(64) float columns[16 * 16];  // columns[kk·16 + i] = x[i, k0 + kk]
    simd::transpose_16x16_avx512(r, columns);
    for (int kk = 0; kk < 16; ++kk)
      _mm512_mask_storeu_ps(out + (k0 + kk) * rows, row_lanes, _mm512_load_ps(columns + kk * 16));
  }
  for (int64_t k = k0; k < k_padded; ++k)
    for (int r = 0; r < rows; ++r) out[k * rows + r] = k < k_valid ? x[r * ldx + k] : 0.0f;
}

template <WeightDType D, int... R>
GemmTiles make_tiles(std::integer_sequence<int, R...>) {
  GemmTiles t{};
  t.max_rows = kRows;
  t.x_bytes_per_k = 4;
  t.pack_x = pack_x_f32_avx512;
  ((t.tile[R + 1] = tile<D, R + 1, false>), ...);
  ((t.tile_prefetch[R + 1] = tile<D, R + 1, true>), ...);
  return t;
}

}  // namespace
#pragma GCC pop_options

const GemmTiles* gemm_tiles_avx512(WeightDType dtype) {
  static const GemmTiles f32 = make_tiles<WeightDType::F32>(std::make_integer_sequence<int, kRows>());
  static const GemmTiles f16 =
      with_widen(make_tiles<WeightDType::F16>(std::make_integer_sequence<int, kRows>()), widen_f16, &f32);
  static const GemmTiles bf16 =
      with_widen(make_tiles<WeightDType::Bf16>(std::make_integer_sequence<int, kRows>()), widen_bf16_pairs, &f32);
  switch (dtype) {
    case WeightDType::F32: return &f32;
    case WeightDType::F16: return &f16;
    case WeightDType::Bf16: return &bf16;
  }
  return nullptr;
}

}  // namespace loraplex
