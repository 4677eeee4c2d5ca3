// Per-ISA row routines behind ops.h (ops_{scalar,avx2,avx512}.cpp); ops.cpp picks a set and splits the rows.
#pragma once

#include <cstdint>

namespace loraplex {

struct OpsRowKernels {
  // out[d] = w[d] · (x[d] · r), r = 1 / sqrt(Σ x² / dim + eps)
  void (*rms_norm_row)(const float* x, const float* weight, float* out, int64_t dim, float eps);
  // out[i] = gate[i] / (1 + exp(-gate[i])) · up[i]
  void (*silu_mul_row)(const float* gate, const float* up, float* out, int64_t n);
  // x[i] += y[i]
  void (*add)(float* x, const float* y, int64_t n);
  // dst[i] = f32(src[i]) for 16-bit float bit patterns
  void (*widen_f16)(const uint16_t* src, float* dst, int64_t n);
  void (*widen_bf16)(const uint16_t* src, float* dst, int64_t n);
  // out[i] = 0.5·g·(1 + tanh(√(2/π)·(g + 0.044715·g³))) · up[i], g = gate[i]
  void (*gelu_tanh_mul_row)(const float* gate, const float* up, float* out, int64_t n);
  // x[i] = cap · tanh(x[i] / cap)
  void (*softcap)(float* x, int64_t n, float cap);
  // x[i] *= factor
  void (*scale)(float* x, int64_t n, float factor);
};

extern const OpsRowKernels kOpsScalar;
extern const OpsRowKernels kOpsAvx2;
extern const OpsRowKernels kOpsAvx512;

// The set for the active ISA (f16 widening also needs F16C on the AVX2 path).
const OpsRowKernels& ops_row_kernels();

}  // namespace loraplex
