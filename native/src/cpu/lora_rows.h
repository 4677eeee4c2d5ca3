// The per-row LoRA math of apply_adapters, one implementation per ISA (lora_rows_{scalar,avx2,avx512}.cpp).
// A call handles a block of up to kLoraRowBlock rows given by pointers, so contiguous rows and rows gathered
// from anywhere in the step run the same code. Register blocking over rows, j or columns never changes an
// element's arithmetic: each accumulator sees the same operations in the same order as it would alone.
// Each kernel comes four times: weights (a, bt) as f32, as bf16 or f16 bits, or as int8 values, widened exactly
// to f32 on load; they share one template per ISA, so their arithmetic differs only in the weights' values (an
// int8 bank's per-row scales are applied to h by the caller, lora_kernels.cpp).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "loraplex/cpu_features.h"

namespace loraplex {

constexpr int kLoraRowBlock = 16;

// The element type of f16 weights in the templates (bf16 weights are plain uint16_t): IEEE half bits, a type
// of its own so overloads widen it differently. Read only through memcpy or SIMD loads.
enum class Half : uint16_t {};

// IEEE half bits → f32, exactly (subnormals normalized, infinities and NaN payloads kept).
inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1fu) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {
    uint32_t e = 113;  // 2^-14 · 0.mant: shift the leading 1 up to bit 10
    while (!(mant & 0x400u)) {
      mant <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
  }
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

inline float f16_to_f32(const Half* p) {
  uint16_t bits;
  std::memcpy(&bits, p, sizeof bits);
  return f16_to_f32(bits);
}

struct LoraRowKernels {
  // Shrink. x[r]: [K], a: [rank, K], h[r]: [rank].
  // Semantics: h[r][j] = Σ_k x[r][k] · a[j, k]  (k ascending in SIMD lanes, then a fixed lane reduction)
  void (*shrink)(const float* const* x, int rows, const float* a, int rank, int64_t k, float* const* h);
  // Expand over columns [n_begin, n_end). h[r]: [rank], bt: [rank, ldb], y[r]: the row's output (n indexes it),
  // column_scale: [ldb] or nullptr.
  // Semantics: y[r][n] += c_n · Σ_j h[r][j] · bt[j, n]  (j ascending; SIMD: y = fma(acc, c_n, y)), with
  // c_n = column_scale[n] where given (VeRA's λb, premultiplied by the module's scale), else scale.
  void (*expand)(const float* const* h, int rows, const float* bt, int rank, int64_t ldb, int64_t n_begin,
                 int64_t n_end, float scale, const float* column_scale, float* const* y);
  // The same two with a and bt as bf16 bits ([rank, K] and [rank, ldb] uint16_t).
  // Semantics: as above with a[j, k] = f32(a_bits[j, k] << 16), bt[j, n] = f32(bt_bits[j, n] << 16).
  void (*shrink_bf16)(const float* const* x, int rows, const uint16_t* a, int rank, int64_t k, float* const* h);
  void (*expand_bf16)(const float* const* h, int rows, const uint16_t* bt, int rank, int64_t ldb, int64_t n_begin,
                      int64_t n_end, float scale, const float* column_scale, float* const* y);
  // The same two with a and bt as f16 bits. Semantics: as above with a[j, k] = f32(half(a_bits[j, k])).
  void (*shrink_f16)(const float* const* x, int rows, const uint16_t* a, int rank, int64_t k, float* const* h);
  void (*expand_f16)(const float* const* h, int rows, const uint16_t* bt, int rank, int64_t ldb, int64_t n_begin,
                     int64_t n_end, float scale, const float* column_scale, float* const* y);
  // The same two with a and bt as int8 values. Semantics: as above with a[j, k] = f32(a_q[j, k]).
  void (*shrink_i8)(const float* const* x, int rows, const int8_t* a, int rank, int64_t k, float* const* h);
  void (*expand_i8)(const float* const* h, int rows, const int8_t* bt, int rank, int64_t ldb, int64_t n_begin,
                    int64_t n_end, float scale, const float* column_scale, float* const* y);
};

// How a kernel receives weights of element W: float, int8_t, or uint16_t bits (bf16: uint16_t; f16: Half), so
// the templates instantiated for each fill a table entry directly.
template <typename W>
using StoredAs = std::conditional_t<std::is_same_v<W, float> || std::is_same_v<W, int8_t>, W, uint16_t>;

template <typename W>
inline const W* as_weights(const StoredAs<W>* p) {
  return reinterpret_cast<const W*>(p);
}

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
