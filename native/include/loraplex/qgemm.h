// Quantized base-projection GEMM: y[M, N] (+)= x[M, K] · Wᵀ (+ bias[N]) with W kept in ggml's Q8_0, Q4_K or
// Q6_K blocks, as llama.cpp runs them: each x row is quantized once per call to int8 blocks, the dot products are
// integer, and the block scales are applied in f32.
//
// Semantics (every f32 operation rounded to f32, no FMA; ints exact):
//   quantize x row r in blocks of QB values (QB = 32 for Q8_0 weights, 256 for Q4_K / Q6_K) as llama.cpp's
//   x86 AVX2 build does (quantize_row_q8_0 into block_q8_0; quantize_mat_q8_K / quantize_row_q8_K into block_q8_K):
//     amax = max|x|;  id = amax ? 127 / amax : 0 (∞ taken as 0);  qx[i] = clamp(round_half_even(x[i] · id), ±127)
//     Q8_0: dx = f16(amax / 127), rounded to nearest even and widened back (block_q8_0 stores its scale as f16)
//     Q4_K, Q6_K: dx = id ? 1 / id : 0 (ggml's iscale = −127 / the signed max flips the signs of qx and dx
//           together, which changes no product); Q4_K: bsum[j] = Σ qx over each 32 values, Q6_K: over each 16
//   Q8_0, block b:  p = Σ_{i<32} qx[32b+i] · qw[32b+i] (exact);  acc = acc + f32(p) · (dx_b · dw_b)
//   Q4_K, super-block B with d, dmin, 6-bit sc_j, m_j (j < 8 sub-blocks of 32), q4 ∈ 0…15:
//     isum = Σ_j sc_j · Σ_{i<32} q4[32j+i] · qx[32j+i];  msum = Σ_j m_j · bsum_j  (exact ints)
//     acc = acc + f32(isum) · (d · dx_B);  mins = mins + f32(msum) · (dmin · dx_B)
//   Q6_K, super-block B with d, int8 sc_j (j < 16 sub-blocks of 16), q6 ∈ 0…63:
//     isum = Σ_j sc_j · Σ_{i<16} (q6[16j+i] − 32) · qx[16j+i]  (exact int; the AVX2 / VNNI kernels sum
//            Σ_j sc_j · Σ q6 · qx − 32 · Σ_j sc_j · bsum_j, the same integer, as ggml's vec_dot_q6_K_q8_K does)
//     acc = acc + f32(isum) · (d · dx_B)
//   out = acc [− mins for Q4_K], the blocks taken in ascending order (one f32 chain per output)
//   y[m, n] = (accumulate ? y[m, n] + : ) (bias ? out + bias[n] : out)
// The scalar, AVX2 and AVX-512 VNNI paths compute exactly this, so they agree bit for bit (and with the
// TypeScript reference, src/kernels/reference/qgemm.ts); the VNNI kernels serve the AVX-512 ISAs where the CPU
// has vpdpbusd (AVX2's kernels otherwise), and under them Q4_K batches of kQAmxMinRows or more rows run on AMX-INT8
// tiles where the CPU has those: the same integers (summed in another order, exactly) and the same f32 steps.
// llama.cpp's x86 build quantizes x to the same qx and dx; its dot products sum in another f32 order (FMA into
// per-lane partials), so outputs still differ by f32 rounding.
//
// Batch invariance: row m's result depends only on x row m and W, never on M, the other rows, the tile it
// falls in or the thread count: threads split N (by groups), never K; a tile of up to kQMaxRows x rows shares
// each weight load, but every row keeps its own integer sums and its own f32 chain, the one above.
#pragma once

#include <cstddef>
#include <cstdint>

namespace loraplex {

enum class QuantType { Q8_0 = 0, Q4_K = 1, Q6_K = 2 };

constexpr int kQ8Block = 32;    // Q8_0: 32 values in 34 bytes (f16 d, int8 q[32])
constexpr int kQ4KBlock = 256;  // Q4_K: 256 values in 144 bytes (f16 d, dmin, 12 bytes of scales, q4[128])
constexpr int kQ6KBlock = 256;  // Q6_K: 256 values in 210 bytes (ql[128], qh[64], int8 scales[16], f16 d)

// W [N, K] from ggml's row-major blocks, re-laid out once for the kernels in groups of 8 weight rows (the
// last group padded with zero rows), so one 32-byte load holds 4 consecutive values of 8 outputs and the
// kernels keep 8 outputs in the lanes of one vector (scales widened to f32, packed 6-bit fields to bytes):
//   Q8_0: qs int8 [G][K/32][8 quads][8 rows][4];  d f32 [G][K/32][8 rows]
//   Q4_K: qs u8 [G][K/256][4 pairs p][8 quads][8 rows][4], each byte's low nibble a value of sub-block 2p,
//         its high nibble the same position in 2p+1 (ggml's nibble order);  dm f32 [G][K/256][2][8 rows]
//         (d, then dmin);  sm u8 [G][K/256][192]: sc [8 j][8 rows][2] (each doubled, for madd's int16
//         pairs), then m [4 t][8 rows][2] (m_2t, m_2t+1)
//   Q6_K: qs u8 [G][K/256][4 pairs p = 2h + t][8 quads][8 rows][4]: ggml's ql[64h + 32t + 4q + e] (low nibble:
//         value 128h + 32t + 4q + e, high nibble: that + 64);  sm u8 [G][K/256][640]: qh [2 h][8 quads][8 rows]
//         [4] (ggml's qh[32h + 4q + e]: bits 2s, 2s+1 the high bits of value 128h + 32s + 4q + e), then int8
//         sc [8 t][8 rows][2] (sc_2t, sc_2t+1);  d f32 [G][K/256][8 rows]. The 6-bit values stay packed as
//         in the file (6.625 bits per value streamed against the file's 6.5625): batch-1 decode is bound by
//         the bytes read, and unpacking 4 + 2 bits costs the kernel a few and / shift / or per 32 bytes.
constexpr int kQGroup = 8;        // weight rows per group
constexpr int kQ4KSmBytes = 192;  // sm bytes per (group, super-block)
constexpr int kQ6KSmBytes = 640;  // Q6_K: qh 512 + sc 128

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
  int block() const { return type_ == QuantType::Q8_0 ? kQ8Block : kQ4KBlock; }  // Q6_K's is 256 too
  size_t bytes() const { return bytes_; }
  int64_t groups() const { return (rows_ + kQGroup - 1) / kQGroup; }
  // Group g's data (layout above).
  const uint8_t* qs(int64_t g) const { return qs_ + g * kQGroup * (type_ == QuantType::Q8_0 ? cols_ : cols_ / 2); }
  const float* scales(int64_t g) const;  // Q8_0: d [K/32][8]; Q4_K: dm [K/256][2][8]; Q6_K: d [K/256][8]
  const uint8_t* sm(int64_t g) const {  // Q4_K, Q6_K
    return sm_ + g * (cols_ / kQ4KBlock) * (type_ == QuantType::Q6_K ? kQ6KSmBytes : kQ4KSmBytes);
  }

  static size_t block_bytes(QuantType type) {
    return type == QuantType::Q8_0 ? 34 : type == QuantType::Q4_K ? 144 : 210;
  }

 private:
  QuantType type_;
  int64_t rows_, cols_;
  size_t bytes_ = 0;
  uint8_t* qs_ = nullptr;
  float* scales_ = nullptr;
  uint8_t* sm_ = nullptr;
};

// x: [m, w.cols()] contiguous; y: [m, w.rows()]; bias: [w.rows()] or null. Uses the thread pool and the
// active ISA (AVX-512 VNNI, AVX2 or scalar). x and y must not overlap.
void qgemm(const float* x, int64_t m, const QuantWeight& w, float* y, const float* bias, bool accumulate);

// Q4_K batches of at least kQAmxMinRows x rows run on AMX-INT8 tiles where the CPU has them and the VNNI kernels
// are active (qgemm_amx.cpp), with the same results bit for bit; allowed by default. `false` keeps the VNNI
// kernels for every M (tests and benchmarks of both paths). qgemm_amx_active: whether such batches use AMX now.
constexpr int64_t kQAmxMinRows = 24;
void set_qgemm_amx(bool allowed);
bool qgemm_amx_active();

// f32 values (blocks · 256) → Q4_K blocks (144 bytes each), byte for byte src/kernels/block-encode.ts's encodeQ4_K
// (the weights --quantize q4_k makes at load). Uses the thread pool.
void encode_q4_k(const float* values, int64_t blocks, uint8_t* out);

// Embedding rows read from a table kept in ggml's blocks (the tied lm_head's blocks):
//   table [vocab, dim] as blocks (dim a multiple of 32 / 256), ids [T] (checked by the caller), out [T, dim]
//   Semantics: out[t, :] = dequantize(table[ids[t], :]), ggml's dequantize_row exactly:
//     Q8_0: d · q (exact);  Q4_K: (d · sc_j) · q − dmin · m_j (products exact, one rounding in the subtraction)
//     Q6_K: (d · sc_j) · (q − 32) (d · sc_j exact, one rounding in the second product)
void embedding_from_blocks(QuantType type, const uint8_t* table, int64_t dim, const int32_t* ids, int64_t num_tokens,
                           float* out);

}  // namespace loraplex
