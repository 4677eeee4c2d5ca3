// Per-ISA scans behind the sampler (sampling_rows_{scalar,avx2,avx512}.cpp); sampling.cpp holds the algorithm.
// Every routine returns exactly what its scalar definition says, so the ISA never changes the chosen token
// (up to the last ulp of exp, which the reference does not share bit for bit either).
#pragma once

#include <cstdint>

namespace loraplex {

struct SamplingRowKernels {
  // max_v key(x[v]) with key(NaN) = -inf; -inf for an all-NaN/-inf row.
  float (*max_key)(const float* x, int64_t n);
  // First v in [from, n) with x[v] == value (n if none).
  int64_t (*next_equal)(const float* x, int64_t from, int64_t n, float value);
  // First v in [from, n) with x[v] > threshold, NaN never (n if none).
  int64_t (*next_above)(const float* x, int64_t from, int64_t n, float threshold);
  // p[v] = x == m ? 1 : exp(x - m) with x = key(logits[v]) / temperature (f64).
  void (*softmax_weights)(const float* logits, int64_t n, double temperature, double m, double* p);
};

extern const SamplingRowKernels kSamplingScalar;
extern const SamplingRowKernels kSamplingAvx2;
extern const SamplingRowKernels kSamplingAvx512;

}  // namespace loraplex
