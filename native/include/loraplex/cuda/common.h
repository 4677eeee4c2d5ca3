// Shared by the CUDA kernels (native/cuda/): dtypes and the error check. Every kernel entry point is a host
// function taking device pointers and a stream; it only enqueues work (no synchronisation, no allocation on
// the hot path) and leaves errors to be read with cudaGetLastError by its caller.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace loraplex::cuda {

// Storage dtype of weights and tables; the values match loraplex::WeightDType and TableDType's order of the
// binding (0 f32, 1 f16, 2 bf16).
enum class DType : int32_t { F32 = 0, F16 = 1, Bf16 = 2 };

inline size_t dtype_bytes(DType d) { return d == DType::F32 ? 4 : 2; }

// Throws std::runtime_error naming the call when a CUDA runtime call fails (host-side setup paths only).
inline void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

}  // namespace loraplex::cuda
