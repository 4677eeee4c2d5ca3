// The per-row LoRA math, one implementation per ISA (lora_rows_{scalar,avx2,avx512}.cpp), shared by SGMV
// and BGMV. A call handles a block of up to kLoraRowBlock rows given by pointers, so segments (contiguous
// rows) and gathered tokens run the same code. Register blocking over rows, j or columns never changes an
// element's arithmetic: each accumulator sees the same operations in the same order as it would alone.
// Each kernel comes twice: weights (a, bt) as f32, or as bf16 bits widened exactly to f32 on load; the two
// share one template per ISA, so their arithmetic differs only in the weights' values.
#pragma once

#include <cstdint>

#include "loraplex/cpu_features.h"

namespace loraplex {

constexpr int kLoraRowBlock = 16;

struct LoraRowKernels {
  // Shrink. x[r]: [K], a: [rank, K], h[r]: [rank].
  // Semantics: h[r][j] = Σ_k x[r][k] · a[j, k]  (k ascending in SIMD lanes, then a fixed lane reduction)
  void (*shrink)(const float* const* x, int rows, const float* a, int rank, int64_t k, float* const* h);
  // Expand over columns [n_begin, n_end). h[r]: [rank], bt: [rank, ldb], y[r]: the row's output (n indexes it).
  // Semantics: y[r][n] += scale · Σ_j h[r][j] · bt[j, n]  (j ascending)
  void (*expand)(const float* const* h, int rows, const float* bt, int rank, int64_t ldb, int64_t n_begin,
                 int64_t n_end, float scale, float* const* y);
  // The same two with a and bt as bf16 bits ([rank, K] and [rank, ldb] uint16_t).
  // Semantics: as above with a[j, k] = f32(a_bits[j, k] << 16), bt[j, n] = f32(bt_bits[j, n] << 16).
  void (*shrink_bf16)(const float* const* x, int rows, const uint16_t* a, int rank, int64_t k, float* const* h);
  void (*expand_bf16)(const float* const* h, int rows, const uint16_t* bt, int rank, int64_t ldb, int64_t n_begin,
                      int64_t n_end, float scale, float* const* y);
};

const LoraRowKernels& lora_rows_scalar();
const LoraRowKernels& lora_rows_avx2();
const LoraRowKernels& lora_rows_avx512();

inline const LoraRowKernels& lora_rows_for(Isa isa) {
  switch (isa) {
    case Isa::Avx512:
    case Isa::Avx512Bf16: return lora_rows_avx512();
    case Isa::Avx2: return lora_rows_avx2();
    case Isa::Scalar: break;
  }
  return lora_rows_scalar();
}

}  // namespace loraplex
