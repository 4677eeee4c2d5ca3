// The shrink kernels of apply_adapters: h[row, h_offset_m + j] = Σ_k x[row, k] · A[j, k], one block per (tile,
// module, ranks, part of K). Included by lora_apply.cu only.
#pragma once

#include "lora_kernels.cuh"

namespace loraplex::cuda {
namespace {  // included by lora_apply.cu only


// One-row tiles: one warp, ranks j0 and j0 + 1 over K range [k0, k1); lanes take 8 of K each per step.
template <int W, int R>
__device__ __forceinline__ void shrink_warp(const Pass& p, const LoraModuleDesc& d, const LoraTile& tile,
                                            const float* x, int64_t k, int64_t k0, int64_t k1, float* h,
                                            int32_t h_offset, int j0, int lane) {
  const float* xr[R];
#pragma unroll
  for (int i = 0; i < R; ++i) xr[i] = x + static_cast<int64_t>(p.rows[tile.first + min(i, tile.count - 1)]) * k;
  const int j1 = min(j0 + 1, d.rank - 1);  // rank 1: the second rank repeats the first and is not written
  const void* a0 = static_cast<const unsigned char*>(d.a) + static_cast<int64_t>(j0) * k * (W == 0 ? 4 : 2);
  const void* a1 = static_cast<const unsigned char*>(d.a) + static_cast<int64_t>(j1) * k * (W == 0 ? 4 : 2);
  float acc[R][kWarpRanks];
#pragma unroll
  for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = 0.f;
#pragma unroll 4
  for (int64_t at = k0 + static_cast<int64_t>(lane) * 8; at < k1; at += 32 * 8) {
    float w0[8], w1[8];
    load8<W>(a0, at, w0);
    load8<W>(a1, at, w1);
#pragma unroll
    for (int i = 0; i < R; ++i) {
      float xv[8];
      load_floats<8>(xr[i] + at, xv);
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        acc[i][0] = fmaf(xv[c], w0[c], acc[i][0]);
        acc[i][1] = fmaf(xv[c], w1[c], acc[i][1]);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < R; ++i) {
    const float s0 = warp_sum(acc[i][0]);
    const float s1 = warp_sum(acc[i][1]);
    if (lane == 0 && i < tile.count) {
      float* out = h + static_cast<int64_t>(tile.first + i) * p.h_stride + h_offset + j0;
      out[0] = s0;
      if (j0 + 1 < d.rank) out[1] = s1;
    }
  }
}

// Multi-row tiles: the block stages each 256-wide slab of the tile's x rows in shared memory once and every
// warp reads it there (else each of the 8 warps would read all R rows through L1/L2). Warps past the slot's
// rank (`active` false) still stage and meet the barriers.
template <int W, int R>
__device__ __forceinline__ void shrink_tile(const Pass& p, const LoraModuleDesc& d, const LoraTile& tile,
                                            const float* x, int64_t k, int64_t k0, int64_t k1, float* h,
                                            int32_t h_offset, int j0, int lane, float4* xs) {
  const bool active = j0 < d.rank;
  const int j1 = min(j0 + 1, d.rank - 1);
  const void* a0 = static_cast<const unsigned char*>(d.a) + static_cast<int64_t>(min(j0, d.rank - 1)) * k * (W == 0 ? 4 : 2);
  const void* a1 = static_cast<const unsigned char*>(d.a) + static_cast<int64_t>(j1) * k * (W == 0 ? 4 : 2);
  float acc[R][kWarpRanks];
#pragma unroll
  for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = 0.f;
  for (int64_t base = k0; base < k1; base += 32 * 8) {
    const int64_t at = base + static_cast<int64_t>(lane) * 8;
    float w0[8], w1[8];
    if (active && at < k1) {
      load8<W>(a0, at, w0);
      load8<W>(a1, at, w1);
    } else {
#pragma unroll
      for (int c = 0; c < 8; ++c) w0[c] = w1[c] = 0.f;
    }
    // xs[(i · 2 + half) · 32 + lane]: lane's 8 values of row i, as two float4.
    for (int e = static_cast<int>(threadIdx.x); e < R * 64; e += static_cast<int>(blockDim.x)) {
      const int i = e / 64, half = (e / 32) % 2, l = e % 32;
      const int64_t col = base + l * 8 + half * 4;
      const float* row = x + static_cast<int64_t>(p.rows[tile.first + min(i, tile.count - 1)]) * k;
      xs[e] = col < k1 ? *reinterpret_cast<const float4*>(row + col) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
    __syncthreads();
    if (active) {
#pragma unroll
      for (int i = 0; i < R; ++i) {
        const float4 lo = xs[(i * 2) * 32 + lane], hi = xs[(i * 2 + 1) * 32 + lane];
        const float xv[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
#pragma unroll
        for (int c = 0; c < 8; ++c) {
          acc[i][0] = fmaf(xv[c], w0[c], acc[i][0]);
          acc[i][1] = fmaf(xv[c], w1[c], acc[i][1]);
        }
      }
    }
    __syncthreads();
  }
  if (!active) return;
#pragma unroll
  for (int i = 0; i < R; ++i) {
    const float s0 = warp_sum(acc[i][0]);
    const float s1 = warp_sum(acc[i][1]);
    if (lane == 0 && i < tile.count) {
      float* out = h + static_cast<int64_t>(tile.first + i) * p.h_stride + h_offset + j0;
      out[0] = s0;
      if (j0 + 1 < d.rank) out[1] = s1;
    }
  }
}

// grid (tiles of the class, call modules, rank tiles · parts); Warps warps of kWarpRanks ranks each.
// Multi: tiles of 2..8 rows; else one row. K % 8 == 0, x 16-byte aligned.
template <int W, bool Multi>
__global__ void __launch_bounds__((Multi ? kMultiWarps : kSingleWarps) * 32, Multi ? 2 : 4)
    shrink_fast(const Pass p, const float* __restrict__ x, int64_t k) {
  constexpr int kWarps = Multi ? kMultiWarps : kSingleWarps;
  const LoraTile tile = p.tiles[blockIdx.x];
  const CallModule& cm = p.call[blockIdx.y];
  const LoraModuleDesc d = desc_of(p, tile, cm.module);
  const int rank_tile = static_cast<int>(blockIdx.z) % p.split.rank_tiles;
  const int part = static_cast<int>(blockIdx.z) / p.split.rank_tiles;
  const int j0 = (rank_tile * kWarps + static_cast<int>(threadIdx.x / 32)) * kWarpRanks;
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int64_t k0 = part * p.split.chunk, k1 = min(k, k0 + p.split.chunk);
  float* h = p.h + part * p.split.stride;
  if constexpr (!Multi) {
    if (d.rank <= 0 || j0 >= d.rank || d.in_features != k) return;  // warp-uniform; no barrier follows
    shrink_warp<W, 1>(p, d, tile, x, k, k0, k1, h, cm.h_offset, j0, lane);
  } else {
    __shared__ float4 xs[kLoraTileRows * 64];
    const int rows = padded_rows(tile.count);
    if (rows == 2) {  // two rows: staging costs more than the second row's reads (measured)
      if (d.rank <= 0 || j0 >= d.rank || d.in_features != k) return;  // warp-uniform; no barrier follows
      shrink_warp<W, 2>(p, d, tile, x, k, k0, k1, h, cm.h_offset, j0, lane);
      return;
    }
    // Block-uniform exit (barriers follow): no rank of this block's tile.
    if (d.rank <= 0 || rank_tile * kWarps * kWarpRanks >= d.rank || d.in_features != k) return;
    if (rows == 4) shrink_tile<W, 4>(p, d, tile, x, k, k0, k1, h, cm.h_offset, j0, lane, xs);
    else shrink_tile<W, kLoraTileRows>(p, d, tile, x, k, k0, k1, h, cm.h_offset, j0, lane, xs);
  }
}

// Any K and alignment: one warp per rank j, scalar loads, one K part. grid (tiles, call modules, rank tiles).
template <int W>
__global__ void __launch_bounds__(kPlainWarps * 32) shrink_plain(const Pass p, const float* __restrict__ x, int64_t k) {
  const LoraTile tile = p.tiles[blockIdx.x];
  const CallModule& cm = p.call[blockIdx.y];
  const LoraModuleDesc d = desc_of(p, tile, cm.module);
  const int warp = static_cast<int>(threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);
  if (d.rank <= 0 || d.in_features != k) return;
  const int j_end = min(d.rank, (static_cast<int>(blockIdx.z) + 1) * kPlainWarps);
  for (int j = static_cast<int>(blockIdx.z) * kPlainWarps + warp; j < j_end; j += kPlainWarps) {
    for (int i = 0; i < tile.count; ++i) {
      const float* xr = x + static_cast<int64_t>(p.rows[tile.first + i]) * k;
      float acc = 0.f;
      for (int64_t at = lane; at < k; at += 32) acc = fmaf(xr[at], widen<W>(d.a, static_cast<int64_t>(j) * k + at), acc);
      acc = warp_sum(acc);
      if (lane == 0) p.h[static_cast<int64_t>(tile.first + i) * p.h_stride + cm.h_offset + j] = acc;
    }
  }
}

}  // namespace
}  // namespace loraplex::cuda
