// Scalar quantized GEMM kernels: the Semantics of qgemm.h in plain loops (the AVX2 kernels' oracle).
#include <cmath>
#include <cstdint>

#include "qgemm_kernels.h"

namespace loraplex {
namespace {

void quantize(const float* x, int64_t k, int block, int8_t* qs, float* d, int32_t* bsum) {
  for (int64_t b = 0; b < k / block; ++b) {
    const float* xb = x + b * block;
    float amax = 0.0f;
    for (int i = 0; i < block; ++i) amax = std::fmax(amax, std::fabs(xb[i]));
    const float db = amax / 127.0f;
    const float id = db != 0.0f ? 1.0f / db : 0.0f;
    d[b] = db;
    for (int i = 0; i < block; ++i) {
      const float v = std::nearbyint(xb[i] * id);  // round half to even (the default rounding mode)
      qs[b * block + i] = static_cast<int8_t>(v > 127.0f ? 127 : v < -127.0f ? -127 : v);
    }
  }
  if (bsum) {
    for (int64_t j = 0; j < k / 32; ++j) {
      int32_t s = 0;
      for (int i = 0; i < 32; ++i) s += qs[j * 32 + i];
      bsum[j] = s;
    }
  }
}

void q8_0(const QTileArgs& a) {
  const int64_t blocks = a.w->cols() / kQ8Block;
  for (int r = 0; r < a.rows; ++r) {
    const int8_t* qx = a.x->qs_row(a.r0 + r);
    const float* dx = a.x->d_row(a.r0 + r);
    for (int64_t n = a.n0; n < a.n1; ++n) {
      const int8_t* qw = reinterpret_cast<const int8_t*>(a.w->qs(n));
      const float* dw = a.w->scales(n);
      float acc[8] = {};
      for (int64_t b = 0; b < blocks; ++b) {
        const float s = dx[b] * dw[b];
        for (int l = 0; l < 8; ++l) {
          int32_t p = 0;
          for (int e = 0; e < 4; ++e) p += qx[b * 32 + 4 * l + e] * qw[b * 32 + 4 * l + e];
          acc[l] = acc[l] + static_cast<float>(p) * s;
        }
      }
      store_output(a.y + (a.r0 + r) * a.ldy + n, lane_sum(acc), a.bias, n, a.accumulate);
    }
  }
}

void q4_k(const QTileArgs& a) {
  const int64_t supers = a.w->cols() / kQ4KBlock;
  for (int r = 0; r < a.rows; ++r) {
    const int8_t* qx = a.x->qs_row(a.r0 + r);
    const float* dx = a.x->d_row(a.r0 + r);
    const int32_t* bsum = a.x->bsum_row(a.r0 + r);
    for (int64_t n = a.n0; n < a.n1; ++n) {
      const uint8_t* q4 = a.w->qs(n);
      const float* dm = a.w->scales(n);
      const uint8_t* sm = a.w->sm(n);
      float acc[8] = {};
      float mins = 0.0f;
      for (int64_t B = 0; B < supers; ++B) {
        int32_t isum[8] = {};
        int32_t msum = 0;
        for (int j = 0; j < 8; ++j) {
          const uint8_t* qb = q4 + B * 128 + (j / 2) * 32;  // sub-blocks 2i (low nibbles) and 2i+1 (high)
          const int shift = (j & 1) * 4;
          const int8_t* xj = qx + B * 256 + j * 32;
          for (int l = 0; l < 8; ++l) {
            int32_t p = 0;
            for (int e = 0; e < 4; ++e) p += ((qb[4 * l + e] >> shift) & 0xf) * xj[4 * l + e];
            isum[l] += sm[B * 16 + j] * p;
          }
          msum += sm[B * 16 + 8 + j] * bsum[B * 8 + j];
        }
        const float sd = dm[2 * B] * dx[B];
        const float smin = dm[2 * B + 1] * dx[B];
        for (int l = 0; l < 8; ++l) acc[l] = acc[l] + static_cast<float>(isum[l]) * sd;
        mins = mins + static_cast<float>(msum) * smin;
      }
      store_output(a.y + (a.r0 + r) * a.ldy + n, lane_sum(acc) - mins, a.bias, n, a.accumulate);
    }
  }
}

}  // namespace

const QgemmKernels& qgemm_kernels_scalar() {
  static const QgemmKernels k{quantize, q8_0, q4_k};
  return k;
}

}  // namespace loraplex
