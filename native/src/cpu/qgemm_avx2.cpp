// AVX2 quantized GEMM kernels: int8 dot products with _mm256_maddubs_epi16 (Q8_0: |w| unsigned times x with
// w's sign; Q4_K: the nibbles are unsigned already) and _mm256_madd_epi16 on the grouped layout (qgemm.h),
// the eight lanes being 8 outputs; the integer sums are exact and the scales are applied with separate f32
// multiplies and adds (no "fma" target here), so results equal the scalar kernels bit for bit.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "loraplex/cpu_features.h"
#include "qgemm_kernels.h"

#pragma GCC push_options
#pragma GCC target("avx2")

namespace loraplex {
namespace {

// 4 consecutive int8 values at p, repeated in every 32-bit lane.
inline __m256i broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

inline int32_t int_sum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

void quantize(const float* x, int64_t k, QuantType type, int8_t* qs, float* d, int16_t* bsum) {
  const int block = type == QuantType::Q8_0 ? kQ8Block : kQ4KBlock;
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
    const QBlockScale s = q_block_scale(type, _mm_cvtss_f32(h));
    d[b] = s.d;
    const __m256 vid = _mm256_set1_ps(s.id);
    for (int i = 0; i < block; i += 32) {
      __m256i q[4];
      for (int c = 0; c < 4; ++c) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(xb + i + 8 * c), vid);
        q[c] = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(v), lo), hi);  // nearest, ties to even
      }
      if (bsum) bsum[(b * block + i) / 32] = static_cast<int16_t>(int_sum(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]))));
      const __m256i q16 = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + b * block + i), _mm256_permutevar8x32_epi32(q16, order));
    }
  }
}

// One tile: R x rows × one group of 8 weight rows per step, the 8 outputs in the lanes of one vector. Per
// 4 values: one weight load (and its |w|) for the R rows, then per row a broadcast of x's 4 values,
// sign, maddubs, madd, add; the f32 scale step once per block for 8 outputs.
template <int R>
void q8_0_rows(const QTileArgs& a) {
  const int64_t blocks = a.w->cols() / kQ8Block;
  const __m256i ones = _mm256_set1_epi16(1);
  const int8_t* qx[R];
  const float* dx[R];
  for (int r = 0; r < R; ++r) qx[r] = a.x->qs_row(a.r0 + r), dx[r] = a.x->d_row(a.r0 + r);
  for (int64_t g = a.g0; g < a.g1; ++g) {
    const int8_t* qw = reinterpret_cast<const int8_t*>(a.w->qs(g));
    const float* dw = a.w->scales(g);
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
      if (a.prefetch) {
        const char* p = reinterpret_cast<const char*>(qw + b * 256) + a.prefetch;
        for (int l = 0; l < 256; l += 64) _mm_prefetch(p + l, _MM_HINT_T1);
        if ((b & 1) == 0) _mm_prefetch(reinterpret_cast<const char*>(dw + b * kQGroup) + a.prefetch / 8, _MM_HINT_T1);
      }
      __m256i isum[R];
      for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q) {
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qw + (b * 8 + q) * 32));
        const __m256i aw = _mm256_sign_epi8(w, w);  // |w| as unsigned bytes (-128 → 128)
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
          const __m256i xv = broadcast4(qx[r] + b * 32 + 4 * q);
          isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, w)), ones));
        }
      }
      const __m256 vdw = _mm256_loadu_ps(dw + b * kQGroup);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m256 s = _mm256_mul_ps(_mm256_set1_ps(dx[r][b]), vdw);
        acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(_mm256_cvtepi32_ps(isum[r]), s));
      }
    }
    for (int r = 0; r < R; ++r) {
      alignas(32) float out[kQGroup];
      _mm256_store_ps(out, acc[r]);
      store_group(a, r, g, out);
    }
  }
}

// Q4_K: the nibbles are unsigned already, so maddubs takes them as they are; a sub-block's 8 maddubs results
// add up in int16 (small enough to stay exact), and one madd multiplies the pair sums by the sub-block's scale
// (sc doubled into int16 pairs): about one multiply-port op per 32 MACs, where f32 FMA needs four. The mins'
// sums in four madds of (m_2t, m_2t+1) pairs with x's (bsum_2t, bsum_2t+1).
template <int R>
void q4_k_rows(const QTileArgs& a) {
  const int64_t supers = a.w->cols() / kQ4KBlock;
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const int8_t* qx[R];
  const float* dx[R];
  const int16_t* bs[R];
  for (int r = 0; r < R; ++r)
    qx[r] = a.x->qs_row(a.r0 + r), dx[r] = a.x->d_row(a.r0 + r), bs[r] = a.x->bsum_row(a.r0 + r);
  for (int64_t g = a.g0; g < a.g1; ++g) {
    const uint8_t* q4 = a.w->qs(g);
    const float* dm = a.w->scales(g);
    const uint8_t* sm = a.w->sm(g);
    __m256 acc[R], mins[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps(), mins[r] = _mm256_setzero_ps();
    for (int64_t B = 0; B < supers; ++B) {
      const uint8_t* s = sm + B * kQ4KSmBytes;
      if (a.prefetch) {
        const char* p = reinterpret_cast<const char*>(q4 + B * 1024) + a.prefetch;
        for (int l = 0; l < 1024; l += 64) _mm_prefetch(p + l, _MM_HINT_T1);
        const char* ps = reinterpret_cast<const char*>(s) + a.prefetch / 5;
        for (int l = 0; l < 192; l += 64) _mm_prefetch(ps + l, _MM_HINT_T1);
        _mm_prefetch(reinterpret_cast<const char*>(dm + B * 16) + a.prefetch / 16, _MM_HINT_T1);
      }
      __m256i isum[R];
      for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
      for (int pair = 0; pair < 4; ++pair) {
        const __m256i sl = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 2 * pair * 16)));
        const __m256i sh =
            _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + (2 * pair + 1) * 16)));
        // Each int16 lane sums 8 maddubs pairs: |Σ| ≤ 8 · 2 · 15 · 127 = 30480, exact in int16.
        __m256i lo16[R], hi16[R];
        for (int r = 0; r < R; ++r) lo16[r] = hi16[r] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) {
          const __m256i wb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q4 + B * 1024 + pair * 256 + q * 32));
          const __m256i wl = _mm256_and_si256(wb, low4);
          const __m256i wh = _mm256_and_si256(_mm256_srli_epi16(wb, 4), low4);
#pragma GCC unroll 4
          for (int r = 0; r < R; ++r) {
            const int8_t* xp = qx[r] + B * 256 + pair * 64 + 4 * q;
            lo16[r] = _mm256_add_epi16(lo16[r], _mm256_maddubs_epi16(wl, broadcast4(xp)));
            hi16[r] = _mm256_add_epi16(hi16[r], _mm256_maddubs_epi16(wh, broadcast4(xp + 32)));
          }
        }
        for (int r = 0; r < R; ++r)
          isum[r] = _mm256_add_epi32(isum[r], _mm256_add_epi32(_mm256_madd_epi16(lo16[r], sl), _mm256_madd_epi16(hi16[r], sh)));
      }
      const __m256 vd = _mm256_loadu_ps(dm + B * 16), vmin = _mm256_loadu_ps(dm + B * 16 + 8);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        __m256i msum = _mm256_setzero_si256();
        for (int t = 0; t < 4; ++t) {
          const __m256i mt = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 128 + t * 16)));
          msum = _mm256_add_epi32(msum, _mm256_madd_epi16(mt, broadcast4(reinterpret_cast<const int8_t*>(bs[r] + B * 8 + 2 * t))));
        }
        const __m256 vdx = _mm256_set1_ps(dx[r][B]);
        acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(_mm256_cvtepi32_ps(isum[r]), _mm256_mul_ps(vd, vdx)));
        mins[r] = _mm256_add_ps(mins[r], _mm256_mul_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(vmin, vdx)));
      }
    }
    for (int r = 0; r < R; ++r) {
      alignas(32) float out[kQGroup];
      _mm256_store_ps(out, _mm256_sub_ps(acc[r], mins[r]));
      store_group(a, r, g, out);
    }
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

// Q6_K: a value's low 4 bits (ql nibble) and high 2 bits (qh) are joined with and / shift / or into bytes
// 0…63 that maddubs takes unsigned; the −32 offset is taken off in ints as 32 · Σ_j sc_j · bsum_j (x's sums
// of 16). Two quads' maddubs add up in int16 (|Σ| ≤ 2 · 2 · 63 · 127 = 32004, exact), then one madd by the
// sub-block's scale (sc doubled into int16 pairs by a shuffle).
//
// One pair p = 2h + T of a super-block: ql [8 quads][8 rows][4] (low nibbles: values 128h + 32T + 4q + e,
// high nibbles: + 64), qh of half h (bits 2T, 2T + 1 and 2T + 4, 2T + 5 are theirs), sc the (sc_2i, sc_2i+1)
// pairs from i = 4h + T (sub-blocks 8h + 2T + u of the low nibbles; + 4, two pairs on, of the high ones), xp
// x's values 128h + 32T. T is a template argument so the shifts are immediates and every loop unrolls.
template <int R, int T>
inline void q6_k_pair(const uint8_t* ql, const uint8_t* qh, const uint8_t* sc, const int8_t* const* xp, __m256i* isum) {
  const __m256i low4 = _mm256_set1_epi8(0x0f), high2 = _mm256_set1_epi8(0x30);
  const __m128i even = _mm_setr_epi8(0, 0, 2, 2, 4, 4, 6, 6, 8, 8, 10, 10, 12, 12, 14, 14);
  const __m128i odd = _mm_setr_epi8(1, 1, 3, 3, 5, 5, 7, 7, 9, 9, 11, 11, 13, 13, 15, 15);
  const __m128i pl = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sc));
  const __m128i ph = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + 32));
  const __m256i sl[2] = {_mm256_cvtepi8_epi16(_mm_shuffle_epi8(pl, even)), _mm256_cvtepi8_epi16(_mm_shuffle_epi8(pl, odd))};
  const __m256i sh[2] = {_mm256_cvtepi8_epi16(_mm_shuffle_epi8(ph, even)), _mm256_cvtepi8_epi16(_mm_shuffle_epi8(ph, odd))};
#pragma GCC unroll 4
  for (int qq = 0; qq < 4; ++qq) {  // quads 2qq, 2qq + 1: sub-block parity qq / 2
    __m256i lo16[R], hi16[R];
    for (int r = 0; r < R; ++r) lo16[r] = hi16[r] = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int q = 2 * qq; q < 2 * qq + 2; ++q) {
      const __m256i wb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + q * 32));
      const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh + q * 32));
      const __m256i hl = _mm256_and_si256(_mm256_slli_epi16(hb, T ? 2 : 4), high2);
      const __m256i hh = _mm256_and_si256(T ? _mm256_srli_epi16(hb, 2) : hb, high2);
      const __m256i wl = _mm256_or_si256(_mm256_and_si256(wb, low4), hl);
      const __m256i wh = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(wb, 4), low4), hh);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        lo16[r] = _mm256_add_epi16(lo16[r], _mm256_maddubs_epi16(wl, broadcast4(xp[r] + 4 * q)));
        hi16[r] = _mm256_add_epi16(hi16[r], _mm256_maddubs_epi16(wh, broadcast4(xp[r] + 64 + 4 * q)));
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
      isum[r] = _mm256_add_epi32(isum[r], _mm256_add_epi32(_mm256_madd_epi16(lo16[r], sl[qq >> 1]), _mm256_madd_epi16(hi16[r], sh[qq >> 1])));
  }
}

template <int R>
void q6_k_rows(const QTileArgs& a) {
  const int64_t supers = a.w->cols() / kQ6KBlock;
  const int8_t* qx[R];
  const float* dx[R];
  const int16_t* bs[R];
  for (int r = 0; r < R; ++r)
    qx[r] = a.x->qs_row(a.r0 + r), dx[r] = a.x->d_row(a.r0 + r), bs[r] = a.x->bsum_row(a.r0 + r);
  for (int64_t g = a.g0; g < a.g1; ++g) {
    const uint8_t* ql = a.w->qs(g);
    const float* d = a.w->scales(g);
    const uint8_t* sm = a.w->sm(g);
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t B = 0; B < supers; ++B) {
      const uint8_t* s = sm + B * kQ6KSmBytes;
      const uint8_t* sc = s + 512;  // [8 i][8 rows][2]: (sc_2i, sc_2i+1)
      if (a.prefetch) {
        const char* p = reinterpret_cast<const char*>(ql + B * 1024) + a.prefetch;
        for (int l = 0; l < 1024; l += 64) _mm_prefetch(p + l, _MM_HINT_T1);
        const char* ps = reinterpret_cast<const char*>(s) + a.prefetch * 5 / 8;
        for (int l = 0; l < kQ6KSmBytes; l += 64) _mm_prefetch(ps + l, _MM_HINT_T1);
        if ((B & 1) == 0) _mm_prefetch(reinterpret_cast<const char*>(d + B * kQGroup) + a.prefetch / 32, _MM_HINT_T1);
      }
      __m256i isum[R];
      for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
      for (int h = 0; h < 2; ++h) {
        const int8_t* xp[R];
        for (int r = 0; r < R; ++r) xp[r] = qx[r] + B * 256 + 128 * h;
        q6_k_pair<R, 0>(ql + B * 1024 + 2 * h * 256, s + h * 256, sc + 4 * h * 16, xp, isum);
        for (int r = 0; r < R; ++r) xp[r] += 32;
        q6_k_pair<R, 1>(ql + B * 1024 + (2 * h + 1) * 256, s + h * 256, sc + (4 * h + 1) * 16, xp, isum);
      }
      const __m256 vd = _mm256_loadu_ps(d + B * kQGroup);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        __m256i msum = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) {
          const __m256i si = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + i * 16)));
          msum = _mm256_add_epi32(msum, _mm256_madd_epi16(si, broadcast4(reinterpret_cast<const int8_t*>(bs[r] + B * 16 + 2 * i))));
        }
        const __m256i total = _mm256_sub_epi32(isum[r], _mm256_slli_epi32(msum, 5));
        acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(_mm256_cvtepi32_ps(total), _mm256_mul_ps(vd, _mm256_set1_ps(dx[r][B]))));
      }
    }
    for (int r = 0; r < R; ++r) {
      alignas(32) float out[kQGroup];
      _mm256_store_ps(out, acc[r]);
      store_group(a, r, g, out);
    }
  }
}

void q6_k(const QTileArgs& a) {
  switch (a.rows) {
    case 1: return q6_k_rows<1>(a);
    case 2: return q6_k_rows<2>(a);
    case 3: return q6_k_rows<3>(a);
    default: return q6_k_rows<4>(a);
  }
}

}  // namespace

const QgemmKernels* qgemm_kernels_avx2() {
  static const QgemmKernels k{quantize, q8_0, q4_k, q6_k};
  return cpu_features().avx2_fma ? &k : nullptr;
}

}  // namespace loraplex

#pragma GCC pop_options
