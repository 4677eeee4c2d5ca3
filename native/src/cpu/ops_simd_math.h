// Vector exp and tanh for the AVX2 and AVX-512 kernels (attention softmax and soft-capping, SiLU, GeLU, log-softmax),
// and the small SIMD helpers they share (fixed-order reductions, tail masks, a 16 × 16 transpose).
// Cephes-style: 2^n · P(r) with n = round(x·log2 e) and r = x - n·ln 2 (ln 2 split in two for accuracy);
// about 1-2 ulp. Deterministic for a given input, which is all batch invariance needs.
#pragma once

// GCC 12 reports its own AVX-512 reduce/mask intrinsics (built on _mm512_undefined_*) as uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#define LORAPLEX_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define LORAPLEX_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))

// The helpers below are always inlined: a kernel whose target lacks one of theirs (a `#pragma GCC target` without
// f16c, say) then fails to compile instead of calling every helper out of line, through the PLT.
#define LORAPLEX_HELPER_AVX2 LORAPLEX_TARGET_AVX2 __attribute__((always_inline)) inline
#define LORAPLEX_HELPER_AVX512 LORAPLEX_TARGET_AVX512 __attribute__((always_inline)) inline

namespace loraplex::simd {

constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
constexpr float kExpP0 = 1.9875691500e-4f;
constexpr float kExpP1 = 1.3981999507e-3f;
constexpr float kExpP2 = 8.3334519073e-3f;
constexpr float kExpP3 = 4.1665795894e-2f;
constexpr float kExpP4 = 1.6666665459e-1f;
constexpr float kExpP5 = 5.0000001201e-1f;
constexpr float kExpOverflow = 88.72283935546875f;  // above: +inf
constexpr float kExpUnderflow = -87.33654022216797f;  // below: 0 (subnormal results are flushed)

LORAPLEX_HELPER_AVX2 __m256 exp_avx2(__m256 x) {
  const __m256 too_big = _mm256_cmp_ps(x, _mm256_set1_ps(kExpOverflow), _CMP_GT_OQ);
  const __m256 too_small = _mm256_cmp_ps(x, _mm256_set1_ps(kExpUnderflow), _CMP_LT_OQ);
  __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(kExpUnderflow)), _mm256_set1_ps(kExpOverflow));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kExpP0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP5));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // n ∈ [-126, 128]: build 2^n in two halves so n = 128 (x just under the overflow bound) stays finite.
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i half = _mm256_srai_epi32(ni, 1);
  const __m256 pow_a = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
  const __m256 pow_b =
      _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
  __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, pow_a), pow_b);
  y = _mm256_blendv_ps(y, _mm256_set1_ps(__builtin_inff()), too_big);
  y = _mm256_blendv_ps(y, _mm256_setzero_ps(), too_small);
  return y;
}

LORAPLEX_HELPER_AVX512 __m512 exp_avx512(__m512 x) {
  // scalef handles overflow to +inf and underflow to 0 itself; the clamp only keeps ±inf out of r.
  const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kExpP0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP5));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// A fixed lane reduction of 16 floats: the 256-bit halves, the 128-bit quarters, lanes (0 + 2, 1 + 3), then
// those two (the tree of GCC's _mm512_reduce_add_ps, written out so that reduce_add_16 can match it).
LORAPLEX_HELPER_AVX512 float reduce_add_avx512(__m512 v) {
  const __m256 s8 = _mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// reduce_add_avx512 on 16 vectors at once: each step's adds are its adds (halves, quarters, pairs, then the
// last two) on the same operands, two to eight vectors per instruction, so every sum has the same bits.
// Element e of 128-bit lane l of the result (position 4·l + e) is reduce_add_avx512(v[4·e + l]).
LORAPLEX_HELPER_AVX512 __m512 reduce_add_16_avx512(const __m512 (&v)[16]) {
  constexpr __mmask16 all = 0xffff;  // the maskz forms: GCC 12 warns spuriously on the plain shuffles
  __m512 halves[8];  // [v[2p] 8 lanes | v[2p + 1] 8 lanes], each the sum of its vector's two 256-bit halves
  for (int p = 0; p < 8; ++p)
    halves[p] = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(all, v[2 * p], v[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_maskz_shuffle_f32x4(all, v[2 * p], v[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  __m512 quarters[4];  // 128-bit lane l: v[4t + l]'s four sums
  for (int t = 0; t < 4; ++t)
    quarters[t] =
        _mm512_add_ps(_mm512_maskz_shuffle_f32x4(all, halves[2 * t], halves[2 * t + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                      _mm512_maskz_shuffle_f32x4(all, halves[2 * t], halves[2 * t + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  __m512 pairs[2];  // per 128-bit lane: two sums of quarters[2u], then two of quarters[2u + 1]
  for (int u = 0; u < 2; ++u)
    pairs[u] = _mm512_add_ps(_mm512_shuffle_ps(quarters[2 * u], quarters[2 * u + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(quarters[2 * u], quarters[2 * u + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  return _mm512_add_ps(_mm512_shuffle_ps(pairs[0], pairs[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_ps(pairs[0], pairs[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// Vector tanh (Cephes tanhf, about 2 ulp): |x| < 0.625 by the odd polynomial x + x³·P(x²), else
// 1 - 2/(exp(2|x|) + 1) with the sign of x. Used by attention soft-capping, softcapInPlace and GeLU (tanh).
constexpr float kTanhSmall = 0.625f;
constexpr float kTanhP0 = -5.70498872745e-3f;
constexpr float kTanhP1 = 2.06390887954e-2f;
constexpr float kTanhP2 = -5.37397155531e-2f;
constexpr float kTanhP3 = 1.33314422036e-1f;
constexpr float kTanhP4 = -3.33332819422e-1f;

LORAPLEX_HELPER_AVX2 __m256 tanh_avx2(__m256 x) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  const __m256 z = _mm256_andnot_ps(sign_bit, x);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 e = exp_avx2(_mm256_add_ps(z, z));
  const __m256 large = _mm256_or_ps(_mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one))),
                                    _mm256_and_ps(x, sign_bit));
  const __m256 z2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(kTanhP0);
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(kTanhP1));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(kTanhP2));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(kTanhP3));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(kTanhP4));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z2), x, x);
  return _mm256_blendv_ps(large, small, _mm256_cmp_ps(z, _mm256_set1_ps(kTanhSmall), _CMP_LT_OQ));
}

LORAPLEX_HELPER_AVX512 __m512 tanh_avx512(__m512 x) {
  const __m512 z = _mm512_abs_ps(x);
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 e = exp_avx512(_mm512_add_ps(z, z));
  const __m512 large_abs = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, one)));
  const __m512 large = _mm512_castsi512_ps(_mm512_or_si512(
      _mm512_castps_si512(large_abs), _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(int(0x80000000u)))));
  const __m512 z2 = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(kTanhP0);
  p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(kTanhP1));
  p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(kTanhP2));
  p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(kTanhP3));
  p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(kTanhP4));
  const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, z2), x, x);
  return _mm512_mask_mov_ps(large, _mm512_cmp_ps_mask(z, _mm512_set1_ps(kTanhSmall), _CMP_LT_OQ), small);
}

// cap · tanh(x / cap) (Gemma 2's soft-capping), x / cap by a true division as torch does.
LORAPLEX_HELPER_AVX2 __m256 softcap_avx2(__m256 x, __m256 cap) {
  return _mm256_mul_ps(cap, tanh_avx2(_mm256_div_ps(x, cap)));
}
LORAPLEX_HELPER_AVX512 __m512 softcap_avx512(__m512 x, __m512 cap) {
  return _mm512_mul_ps(cap, tanh_avx512(_mm512_div_ps(x, cap)));
}

// f64 exp for the sampler's softmax weights: n = round(x·log2 e), r = x - n·ln 2 (Cody-Waite split, exact
// n·ln2_hi), e^r by its degree-13 Taylor polynomial (truncation < 0.05 ulp on |r| ≤ ln2/2): about 1 ulp.
// For x ≤ 0 (all the sampler needs); inputs below -746, -inf and NaN give 0.
constexpr double kLog2eD = 1.4426950408889634074;
constexpr double kLn2HiD = 6.93147180369123816490e-01;
constexpr double kLn2LoD = 1.90821492927058770002e-10;
constexpr double kExpFloorD = -746.0;

// 1/k! for k = 0..13
constexpr double kExpTaylorD[14] = {1.0,
                                    1.0,
                                    1.0 / 2,
                                    1.0 / 6,
                                    1.0 / 24,
                                    1.0 / 120,
                                    1.0 / 720,
                                    1.0 / 5040,
                                    1.0 / 40320,
                                    1.0 / 362880,
                                    1.0 / 3628800,
                                    1.0 / 39916800,
                                    1.0 / 479001600,
                                    1.0 / 6227020800};

LORAPLEX_HELPER_AVX2 __m256d pow2_pd_avx2(__m256d k) {  // 2^k for whole k in [-1022, 1023]
  const __m256i e = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(k)), _mm256_set1_epi64x(1023));
  return _mm256_castsi256_pd(_mm256_slli_epi64(e, 52));
}

LORAPLEX_HELPER_AVX2 __m256d exp_pd_avx2(__m256d x) {
  const __m256d xc = _mm256_max_pd(x, _mm256_set1_pd(kExpFloorD));  // -inf (and NaN) → the floor
  const __m256d n = _mm256_round_pd(_mm256_mul_pd(xc, _mm256_set1_pd(kLog2eD)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(kLn2HiD), xc);
  r = _mm256_fnmadd_pd(n, _mm256_set1_pd(kLn2LoD), r);
  __m256d p = _mm256_set1_pd(kExpTaylorD[13]);
  for (int k = 12; k >= 0; --k) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(kExpTaylorD[k]));
  // 2^n (n ≥ -1076) in two halves, each a normal double, so subnormal results round once.
  const __m256d n1 = _mm256_floor_pd(_mm256_mul_pd(n, _mm256_set1_pd(0.5)));
  return _mm256_mul_pd(_mm256_mul_pd(p, pow2_pd_avx2(n1)), pow2_pd_avx2(_mm256_sub_pd(n, n1)));
}

LORAPLEX_HELPER_AVX512 __m512d exp_pd_avx512(__m512d x) {
  const __m512d xc = _mm512_max_pd(x, _mm512_set1_pd(kExpFloorD));  // -inf (and NaN) → the floor
  const __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(xc, _mm512_set1_pd(kLog2eD)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(kLn2HiD), xc);
  r = _mm512_fnmadd_pd(n, _mm512_set1_pd(kLn2LoD), r);
  __m512d p = _mm512_set1_pd(kExpTaylorD[13]);
  for (int k = 12; k >= 0; --k) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(kExpTaylorD[k]));
  return _mm512_scalef_pd(p, n);
}

// Columns of a 16 × 16 block: out[i·16 + u] = rows[u][i] (unpack pairs of rows, then pairs of pairs, then the
// 128-bit lanes as a 4 × 4 transpose).
LORAPLEX_HELPER_AVX512 void transpose_16x16_avx512(const __m512 (&r)[16], float* out) {
  constexpr __mmask16 all = 0xffff;  // the maskz forms: GCC 12 warns spuriously on the plain shuffles
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // u[4i + c], 128-bit lane l: column 4l + c of rows 4i .. 4i + 3
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
    u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
    u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
    u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 p0 = _mm512_maskz_shuffle_f32x4(all, u[c], u[4 + c], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 p1 = _mm512_maskz_shuffle_f32x4(all, u[c], u[4 + c], _MM_SHUFFLE(3, 2, 3, 2));
    const __m512 p2 = _mm512_maskz_shuffle_f32x4(all, u[8 + c], u[12 + c], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 p3 = _mm512_maskz_shuffle_f32x4(all, u[8 + c], u[12 + c], _MM_SHUFFLE(3, 2, 3, 2));
    _mm512_storeu_ps(out + (0 + c) * 16, _mm512_maskz_shuffle_f32x4(all, p0, p2, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm512_storeu_ps(out + (4 + c) * 16, _mm512_maskz_shuffle_f32x4(all, p0, p2, _MM_SHUFFLE(3, 1, 3, 1)));
    _mm512_storeu_ps(out + (8 + c) * 16, _mm512_maskz_shuffle_f32x4(all, p1, p3, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm512_storeu_ps(out + (12 + c) * 16, _mm512_maskz_shuffle_f32x4(all, p1, p3, _MM_SHUFFLE(3, 1, 3, 1)));
  }
}

// Lane masks for the first n lanes (0 ≤ n ≤ width).
LORAPLEX_HELPER_AVX512 __mmask16 tail_mask16(int n) { return static_cast<__mmask16>((1u << n) - 1u); }

LORAPLEX_HELPER_AVX2 __m256i tail_mask8(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

LORAPLEX_HELPER_AVX2 float hsum_avx2(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

LORAPLEX_HELPER_AVX2 float hmax_avx2(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace loraplex::simd
