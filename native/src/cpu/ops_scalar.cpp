// Portable scalar row routines (see ops_kernels.h).
#include <cmath>
#include <cstring>

#include "ops_kernels.h"

namespace loraplex {
namespace {

void rms_norm_row(const float* x, const float* weight, float* out, int64_t dim, float eps) {
  float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // eight running sums: accuracy over long rows
  int64_t d = 0;
  for (; d + 8 <= dim; d += 8)
    for (int l = 0; l < 8; ++l) partial[l] += x[d + l] * x[d + l];
  for (int l = 0; d < dim; ++d, ++l) partial[l] += x[d] * x[d];
  const float sum = ((partial[0] + partial[1]) + (partial[2] + partial[3])) +
                    ((partial[4] + partial[5]) + (partial[6] + partial[7]));
  const float r = 1.0f / std::sqrt(sum / float(dim) + eps);
  for (d = 0; d < dim; ++d) out[d] = weight[d] * (x[d] * r);
}

void silu_mul_row(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void add(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

constexpr float kGeluBeta = 0.7978845608028654f;  // √(2/π)
constexpr float kGeluKappa = 0.044715f;

void gelu_tanh_mul_row(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float inner = kGeluBeta * (g + kGeluKappa * (g * g * g));
    out[i] = 0.5f * g * (1.0f + std::tanh(inner)) * up[i];
  }
}

void softcap(float* x, int64_t n, float cap) {
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

void scale(float* x, int64_t n, float factor) {
  for (int64_t i = 0; i < n; ++i) x[i] *= factor;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000 | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: value = mant · 2^-24, exact in f32
    const float v = float(mant) * 5.9604644775390625e-8f;
    std::memcpy(&bits, &v, 4);
    bits |= sign;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void widen_f16(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

void widen_bf16(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bits = uint32_t(src[i]) << 16;
    std::memcpy(dst + i, &bits, 4);
  }
}

}  // namespace

const OpsRowKernels kOpsScalar = {rms_norm_row, silu_mul_row, add,     widen_f16, widen_bf16, gelu_tanh_mul_row,
                                  softcap,      scale};

}  // namespace loraplex
