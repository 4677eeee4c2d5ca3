// The GEMM micro-kernels, one set per ISA and weight dtype (gemm_tiles_{scalar,avx2,avx512,avx512bf16}.cpp),
// driven by gemm.cpp. A tile is `rows` rows of x times one 32-column weight panel over a chunk of k.
//
// Semantics of one call: for r < rows, j < 32:
//   acc = load_y ? y[r·ldy + j] : 0;  for k in chunk: acc += x[r, k] · W[j, k]  (one FMA on SIMD paths,
//   one vdpbf16ps per k pair on the bf16 dot tiles);
//   y[r·ldy + j] = bias ? acc + bias[j] : acc
// Every element runs the same chain whatever `rows` is: that is what makes the GEMM batch-invariant.
#pragma once

#include <cstdint>

#include "loraplex/gemm.h"

namespace loraplex {

constexpr int kGemmMaxRows = 12;

struct TileArgs {
  const void* x;      // packed x tile, at the chunk's first k: [k][rows] f32, or [k/2][rows] bf16 pairs
  const void* w;      // weight panel at the chunk's first k (layout in gemm.h)
  int64_t k;          // k steps in the chunk (even for bf16 weights, whose K is padded to even)
  float* y;           // [rows][ldy], 32 columns written
  int64_t ldy;
  bool load_y;        // continue the chain from y (later chunks, or accumulate) instead of 0
  const float* bias;  // [32], added after the chunk (last chunk only), or null
  // tile_prefetch only: a weight stream to prefetch into L2, advanced by the panel's bytes per k step
  // (the same panel further on while streaming, or the block's next chunk while several tiles share this one).
  const char* prefetch;
};

using TileFn = void (*)(const TileArgs&);

// Packs rows x[r·ldx + k] (r < rows, k < k_valid) into the tile layout, zero-padding k up to k_padded.
using PackXFn = void (*)(const float* x, int64_t ldx, int rows, int64_t k_valid, int64_t k_padded, void* out);

// Widens k steps of an f16 / bf16 panel (at a chunk's first k) to f32 [k][32]; k even for bf16 pairs.
// Semantics: out[k·32 + j] = f32(W[j, k]), exact.
using WidenFn = void (*)(const void* w, int64_t k, float* out);

struct GemmTiles {
  int max_rows;             // rows per full tile (≤ kGemmMaxRows)
  int x_bytes_per_k;        // packed x bytes per row per k: 4 (f32) or 2 (bf16 pairs)
  PackXFn pack_x;
  TileFn tile[kGemmMaxRows + 1];           // by rows
  TileFn tile_prefetch[kGemmMaxRows + 1];  // same arithmetic, prefetching the panel ahead (first tile of a pass)
  // f16 / bf16 tiles that widen W in registers: a block of several row tiles may instead widen each panel
  // chunk once and run `widened` (this ISA's f32 tiles, same max_rows and x layout). Both do the same FMAs
  // on the same exact f32 weights, so the choice never changes a result. Null where it does not apply.
  WidenFn widen;
  const GemmTiles* widened;
};

inline GemmTiles with_widen(GemmTiles t, WidenFn widen, const GemmTiles* widened) {
  t.widen = widen;
  t.widened = widened;
  return t;
}

// Null where the CPU lacks what the dtype needs (e.g. F16C).
const GemmTiles* gemm_tiles_scalar(WeightDType dtype);
const GemmTiles* gemm_tiles_avx2(WeightDType dtype);
const GemmTiles* gemm_tiles_avx512(WeightDType dtype);
const GemmTiles* gemm_tiles_avx512bf16(WeightDType dtype);  // bf16 weights only (vdpbf16ps)

// How far ahead of the current k a streaming tile prefetches its panel, in bytes.
constexpr int kGemmPrefetchBytes = 4096;  // measured: bf16 decode needs ≥ 4 KiB, f32 is flat from 1 KiB

}  // namespace loraplex
