// AVX2 quantized GEMM kernels: int8 dot products with _mm256_maddubs_epi16 (Q8_0: |w| unsigned times x with
// w's sign; Q4_K: the nibbles are unsigned already) and _mm256_madd_epi16, the eight int32 lanes being the
// Semantics' lanes (qgemm.h); scales applied with separate f32 multiplies and adds (no "fma" target here), so
// results equal the scalar kernels bit for bit.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "loraplex/cpu_features.h"
#include "qgemm_kernels.h"

#pragma GCC push_options
#pragma GCC target("avx2")

namespace loraplex {
namespace {

inline float lane_sum_avx(__m256 acc) {
  const __m128 v = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));  // a0+a4 … a3+a7
  const __m128 t = _mm_add_ps(v, _mm_movehl_ps(v, v));  // (a0+a4)+(a2+a6), (a1+a5)+(a3+a7)
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

inline int32_t int_sum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

void quantize(const float* x, int64_t k, int block, int8_t* qs, float* d, int32_t* bsum) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t b = 0; b < k / block; ++b) {
    const float* xb = x + b * block;
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < block; i += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(xb + i), abs_mask));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    const float db = _mm_cvtss_f32(h) / 127.0f;
    const float id = db != 0.0f ? 1.0f / db : 0.0f;
    d[b] = db;
    const __m256 vid = _mm256_set1_ps(id);
    for (int i = 0; i < block; i += 32) {
      __m256i q[4];
      for (int c = 0; c < 4; ++c) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(xb + i + 8 * c), vid);
        q[c] = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(v), lo), hi);  // nearest, ties to even
      }
      if (bsum) bsum[(b * block + i) / 32] = int_sum(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
      const __m256i q16 = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + b * block + i), _mm256_permutevar8x32_epi32(q16, order));
    }
  }
}

template <int R>
void q8_0_rows(const QTileArgs& a) {
  const int64_t blocks = a.w->cols() / kQ8Block;
  const __m256i ones = _mm256_set1_epi16(1);
  const int8_t* qx[R];
  const float* dx[R];
  for (int r = 0; r < R; ++r) qx[r] = a.x->qs_row(a.r0 + r), dx[r] = a.x->d_row(a.r0 + r);
  for (int64_t n = a.n0; n < a.n1; ++n) {
    const int8_t* qw = reinterpret_cast<const int8_t*>(a.w->qs(n));
    const float* dw = a.w->scales(n);
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qw + b * 32));
      const __m256i aw = _mm256_sign_epi8(w, w);  // |w| as unsigned bytes
      const __m256 vdw = _mm256_set1_ps(dw[b]);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qx[r] + b * 32));
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, w)), ones);
        const __m256 s = _mm256_mul_ps(_mm256_set1_ps(dx[r][b]), vdw);
        acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(_mm256_cvtepi32_ps(p), s));
      }
    }
    for (int r = 0; r < R; ++r)
      store_output(a.y + (a.r0 + r) * a.ldy + n, lane_sum_avx(acc[r]), a.bias, n, a.accumulate);
  }
}

template <int R>
void q4_k_rows(const QTileArgs& a) {
  const int64_t supers = a.w->cols() / kQ4KBlock;
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const int8_t* qx[R];
  const float* dx[R];
  const int32_t* bs[R];
  for (int r = 0; r < R; ++r)
    qx[r] = a.x->qs_row(a.r0 + r), dx[r] = a.x->d_row(a.r0 + r), bs[r] = a.x->bsum_row(a.r0 + r);
  for (int64_t n = a.n0; n < a.n1; ++n) {
    const uint8_t* q4 = a.w->qs(n);
    const float* dm = a.w->scales(n);
    const uint8_t* sm = a.w->sm(n);
    __m256 acc[R];
    float mins[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps(), mins[r] = 0.0f;
    for (int64_t B = 0; B < supers; ++B) {
      const uint8_t* s = sm + B * 16;
      __m256i isum[R];
      for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
      for (int pair = 0; pair < 4; ++pair) {
        const __m256i wb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q4 + B * 128 + pair * 32));
        const __m256i wl = _mm256_and_si256(wb, low4);
        const __m256i wh = _mm256_and_si256(_mm256_srli_epi16(wb, 4), low4);
        const __m256i sl = _mm256_set1_epi16(s[2 * pair]), sh = _mm256_set1_epi16(s[2 * pair + 1]);
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
          const int8_t* xp = qx[r] + B * 256 + pair * 64;
          const __m256i xl = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp));
          const __m256i xh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp + 32));
          isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(_mm256_maddubs_epi16(wl, xl), sl));
          isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(_mm256_maddubs_epi16(wh, xh), sh));
        }
      }
      const __m256i mins8 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s + 8)));
      for (int r = 0; r < R; ++r) {
        const __m256i bsum8 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bs[r] + B * 8));
        const int32_t msum = int_sum(_mm256_mullo_epi32(mins8, bsum8));  // Σ_j m_j · bsum_j, exact
        const float sd = dm[2 * B] * dx[r][B];
        const float smin = dm[2 * B + 1] * dx[r][B];
        acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(_mm256_cvtepi32_ps(isum[r]), _mm256_set1_ps(sd)));
        mins[r] = mins[r] + static_cast<float>(msum) * smin;
      }
    }
    for (int r = 0; r < R; ++r)
      store_output(a.y + (a.r0 + r) * a.ldy + n, lane_sum_avx(acc[r]) - mins[r], a.bias, n, a.accumulate);
  }
}

void q8_0(const QTileArgs& a) {
  switch (a.rows) {
    case 1: return q8_0_rows<1>(a);
    case 2: return q8_0_rows<2>(a);
    case 3: return q8_0_rows<3>(a);
    default: return q8_0_rows<4>(a);
  }
}

void q4_k(const QTileArgs& a) {
  switch (a.rows) {
    case 1: return q4_k_rows<1>(a);
    case 2: return q4_k_rows<2>(a);
    case 3: return q4_k_rows<3>(a);
    default: return q4_k_rows<4>(a);
  }
}

}  // namespace

const QgemmKernels* qgemm_kernels_avx2() {
  static const QgemmKernels k{quantize, q8_0, q4_k};
  return cpu_features().avx2_fma ? &k : nullptr;
}

}  // namespace loraplex

#pragma GCC pop_options
