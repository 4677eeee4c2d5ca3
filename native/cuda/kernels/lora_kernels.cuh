// The device side shared by the shrink and expand kernels (lora_shrink.cuh, lora_expand.cuh): launch limits,
// the per-launch parameters, weight loaders that widen bf16 / f16 exactly, and small helpers.
// Included by lora_apply.cu only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "lora_rows.cuh"

namespace loraplex::cuda {
namespace {  // included by lora_apply.cu only

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

}  // namespace
}  // namespace loraplex::cuda
