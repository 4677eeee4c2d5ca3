// Quantized base-projection GEMM: y[M, N] (+)= x[M, K] · Wᵀ (+ bias[N]) with W kept in ggml's Q8_0 or Q4_K
// blocks, as llama.cpp runs them: each x row is quantized once per call to int8 blocks, the dot products are
// integer, and the block scales are applied in f32.
//
// Semantics (every f32 operation rounded to f32, no FMA; ints exact):
//   quantize x row r in blocks of QB values (QB = 32 for Q8_0 weights, 256 for Q4_K):
//     dx = max|x| / 127;  id = dx ? 1 / dx : 0;  qx[i] = clamp(round_half_even(x[i] · id), -127, 127)
//     Q4_K also keeps bsum[j] = Σ qx over each 32 values.
//   8 lanes per output, lane l owns elements 4l … 4l+3 of every 32 (the int32 lanes of maddubs + madd):
//   Q8_0, block b:  p_l = Σ_{e<4} qx[32b+4l+e] · qw[32b+4l+e];  acc_l = acc_l + p_l · (dx_b · dw_b)
//   Q4_K, super-block B with d, dmin, 6-bit sc_j, m_j (j < 8 sub-blocks of 32), q4 ∈ 0…15:
//     isum_l = Σ_j sc_j · Σ_{e<4} q4[32j+4l+e] · qx[32j+4l+e];  msum = Σ_j m_j · bsum_j
//     acc_l = acc_l + isum_l · (d · dx_B);  mins = mins + msum · (dmin · dx_B)
//   out = ((acc_0 + acc_4) + (acc_2 + acc_6)) + ((acc_1 + acc_5) + (acc_3 + acc_7))  [− mins for Q4_K]
//   y[m, n] = (accumulate ? y[m, n] + : ) (bias ? out + bias[n] : out)
// The scalar path and the AVX2 path compute exactly this, so they agree bit for bit (and with the TypeScript
// reference, src/kernels/reference/qgemm.ts). No AVX-512 / VNNI path: this machine cannot test one.
//
// Batch invariance: row m's result depends only on x row m and W, never on M, the other rows or the thread
// count: threads split N, never K, and every output's chain is the one above.
#pragma once

#include <cstddef>
#include <cstdint>

namespace loraplex {

enum class QuantType { Q8_0 = 0, Q4_K = 1 };

constexpr int kQ8Block = 32;    // Q8_0: 32 values in 34 bytes (f16 d, int8 q[32])
constexpr int kQ4KBlock = 256;  // Q4_K: 256 values in 144 bytes (f16 d, dmin, 12 bytes of scales, q4[128])

// W [N, K] from ggml's row-major blocks, re-laid out once for the kernels (scales widened to f32, values
// contiguous per row):
//   Q8_0: qs int8 [N][K]; d f32 [N][K/32]
//   Q4_K: qs u8 [N][K/2] (ggml's nibble order); dm f32 [N][K/256][2] (d, dmin); sm u8 [N][K/256][16] (sc_0…7, m_0…7)
class QuantWeight {
 public:
  // src: N rows of K / QB blocks in ggml's layout; K must be a multiple of the block (checked by the caller).
  QuantWeight(QuantType type, int64_t rows, int64_t cols, const uint8_t* src);
  ~QuantWeight();
  QuantWeight(const QuantWeight&) = delete;
  QuantWeight& operator=(const QuantWeight&) = delete;

  QuantType type() const { return type_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int block() const { return type_ == QuantType::Q8_0 ? kQ8Block : kQ4KBlock; }
  size_t bytes() const { return bytes_; }
  const uint8_t* qs(int64_t n) const { return qs_ + n * (type_ == QuantType::Q8_0 ? cols_ : cols_ / 2); }
  const float* scales(int64_t n) const;  // Q8_0: d [K/32]; Q4_K: (d, dmin) [K/256][2]
  const uint8_t* sm(int64_t n) const { return sm_ + n * (cols_ / kQ4KBlock) * 16; }  // Q4_K only

  static size_t block_bytes(QuantType type) { return type == QuantType::Q8_0 ? 34 : 144; }

 private:
  QuantType type_;
  int64_t rows_, cols_;
  size_t bytes_ = 0;
  uint8_t* qs_ = nullptr;
  float* scales_ = nullptr;
  uint8_t* sm_ = nullptr;
};

// x: [m, w.cols()] contiguous; y: [m, w.rows()]; bias: [w.rows()] or null. Uses the thread pool and the
// active ISA (AVX2 or scalar). x and y must not overlap.
void qgemm(const float* x, int64_t m, const QuantWeight& w, float* y, const float* bias, bool accumulate);

}  // namespace loraplex
