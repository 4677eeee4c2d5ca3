// The quantized GEMM's kernels, one set per ISA (qgemm_{scalar,avx2}.cpp), driven by qgemm.cpp. Every set
// computes the Semantics of qgemm.h exactly (ints exact, each f32 operation rounded, no FMA: these files build
// with -ffp-contract=off), so the ISA never changes a result.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "lora_rows.h"
#include "loraplex/lora.h"  // f32_to_f16
#include "loraplex/qgemm.h"

namespace loraplex {

constexpr int kQMaxRows = 4;  // x rows per tile: each weight block is loaded once for them

// x rows quantized for one weight type: qs int8 [m][k]; d f32 [m][k / block]; bsum int16 [m][k / bsum_block]
// (Q4_K: sums of 32, Q6_K: of 16; |bsum| <= 32 · 127, and pairs of them are the int16 pairs of the AVX2
// kernels' madd).
struct QuantizedX {
  const int8_t* qs;
  const float* d;
  const int16_t* bsum;
  int64_t k;
  int block;
  int bsum_block = 32;
  const int8_t* qs_row(int64_t r) const { return qs + r * k; }
  const float* d_row(int64_t r) const { return d + r * (k / block); }
  const int16_t* bsum_row(int64_t r) const { return bsum + r * (k / bsum_block); }
};

// Q6_K's bsum: Σ qx over each 16 values of a quantized row (the quantize kernels sum per 32, for Q4_K).
inline void q_bsum16(const int8_t* qs, int64_t k, int16_t* bsum) {
  for (int64_t j = 0; j < k / 16; ++j) {
    int32_t s = 0;
    for (int i = 0; i < 16; ++i) s += qs[j * 16 + i];
    bsum[j] = static_cast<int16_t>(s);
  }
}

// Rows [r0, r0 + rows) of x times weight groups [g0, g1) (rows 8·g0 … min(8·g1, N)): y[(r0 + r)·ldy + n]
// (Semantics' last line).
struct QTileArgs {
  const QuantizedX* x;
  int64_t r0;
  int rows;  // 1 … kQMaxRows
  const QuantWeight* w;
  int64_t g0, g1;
  float* y;
  int64_t ldy;
  const float* bias;
  bool accumulate;
  int prefetch;  // bytes ahead to prefetch W's blocks into L2 while streaming them once (one x tile), or 0
};

struct QgemmKernels {
  // One row for `type` weights: qs [k], d [k / block], bsum [k / 32] (bsum may be null when not needed;
  // Q6_K rows are quantized as Q4_K's, their sums of 16 taken by q_bsum16).
  void (*quantize)(const float* x, int64_t k, QuantType type, int8_t* qs, float* d, int16_t* bsum);
  void (*q8_0)(const QTileArgs& a);
  void (*q4_k)(const QTileArgs& a);
  void (*q6_k)(const QTileArgs& a);
};

const QgemmKernels& qgemm_kernels_scalar();
const QgemmKernels* qgemm_kernels_avx2();  // null without AVX2
const QgemmKernels* qgemm_kernels_avx512vnni();  // null without AVX-512 VNNI (the AVX2 set, int8 dots on VNNI)

// An f16 stored little-endian at p, widened exactly.
inline float half_at(const uint8_t* p) { return f16_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

// f32 rounded to f16 (nearest even, as F16C's vcvtps2ph with imm 0) and widened back exactly.
inline float round_to_f16(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  return f16_to_f32(f32_to_f16(bits));
}

// A block of x with largest magnitude amax (qgemm.h's Semantics): x · id is rounded to qx; d is the scale the
// dots apply. An id of ∞ (amax < 127 / FLT_MAX) is taken as 0, its d being 0 either way.
struct QBlockScale {
  float id, d;
};
inline QBlockScale q_block_scale(QuantType type, float amax) {
  float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  if (std::isinf(id)) id = 0.0f;
  if (type == QuantType::Q8_0) return {id, round_to_f16(amax / 127.0f)};
  return {id, id != 0.0f ? 1.0f / id : 0.0f};
}

// get_scale_min_k4: the j-th 6-bit scale and min of a Q4_K block from its 12 packed bytes.
inline void q4k_scale_min(const uint8_t* s, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// The Semantics' last line.
inline void store_output(float* y, float out, const float* bias, int64_t n, bool accumulate) {
  if (bias) out = out + bias[n];
  *y = accumulate ? *y + out : out;
}

// The outputs of group g (out[c] for weight row 8g + c) that exist, into row r of y.
inline void store_group(const QTileArgs& a, int r, int64_t g, const float* out) {
  float* y = a.y + (a.r0 + r) * a.ldy;
  for (int c = 0; c < kQGroup && g * kQGroup + c < a.w->rows(); ++c) {
    const int64_t n = g * kQGroup + c;
    store_output(y + n, out[c], a.bias, n, a.accumulate);
  }
}

}  // namespace loraplex
