// apply_adapters on the device: a shrink launch then an expand launch per tile class (one-row tiles of decode,
// multi-row tiles of prefill segments), each launch covering every module of the call.
//   shrink: h[row, h_offset_m + j] = Σ_k x[row, k] · A[j, k]        block: (tile, module, ranks, part of K)
//   expand: y[row, offset_m + n] = (y + scale · Σ_j h[row, j] · Bt[j, n]) · s[n]     block: (tile, module, columns)
// A block reads its slot's descriptor and leaves at once where the slot does not target the module or its
// rank ends below the block's ranks, so a call with mixed ranks pays for each slot's own rank only. When a
// launch has too few blocks to fill the GPU (decode with few adapters), K is split over blocks into partial h
// arrays that the expand adds in a fixed order (no atomics: results do not depend on scheduling).
// The fast kernels read 8 weights per 16-byte load and need K, N multiples of 8 and 16-byte aligned x, y
// rows and offsets; other shapes run the plain kernels (same arithmetic, scalar loads, one K part).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <stdexcept>

#include "lora_rows.cuh"

namespace loraplex::cuda {

namespace {

constexpr int kMaxCallModules = 8;  // modules per launch; longer calls launch once per 8
constexpr int kWarpRanks = 2;       // ranks j per warp in the fast shrink
constexpr int kSingleWarps = 4;     // shrink warps per block, one-row tiles
constexpr int kMultiWarps = 8;      // shrink warps per block, multi-row tiles (they share x rows through L1)
constexpr int kPlainWarps = 8;
constexpr int kExpandThreads = 128;
// Columns per thread in the fast expand; multi-row tiles hold R · C accumulators and R · C loaded y values.
constexpr int kSingleColumns = 8;
constexpr int kMultiColumns = 4;
constexpr int kPlainExpandColumns = 256;            // one column per thread in the plain expand

struct CallModule {
  int32_t module;    // in the bank
  int32_t h_offset;  // its ranks' first column in h
  int64_t y_offset;
  int64_t n;
};

// The shrink's split of K over blocks.
struct Split {
  int32_t parts;       // partial h arrays, summed by the expand
  int32_t rank_tiles;  // grid.z = rank_tiles · parts
  int64_t chunk;       // K per part, a multiple of a warp's 256
  int64_t stride;      // floats between partial h arrays
};

// What every block of one launch reads (by value: no device copy per call).
struct Pass {
  const LoraModuleDesc* descs;
  int32_t num_slots, bank_modules;
  const LoraTile* tiles;  // this launch's tiles
  const int32_t* rows;
  float* h;
  int64_t h_stride;
  Split split;
  CallModule call[kMaxCallModules];
};

__device__ __forceinline__ void unpack2(uint32_t bits, int w, float& lo, float& hi) {
  if (w == 1) {
    lo = __uint_as_float(bits << 16);
    hi = __uint_as_float(bits & 0xffff0000u);
  } else {
    lo = __half2float(__ushort_as_half(static_cast<unsigned short>(bits & 0xffffu)));
    hi = __half2float(__ushort_as_half(static_cast<unsigned short>(bits >> 16)));
  }
}

// Weight storage: W = 0 f32, 1 bf16, 2 f16 (16-bit kinds widened exactly). One weight:
template <int W>
__device__ __forceinline__ float widen(const void* p, int64_t i) {
  if constexpr (W == 0) {
    return static_cast<const float*>(p)[i];
  } else if constexpr (W == 1) {
    return __uint_as_float(static_cast<uint32_t>(static_cast<const unsigned short*>(p)[i]) << 16);
  } else {
    return __half2float(__ushort_as_half(static_cast<const unsigned short*>(p)[i]));
  }
}

// 8 consecutive weights from p + i (i a multiple of 8, p 16-byte aligned) as f32.
template <int W>
__device__ __forceinline__ void load8(const void* p, int64_t i, float (&out)[8]) {
  if constexpr (W == 0) {
    const float4* q = reinterpret_cast<const float4*>(static_cast<const float*>(p) + i);
    const float4 a = __ldg(q), b = __ldg(q + 1);
    out[0] = a.x; out[1] = a.y; out[2] = a.z; out[3] = a.w;
    out[4] = b.x; out[5] = b.y; out[6] = b.z; out[7] = b.w;
  } else {
    const uint4 v = __ldg(reinterpret_cast<const uint4*>(static_cast<const unsigned short*>(p) + i));
    unpack2(v.x, W, out[0], out[1]);
    unpack2(v.y, W, out[2], out[3]);
    unpack2(v.z, W, out[4], out[5]);
    unpack2(v.w, W, out[6], out[7]);
  }
}

// 4 consecutive weights from p + i (i a multiple of 4, p 16-byte aligned) as f32.
template <int W>
__device__ __forceinline__ void load4(const void* p, int64_t i, float (&out)[4]) {
  if constexpr (W == 0) {
    const float4 a = __ldg(reinterpret_cast<const float4*>(static_cast<const float*>(p) + i));
    out[0] = a.x; out[1] = a.y; out[2] = a.z; out[3] = a.w;
  } else {
    const uint2 v = __ldg(reinterpret_cast<const uint2*>(static_cast<const unsigned short*>(p) + i));
    unpack2(v.x, W, out[0], out[1]);
    unpack2(v.y, W, out[2], out[3]);
  }
}

template <int W, int C>
__device__ __forceinline__ void load_weights(const void* p, int64_t i, float (&out)[C]) {
  if constexpr (C == 8) load8<W>(p, i, out);
  else load4<W>(p, i, out);
}

// C (4 or 8) consecutive floats, 16-byte aligned: plain loads (y is read and written by the kernel).
template <int C>
__device__ __forceinline__ void load_floats(const float* p, float (&out)[C]) {
#pragma unroll
  for (int q = 0; q < C / 4; ++q) {
    const float4 a = *reinterpret_cast<const float4*>(p + 4 * q);
    out[4 * q] = a.x; out[4 * q + 1] = a.y; out[4 * q + 2] = a.z; out[4 * q + 3] = a.w;
  }
}

template <int C>
__device__ __forceinline__ void store_floats(float* p, const float (&v)[C]) {
#pragma unroll
  for (int q = 0; q < C / 4; ++q)
    reinterpret_cast<float4*>(p)[q] = make_float4(v[4 * q], v[4 * q + 1], v[4 * q + 2], v[4 * q + 3]);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The slot's descriptor for the block's module; rank 0 when there is nothing to do (or the slot is invalid).
__device__ __forceinline__ LoraModuleDesc desc_of(const Pass& p, const LoraTile& tile, int32_t module) {
  if (tile.slot < 0 || tile.slot >= p.num_slots || module < 0 || module >= p.bank_modules) {
    LoraModuleDesc none{};
    return none;
  }
  return p.descs[static_cast<int64_t>(tile.slot) * p.bank_modules + module];
}

// Rows a multi-row tile is computed for: its count rounded up to 2, 4 or kLoraTileRows.
__device__ __forceinline__ int padded_rows(int count) { return count <= 2 ? 2 : count <= 4 ? 4 : kLoraTileRows; }

// ── shrink ─────────────────────────────────────────────────────────────────────────────────────────────

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

// ── expand ─────────────────────────────────────────────────────────────────────────────────────────────

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

// ── host ───────────────────────────────────────────────────────────────────────────────────────────────

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

int multiprocessors() {
  static const int count = [] {
    int device = 0, sms = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
      return 132;
    return sms;
  }();
  return count;
}

// Ranks per shrink block and the parts of K: enough blocks for about 4 per SM, each part at least 1024 of K.
Split split_for(bool fast, bool multi, int64_t k, int64_t tiles, int64_t modules, int32_t max_rank, int64_t h_floats) {
  const int ranks = fast ? (multi ? kMultiWarps : kSingleWarps) * kWarpRanks : kPlainWarps;
  Split s{1, (max_rank + ranks - 1) / ranks, k, h_floats};
  if (!fast || tiles == 0) return s;
  const int64_t blocks = tiles * modules * s.rank_tiles;
  const int64_t want = std::min<int64_t>((4 * multiprocessors() + blocks - 1) / blocks, std::max<int64_t>(1, k / 1024));
  if (want <= 1) return s;
  s.chunk = ((k + want - 1) / want + 255) / 256 * 256;
  s.parts = static_cast<int32_t>((k + s.chunk - 1) / s.chunk);
  return s;
}

template <int W>
void launch_shrink(bool fast, bool multi, dim3 grid, cudaStream_t stream, const Pass& p, const float* x, int64_t k) {
  if (!fast) shrink_plain<W><<<grid, kPlainWarps * 32, 0, stream>>>(p, x, k);
  else if (multi) shrink_fast<W, true><<<grid, kMultiWarps * 32, 0, stream>>>(p, x, k);
  else shrink_fast<W, false><<<grid, kSingleWarps * 32, 0, stream>>>(p, x, k);
}

template <int W>
void launch_expand(bool fast, bool multi, dim3 grid, size_t shared, cudaStream_t stream, const Pass& p, float* y,
                   int64_t y_stride) {
  if (!fast) expand_plain<W><<<grid, kPlainExpandColumns, 0, stream>>>(p, y, y_stride);
  else if (multi) expand_fast<W, true><<<grid, kExpandThreads, shared, stream>>>(p, y, y_stride);
  else expand_fast<W, false><<<grid, kExpandThreads, shared, stream>>>(p, y, y_stride);
}

// One call's shrink then expand over the tiles [first, first + count) of one class.
void run_class(LoraDtype dtype, bool multi, unsigned first, unsigned count, Pass p, bool x_fast, bool y_fast,
               int64_t modules, int32_t max_rank, int64_t max_n, const float* x, int64_t k, float* y,
               int64_t y_stride, cudaStream_t stream) {
  if (count == 0) return;
  p.tiles += first;
  const dim3 shrink_grid(count, static_cast<unsigned>(modules),
                         static_cast<unsigned>(p.split.rank_tiles * p.split.parts));
  const int64_t columns = y_fast ? kExpandThreads * (multi ? kMultiColumns : kSingleColumns) : kPlainExpandColumns;
  const dim3 expand_grid(count, static_cast<unsigned>(modules), static_cast<unsigned>((max_n + columns - 1) / columns));
  const size_t shared = y_fast ? sizeof(float) * (multi ? kLoraTileRows : 1) * static_cast<size_t>(max_rank) : 0;
  switch (dtype) {
    case LoraDtype::F32:
      launch_shrink<0>(x_fast, multi, shrink_grid, stream, p, x, k);
      launch_expand<0>(y_fast, multi, expand_grid, shared, stream, p, y, y_stride);
      break;
    case LoraDtype::Bf16:
      launch_shrink<1>(x_fast, multi, shrink_grid, stream, p, x, k);
      launch_expand<1>(y_fast, multi, expand_grid, shared, stream, p, y, y_stride);
      break;
    case LoraDtype::F16:
      launch_shrink<2>(x_fast, multi, shrink_grid, stream, p, x, k);
      launch_expand<2>(y_fast, multi, expand_grid, shared, stream, p, y, y_stride);
      break;
  }
}

}  // namespace

void apply_adapters(const DeviceLoraBank& bank, const DeviceLoraRows& rows, const float* x, int64_t k, float* y,
                    int64_t y_stride, const LoraModuleOutput* modules, int64_t num_modules, cudaStream_t stream) {
  DeviceLoraRows::Impl& r = rows.impl();
  if (r.tiles.empty() || num_modules <= 0) return;
  check_cuda(cudaStreamWaitEvent(stream, bank.ready(), 0), "cudaStreamWaitEvent (lora ready)");
  const unsigned singles = static_cast<unsigned>(r.single_tiles);
  const unsigned multis = static_cast<unsigned>(r.tiles.size()) - singles;
  const bool x_fast = k % 8 == 0 && aligned16(x);
  for (int64_t first = 0; first < num_modules; first += kMaxCallModules) {
    const int64_t count = std::min<int64_t>(kMaxCallModules, num_modules - first);
    Pass p{};
    p.descs = bank.device_descs();
    p.num_slots = bank.num_slots();
    p.bank_modules = bank.num_modules();
    p.tiles = r.device_tiles;
    p.rows = r.device_rows;
    int32_t h_stride = 0, max_rank = 0;
    int64_t max_n = 0;
    bool y_fast = aligned16(y) && y_stride % 4 == 0;
    for (int64_t o = 0; o < kMaxCallModules; ++o) {
      if (o >= count) {
        p.call[o] = CallModule{-1, 0, 0, 0};  // never indexed: grid.y == count
        continue;
      }
      const LoraModuleOutput& m = modules[first + o];
      const int32_t rank = m.module >= 0 && m.module < bank.num_modules() ? bank.max_rank(m.module) : 0;
      p.call[o] = CallModule{m.module, h_stride, m.offset, m.n};
      h_stride += rank;
      max_rank = std::max(max_rank, rank);
      max_n = std::max(max_n, m.n);
      y_fast = y_fast && m.n % 8 == 0 && m.offset % 4 == 0;
    }
    if (max_rank == 0 || max_n == 0) continue;
    // The expand keeps a tile's h rows in shared memory: 8 · kMaxLoraRank floats is 32 KiB, under 48 KiB.
    if (max_rank > kMaxLoraRank) throw std::invalid_argument("apply_adapters: an adapter's rank exceeds kMaxLoraRank");
    const int64_t h_floats = static_cast<int64_t>(r.rows.size()) * h_stride;
    const Split single = split_for(x_fast, false, k, singles, count, max_rank, h_floats);
    const Split multi = split_for(x_fast, true, k, multis, count, max_rank, h_floats);
    const int32_t parts = std::max(singles ? single.parts : 1, multis ? multi.parts : 1);
    r.reserve_h(static_cast<size_t>(h_floats) * static_cast<size_t>(parts), stream);
    p.h = r.h;
    p.h_stride = h_stride;
    p.split = single;
    run_class(bank.dtype(), false, 0, singles, p, x_fast, y_fast, count, max_rank, max_n, x, k, y, y_stride, stream);
    p.split = multi;
    run_class(bank.dtype(), true, singles, multis, p, x_fast, y_fast, count, max_rank, max_n, x, k, y, y_stride,
              stream);
  }
}

}  // namespace loraplex::cuda
