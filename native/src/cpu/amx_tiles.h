// The tile registers of the calling thread for one task, shared by the AMX kernels (gemm_amx.cpp,
// lora_amx.cpp): all eight tiles 16 rows × 64 bytes, configured on construction and released after, so a
// thread switched out between tasks saves no 8 KiB of tile data. Compiled for AMX whatever the includer's target.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace loraplex {

struct AmxTileConfig {
  uint8_t palette, start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

struct AmxTileScope {
  __attribute__((target("amx-tile"))) AmxTileScope() {
    AmxTileConfig cfg{};
    cfg.palette = 1;
    for (int i = 0; i < 8; ++i) cfg.colsb[i] = 64, cfg.rows[i] = 16;
    _tile_loadconfig(&cfg);
  }
  __attribute__((target("amx-tile"))) ~AmxTileScope() { _tile_release(); }
  AmxTileScope(const AmxTileScope&) = delete;
  AmxTileScope& operator=(const AmxTileScope&) = delete;
};

}  // namespace loraplex
