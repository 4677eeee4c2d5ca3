// AVX2 + FMA (+ F16C) row routines (see ops_kernels.h).
#include <cmath>

#include "ops_kernels.h"
#include "ops_simd_math.h"

namespace loraplex {
namespace {

using simd::tail_mask8;

LORAPLEX_TARGET_AVX2 void rms_norm_row(const float* x, const float* weight, float* out, int64_t dim, float eps) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  int64_t d = 0;
  for (; d + 32 <= dim; d += 32) {
    const __m256 x0 = _mm256_loadu_ps(x + d), x1 = _mm256_loadu_ps(x + d + 8);
    const __m256 x2 = _mm256_loadu_ps(x + d + 16), x3 = _mm256_loadu_ps(x + d + 24);
    a0 = _mm256_fmadd_ps(x0, x0, a0);
    a1 = _mm256_fmadd_ps(x1, x1, a1);
    a2 = _mm256_fmadd_ps(x2, x2, a2);
    a3 = _mm256_fmadd_ps(x3, x3, a3);
  }
  for (; d + 8 <= dim; d += 8) {
    const __m256 v = _mm256_loadu_ps(x + d);
    a0 = _mm256_fmadd_ps(v, v, a0);
  }
  if (d < dim) {
    const __m256 v = _mm256_maskload_ps(x + d, tail_mask8(int(dim - d)));
    a1 = _mm256_fmadd_ps(v, v, a1);
  }
  const float sum = simd::hsum_avx2(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  const __m256 r = _mm256_set1_ps(1.0f / std::sqrt(sum / float(dim) + eps));
  for (d = 0; d + 8 <= dim; d += 8)
    _mm256_storeu_ps(out + d, _mm256_mul_ps(_mm256_loadu_ps(weight + d), _mm256_mul_ps(_mm256_loadu_ps(x + d), r)));
  if (d < dim) {
    const __m256i m = tail_mask8(int(dim - d));
    const __m256 v = _mm256_mul_ps(_mm256_maskload_ps(weight + d, m), _mm256_mul_ps(_mm256_maskload_ps(x + d, m), r));
    _mm256_maskstore_ps(out + d, m, v);
  }
}

LORAPLEX_TARGET_AVX2 inline __m256 silu_mul(__m256 g, __m256 u) {
  const __m256 e = simd::exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

LORAPLEX_TARGET_AVX2 void silu_mul_row(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, silu_mul(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  if (i < n) {
    const __m256i m = tail_mask8(int(n - i));
    _mm256_maskstore_ps(out + i, m, silu_mul(_mm256_maskload_ps(gate + i, m), _mm256_maskload_ps(up + i, m)));
  }
}

LORAPLEX_TARGET_AVX2 void add(float* x, const float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) x[i] += y[i];
}

LORAPLEX_TARGET_AVX2 inline __m256 gelu_tanh_mul(__m256 g, __m256 u) {
  const __m256 g3 = _mm256_mul_ps(_mm256_mul_ps(g, g), g);
  const __m256 inner = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f), _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), g3, g));
  const __m256 half_g = _mm256_mul_ps(_mm256_set1_ps(0.5f), g);
  return _mm256_mul_ps(_mm256_mul_ps(half_g, _mm256_add_ps(_mm256_set1_ps(1.0f), simd::tanh_avx2(inner))), u);
}

LORAPLEX_TARGET_AVX2 void gelu_tanh_mul_row(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, gelu_tanh_mul(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  if (i < n) {
    const __m256i m = tail_mask8(int(n - i));
    _mm256_maskstore_ps(out + i, m, gelu_tanh_mul(_mm256_maskload_ps(gate + i, m), _mm256_maskload_ps(up + i, m)));
  }
}

LORAPLEX_TARGET_AVX2 void softcap(float* x, int64_t n, float cap) {
  const __m256 c = _mm256_set1_ps(cap);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, simd::softcap_avx2(_mm256_loadu_ps(x + i), c));
  if (i < n) {
    const __m256i m = tail_mask8(int(n - i));
    _mm256_maskstore_ps(x + i, m, simd::softcap_avx2(_mm256_maskload_ps(x + i, m), c));
  }
}

LORAPLEX_TARGET_AVX2 void scale(float* x, int64_t n, float factor) {
  const __m256 f = _mm256_set1_ps(factor);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), f));
  for (; i < n; ++i) x[i] *= factor;
}

LORAPLEX_TARGET_AVX2 void widen_f16(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  if (i < n) {  // tail through a zero-padded copy: no read past the table
    alignas(16) uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    alignas(32) float wide[8];
    for (int64_t j = i; j < n; ++j) tmp[j - i] = src[j];
    _mm256_store_ps(wide, _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(tmp))));
    for (int64_t j = i; j < n; ++j) dst[j] = wide[j - i];
  }
}

LORAPLEX_TARGET_AVX2 void widen_bf16(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
  }
  for (; i < n; ++i) {
    const uint32_t bits = uint32_t(src[i]) << 16;
    __builtin_memcpy(dst + i, &bits, 4);
  }
}

}  // namespace

const OpsRowKernels kOpsAvx2 = {rms_norm_row, silu_mul_row, add,     widen_f16, widen_bf16, gelu_tanh_mul_row,
                                softcap,      scale};

}  // namespace loraplex
