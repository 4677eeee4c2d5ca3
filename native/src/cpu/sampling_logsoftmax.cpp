// log-softmax of one row (logprobs). Per ISA: the max, then Σ exp(x - m) in f64 lanes, then (x - m) - log Σ.
#include <cmath>

#include "loraplex/cpu_features.h"
#include "loraplex/sampling.h"
#include "ops_simd_math.h"

namespace loraplex {
namespace {

// x == m counts as exp(0) = 1 and as a 0 shift, so a row whose max is ±inf gives no inf - inf.
inline float shifted(float x, float m) { return x == m ? 0.0f : x - m; }

void log_softmax_scalar(const float* x, int64_t n, float* out) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = std::fmax(m, x[i]);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(double(shifted(x[i], m)));
  const float log_s = float(std::log(s));
  for (int64_t i = 0; i < n; ++i) out[i] = shifted(x[i], m) - log_s;
}

LORAPLEX_TARGET_AVX2 void log_softmax_avx2(const float* x, int64_t n, float* out) {
  __m256 vm = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) vm = _mm256_max_ps(_mm256_loadu_ps(x + i), vm);  // NaN lanes keep the running max
  float m = simd::hmax_avx2(vm);
  for (int64_t j = i; j < n; ++j) m = std::fmax(m, x[j]);
  const __m256 mv = _mm256_set1_ps(m);
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    const __m256 d = _mm256_andnot_ps(_mm256_cmp_ps(xv, mv, _CMP_EQ_OQ), _mm256_sub_ps(xv, mv));
    const __m256 e = simd::exp_avx2(d);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(s0, s1));
  double s = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (int64_t j = i; j < n; ++j) s += std::exp(double(shifted(x[j], m)));
  const float log_s = float(std::log(s));
  const __m256 lv = _mm256_set1_ps(log_s);
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    const __m256 d = _mm256_andnot_ps(_mm256_cmp_ps(xv, mv, _CMP_EQ_OQ), _mm256_sub_ps(xv, mv));
    _mm256_storeu_ps(out + i, _mm256_sub_ps(d, lv));
  }
  for (; i < n; ++i) out[i] = shifted(x[i], m) - log_s;
}

LORAPLEX_TARGET_AVX512 inline __m512 shift512(__m512 x, __m512 m) {
  return _mm512_mask_mov_ps(_mm512_sub_ps(x, m), _mm512_cmp_ps_mask(x, m, _CMP_EQ_OQ), _mm512_setzero_ps());
}

LORAPLEX_TARGET_AVX512 void log_softmax_avx512(const float* x, int64_t n, float* out) {
  __m512 vm = _mm512_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) vm = _mm512_max_ps(_mm512_loadu_ps(x + i), vm);  // NaN lanes keep the running max
  const __mmask16 tail = simd::tail_mask16(int(n - i));
  vm = _mm512_mask_max_ps(vm, tail, _mm512_maskz_loadu_ps(tail, x + i), vm);
  const float m = _mm512_reduce_max_ps(vm);
  const __m512 mv = _mm512_set1_ps(m);
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  for (i = 0; i + 16 <= n; i += 16) {
    const __m512 e = simd::exp_avx512(shift512(_mm512_loadu_ps(x + i), mv));
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
  }
  if (tail) {
    const __m512 e = _mm512_maskz_mov_ps(tail, simd::exp_avx512(shift512(_mm512_maskz_loadu_ps(tail, x + i), mv)));
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
  }
  const double s = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  const __m512 lv = _mm512_set1_ps(float(std::log(s)));
  for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, _mm512_sub_ps(shift512(_mm512_loadu_ps(x + i), mv), lv));
  if (tail) _mm512_mask_storeu_ps(out + i, tail, _mm512_sub_ps(shift512(_mm512_maskz_loadu_ps(tail, x + i), mv), lv));
}

}  // namespace

void log_softmax(const float* logits, int64_t vocab, float* out) {
  const Isa isa = active_isa();
  if (isa >= Isa::Avx512) return log_softmax_avx512(logits, vocab, out);
  if (isa >= Isa::Avx2) return log_softmax_avx2(logits, vocab, out);
  log_softmax_scalar(logits, vocab, out);
}

}  // namespace loraplex
