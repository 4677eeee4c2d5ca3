// What lora_bank.cu (DeviceLoraRows::set) and lora_apply.cu share: a step's adapter rows cut into tiles of
// at most kLoraTileRows rows of one slot, and the shrink workspace h. Internal to the CUDA LoRA kernels.
#pragma once

#include "loraplex/cuda/lora.h"

#include <cstdint>
#include <vector>

namespace loraplex::cuda {

// Rows per tile: each block of the shrink and the expand handles one tile, so a slot's A and Bt are read once
// per tile (once per step in decode, where a group is one or a few rows).
constexpr int32_t kLoraTileRows = 8;

struct LoraTile {
  int32_t slot;   // ≥ 0
  int32_t first;  // rows[first .. first + count) belong to the tile; also the tile's rows in h
  int32_t count;  // 1 .. kLoraTileRows
};

struct DeviceLoraRows::Impl {
  int64_t num_rows = 0;
  int32_t num_groups = 0;
  std::vector<int32_t> rows;    // host: adapter rows grouped by ascending slot (row order within a slot)
  std::vector<LoraTile> tiles;  // host copy of the device tiles: one-row tiles first (decode), then the others
  int32_t single_tiles = 0;     // tiles [0, single_tiles) have one row
  std::vector<std::pair<int32_t, int32_t>> by_slot;  // scratch: (slot, row)
  std::vector<unsigned char> upload;                 // scratch: rows then tiles, one copy

  // Device: rows [rows.size()] then tiles [tiles.size()] in one allocation (the tiles 16-byte aligned).
  unsigned char* device = nullptr;
  size_t device_bytes = 0;
  const int32_t* device_rows = nullptr;
  const LoraTile* device_tiles = nullptr;

  // Shrink output [rows.size(), h_stride] floats, grown by apply_adapters when a call needs more.
  float* h = nullptr;
  size_t h_floats = 0;

  // Grows h to hold `floats` (rare: a larger step or adapter); the old buffer may still be read by work
  // enqueued on `stream`, so it is freed after that work.
  void reserve_h(size_t floats, cudaStream_t stream);
};

}  // namespace loraplex::cuda
