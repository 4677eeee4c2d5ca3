// Portable scalar scans of the sampler (see sampling_rows.h).
#include <cmath>

#include "sampling_rows.h"

namespace loraplex {

namespace {

inline float key_of(float x) { return std::isnan(x) ? -INFINITY : x; }

float max_key(const float* x, int64_t n) {
  float m = -INFINITY;
  for (int64_t v = 0; v < n; ++v) m = std::fmax(m, key_of(x[v]));
  return m;
}

int64_t next_equal(const float* x, int64_t from, int64_t n, float value) {
  for (int64_t v = from; v < n; ++v)
    if (x[v] == value) return v;
  return n;
}

int64_t next_above(const float* x, int64_t from, int64_t n, float threshold) {
  for (int64_t v = from; v < n; ++v)
    if (x[v] > threshold) return v;
  return n;
}

void softmax_weights(const float* logits, int64_t n, double temperature, double m, double* p) {
  for (int64_t v = 0; v < n; ++v) {
    const double x = double(key_of(logits[v])) / temperature;
    p[v] = x == m ? 1.0 : std::exp(x - m);
  }
}

}  // namespace

const SamplingRowKernels kSamplingScalar = {max_key, next_equal, next_above, softmax_weights};

}  // namespace loraplex
