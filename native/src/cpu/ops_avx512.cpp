// AVX-512 row routines (see ops_kernels.h).
#include <cmath>

#include "ops_kernels.h"
#include "ops_simd_math.h"

namespace loraplex {
namespace {

using simd::tail_mask16;

LORAPLEX_TARGET_AVX512 void rms_norm_row(const float* x, const float* weight, float* out, int64_t dim, float eps) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
  int64_t d = 0;
  for (; d + 64 <= dim; d += 64) {
    const __m512 x0 = _mm512_loadu_ps(x + d), x1 = _mm512_loadu_ps(x + d + 16);
    const __m512 x2 = _mm512_loadu_ps(x + d + 32), x3 = _mm512_loadu_ps(x + d + 48);
    a0 = _mm512_fmadd_ps(x0, x0, a0);
    a1 = _mm512_fmadd_ps(x1, x1, a1);
    a2 = _mm512_fmadd_ps(x2, x2, a2);
    a3 = _mm512_fmadd_ps(x3, x3, a3);
  }
  for (; d + 16 <= dim; d += 16) {
    const __m512 v = _mm512_loadu_ps(x + d);
    a0 = _mm512_fmadd_ps(v, v, a0);
  }
  if (d < dim) {
    const __m512 v = _mm512_maskz_loadu_ps(tail_mask16(int(dim - d)), x + d);
    a1 = _mm512_fmadd_ps(v, v, a1);
  }
  const float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  const __m512 r = _mm512_set1_ps(1.0f / std::sqrt(sum / float(dim) + eps));
  for (d = 0; d + 16 <= dim; d += 16)
    _mm512_storeu_ps(out + d, _mm512_mul_ps(_mm512_loadu_ps(weight + d), _mm512_mul_ps(_mm512_loadu_ps(x + d), r)));
  if (d < dim) {
    const __mmask16 m = tail_mask16(int(dim - d));
    const __m512 v =
        _mm512_mul_ps(_mm512_maskz_loadu_ps(m, weight + d), _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + d), r));
    _mm512_mask_storeu_ps(out + d, m, v);
  }
}

LORAPLEX_TARGET_AVX512 inline __m512 silu_mul(__m512 g, __m512 u) {
  const __m512 e = simd::exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), g));
  return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

LORAPLEX_TARGET_AVX512 void silu_mul_row(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, silu_mul(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
  if (i < n) {
    const __mmask16 m = tail_mask16(int(n - i));
    _mm512_mask_storeu_ps(out + i, m, silu_mul(_mm512_maskz_loadu_ps(m, gate + i), _mm512_maskz_loadu_ps(m, up + i)));
  }
}

LORAPLEX_TARGET_AVX512 void add(float* x, const float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(x + i, _mm512_add_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  if (i < n) {
    const __mmask16 m = tail_mask16(int(n - i));
    _mm512_mask_storeu_ps(x + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

LORAPLEX_TARGET_AVX512 inline __m512 gelu_tanh_mul(__m512 g, __m512 u) {
  const __m512 g3 = _mm512_mul_ps(_mm512_mul_ps(g, g), g);
  const __m512 inner =
      _mm512_mul_ps(_mm512_set1_ps(0.7978845608028654f), _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), g3, g));
  const __m512 half_g = _mm512_mul_ps(_mm512_set1_ps(0.5f), g);
  return _mm512_mul_ps(_mm512_mul_ps(half_g, _mm512_add_ps(_mm512_set1_ps(1.0f), simd::tanh_avx512(inner))), u);
}

LORAPLEX_TARGET_AVX512 void gelu_tanh_mul_row(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, gelu_tanh_mul(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
  if (i < n) {
    const __mmask16 m = tail_mask16(int(n - i));
    _mm512_mask_storeu_ps(out + i, m,
                          gelu_tanh_mul(_mm512_maskz_loadu_ps(m, gate + i), _mm512_maskz_loadu_ps(m, up + i)));
  }
}

LORAPLEX_TARGET_AVX512 void softcap(float* x, int64_t n, float cap) {
  const __m512 c = _mm512_set1_ps(cap);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, simd::softcap_avx512(_mm512_loadu_ps(x + i), c));
  if (i < n) {
    const __mmask16 m = tail_mask16(int(n - i));
    _mm512_mask_storeu_ps(x + i, m, simd::softcap_avx512(_mm512_maskz_loadu_ps(m, x + i), c));
  }
}

LORAPLEX_TARGET_AVX512 void scale(float* x, int64_t n, float factor) {
  const __m512 f = _mm512_set1_ps(factor);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), f));
  if (i < n) {
    const __mmask16 m = tail_mask16(int(n - i));
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), f));
  }
}

LORAPLEX_TARGET_AVX512 void widen_f16(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
  if (i < n) {
    const __mmask16 m = tail_mask16(int(n - i));
    _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + i)));
  }
}

LORAPLEX_TARGET_AVX512 void widen_bf16(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
    _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
  }
  if (i < n) {
    const __mmask16 m = tail_mask16(int(n - i));
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, src + i));
    _mm512_mask_storeu_ps(dst + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
  }
}

}  // namespace

const OpsRowKernels kOpsAvx512 = {rms_norm_row, silu_mul_row, add,     widen_f16, widen_bf16, gelu_tanh_mul_row,
                                  softcap,      scale};

}  // namespace loraplex
