// Scalar quantized GEMM kernels: the Semantics of qgemm.h in plain loops (the AVX2 kernels' oracle).
#include <cmath>
#include <cstdint>

#include "qgemm_kernels.h"

namespace loraplex {
namespace {

void quantize(const float* x, int64_t k, QuantType type, int8_t* qs, float* d, int16_t* bsum) {
  const int block = type == QuantType::Q8_0 ? kQ8Block : kQ4KBlock;
  for (int64_t b = 0; b < k / block; ++b) {
    const float* xb = x + b * block;
    float amax = 0.0f;
    for (int i = 0; i < block; ++i) amax = std::fmax(amax, std::fabs(xb[i]));
    const QBlockScale s = q_block_scale(type, amax);
    d[b] = s.d;
    for (int i = 0; i < block; ++i) {
      const float v = std::nearbyint(xb[i] * s.id);  // round half to even (the default rounding mode)
      qs[b * block + i] = static_cast<int8_t>(v > 127.0f ? 127 : v < -127.0f ? -127 : v);
    }
  }
  if (bsum) {
    for (int64_t j = 0; j < k / 32; ++j) {
      int32_t s = 0;
      for (int i = 0; i < 32; ++i) s += qs[j * 32 + i];
      bsum[j] = static_cast<int16_t>(s);
    }
  }
}

void q8_0(const QTileArgs& a) {
  const int64_t blocks = a.w->cols() / kQ8Block;
  for (int r = 0; r < a.rows; ++r) {
    const int8_t* qx = a.x->qs_row(a.r0 + r);
    const float* dx = a.x->d_row(a.r0 + r);
    for (int64_t g = a.g0; g < a.g1; ++g) {
      const int8_t* qw = reinterpret_cast<const int8_t*>(a.w->qs(g));  // [K/32][8 quads][8 rows][4]
      const float* dw = a.w->scales(g);                                 // [K/32][8 rows]
      float out[kQGroup];
      for (int c = 0; c < kQGroup; ++c) {
        float acc = 0.0f;
        for (int64_t b = 0; b < blocks; ++b) {
          int32_t p = 0;
          for (int q = 0; q < 8; ++q)
            for (int e = 0; e < 4; ++e) p += qx[b * 32 + 4 * q + e] * qw[((b * 8 + q) * kQGroup + c) * 4 + e];
          acc = acc + static_cast<float>(p) * (dx[b] * dw[b * kQGroup + c]);
        }
        out[c] = acc;
      }
      store_group(a, r, g, out);
    }
  }
}

void q4_k(const QTileArgs& a) {
  const int64_t supers = a.w->cols() / kQ4KBlock;
  for (int r = 0; r < a.rows; ++r) {
    const int8_t* qx = a.x->qs_row(a.r0 + r);
    const float* dx = a.x->d_row(a.r0 + r);
    const int16_t* bsum = a.x->bsum_row(a.r0 + r);
    for (int64_t g = a.g0; g < a.g1; ++g) {
      const uint8_t* q4 = a.w->qs(g);  // [K/256][4 pairs][8 quads][8 rows][4]
      const float* dm = a.w->scales(g);  // [K/256][d, dmin][8 rows]
      const uint8_t* sm = a.w->sm(g);  // [K/256][sc [8][8][2], m [4][8][2]]
      float out[kQGroup];
      for (int c = 0; c < kQGroup; ++c) {
        float acc = 0.0f, mins = 0.0f;
        for (int64_t B = 0; B < supers; ++B) {
          const uint8_t* s = sm + B * kQ4KSmBytes;
          int32_t isum = 0, msum = 0;
          for (int j = 0; j < 8; ++j) {
            const int pair = j / 2, shift = (j & 1) * 4;
            const int8_t* xj = qx + B * 256 + j * 32;
            int32_t p = 0;
            for (int q = 0; q < 8; ++q)
              for (int e = 0; e < 4; ++e)
                p += ((q4[B * 1024 + pair * 256 + (q * kQGroup + c) * 4 + e] >> shift) & 0xf) * xj[4 * q + e];
            isum += s[j * 16 + c * 2] * p;
            msum += s[128 + pair * 16 + c * 2 + (j & 1)] * bsum[B * 8 + j];
          }
          acc = acc + static_cast<float>(isum) * (dm[B * 16 + c] * dx[B]);
          mins = mins + static_cast<float>(msum) * (dm[B * 16 + 8 + c] * dx[B]);
        }
        out[c] = acc - mins;
      }
      store_group(a, r, g, out);
    }
  }
}

// The Semantics' (q − 32) form directly (the AVX2 kernel takes the bsum route to the same integer).
void q6_k(const QTileArgs& a) {
  const int64_t supers = a.w->cols() / kQ6KBlock;
  for (int r = 0; r < a.rows; ++r) {
    const int8_t* qx = a.x->qs_row(a.r0 + r);
    const float* dx = a.x->d_row(a.r0 + r);
    for (int64_t g = a.g0; g < a.g1; ++g) {
      const uint8_t* ql = a.w->qs(g);    // [K/256][4 pairs][8 quads][8 rows][4]
      const float* d = a.w->scales(g);   // [K/256][8 rows]
      const uint8_t* sm = a.w->sm(g);    // [K/256][qh [2][8][8][4], sc [8][8][2]]
      float out[kQGroup];
      for (int c = 0; c < kQGroup; ++c) {
        float acc = 0.0f;
        for (int64_t B = 0; B < supers; ++B) {
          const uint8_t* s = sm + B * kQ6KSmBytes;
          int32_t sums[16] = {};
          for (int p = 0; p < 4; ++p) {
            const int h = p >> 1, t = p & 1;
            for (int q = 0; q < 8; ++q)
              for (int e = 0; e < 4; ++e) {
                const uint8_t lb = ql[B * 1024 + p * 256 + (q * kQGroup + c) * 4 + e];
                const uint8_t hb = s[h * 256 + (q * kQGroup + c) * 4 + e];
                const int v = 128 * h + 32 * t + 4 * q + e;  // the low nibble's value; the high nibble's is v + 64
                sums[v / 16] += (((lb & 0xf) | (((hb >> (2 * t)) & 3) << 4)) - 32) * qx[B * 256 + v];
                sums[v / 16 + 4] += (((lb >> 4) | (((hb >> (2 * t + 4)) & 3) << 4)) - 32) * qx[B * 256 + v + 64];
              }
          }
          int32_t isum = 0;
          for (int j = 0; j < 16; ++j) isum += static_cast<int8_t>(s[512 + (j / 2) * 16 + c * 2 + (j & 1)]) * sums[j];
          acc = acc + static_cast<float>(isum) * (d[B * kQGroup + c] * dx[B]);
        }
        out[c] = acc;
      }
      store_group(a, r, g, out);
    }
  }
}

}  // namespace

const QgemmKernels& qgemm_kernels_scalar() {
  static const QgemmKernels k{quantize, q8_0, q4_k, q6_k};
  return k;
}

}  // namespace loraplex
