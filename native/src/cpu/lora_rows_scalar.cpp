// Portable LoRA row kernels (no SIMD intrinsics). One row at a time through one function each, so every
// caller runs the same machine code whatever the compiler does with contraction or vectorization.
#include "lora_rows.h"

namespace loraplex {
namespace {

constexpr int64_t kColumnTile = 256;

// Semantics: h[r][j] = Σ_k x[r][k] · a[j, k], k ascending.
void shrink_scalar(const float* const* x, int rows, const float* a, int rank, int64_t k, float* const* h) {
  for (int r = 0; r < rows; ++r) {
    const float* xr = x[r];
    for (int j = 0; j < rank; ++j) {
      const float* aj = a + j * k;
      float acc = 0.0f;
      for (int64_t i = 0; i < k; ++i) acc += xr[i] * aj[i];
      h[r][j] = acc;
    }
  }
}

// Semantics: y[r][n] += scale · Σ_j h[r][j] · bt[j, n], j ascending.
void expand_scalar(const float* const* h, int rows, const float* bt, int rank, int64_t ldb, int64_t n_begin,
                   int64_t n_end, float scale, float* const* y) {
  float acc[kColumnTile];
  for (int r = 0; r < rows; ++r) {
    for (int64_t n0 = n_begin; n0 < n_end; n0 += kColumnTile) {
      const int64_t width = n_end - n0 < kColumnTile ? n_end - n0 : kColumnTile;
      for (int64_t c = 0; c < width; ++c) acc[c] = 0.0f;
      for (int j = 0; j < rank; ++j) {
        const float hj = h[r][j];
        const float* bj = bt + j * ldb + n0;
        for (int64_t c = 0; c < width; ++c) acc[c] += hj * bj[c];
      }
      float* yr = y[r] + n0;
      for (int64_t c = 0; c < width; ++c) yr[c] += scale * acc[c];
    }
  }
}

}  // namespace

const LoraRowKernels& lora_rows_scalar() {
  static const LoraRowKernels kernels{shrink_scalar, expand_scalar};
  return kernels;
}

}  // namespace loraplex
