// The built-in GEMM kernels behind GemmContext (gemm.cu): y[m, n] = x[m, :] · W[n, :] (+ bias[n]), x and y
// f32, W [n, k] row-major in its dtype. Host launchers: enqueue on `stream`, no sync, no allocation.
#pragma once

#include <cstdint>

#include "loraplex/cuda/common.h"

namespace loraplex::cuda::gemm_kernels {

constexpr int64_t kGemvMaxRows = 8;  // gemv serves m ≤ this; beyond, the tiled kernels

// m ≤ kGemvMaxRows, any dtype (16-bit: x rounded to W's dtype, products summed in f32).
void gemv(DType dtype, const float* x, int64_t m, int64_t k, const void* w, int64_t n, float* y, const float* bias,
          cudaStream_t stream);
// f32 W, any m (grid rows: ceil(m / 64) ≤ 65535).
void sgemm(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y, const float* bias,
           cudaStream_t stream);
// bf16/f16 W on tensor cores, any m (grid rows ≤ 65535: m ≤ 2²¹); sms picks the tile size.
void tensor_gemm(DType dtype, const float* x, int64_t m, int64_t k, const uint16_t* w, int64_t n, float* y,
                 const float* bias, int sms, cudaStream_t stream);
// out[i] = x[i] rounded to nearest even in dtype (bf16/f16 bits).
void round_to_16(DType dtype, const float* x, uint16_t* out, int64_t count, cudaStream_t stream);
// y[i, j] += bias[j]
void add_bias(float* y, const float* bias, int64_t m, int64_t n, cudaStream_t stream);

}  // namespace loraplex::cuda::gemm_kernels
