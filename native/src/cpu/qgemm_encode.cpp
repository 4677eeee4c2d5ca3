// f32 → Q4_K blocks for weights quantized at load (--quantize q4_k): src/kernels/block-encode.ts's encodeQ4_K
// byte for byte, its double arithmetic step for step (this file builds without FMA contraction), JavaScript's
// Math.min / Math.max / Math.round (signed zeros, NaN) and ToInt32 where it stores. The TypeScript version takes
// ~0.6 µs a value (13 minutes for a 1B model). Here blocks are split over the pool, and on AVX-512 a block of
// finite values runs its 8 sub-blocks' grid searches in the 8 double lanes of a vector: each lane the scalar
// sequence of IEEE operations, so the same bits.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "loraplex/cpu_features.h"
#include "loraplex/lora.h"  // f32_to_f16
#include "loraplex/qgemm.h"
#include "loraplex/thread_pool.h"
#include "qgemm_kernels.h"  // f16_to_f32 (lora_rows.h)

namespace loraplex {
namespace {

// Math.min / Math.max: NaN wins, and −0 < +0.
double js_min(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return NAN;
  if (a == b) return std::signbit(a) ? a : b;
  return a < b ? a : b;
}
double js_max(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return NAN;
  if (a == b) return std::signbit(a) ? b : a;
  return a > b ? a : b;
}

// Math.round: the nearest integer, halves toward +∞ (the sign of a zero result does not reach the bytes).
double js_round(double v) {
  if (!std::isfinite(v)) return v;
  const double r = std::floor(v);
  return v - r >= 0.5 ? r + 1 : r;
}

// ToInt32 of a value the encoder keeps within 0 … 63 (NaN and ±∞ give 0).
int32_t js_int(double v) { return std::isfinite(v) ? static_cast<int32_t>(v) : 0; }

uint16_t half_bits(double v) {
  const float f = static_cast<float>(v);  // f32ToF16 stores the value in a Float32Array first
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return f32_to_f16(bits);
}

struct Fit {
  double scale, min;
};

// fitSubBlock: the best (scale, min) for 32 values on 16 levels, the grid search of make_qkx2's idea.
Fit fit_sub_block(const float* x) {
  double lo = x[0], hi = x[0];
  for (int i = 1; i < 32; ++i) {
    lo = js_min(lo, x[i]);
    hi = js_max(hi, x[i]);
  }
  lo = js_min(lo, 0);
  if (hi <= lo) return {0, -lo};
  double best_scale = (hi - lo) / 15, best_min = -lo, best_err = INFINITY;
  double qs[32];
  for (int step = 0; step <= 20; ++step) {
    const double iscale = (-1 + 0.1 * step + 15) / (hi - lo);
    double n = 0, sq = 0, sx = 0, sqx = 0, sqq = 0;
    for (int i = 0; i < 32; ++i) {
      const double q = js_max(0, js_min(15, js_round(iscale * (x[i] - lo))));
      qs[i] = q;
      n++;
      sq += q;
      sx += x[i];
      sqx += q * x[i];
      sqq += q * q;
    }
    const double det = n * sqq - sq * sq;
    if (det <= 0) continue;
    double scale = (n * sqx - sq * sx) / det;
    double offset = (sqq * sx - sq * sqx) / det;
    if (offset > 0) {
      offset = 0;
      scale = sqq > 0 ? sqx / sqq : 0;
    }
    double err = 0;
    for (int i = 0; i < 32; ++i) {
      const double e = scale * qs[i] + offset - x[i];
      err += e * e;
    }
    if (err < best_err && scale > 0) best_scale = scale, best_min = -offset, best_err = err;
  }
  return {best_scale, best_min};
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx2")
// GCC 12's AVX-512 headers start some intrinsics from an undefined vector and warn about their own code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// Math.min / Math.max of finite lanes: on equal lanes (±0) the bitwise or / and picks −0 / +0.
inline __m512d vmin(__m512d a, __m512d b) {
  return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(a, b, _CMP_EQ_OQ), _mm512_min_pd(a, b), _mm512_or_pd(a, b));
}
inline __m512d vmax(__m512d a, __m512d b) {
  return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(a, b, _CMP_EQ_OQ), _mm512_max_pd(a, b), _mm512_and_pd(a, b));
}

// Unary minus (a sign flip: −(+0) is −0, where 0 − x would give +0).
inline __m512d negate(__m512d a) { return _mm512_xor_pd(a, _mm512_set1_pd(-0.0)); }

// fit_sub_block for the 8 sub-blocks of a block of finite values at once, sub-block j in lane j.
void fit_sub_blocks_avx512(const float* x, Fit* fits) {
  const __m512d zero = _mm512_setzero_pd(), half = _mm512_set1_pd(0.5), one = _mm512_set1_pd(1);
  const __m512d fifteen = _mm512_set1_pd(15);
  const __m256i lanes = _mm256_setr_epi32(0, 32, 64, 96, 128, 160, 192, 224);
  __m512d xs[32];
  for (int i = 0; i < 32; ++i) xs[i] = _mm512_cvtps_pd(_mm256_i32gather_ps(x + i, lanes, 4));
  __m512d lo = xs[0], hi = xs[0], sx = zero;
  for (int i = 1; i < 32; ++i) lo = vmin(lo, xs[i]), hi = vmax(hi, xs[i]);
  lo = vmin(lo, zero);
  for (int i = 0; i < 32; ++i) sx = _mm512_add_pd(sx, xs[i]);  // the same sums every step
  const __m512d range = _mm512_sub_pd(hi, lo);
  __m512d best_scale = _mm512_div_pd(range, fifteen), best_min = negate(lo);
  __m512d best_err = _mm512_set1_pd(INFINITY);
  const __m512d n = _mm512_set1_pd(32);
  __m512d qs[32];
  for (int step = 0; step <= 20; ++step) {
    const __m512d iscale = _mm512_div_pd(_mm512_set1_pd(-1 + 0.1 * step + 15), range);
    __m512d sq = zero, sqx = zero, sqq = zero;
    for (int i = 0; i < 32; ++i) {
      const __m512d v = _mm512_mul_pd(iscale, _mm512_sub_pd(xs[i], lo));
      __m512d r = _mm512_roundscale_pd(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
      r = _mm512_mask_add_pd(r, _mm512_cmp_pd_mask(_mm512_sub_pd(v, r), half, _CMP_GE_OQ), r, one);
      const __m512d q = vmax(zero, vmin(fifteen, r));
      qs[i] = q;
      sq = _mm512_add_pd(sq, q);
      sqx = _mm512_add_pd(sqx, _mm512_mul_pd(q, xs[i]));
      sqq = _mm512_add_pd(sqq, _mm512_mul_pd(q, q));
    }
    const __m512d det = _mm512_sub_pd(_mm512_mul_pd(n, sqq), _mm512_mul_pd(sq, sq));
    const __mmask8 valid = _mm512_cmp_pd_mask(det, zero, _CMP_NLE_UQ);  // not (det <= 0)
    __m512d scale = _mm512_div_pd(_mm512_sub_pd(_mm512_mul_pd(n, sqx), _mm512_mul_pd(sq, sx)), det);
    __m512d offset = _mm512_div_pd(_mm512_sub_pd(_mm512_mul_pd(sqq, sx), _mm512_mul_pd(sq, sqx)), det);
    const __mmask8 positive = _mm512_cmp_pd_mask(offset, zero, _CMP_GT_OQ);
    offset = _mm512_mask_blend_pd(positive, offset, zero);
    const __m512d refit = _mm512_maskz_div_pd(_mm512_cmp_pd_mask(sqq, zero, _CMP_GT_OQ), sqx, sqq);
    scale = _mm512_mask_blend_pd(positive, scale, refit);
    __m512d err = zero;
    for (int i = 0; i < 32; ++i) {
      const __m512d e = _mm512_sub_pd(_mm512_add_pd(_mm512_mul_pd(scale, qs[i]), offset), xs[i]);
      err = _mm512_add_pd(err, _mm512_mul_pd(e, e));
    }
    const __mmask8 better = valid & _mm512_cmp_pd_mask(err, best_err, _CMP_LT_OQ) &
                            _mm512_cmp_pd_mask(scale, zero, _CMP_GT_OQ);
    best_scale = _mm512_mask_blend_pd(better, best_scale, scale);
    best_min = _mm512_mask_blend_pd(better, best_min, negate(offset));
    best_err = _mm512_mask_blend_pd(better, best_err, err);
  }
  // Where hi <= lo (every value equal, none below 0): scale 0, min −lo.
  const __mmask8 flat = _mm512_cmp_pd_mask(hi, lo, _CMP_LE_OQ);
  best_scale = _mm512_mask_blend_pd(flat, best_scale, zero);
  best_min = _mm512_mask_blend_pd(flat, best_min, negate(lo));
  alignas(64) double sc[8], mn[8];
  _mm512_store_pd(sc, best_scale);
  _mm512_store_pd(mn, best_min);
  for (int j = 0; j < 8; ++j) fits[j] = {sc[j], mn[j]};
}

#pragma GCC pop_options

bool all_finite(const float* x) {
  for (int i = 0; i < 256; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}

void encode_block(const float* x, uint8_t* out, bool avx512) {
  Fit fits[8];
  if (avx512 && all_finite(x)) {
    fit_sub_blocks_avx512(x, fits);
  } else {
    for (int j = 0; j < 8; ++j) fits[j] = fit_sub_block(x + 32 * j);
  }
  double max_scale = -INFINITY, max_min = -INFINITY;
  for (int j = 0; j < 8; ++j) {
    max_scale = js_max(max_scale, fits[j].scale);
    max_min = js_max(max_min, fits[j].min);
  }
  const uint16_t d_bits = half_bits(max_scale / 63), dmin_bits = half_bits(max_min / 63);
  const double d = f16_to_f32(d_bits), dmin = f16_to_f32(dmin_bits);
  int32_t sc[8], m[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = d > 0 ? js_int(js_min(63, js_round(fits[j].scale / d))) : 0;
    m[j] = dmin > 0 ? js_int(js_min(63, js_round(fits[j].min / dmin))) : 0;
  }
  std::memset(out, 0, 144);
  out[0] = d_bits & 0xff, out[1] = d_bits >> 8, out[2] = dmin_bits & 0xff, out[3] = dmin_bits >> 8;
  for (int j = 0; j < 4; ++j) {  // packScales: get_scale_min_k4's layout
    out[4 + j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    out[8 + j] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    out[12 + j] = static_cast<uint8_t>((sc[j + 4] & 0xf) | ((m[j + 4] & 0xf) << 4));
  }
  for (int j = 0; j < 8; ++j) {
    const double dj = static_cast<float>(d * sc[j]), mj = static_cast<float>(dmin * m[j]);
    for (int l = 0; l < 32; ++l) {
      const int32_t q = dj > 0 ? js_int(js_max(0, js_min(15, js_round((x[32 * j + l] + mj) / dj)))) : 0;
      out[16 + (j / 2) * 32 + l] |= static_cast<uint8_t>(j % 2 == 0 ? q : q << 4);
    }
  }
}

}  // namespace

void encode_q4_k(const float* values, int64_t blocks, uint8_t* out) {
  constexpr int64_t kBlocksPerTask = 64;
  const bool avx512 = active_isa() >= Isa::Avx512;
  parallel_for((blocks + kBlocksPerTask - 1) / kBlocksPerTask, [&](int64_t t, int) {
    const int64_t end = (t + 1) * kBlocksPerTask < blocks ? (t + 1) * kBlocksPerTask : blocks;
    for (int64_t b = t * kBlocksPerTask; b < end; ++b) encode_block(values + 256 * b, out + 144 * b, avx512);
  });
}

}  // namespace loraplex
