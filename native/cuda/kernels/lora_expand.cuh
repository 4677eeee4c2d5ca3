// The expand kernels of apply_adapters: y[row, offset_m + n] = (y + scale · Σ_j h[row, j] · Bt[j, n]) · s[n], one
// block per (tile, module, columns), summing the shrink's K parts in order. Included by lora_apply.cu only.
#pragma once

#include "lora_kernels.cuh"

namespace loraplex::cuda {
namespace {  // included by lora_apply.cu only


// The tile's h rows for the module (rows past `count` repeat the last), partials summed in part order, into
// shared memory hs[i · rank + j]: every thread of the block reads all of them.
__device__ __forceinline__ void gather_h(const Pass& p, const LoraTile& tile, int32_t h_offset, int rank, int rows,
                                         float* hs) {
#pragma unroll 4
  for (int e = static_cast<int>(threadIdx.x); e < rows * rank; e += static_cast<int>(blockDim.x)) {
    const int i = e / rank, j = e % rank;
    const float* src = p.h + static_cast<int64_t>(tile.first + min(i, tile.count - 1)) * p.h_stride + h_offset + j;
    float v = 0.f;
    for (int s = 0; s < p.split.parts; ++s) v += src[s * p.split.stride];
    hs[e] = v;
  }
}

// One thread: C columns [n, n + C) of the tile's R (≥ count) rows. The tile's y rows are loaded before any
// is stored, so their loads overlap instead of waiting on each other's stores.
template <int W, int R, int C>
__device__ __forceinline__ void expand_thread(const Pass& p, const LoraModuleDesc& d, const LoraTile& tile,
                                              const float* hs, const CallModule& cm, float* y, int64_t y_stride,
                                              int64_t n) {
  float* yr[R];
  float v[R][C];
#pragma unroll
  for (int i = 0; i < R; ++i) {
    yr[i] = y + static_cast<int64_t>(p.rows[tile.first + min(i, tile.count - 1)]) * y_stride + cm.y_offset + n;
    load_floats<C>(yr[i], v[i]);
  }
  float acc[R][C];
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int c = 0; c < C; ++c) acc[i][c] = 0.f;
  const int64_t ldb = d.out_features;
#pragma unroll 8
  for (int j = 0; j < d.rank; ++j) {
    float b[C];
    load_weights<W, C>(d.bt, static_cast<int64_t>(j) * ldb + n, b);
#pragma unroll
    for (int i = 0; i < R; ++i) {
      const float hv = hs[i * d.rank + j];
#pragma unroll
      for (int c = 0; c < C; ++c) acc[i][c] = fmaf(hv, b[c], acc[i][c]);
    }
  }
  float s[C];
  if (d.out_scale) load_weights<0, C>(d.out_scale, n, s);
#pragma unroll
  for (int i = 0; i < R; ++i) {
    if (i >= tile.count) break;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      v[i][c] = fmaf(d.scale, acc[i][c], v[i][c]);
      if (d.out_scale) v[i][c] *= s[c];
    }
    store_floats<C>(yr[i], v[i]);
  }
}

// grid (tiles of the class, call modules, ceil(max N / (kExpandThreads · C))); dynamic shared memory
// (Multi ? kLoraTileRows : 1) · max rank floats. N % 8 == 0; y, y_stride, offsets 16-byte aligned.
template <int W, bool Multi>
__global__ void __launch_bounds__(kExpandThreads)
    expand_fast(const Pass p, float* __restrict__ y, int64_t y_stride) {
  constexpr int C = Multi ? kMultiColumns : kSingleColumns;
  extern __shared__ float hs[];
  const LoraTile tile = p.tiles[blockIdx.x];
  const CallModule& cm = p.call[blockIdx.y];
  const LoraModuleDesc d = desc_of(p, tile, cm.module);
  const int64_t n0 = static_cast<int64_t>(blockIdx.z) * kExpandThreads * C;
  // Block-uniform exits, before the barrier. Bt's rows are the call's N long.
  if (d.rank <= 0 || d.out_features != cm.n || n0 >= cm.n) return;
  const int rows = Multi ? padded_rows(tile.count) : 1;
  gather_h(p, tile, cm.h_offset, d.rank, rows, hs);
  __syncthreads();
  const int64_t n = n0 + static_cast<int64_t>(threadIdx.x) * C;
  if (n >= cm.n) return;
  if constexpr (!Multi) {
    expand_thread<W, 1, C>(p, d, tile, hs, cm, y, y_stride, n);
  } else {
    if (rows == 2) expand_thread<W, 2, C>(p, d, tile, hs, cm, y, y_stride, n);
    else if (rows == 4) expand_thread<W, 4, C>(p, d, tile, hs, cm, y, y_stride, n);
    else expand_thread<W, kLoraTileRows, C>(p, d, tile, hs, cm, y, y_stride, n);
  }
}

// Any N and alignment: one column per thread. grid (tiles, call modules, ceil(max N / kPlainExpandColumns)).
template <int W>
__global__ void __launch_bounds__(kPlainExpandColumns) expand_plain(const Pass p, float* __restrict__ y, int64_t y_stride) {
  const LoraTile tile = p.tiles[blockIdx.x];
  const CallModule& cm = p.call[blockIdx.y];
  const LoraModuleDesc d = desc_of(p, tile, cm.module);
  const int64_t n = static_cast<int64_t>(blockIdx.z) * kPlainExpandColumns + threadIdx.x;
  if (d.rank <= 0 || d.out_features != cm.n || n >= cm.n) return;  // Bt's rows are the call's N long
  for (int i = 0; i < tile.count; ++i) {
    const float* hr = p.h + static_cast<int64_t>(tile.first + i) * p.h_stride + cm.h_offset;
    float acc = 0.f;
    for (int j = 0; j < d.rank; ++j) {
      float hj = 0.f;
      for (int s = 0; s < p.split.parts; ++s) hj += hr[s * p.split.stride + j];
      acc = fmaf(hj, widen<W>(d.bt, static_cast<int64_t>(j) * d.out_features + n), acc);
    }
    float* yr = y + static_cast<int64_t>(p.rows[tile.first + i]) * y_stride + cm.y_offset + n;
    float v = fmaf(d.scale, acc, *yr);
    if (d.out_scale) v *= d.out_scale[n];
    *yr = v;
  }
}

}  // namespace
}  // namespace loraplex::cuda
