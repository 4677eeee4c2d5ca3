// apply_adapters on the device: two launches per call, each covering every module of the call.
//   shrink: h[row, h_offset_m + j] = Σ_k x[row, k] · A[j, k]              one block per (tile, module, 16 ranks)
//   expand: y[row, offset_m + n] = (y + scale · Σ_j h[row, j] · Bt[j, n]) · s[n]   one block per (tile, module, columns)
// A block reads its slot's descriptor and leaves at once where the slot does not target the module or its
// rank ends below the block's ranks, so a call with mixed ranks pays for each slot's own rank only. Decode
// tiles are one row of one slot (BGMV); prefill segments are tiles of up to 8 rows sharing each weight read
// (SGMV). The fast kernels read 8 weights per 16-byte load and need K, N multiples of 8 and aligned x, y;
// other shapes run the plain kernels (same arithmetic, scalar loads).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "lora_rows.cuh"

namespace loraplex::cuda {

namespace {

constexpr int kMaxCallModules = 8;  // modules per launch; longer calls launch once per 8
constexpr int kShrinkWarps = 8;
constexpr int kWarpRanks = 2;                             // ranks j per warp in the fast shrink
constexpr int kShrinkRanks = kShrinkWarps * kWarpRanks;   // per block
constexpr int kExpandThreads = 128;
constexpr int kExpandColumns = kExpandThreads * 8;        // 8 columns per thread in the fast expand
constexpr int kPlainExpandColumns = 256;                  // one column per thread in the plain expand

struct CallModule {
  int32_t module;    // in the bank
  int32_t h_offset;  // its ranks' first column in h
  int64_t y_offset;
  int64_t n;
};

struct CallModules {
  CallModule m[kMaxCallModules];
};

// Weight storage: W = 0 f32, 1 bf16, 2 f16 (16-bit kinds widened exactly).
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

__device__ __forceinline__ void unpack2(uint32_t bits, int w, float& lo, float& hi) {
  if (w == 1) {
    lo = __uint_as_float(bits << 16);
    hi = __uint_as_float(bits & 0xffff0000u);
  } else {
    lo = __half2float(__ushort_as_half(static_cast<unsigned short>(bits & 0xffffu)));
    hi = __half2float(__ushort_as_half(static_cast<unsigned short>(bits >> 16)));
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

__device__ __forceinline__ void load8(const float* p, float (&out)[8]) {
  const float4 a = *reinterpret_cast<const float4*>(p), b = *reinterpret_cast<const float4*>(p + 4);
  out[0] = a.x; out[1] = a.y; out[2] = a.z; out[3] = a.w;
  out[4] = b.x; out[5] = b.y; out[6] = b.z; out[7] = b.w;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The block's tile and its slot's descriptor for call module `o`; rank 0 when there is nothing to do.
__device__ __forceinline__ LoraModuleDesc tile_desc(const LoraModuleDesc* descs, int32_t num_slots,
                                                    int32_t bank_modules, const LoraTile& tile, int32_t module) {
  if (tile.slot < 0 || tile.slot >= num_slots || module < 0 || module >= bank_modules) {
    LoraModuleDesc none{};
    return none;
  }
  return descs[static_cast<int64_t>(tile.slot) * bank_modules + module];
}

// ── shrink ─────────────────────────────────────────────────────────────────────────────────────────────

// One warp: ranks j0, j0 + 1 for the tile's R (≥ count) rows; lanes split K in vectors of 8. Rows past
// `count` repeat the last row (cached loads) and are not written.
template <int W, int R>
__device__ __forceinline__ void shrink_warp(const LoraModuleDesc& d, const int32_t* rows, const LoraTile& tile,
                                            const float* x, int64_t k, float* h, int64_t h_stride, int32_t h_offset,
                                            int j0, int lane) {
  const float* xr[R];
#pragma unroll
  for (int i = 0; i < R; ++i) xr[i] = x + static_cast<int64_t>(rows[tile.first + min(i, tile.count - 1)]) * k;
  const int j1 = min(j0 + 1, d.rank - 1);  // rank 1: the second rank repeats the first and is not written
  const void* a0 = static_cast<const unsigned char*>(d.a) + static_cast<int64_t>(j0) * k * (W == 0 ? 4 : 2);
  const void* a1 = static_cast<const unsigned char*>(d.a) + static_cast<int64_t>(j1) * k * (W == 0 ? 4 : 2);
  float acc[R][kWarpRanks];
#pragma unroll
  for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = 0.f;
#pragma unroll 4
  for (int64_t at = static_cast<int64_t>(lane) * 8; at < k; at += 32 * 8) {
    float w0[8], w1[8];
    load8<W>(a0, at, w0);
    load8<W>(a1, at, w1);
#pragma unroll
    for (int i = 0; i < R; ++i) {
      float xv[8];
      load8(xr[i] + at, xv);
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
      float* out = h + static_cast<int64_t>(tile.first + i) * h_stride + h_offset + j0;
      out[0] = s0;
      if (j0 + 1 < d.rank) out[1] = s1;
    }
  }
}

// grid (tiles, call modules, ceil(max rank / kShrinkRanks)); kShrinkWarps warps. K % 8 == 0, x 16-byte aligned.
template <int W>
__global__ void __launch_bounds__(kShrinkWarps * 32)
    shrink_fast(const LoraModuleDesc* __restrict__ descs, int32_t num_slots, int32_t bank_modules,
                const LoraTile* __restrict__ tiles, const int32_t* __restrict__ rows, const float* __restrict__ x,
                int64_t k, float* __restrict__ h, int64_t h_stride, CallModules call) {
  const LoraTile tile = tiles[blockIdx.x];
  const CallModule cm = call.m[blockIdx.y];
  const LoraModuleDesc d = tile_desc(descs, num_slots, bank_modules, tile, cm.module);
  const int j0 = static_cast<int>(blockIdx.z) * kShrinkRanks + static_cast<int>(threadIdx.x / 32) * kWarpRanks;
  if (d.rank <= 0 || j0 >= d.rank || d.in_features != k) return;  // warp-uniform; no block barrier follows
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (tile.count == 1) shrink_warp<W, 1>(d, rows, tile, x, k, h, h_stride, cm.h_offset, j0, lane);
  else if (tile.count == 2) shrink_warp<W, 2>(d, rows, tile, x, k, h, h_stride, cm.h_offset, j0, lane);
  else if (tile.count <= 4) shrink_warp<W, 4>(d, rows, tile, x, k, h, h_stride, cm.h_offset, j0, lane);
  else shrink_warp<W, kLoraTileRows>(d, rows, tile, x, k, h, h_stride, cm.h_offset, j0, lane);
}

// Any K and alignment: one warp per rank j, scalar loads. Same grid as shrink_fast.
template <int W>
__global__ void __launch_bounds__(kShrinkWarps * 32)
    shrink_plain(const LoraModuleDesc* __restrict__ descs, int32_t num_slots, int32_t bank_modules,
                 const LoraTile* __restrict__ tiles, const int32_t* __restrict__ rows, const float* __restrict__ x,
                 int64_t k, float* __restrict__ h, int64_t h_stride, CallModules call) {
  const LoraTile tile = tiles[blockIdx.x];
  const CallModule cm = call.m[blockIdx.y];
  const LoraModuleDesc d = tile_desc(descs, num_slots, bank_modules, tile, cm.module);
  const int warp = static_cast<int>(threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);
  if (d.rank <= 0 || d.in_features != k) return;
  for (int j = static_cast<int>(blockIdx.z) * kShrinkRanks + warp; j < min(d.rank, (static_cast<int>(blockIdx.z) + 1) * kShrinkRanks);
       j += kShrinkWarps) {
    for (int i = 0; i < tile.count; ++i) {
      const float* xr = x + static_cast<int64_t>(rows[tile.first + i]) * k;
      float acc = 0.f;
      for (int64_t at = lane; at < k; at += 32) acc = fmaf(xr[at], widen<W>(d.a, static_cast<int64_t>(j) * k + at), acc);
      acc = warp_sum(acc);
      if (lane == 0) h[static_cast<int64_t>(tile.first + i) * h_stride + cm.h_offset + j] = acc;
    }
  }
}

// ── expand ─────────────────────────────────────────────────────────────────────────────────────────────

// One thread: 8 columns [n, n + 8) of the tile's R (≥ count) rows. h reads are block-uniform (broadcast).
template <int W, int R>
__device__ __forceinline__ void expand_thread(const LoraModuleDesc& d, const int32_t* rows, const LoraTile& tile,
                                              const float* h, int64_t h_stride, const CallModule& cm, float* y,
                                              int64_t y_stride, int64_t n) {
  const float* hr[R];
#pragma unroll
  for (int i = 0; i < R; ++i) hr[i] = h + static_cast<int64_t>(tile.first + min(i, tile.count - 1)) * h_stride + cm.h_offset;
  float acc[R][8];
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int c = 0; c < 8; ++c) acc[i][c] = 0.f;
  const int64_t ldb = d.out_features;
#pragma unroll 4
  for (int j = 0; j < d.rank; ++j) {
    float b[8];
    load8<W>(d.bt, static_cast<int64_t>(j) * ldb + n, b);
#pragma unroll
    for (int i = 0; i < R; ++i) {
      const float hv = __ldg(hr[i] + j);
#pragma unroll
      for (int c = 0; c < 8; ++c) acc[i][c] = fmaf(hv, b[c], acc[i][c]);
    }
  }
  float s[8];
  if (d.out_scale) {
    const float4 a = __ldg(reinterpret_cast<const float4*>(d.out_scale + n));
    const float4 b = __ldg(reinterpret_cast<const float4*>(d.out_scale + n + 4));
    s[0] = a.x; s[1] = a.y; s[2] = a.z; s[3] = a.w; s[4] = b.x; s[5] = b.y; s[6] = b.z; s[7] = b.w;
  }
#pragma unroll
  for (int i = 0; i < R; ++i) {
    if (i >= tile.count) break;
    float* yr = y + static_cast<int64_t>(rows[tile.first + i]) * y_stride + cm.y_offset + n;
    float v[8];
    load8(yr, v);
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      v[c] = fmaf(d.scale, acc[i][c], v[c]);
      if (d.out_scale) v[c] *= s[c];
    }
    reinterpret_cast<float4*>(yr)[0] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4*>(yr)[1] = make_float4(v[4], v[5], v[6], v[7]);
  }
}

// grid (tiles, call modules, ceil(max N / kExpandColumns)). N % 8 == 0; y, y_stride, offsets 16-byte aligned.
template <int W>
__global__ void __launch_bounds__(kExpandThreads)
    expand_fast(const LoraModuleDesc* __restrict__ descs, int32_t num_slots, int32_t bank_modules,
                const LoraTile* __restrict__ tiles, const int32_t* __restrict__ rows, const float* __restrict__ h,
                int64_t h_stride, float* __restrict__ y, int64_t y_stride, CallModules call) {
  const LoraTile tile = tiles[blockIdx.x];
  const CallModule cm = call.m[blockIdx.y];
  const LoraModuleDesc d = tile_desc(descs, num_slots, bank_modules, tile, cm.module);
  const int64_t n = static_cast<int64_t>(blockIdx.z) * kExpandColumns + static_cast<int64_t>(threadIdx.x) * 8;
  if (d.rank <= 0 || d.out_features != cm.n || n >= cm.n) return;  // Bt's row length is the call's N
  if (tile.count == 1) expand_thread<W, 1>(d, rows, tile, h, h_stride, cm, y, y_stride, n);
  else if (tile.count == 2) expand_thread<W, 2>(d, rows, tile, h, h_stride, cm, y, y_stride, n);
  else if (tile.count <= 4) expand_thread<W, 4>(d, rows, tile, h, h_stride, cm, y, y_stride, n);
  else expand_thread<W, kLoraTileRows>(d, rows, tile, h, h_stride, cm, y, y_stride, n);
}

// Any N and alignment: one column per thread. grid (tiles, call modules, ceil(max N / kPlainExpandColumns)).
template <int W>
__global__ void __launch_bounds__(kPlainExpandColumns)
    expand_plain(const LoraModuleDesc* __restrict__ descs, int32_t num_slots, int32_t bank_modules,
                 const LoraTile* __restrict__ tiles, const int32_t* __restrict__ rows, const float* __restrict__ h,
                 int64_t h_stride, float* __restrict__ y, int64_t y_stride, CallModules call) {
  const LoraTile tile = tiles[blockIdx.x];
  const CallModule cm = call.m[blockIdx.y];
  const LoraModuleDesc d = tile_desc(descs, num_slots, bank_modules, tile, cm.module);
  const int64_t n = static_cast<int64_t>(blockIdx.z) * kPlainExpandColumns + threadIdx.x;
  if (d.rank <= 0 || d.out_features != cm.n || n >= cm.n) return;  // Bt's row length is the call's N
  for (int i = 0; i < tile.count; ++i) {
    const float* hr = h + static_cast<int64_t>(tile.first + i) * h_stride + cm.h_offset;
    float acc = 0.f;
    for (int j = 0; j < d.rank; ++j) acc = fmaf(hr[j], widen<W>(d.bt, static_cast<int64_t>(j) * d.out_features + n), acc);
    float* yr = y + static_cast<int64_t>(rows[tile.first + i]) * y_stride + cm.y_offset + n;
    float v = fmaf(d.scale, acc, *yr);
    if (d.out_scale) v *= d.out_scale[n];
    *yr = v;
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

int dtype_index(LoraDtype d) { return d == LoraDtype::F32 ? 0 : d == LoraDtype::Bf16 ? 1 : 2; }

// Launches one phase's kernel for the bank's dtype.
template <template <int> class Launch, typename... Args>
void for_dtype(LoraDtype dtype, Args&&... args) {
  switch (dtype_index(dtype)) {
    case 0: Launch<0>::run(args...); break;
    case 1: Launch<1>::run(args...); break;
    default: Launch<2>::run(args...); break;
  }
}

template <int W>
struct ShrinkLaunch {
  static void run(bool fast, dim3 grid, cudaStream_t stream, const LoraModuleDesc* descs, int32_t num_slots,
                  int32_t bank_modules, const LoraTile* tiles, const int32_t* rows, const float* x, int64_t k,
                  float* h, int64_t h_stride, const CallModules& call) {
    if (fast)
      shrink_fast<W><<<grid, kShrinkWarps * 32, 0, stream>>>(descs, num_slots, bank_modules, tiles, rows, x, k, h,
                                                             h_stride, call);
    else
      shrink_plain<W><<<grid, kShrinkWarps * 32, 0, stream>>>(descs, num_slots, bank_modules, tiles, rows, x, k, h,
                                                              h_stride, call);
  }
};

template <int W>
struct ExpandLaunch {
  static void run(bool fast, dim3 grid, cudaStream_t stream, const LoraModuleDesc* descs, int32_t num_slots,
                  int32_t bank_modules, const LoraTile* tiles, const int32_t* rows, const float* h, int64_t h_stride,
                  float* y, int64_t y_stride, const CallModules& call) {
    if (fast)
      expand_fast<W><<<grid, kExpandThreads, 0, stream>>>(descs, num_slots, bank_modules, tiles, rows, h, h_stride,
                                                          y, y_stride, call);
    else
      expand_plain<W><<<grid, kPlainExpandColumns, 0, stream>>>(descs, num_slots, bank_modules, tiles, rows, h,
                                                                h_stride, y, y_stride, call);
  }
};

}  // namespace

void apply_adapters(const DeviceLoraBank& bank, const DeviceLoraRows& rows, const float* x, int64_t k, float* y,
                    int64_t y_stride, const LoraModuleOutput* modules, int64_t num_modules, cudaStream_t stream) {
  DeviceLoraRows::Impl& r = rows.impl();
  if (r.tiles.empty() || num_modules <= 0) return;
  check_cuda(cudaStreamWaitEvent(stream, bank.ready(), 0), "cudaStreamWaitEvent (lora ready)");
  const LoraDtype dtype = bank.dtype();
  const unsigned tiles = static_cast<unsigned>(r.tiles.size());
  const bool x_fast = k % 8 == 0 && aligned16(x);
  for (int64_t first = 0; first < num_modules; first += kMaxCallModules) {
    const int64_t count = std::min<int64_t>(kMaxCallModules, num_modules - first);
    CallModules call{};
    int32_t h_stride = 0, max_rank = 0;
    int64_t max_n = 0;
    bool y_fast = aligned16(y) && y_stride % 4 == 0;
    for (int64_t o = 0; o < kMaxCallModules; ++o) {
      if (o >= count) {
        call.m[o] = CallModule{-1, 0, 0, 0};  // never indexed: grid.y == count
        continue;
      }
      const LoraModuleOutput& m = modules[first + o];
      const int32_t rank = m.module >= 0 && m.module < bank.num_modules() ? bank.max_rank(m.module) : 0;
      call.m[o] = CallModule{m.module, h_stride, m.offset, m.n};
      h_stride += rank;
      max_rank = std::max(max_rank, rank);
      max_n = std::max(max_n, m.n);
      y_fast = y_fast && m.n % 8 == 0 && m.offset % 4 == 0;
    }
    if (max_rank == 0 || max_n == 0) continue;
    r.reserve_h(r.rows.size() * static_cast<size_t>(h_stride), stream);
    const dim3 shrink_grid(tiles, static_cast<unsigned>(count),
                           static_cast<unsigned>((max_rank + kShrinkRanks - 1) / kShrinkRanks));
    for_dtype<ShrinkLaunch>(dtype, x_fast, shrink_grid, stream, bank.device_descs(), bank.num_slots(),
                            bank.num_modules(), r.device_tiles, r.device_rows, x, k, r.h,
                            static_cast<int64_t>(h_stride), call);
    const int64_t columns = y_fast ? kExpandColumns : kPlainExpandColumns;
    const dim3 expand_grid(tiles, static_cast<unsigned>(count), static_cast<unsigned>((max_n + columns - 1) / columns));
    for_dtype<ExpandLaunch>(dtype, y_fast, expand_grid, stream, bank.device_descs(), bank.num_slots(),
                            bank.num_modules(), r.device_tiles, r.device_rows, r.h, static_cast<int64_t>(h_stride),
                            y, y_stride, call);
  }
}

}  // namespace loraplex::cuda
