// AVX-512 VNNI quantized GEMM kernels (Q8_0, Q4_K, Q6_K): one vpdpbusd (u8 × s8, four products summed into an int32 lane, never
// saturating) where AVX2 needs maddubs, madd and an add, on 64-byte loads that hold two quads of 8 weight rows.
// A load is permuted once so its lanes run (row 0 quad q, row 0 quad q+1, row 1 quad q, …); each x row then
// needs only one 8-byte broadcast per load, and a block's pair of lanes per row is summed in integers before
// the f32 scale step. Integer sums are exact and the f32 steps are the AVX2 kernels' own, in the same order
// (no "fma" target), so results equal the scalar and AVX2 kernels bit for bit (qgemm.h's Semantics).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "loraplex/cpu_features.h"
#include "qgemm_kernels.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2")
// GCC 12's AVX-512 headers start some intrinsics from an undefined vector and warn about their own code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace loraplex {
namespace {

// (row c, quad 2i + h) from lane 8h + c of a load to lane 2c + h.
inline __m512i pair_rows(__m512i w) {
  const __m512i order = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
  return _mm512_permutexvar_epi32(order, w);
}

// 8 consecutive int8 values at p (two quads) in every 64-bit lane.
inline __m512i broadcast8(const int8_t* p) {
  int64_t v;
  std::memcpy(&v, p, 8);
  return _mm512_set1_epi64(v);
}

// Lanes 2c and 2c + 1 summed: row c's total, rows in order.
inline __m256i sum_pairs(__m512i v) { return _mm512_cvtepi64_epi32(_mm512_add_epi64(v, _mm512_srli_epi64(v, 32))); }

inline void prefetch_l2(const void* p, int bytes) {
  for (int l = 0; l < bytes; l += 64) _mm_prefetch(static_cast<const char*>(p) + l, _MM_HINT_T1);
}

// Q8_0: |w| is the unsigned operand and x takes w's sign (x is never −128, so negating it is exact).
template <int R>
void q8_0_rows(const QTileArgs& a) {
  const int64_t blocks = a.w->cols() / kQ8Block;
  const __m512i zero = _mm512_setzero_si512();
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
        prefetch_l2(qw + b * 256 + a.prefetch, 256);
        if ((b & 1) == 0) prefetch_l2(reinterpret_cast<const char*>(dw + b * kQGroup) + a.prefetch / 8, 64);
      }
      __m512i isum[R];
      for (int r = 0; r < R; ++r) isum[r] = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        const __m512i w = pair_rows(_mm512_loadu_si512(qw + b * 256 + i * 64));
        const __m512i aw = _mm512_abs_epi8(w);  // −128 → 128 as an unsigned byte
        const __mmask64 negative = _mm512_movepi8_mask(w);
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
          const __m512i xv = broadcast8(qx[r] + b * 32 + 8 * i);
          isum[r] = _mm512_dpbusd_epi32(isum[r], aw, _mm512_mask_sub_epi8(xv, negative, zero, xv));
        }
      }
      const __m256 vdw = _mm256_loadu_ps(dw + b * kQGroup);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m256 s = _mm256_mul_ps(_mm256_set1_ps(dx[r][b]), vdw);
        acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(_mm256_cvtepi32_ps(sum_pairs(isum[r])), s));
      }
    }
    for (int r = 0; r < R; ++r) {
      alignas(32) float out[kQGroup];
      _mm256_store_ps(out, acc[r]);
      store_group(a, r, g, out);
    }
  }
}

// Q4_K: the nibbles are the unsigned operand as they are: the low ones masked, the high ones masked in place
// (16 × the nibble, still a u8), so no shift per load; the high sums are exact multiples of 16, shifted down once
// per sub-block. A sub-block's sums stay in the paired lanes, are multiplied by its scale there (sm's doubled
// bytes widen straight to the paired order; both factors fit int16, so one madd does it) and summed per row once
// per super-block; the mins as the AVX2 kernel does them.
template <int R>
void q4_k_rows(const QTileArgs& a) {
  const int64_t supers = a.w->cols() / kQ4KBlock;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i high4 = _mm512_set1_epi8(static_cast<char>(0xf0));
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
        prefetch_l2(q4 + B * 1024 + a.prefetch, 1024);
        prefetch_l2(s + a.prefetch / 5, 192);
        prefetch_l2(reinterpret_cast<const char*>(dm + B * 16) + a.prefetch / 16, 64);
      }
      __m512i isum[R];
      for (int r = 0; r < R; ++r) isum[r] = _mm512_setzero_si512();
      for (int pair = 0; pair < 4; ++pair) {
        __m512i lo[R], hi[R];
        for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) {
          const __m512i wb = pair_rows(_mm512_loadu_si512(q4 + B * 1024 + pair * 256 + i * 64));
          const __m512i wl = _mm512_and_si512(wb, low4);
          const __m512i wh = _mm512_and_si512(wb, high4);  // 16 × the high nibble: |4 loads' lane| ≤ 16 · 240 · 127
#pragma GCC unroll 4
          for (int r = 0; r < R; ++r) {
            const int8_t* xp = qx[r] + B * 256 + pair * 64 + 8 * i;
            lo[r] = _mm512_dpbusd_epi32(lo[r], wl, broadcast8(xp));
            hi[r] = _mm512_dpbusd_epi32(hi[r], wh, broadcast8(xp + 32));
          }
        }
        // |lane| ≤ 16 · 15 · 127 = 30480 (hi once shifted down, exactly): it is its own low int16 with the sign in
        // the high one, and the scale (≤ 63) has a zero high int16, so madd_epi16 gives lane × scale exactly; over
        // 8 sub-blocks far inside int32.
        const __m512i sl = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 2 * pair * 16)));
        const __m512i sh =
            _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + (2 * pair + 1) * 16)));
        for (int r = 0; r < R; ++r)
          isum[r] = _mm512_add_epi32(
              isum[r], _mm512_add_epi32(_mm512_madd_epi16(lo[r], sl), _mm512_madd_epi16(_mm512_srai_epi32(hi[r], 4), sh)));
      }
      const __m256 vd = _mm256_loadu_ps(dm + B * 16), vmin = _mm256_loadu_ps(dm + B * 16 + 8);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        __m256i msum = _mm256_setzero_si256();
        for (int t = 0; t < 4; ++t) {
          const __m256i mt = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 128 + t * 16)));
          int32_t pair_sums;
          std::memcpy(&pair_sums, bs[r] + B * 8 + 2 * t, 4);
          msum = _mm256_add_epi32(msum, _mm256_madd_epi16(mt, _mm256_set1_epi32(pair_sums)));
        }
        const __m256 vdx = _mm256_set1_ps(dx[r][B]);
        acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(_mm256_cvtepi32_ps(sum_pairs(isum[r])), _mm256_mul_ps(vd, vdx)));
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

// Q6_K: a value's 4 + 2 bits are joined into bytes 0…63, the unsigned operand (qh's loads pair their rows as
// ql's do); a sub-block of 16 is two loads, its sums scaled in the paired lanes by its int8 scale, and the
// −32 offset taken off once per super-block as 32 · Σ_j sc_j · bsum_j, as the AVX2 kernel does.
template <int R>
void q6_k_rows(const QTileArgs& a) {
  const int64_t supers = a.w->cols() / kQ6KBlock;
  const __m512i low4 = _mm512_set1_epi8(0x0f), high2 = _mm512_set1_epi8(0x30);
  const __m128i even = _mm_setr_epi8(0, 0, 2, 2, 4, 4, 6, 6, 8, 8, 10, 10, 12, 12, 14, 14);
  const __m128i odd = _mm_setr_epi8(1, 1, 3, 3, 5, 5, 7, 7, 9, 9, 11, 11, 13, 13, 15, 15);
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
      const uint8_t* sc = s + 512;  // [8 t][8 rows][2]: (sc_2t, sc_2t+1)
      if (a.prefetch) {
        prefetch_l2(ql + B * 1024 + a.prefetch, 1024);
        prefetch_l2(s + a.prefetch * 5 / 8, kQ6KSmBytes);
        if ((B & 1) == 0) prefetch_l2(reinterpret_cast<const char*>(d + B * kQGroup) + a.prefetch / 32, 64);
      }
      __m512i isum[R];
      for (int r = 0; r < R; ++r) isum[r] = _mm512_setzero_si512();
      for (int p = 0; p < 4; ++p) {
        const int h = p >> 1, t = p & 1;
        for (int u = 0; u < 2; ++u) {  // quads 4u … 4u + 3: sub-blocks 8h + 2t + u (low nibbles) and + 4 (high)
          const int jl = 8 * h + 2 * t + u;
          const __m128i pl = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + (jl >> 1) * 16));
          const __m128i ph = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + ((jl + 4) >> 1) * 16));
          const __m512i sl = _mm512_cvtepi8_epi32(_mm_shuffle_epi8(pl, (jl & 1) ? odd : even));
          const __m512i sh = _mm512_cvtepi8_epi32(_mm_shuffle_epi8(ph, (jl & 1) ? odd : even));
          __m512i lo[R], hi[R];
          for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm512_setzero_si512();
#pragma GCC unroll 2
          for (int i = 2 * u; i < 2 * u + 2; ++i) {  // quads 2i, 2i + 1
            const __m512i wb = pair_rows(_mm512_loadu_si512(ql + B * 1024 + p * 256 + i * 64));
            const __m512i hb = pair_rows(_mm512_loadu_si512(s + h * 256 + i * 64));
            const __m512i hl = _mm512_and_si512(t ? _mm512_slli_epi16(hb, 2) : _mm512_slli_epi16(hb, 4), high2);
            const __m512i hh = _mm512_and_si512(t ? _mm512_srli_epi16(hb, 2) : hb, high2);
            const __m512i wl = _mm512_or_si512(_mm512_and_si512(wb, low4), hl);
            const __m512i wh = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(wb, 4), low4), hh);
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r) {
              const int8_t* xp = qx[r] + B * 256 + 128 * h + 32 * t + 8 * i;
              lo[r] = _mm512_dpbusd_epi32(lo[r], wl, broadcast8(xp));
              hi[r] = _mm512_dpbusd_epi32(hi[r], wh, broadcast8(xp + 64));
            }
          }
          // |lane| ≤ 8 · 63 · 127 = 64008, times |sc| ≤ 128, over 16 sub-blocks: inside int32.
          for (int r = 0; r < R; ++r)
            isum[r] = _mm512_add_epi32(isum[r], _mm512_add_epi32(_mm512_mullo_epi32(lo[r], sl), _mm512_mullo_epi32(hi[r], sh)));
        }
      }
      const __m256 vd = _mm256_loadu_ps(d + B * kQGroup);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        __m256i msum = _mm256_setzero_si256();
        for (int t = 0; t < 8; ++t) {
          const __m256i st = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + t * 16)));
          int32_t pair_sums;
          std::memcpy(&pair_sums, bs[r] + B * 16 + 2 * t, 4);
          msum = _mm256_add_epi32(msum, _mm256_madd_epi16(st, _mm256_set1_epi32(pair_sums)));
        }
        const __m256i total = _mm256_sub_epi32(sum_pairs(isum[r]), _mm256_slli_epi32(msum, 5));
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

void q6_k(const QTileArgs& a) {
  switch (a.rows) {
    case 1: return q6_k_rows<1>(a);
    case 2: return q6_k_rows<2>(a);
    case 3: return q6_k_rows<3>(a);
    default: return q6_k_rows<4>(a);
  }
}

}  // namespace
}  // namespace loraplex

#pragma GCC pop_options

// Outside the target region: the getter stays callable on any CPU.
namespace loraplex {

const QgemmKernels* qgemm_kernels_avx512vnni() {
  static const QgemmKernels* k = []() -> const QgemmKernels* {
    const QgemmKernels* avx2 = qgemm_kernels_avx2();
    if (!avx2 || !cpu_features().avx512f || !cpu_features().avx512vnni) return nullptr;
    static QgemmKernels set = *avx2;  // x is quantized as AVX2 does it
    set.q8_0 = q8_0;
    set.q4_k = q4_k;
    set.q6_k = q6_k;
    return &set;
  }();
  return k;
}

}  // namespace loraplex
