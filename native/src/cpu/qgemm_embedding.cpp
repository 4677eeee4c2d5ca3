// Embedding rows from a table kept in Q8_0 / Q4_K / Q6_K blocks (qgemm.h's embedding_from_blocks): the few rows a
// step asks for, dequantized as ggml does. One plain implementation for every ISA: a step reads T rows, so
// this is never the bottleneck, and its products are exact, so no vector path could change a result.
#include <cstdint>

#include "loraplex/qgemm.h"
#include "qgemm_kernels.h"

namespace loraplex {
namespace {

void q8_0_row(const uint8_t* row, int64_t dim, float* out) {
  for (int64_t b = 0; b < dim / kQ8Block; ++b) {
    const uint8_t* blk = row + b * 34;
    const float d = half_at(blk);
    for (int i = 0; i < 32; ++i) out[b * 32 + i] = d * static_cast<float>(static_cast<int8_t>(blk[2 + i]));
  }
}

void q4_k_row(const uint8_t* row, int64_t dim, float* out) {
  for (int64_t b = 0; b < dim / kQ4KBlock; ++b) {
    const uint8_t* blk = row + b * 144;
    const float d = half_at(blk), dmin = half_at(blk + 2);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      q4k_scale_min(blk + 4, j, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      const uint8_t* q = blk + 16 + (j / 2) * 32;
      const int shift = (j & 1) * 4;
      float* o = out + b * 256 + j * 32;
      for (int i = 0; i < 32; ++i) o[i] = d1 * static_cast<float>((q[i] >> shift) & 0xf) - m1;
    }
  }
}

// dequantize_row_q6_K: (d · sc) · (q − 32), the value order of ql / qh as there.
void q6_k_row(const uint8_t* row, int64_t dim, float* out) {
  for (int64_t b = 0; b < dim / kQ6KBlock; ++b) {
    const uint8_t* blk = row + b * 210;
    const float d = half_at(blk + 208);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = blk + 64 * h;
      const uint8_t* qh = blk + 128 + 32 * h;
      const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192 + 8 * h);
      float* o = out + b * 256 + 128 * h;
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        o[l] = d * sc[is] * static_cast<float>(((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32);
        o[l + 32] = d * sc[is + 2] * static_cast<float>(((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32);
        o[l + 64] = d * sc[is + 4] * static_cast<float>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        o[l + 96] = d * sc[is + 6] * static_cast<float>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
      }
    }
  }
}

}  // namespace

void embedding_from_blocks(QuantType type, const uint8_t* table, int64_t dim, const int32_t* ids, int64_t num_tokens,
                           float* out) {
  const int block = type == QuantType::Q8_0 ? kQ8Block : kQ4KBlock;  // Q6_K's is 256 too
  const int64_t row_bytes = dim / block * static_cast<int64_t>(QuantWeight::block_bytes(type));
  for (int64_t t = 0; t < num_tokens; ++t) {
    const uint8_t* row = table + ids[t] * row_bytes;
    (type == QuantType::Q8_0 ? q8_0_row : type == QuantType::Q4_K ? q4_k_row : q6_k_row)(row, dim, out + t * dim);
  }
}

}  // namespace loraplex
