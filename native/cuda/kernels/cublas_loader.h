// cuBLAS loaded at run time (dlopen), so the addon builds and runs where cuBLAS is absent: the few entry
// points GemmContext uses, declared here because cuBLAS's headers are not needed to build.
#pragma once

#include <cuda_runtime.h>
#include <library_types.h>

#include <string>

namespace loraplex::cuda::cublas {

using Handle = struct cublasContext*;
using Status = int;  // cublasStatus_t; 0 is success

// Enum values from cuBLAS's cublas_api.h (stable since CUDA 11; checked against published copies).
constexpr int kOpN = 0, kOpT = 1;               // cublasOperation_t
constexpr int kDefaultMath = 0;                 // cublasMath_t CUBLAS_DEFAULT_MATH
constexpr int kPedanticMath = 2;                // cublasMath_t CUBLAS_PEDANTIC_MATH: no TF32 in SGEMM
constexpr int kCompute32F = 68;                 // cublasComputeType_t CUBLAS_COMPUTE_32F
constexpr int kGemmDefault = -1;                // cublasGemmAlgo_t CUBLAS_GEMM_DEFAULT

struct Api {
  Status (*create)(Handle*);
  Status (*destroy)(Handle);
  Status (*set_stream)(Handle, cudaStream_t);
  Status (*set_math_mode)(Handle, int);
  Status (*sgemm)(Handle, int transa, int transb, int m, int n, int k, const float* alpha, const float* a, int lda,
                  const float* b, int ldb, const float* beta, float* c, int ldc);
  Status (*gemm_ex)(Handle, int transa, int transb, int m, int n, int k, const void* alpha, const void* a,
                    cudaDataType_t a_type, int lda, const void* b, cudaDataType_t b_type, int ldb, const void* beta,
                    void* c, cudaDataType_t c_type, int ldc, int compute_type, int algo);
  const char* (*status_string)(Status);  // optional (cuBLAS ≥ 11.4); null when absent
};

// The library, loaded once on first call: LORAPLEX_CUBLAS (a path) first, then libcublas.so.13, .so.12, .so.
// Null when none loads or one lacks an entry point; then source() says why.
const Api* api();
// The file loaded and its version, or every attempt and why it failed.
const std::string& source();
// "CUBLAS_STATUS_… (n)" for messages.
std::string status_name(Status s);

}  // namespace loraplex::cuda::cublas
