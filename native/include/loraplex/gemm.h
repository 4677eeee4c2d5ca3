// Base-projection GEMM: y[M, N] (+)= x[M, K] · Wᵀ (+ bias[N]), f32 accumulation, W kept in its dtype.
//
// Semantics: y[m, n] = (accumulate ? y[m, n] : 0) ⊕ x[m, 0]·W[n, 0] ⊕ … ⊕ x[m, K-1]·W[n, K-1] ⊕ bias[n]
// (⊕: one f32 FMA chain per output element, k ascending, W widened exactly to f32; the scalar path
// multiplies and adds separately; with set_gemm_bf16_dot, bf16 weights on AVX-512 BF16 round x to bf16
// and take k in pairs, as vdpbf16ps does, or 32 k per TDPBF16PS on AMX).
//
// Batch invariance: for a given ISA and weight, row m's result is bitwise the same whatever M is, whatever
// the other rows hold and whatever the thread count: tiles over M and N never change an element's chain,
// and K is never split across threads.
#pragma once

#include <cstddef>
#include <cstdint>

namespace loraplex {

enum class WeightDType { F32 = 0, F16 = 1, Bf16 = 2 };

// W [N, K] re-laid out in panels of kGemmPanel output columns:
//   f32, f16: panel p = [K][kGemmPanel]               element (k, j) = W[p·32 + j, k]
//   bf16:     panel p = [ceil(K/2)][kGemmPanel][2]    pairs (W[n, 2i], W[n, 2i+1]), ready for vdpbf16ps
// Columns past N are zero. The layout is the same for every ISA, so setIsa never invalidates a weight.
constexpr int kGemmPanel = 32;

class PackedWeight {
 public:
  // src: W [rows = N, cols = K] row-major (float for F32, raw 16-bit patterns for F16/Bf16).
  PackedWeight(WeightDType dtype, int64_t rows, int64_t cols, const void* src);
  ~PackedWeight();
  PackedWeight(const PackedWeight&) = delete;
  PackedWeight& operator=(const PackedWeight&) = delete;

  WeightDType dtype() const { return dtype_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t panels() const { return (rows_ + kGemmPanel - 1) / kGemmPanel; }
  int64_t panel_elements() const;  // elements (f32 or u16) per panel
  size_t bytes() const { return bytes_; }
  const void* panel(int64_t p) const;

 private:
  WeightDType dtype_;
  int64_t rows_, cols_;
  size_t bytes_ = 0;
  void* data_ = nullptr;
};

// bf16 weights on AVX-512 BF16 CPUs: bf16 dot products (x rounded to bf16) or widening W to f32 for FMAs
// (x exact). Off by default: on the Xeons measured here vdpbf16ps retires at half the FLOP rate of FMA, so
// widening is both faster and exact. Turned on by the TypeScript configuration (--bf16-dot, configureNative).
// With the mode on, a CPU with AMX-BF16 (and Linux's permission) runs every bf16 GEMM, decode included,
// through TDPBF16PS (gemm_amx.h), unless allow_amx is false (tests of the vdpbf16ps tiles); otherwise the
// vdpbf16ps tiles. Either way all M take the same path, so batch invariance holds.
void set_gemm_bf16_dot(bool enabled, bool allow_amx = true);
bool gemm_bf16_dot_active();  // enabled and the active ISA has AVX-512 BF16

enum class Bf16DotPath { Off, Vdpbf16ps, Amx };
Bf16DotPath gemm_bf16_dot_path();
const char* bf16_dot_path_name(Bf16DotPath path);  // "off", "vdpbf16ps", "amx"

// x: [m, w.cols()] contiguous; y: [m, w.rows()]; bias: [w.rows()] or null. Uses the thread pool and the
// active ISA. x and y must not overlap.
void gemm(const float* x, int64_t m, const PackedWeight& w, float* y, const float* bias, bool accumulate);

}  // namespace loraplex
