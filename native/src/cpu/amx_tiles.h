// The tile registers of the calling thread for one task, shared by the AMX kernels (gemm_amx.cpp,
// lora_amx.cpp): all eight tiles 16 rows × 64 bytes, configured on construction and released after, so a
// thread switched out between tasks saves no 8 KiB of tile data. Compiled for AMX whatever the includer's target.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <initializer_list>

namespace loraplex {

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
