// AVX2 scans of the sampler (see sampling_rows.h).
#include <cmath>

#include "ops_simd_math.h"
#include "sampling_rows.h"

namespace loraplex {
namespace {

LORAPLEX_TARGET_AVX2 float max_key(const float* x, int64_t n) {
  __m256 vm = _mm256_set1_ps(-INFINITY);
  int64_t v = 0;
  for (; v + 8 <= n; v += 8) vm = _mm256_max_ps(_mm256_loadu_ps(x + v), vm);  // NaN lanes keep the running max
  float m = simd::hmax_avx2(vm);
  for (; v < n; ++v) m = std::fmax(m, x[v]);
  return m;
}

LORAPLEX_TARGET_AVX2 int64_t next_equal(const float* x, int64_t from, int64_t n, float value) {
  const __m256 target = _mm256_set1_ps(value);
  int64_t v = from;
  for (; v + 8 <= n; v += 8) {
    const int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + v), target, _CMP_EQ_OQ));
    if (mask) return v + __builtin_ctz(mask);
  }
  for (; v < n; ++v)
    if (x[v] == value) return v;
  return n;
}

LORAPLEX_TARGET_AVX2 int64_t next_above(const float* x, int64_t from, int64_t n, float threshold) {
  const __m256 t = _mm256_set1_ps(threshold);
  int64_t v = from;
  for (; v + 8 <= n; v += 8) {
    const int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + v), t, _CMP_GT_OQ));
    if (mask) return v + __builtin_ctz(mask);
  }
  for (; v < n; ++v)
    if (x[v] > threshold) return v;
  return n;
}

// Four keys → their weights (NaN keys count as -inf).
LORAPLEX_TARGET_AVX2 inline __m256d weights4(__m128 keys, __m256d temperature, __m256d m) {
  const __m128 k = _mm_blendv_ps(keys, _mm_set1_ps(-INFINITY), _mm_cmpunord_ps(keys, keys));
  const __m256d x = _mm256_div_pd(_mm256_cvtps_pd(k), temperature);
  const __m256d w = simd::exp_pd_avx2(_mm256_sub_pd(x, m));
  return _mm256_blendv_pd(w, _mm256_set1_pd(1.0), _mm256_cmp_pd(x, m, _CMP_EQ_OQ));
}

LORAPLEX_TARGET_AVX2 void softmax_weights(const float* logits, int64_t n, double temperature, double m,
                                          double* p) {
  const __m256d t = _mm256_set1_pd(temperature);
  const __m256d mv = _mm256_set1_pd(m);
  int64_t v = 0;
  for (; v + 8 <= n; v += 8) {
    const __m256 keys = _mm256_loadu_ps(logits + v);
    const __m256d lo = weights4(_mm256_castps256_ps128(keys), t, mv);
    const __m256d hi = weights4(_mm256_extractf128_ps(keys, 1), t, mv);
    _mm256_storeu_pd(p + v, lo);
    _mm256_storeu_pd(p + v + 4, hi);
  }
  for (; v < n; ++v) {
    const float key = std::isnan(logits[v]) ? -INFINITY : logits[v];
    const double x = double(key) / temperature;
    alignas(32) double w[4];
    _mm256_store_pd(w, simd::exp_pd_avx2(_mm256_set1_pd(x - m)));
    p[v] = x == m ? 1.0 : w[0];
  }
}

}  // namespace

const SamplingRowKernels kSamplingAvx2 = {max_key, next_equal, next_above, softmax_weights};

}  // namespace loraplex
