// Base-projection GEMM on the device: y[M, N] = x[M, K] · Wᵀ (+ bias[N]), x and y f32, W kept in its dtype.
//   f32 W:      f32 arithmetic (cuBLAS SGEMM with TF32 off, or the built-in kernel): agrees with the CPU to f32
//               rounding.
//   bf16/f16 W: tensor cores: x is rounded to W's dtype, products accumulate in f32 (cuBLAS GemmEx, or the
//               built-in mma kernel). The rounding of x is the precision this trades (as PyTorch's bf16 does).
// cuBLAS is not linked: it is loaded at run time (dlopen of libcublas.so.13/.12, or the path in
// LORAPLEX_CUBLAS); without it the built-in kernels run.
#pragma once

#include "common.h"

#include <memory>

namespace loraplex::cuda {

class DeviceWeight {
 public:
  // src: HOST W [rows = N, cols = K] row-major (float, or raw 16-bit patterns). Copied to the device.
  DeviceWeight(DType dtype, int64_t rows, int64_t cols, const void* src);
  ~DeviceWeight();
  DeviceWeight(const DeviceWeight&) = delete;
  DeviceWeight& operator=(const DeviceWeight&) = delete;
  DType dtype() const { return dtype_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  const void* data() const { return data_; }
  size_t bytes() const { return static_cast<size_t>(rows_ * cols_) * dtype_bytes(dtype_); }

 private:
  DType dtype_;
  int64_t rows_, cols_;
  void* data_ = nullptr;
};

enum class GemmEngine { Auto, Cublas, Builtin };

// Holds the cuBLAS handle (when loaded) and the scratch for x rounded to 16 bits. One per backend; not
// thread-safe (one stream at a time).
class GemmContext {
 public:
  GemmContext();
  ~GemmContext();
  GemmContext(const GemmContext&) = delete;
  GemmContext& operator=(const GemmContext&) = delete;
  bool has_cublas() const;
  std::string cublas_source() const;  // the library loaded, or why none was
  void set_engine(GemmEngine engine);  // Auto: cuBLAS when loaded; the checks compare both

  // x, y, bias (or nullptr): device. Enqueued on `stream`.
  void gemm(const float* x, int64_t m, const DeviceWeight& w, float* y, const float* bias, cudaStream_t stream);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace loraplex::cuda
