// AVX-512 scans of the sampler (see sampling_rows.h).
#include <cmath>

#include "ops_simd_math.h"
#include "sampling_rows.h"

namespace loraplex {
namespace {

using simd::tail_mask16;

LORAPLEX_TARGET_AVX512 float max_key(const float* x, int64_t n) {
  __m512 vm = _mm512_set1_ps(-INFINITY);
  int64_t v = 0;
  for (; v + 16 <= n; v += 16) vm = _mm512_max_ps(_mm512_loadu_ps(x + v), vm);  // NaN lanes keep the running max
  const __mmask16 tail = tail_mask16(int(n - v));
  vm = _mm512_max_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), tail, x + v), vm);
  return _mm512_reduce_max_ps(vm);
}

LORAPLEX_TARGET_AVX512 int64_t next_equal(const float* x, int64_t from, int64_t n, float value) {
  const __m512 target = _mm512_set1_ps(value);
  for (int64_t v = from; v < n; v += 16) {
    const __mmask16 live = n - v >= 16 ? __mmask16(0xffff) : tail_mask16(int(n - v));
    const __mmask16 hit = _mm512_mask_cmp_ps_mask(live, _mm512_maskz_loadu_ps(live, x + v), target, _CMP_EQ_OQ);
    if (hit) return v + __builtin_ctz(hit);
  }
  return n;
}

LORAPLEX_TARGET_AVX512 int64_t next_above(const float* x, int64_t from, int64_t n, float threshold) {
  const __m512 t = _mm512_set1_ps(threshold);
  for (int64_t v = from; v < n; v += 16) {
    const __mmask16 live = n - v >= 16 ? __mmask16(0xffff) : tail_mask16(int(n - v));
    const __mmask16 hit = _mm512_mask_cmp_ps_mask(live, _mm512_maskz_loadu_ps(live, x + v), t, _CMP_GT_OQ);
    if (hit) return v + __builtin_ctz(hit);
  }
  return n;
}

LORAPLEX_TARGET_AVX512 void softmax_weights(const float* logits, int64_t n, double temperature, double m,
                                            double* p) {
  const __m512d t = _mm512_set1_pd(temperature);
  const __m512d mv = _mm512_set1_pd(m);
  for (int64_t v = 0; v < n; v += 8) {
    const __mmask8 live = n - v >= 8 ? __mmask8(0xff) : __mmask8((1u << (n - v)) - 1);
    __m256 keys = _mm256_maskz_loadu_ps(live, logits + v);
    keys = _mm256_mask_mov_ps(keys, _mm256_cmp_ps_mask(keys, keys, _CMP_UNORD_Q), _mm256_set1_ps(-INFINITY));
    const __m512d x = _mm512_div_pd(_mm512_cvtps_pd(keys), t);
    __m512d w = simd::exp_pd_avx512(_mm512_sub_pd(x, mv));
    w = _mm512_mask_mov_pd(w, _mm512_cmp_pd_mask(x, mv, _CMP_EQ_OQ), _mm512_set1_pd(1.0));
    w = _mm512_maskz_mov_pd(live, w);
    _mm512_mask_storeu_pd(p + v, live, w);
  }
}

}  // namespace

const SamplingRowKernels kSamplingAvx512 = {max_key, next_equal, next_above, softmax_weights};

}  // namespace loraplex
