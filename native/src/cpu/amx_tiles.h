// What the AMX kernels (gemm_amx.cpp, lora_amx.cpp) share: x's rows as bf16 pairs, and the tile registers of the
// calling thread for one task: all eight tiles 16 rows × 64 bytes, configured on construction and released after, so a
// thread switched out between tasks saves no 8 KiB of tile data. Compiled for AMX whatever the includer's target.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <initializer_list>

namespace loraplex {

// 32 floats from p, those from `left` on read as 0, as 16 bf16 pairs (nearest even, denormals to zero, as
// TDPBF16PS reads them anyway): one row of a 32-k step.
__attribute__((target("avx512f,avx512bw,avx512bf16"))) inline __m512i amx_bf16_pairs(const float* p, int64_t left) {
  const auto lanes = [](int64_t n) {
    return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : static_cast<__mmask16>((1u << n) - 1);
  };
  const __m512 lo = _mm512_maskz_loadu_ps(lanes(left), p), hi = _mm512_maskz_loadu_ps(lanes(left - 16), p + 16);
  return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

struct AmxTileConfig {
  uint8_t palette, start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

struct AmxTileScope {
  __attribute__((target("amx-tile"))) AmxTileScope() : AmxTileScope(0, 64) {}
  // Tiles 0-3 and `narrow_tile` `narrow_colsb` bytes wide, the others 64 (a one-row operand's products and
  // sums need no 16-column tiles).
  __attribute__((target("amx-tile"))) AmxTileScope(int narrow_tile, int narrow_colsb) {
    AmxTileConfig cfg{};
    cfg.palette = 1;
    for (int i = 0; i < 8; ++i) cfg.colsb[i] = 64, cfg.rows[i] = 16;
    if (narrow_colsb != 64)
      for (int i : {0, 1, 2, 3, narrow_tile}) cfg.colsb[i] = static_cast<uint16_t>(narrow_colsb);
    _tile_loadconfig(&cfg);
  }
  __attribute__((target("amx-tile"))) ~AmxTileScope() { _tile_release(); }
  AmxTileScope(const AmxTileScope&) = delete;
  AmxTileScope& operator=(const AmxTileScope&) = delete;
};

}  // namespace loraplex
