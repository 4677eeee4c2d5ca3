// Packing rows of x into the tile layout the micro-kernels broadcast from. Included by each ISA's tile
// file after its target pragma, so the loops compile (and vectorize) for that ISA; internal linkage keeps
// the copies apart.
#pragma once

#include <cstdint>
#include <cstring>

namespace loraplex {
namespace {

// out[k][rows] f32; k in [k_valid, k_padded) is zero.
// Semantics: out[k·rows + r] = k < k_valid ? x[r·ldx + k] : 0
inline void pack_x_f32(const float* x, int64_t ldx, int rows, int64_t k_valid, int64_t k_padded, void* out_) {
  float* out = static_cast<float*>(out_);
  constexpr int64_t kBlock = 64;  // a block of the output stays in L1 while rows fill it
  for (int64_t k0 = 0; k0 < k_valid; k0 += kBlock) {
    const int64_t k1 = k0 + kBlock < k_valid ? k0 + kBlock : k_valid;
    for (int r = 0; r < rows; ++r) {
      const float* src = x + r * ldx;
      for (int64_t k = k0; k < k1; ++k) out[k * rows + r] = src[k];
    }
  }
  for (int64_t k = k_valid; k < k_padded; ++k)
    for (int r = 0; r < rows; ++r) out[k * rows + r] = 0.0f;
}

// f32 → bf16 bits, round to nearest even; NaN stays a (quiet) NaN.
inline uint32_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return ((u >> 16) | 0x40u) & 0xffffu;
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

// out[k/2][rows] u32 = bf16(x[r, 2i]) | bf16(x[r, 2i+1]) << 16; k_padded is even, padding is zero.
inline void pack_x_bf16_pairs(const float* x, int64_t ldx, int rows, int64_t k_valid, int64_t k_padded,
                              void* out_) {
  uint32_t* out = static_cast<uint32_t*>(out_);
  const int64_t pairs = k_padded / 2;
  for (int r = 0; r < rows; ++r) {
    const float* src = x + r * ldx;
    for (int64_t i = 0; i < pairs; ++i) {
      const uint32_t lo = 2 * i < k_valid ? bf16_bits(src[2 * i]) : 0u;
      const uint32_t hi = 2 * i + 1 < k_valid ? bf16_bits(src[2 * i + 1]) : 0u;
      out[i * rows + r] = lo | (hi << 16);
    }
  }
}

}  // namespace
}  // namespace loraplex
