// Elementwise and small ops on the device (semantics in ../include/loraplex/ops.h and cuda/ops.h).
// Float4 paths run when the pointers and the row width allow; a scalar path covers every other size.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "loraplex/cuda/ops.h"

namespace loraplex::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;  // grid-stride loops cover the rest

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

inline int blocks_for(int64_t work) {
  return int(std::max<int64_t>(1, std::min(kMaxBlocks, (work + kThreads - 1) / kThreads)));
}

__device__ __forceinline__ int64_t global_thread() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t grid_threads() { return int64_t(gridDim.x) * blockDim.x; }

// Block-wide f32 sum; every thread gets the total. `scratch` holds one float per warp.
__device__ float block_sum(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();  // scratch may still be read from a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float t = lane < warps ? scratch[lane] : 0.f;
  for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
  return t;
}

// One block per row: r = 1 / sqrt(Σ x² / dim + eps); out = weight · (x · r). On the float4 path the row stays in
// registers (kRowItems float4 per thread covers dim ≤ 16384), so x is read once and all loads are in flight together.
constexpr int kRowItems = 16;

__global__ void __launch_bounds__(kThreads) rms_norm_kernel(const float* x, const float* weight, float* out,
                                                            int64_t dim, float eps, bool vec) {
  __shared__ float scratch[32];
  const float* row = x + int64_t(blockIdx.x) * dim;
  float* dst = out + int64_t(blockIdx.x) * dim;
  float ss = 0.f;
  if (vec) {
    const float4* r4 = reinterpret_cast<const float4*>(row);
    const int64_t n4 = dim / 4;
    float4 v[kRowItems];
#pragma unroll
    for (int j = 0; j < kRowItems; ++j) {
      const int64_t i = threadIdx.x + int64_t(j) * blockDim.x;
      v[j] = i < n4 ? r4[i] : make_float4(0.f, 0.f, 0.f, 0.f);
      ss += v[j].x * v[j].x + v[j].y * v[j].y + v[j].z * v[j].z + v[j].w * v[j].w;
    }
    const float r = 1.0f / sqrtf(block_sum(ss, scratch) / float(dim) + eps);
    const float4* w4 = reinterpret_cast<const float4*>(weight);
    float4* o4 = reinterpret_cast<float4*>(dst);
#pragma unroll
    for (int j = 0; j < kRowItems; ++j) {
      const int64_t i = threadIdx.x + int64_t(j) * blockDim.x;
      if (i < n4) {
        const float4 w = w4[i];
        o4[i] = make_float4(w.x * (v[j].x * r), w.y * (v[j].y * r), w.z * (v[j].z * r), w.w * (v[j].w * r));
      }
    }
    return;
  }
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss += row[i] * row[i];
  const float r = 1.0f / sqrtf(block_sum(ss, scratch) / float(dim) + eps);
  // out may alias x: each thread rewrites only the elements it read itself.
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = weight[i] * (row[i] * r);
}

// One warp per (row, head), in place.
__global__ void __launch_bounds__(kThreads) rms_norm_heads_kernel(float* x, int64_t rows, int64_t row_stride,
                                                                  int64_t offset, int64_t num_heads, int64_t head_dim,
                                                                  const float* weight, float eps) {
  const int64_t item = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (item >= rows * num_heads) return;  // whole warp leaves together
  const int lane = threadIdx.x % 32;
  float* head = x + (item / num_heads) * row_stride + offset + (item % num_heads) * head_dim;
  float ss = 0.f;
  for (int64_t i = lane; i < head_dim; i += 32) ss += head[i] * head[i];
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  const float r = 1.0f / sqrtf(ss / float(head_dim) + eps);
  for (int64_t i = lane; i < head_dim; i += 32) head[i] = weight[i] * (head[i] * r);
}

struct Silu {
  __device__ float operator()(float g) const { return g / (1.0f + expf(-g)); }
};
struct GeluTanh {
  __device__ float operator()(float g) const {
    const float inner = 0.7978845608028654f * (g + 0.044715f * (g * g * g));
    return 0.5f * g * (1.0f + tanhf(inner));
  }
};

// out[r, i] = act(gate[r, i]) · up[r, i]; gate_up rows are [gate | up]. `vec`: inter % 4 == 0 and aligned.
template <class Act>
__global__ void __launch_bounds__(kThreads) gated_mul_kernel(const float* gate_up, float* out, int64_t rows,
                                                             int64_t inter, bool vec) {
  const Act act;
  if (vec) {
    const int64_t q = inter / 4, total = rows * q;
    for (int64_t k = global_thread(); k < total; k += grid_threads()) {
      const int64_t r = k / q, c = k % q;
      const float4 g = reinterpret_cast<const float4*>(gate_up + r * 2 * inter)[c];
      const float4 u = reinterpret_cast<const float4*>(gate_up + r * 2 * inter + inter)[c];
      reinterpret_cast<float4*>(out + r * inter)[c] =
          make_float4(act(g.x) * u.x, act(g.y) * u.y, act(g.z) * u.z, act(g.w) * u.w);
    }
  } else {
    const int64_t total = rows * inter;
    for (int64_t k = global_thread(); k < total; k += grid_threads()) {
      const int64_t r = k / inter, c = k % inter;
      out[k] = act(gate_up[r * 2 * inter + c]) * gate_up[r * 2 * inter + inter + c];
    }
  }
}

struct AddOp {
  __device__ float operator()(float x, float y) const { return x + y; }
};
struct SoftcapOp {
  float cap;
  __device__ float operator()(float x, float) const { return cap * tanhf(x / cap); }
};
struct ScaleOp {
  float factor;
  __device__ float operator()(float x, float) const { return x * factor; }
};

// x[i] = op(x[i], y[i]) (y may be null for ops that ignore it). `vec`: x (and y) 16-byte aligned.
template <class Op>
__global__ void __launch_bounds__(kThreads) in_place_kernel(float* x, const float* y, int64_t length, Op op, bool vec) {
  int64_t done = 0;
  if (vec) {
    float4* x4 = reinterpret_cast<float4*>(x);
    const float4* y4 = reinterpret_cast<const float4*>(y);
    const int64_t n4 = length / 4;
    for (int64_t k = global_thread(); k < n4; k += grid_threads()) {
      float4 a = x4[k];
      const float4 b = y ? y4[k] : make_float4(0.f, 0.f, 0.f, 0.f);
      a = make_float4(op(a.x, b.x), op(a.y, b.y), op(a.z, b.z), op(a.w, b.w));
      x4[k] = a;
    }
    done = n4 * 4;
  }
  for (int64_t k = done + global_thread(); k < length; k += grid_threads()) x[k] = op(x[k], y ? y[k] : 0.f);
}

// The CPU's exact f16 → f32 widening (payloads of NaNs kept, subnormals exact).
__device__ __forceinline__ float f16_bits_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) bits = sign | 0x7f800000u | (mant << 13);
  else if (exp != 0) bits = sign | ((exp + 112) << 23) | (mant << 13);
  else if (mant == 0) bits = sign;
  else bits = __float_as_uint(float(mant) * 5.9604644775390625e-8f) | sign;
  return __uint_as_float(bits);
}

__device__ __forceinline__ float widen(DType dtype, const void* table, int64_t i) {
  if (dtype == DType::F32) return static_cast<const float*>(table)[i];
  const uint16_t bits = static_cast<const uint16_t*>(table)[i];
  return dtype == DType::F16 ? f16_bits_to_f32(bits) : __uint_as_float(uint32_t(bits) << 16);
}

// One block per token. Ids are checked on the host (check_embedding_ids); a negative one still reads NaN, not memory.
// `vec`: dim % 4 == 0 and table and out 16-byte aligned, so four elements move per load (16 or 8 bytes).
__global__ void __launch_bounds__(kThreads) embedding_kernel(const int32_t* ids, DType dtype, const void* table,
                                                             int64_t dim, float* out, bool vec) {
  const int32_t id = ids[blockIdx.x];
  float* dst = out + int64_t(blockIdx.x) * dim;
  if (id < 0) {
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) dst[d] = __int_as_float(0x7fc00000);
    return;
  }
  const int64_t base = int64_t(id) * dim;
  if (vec && dtype == DType::F32) {
    const float4* src = reinterpret_cast<const float4*>(static_cast<const float*>(table) + base);
    for (int64_t q = threadIdx.x; q < dim / 4; q += blockDim.x) reinterpret_cast<float4*>(dst)[q] = src[q];
  } else if (vec) {
    const uint2* src = reinterpret_cast<const uint2*>(static_cast<const uint16_t*>(table) + base);
    const bool f16 = dtype == DType::F16;
    for (int64_t q = threadIdx.x; q < dim / 4; q += blockDim.x) {
      const uint2 u = src[q];
      const uint16_t h[4] = {uint16_t(u.x & 0xffff), uint16_t(u.x >> 16), uint16_t(u.y & 0xffff), uint16_t(u.y >> 16)};
      float f[4];
#pragma unroll
      for (int k = 0; k < 4; ++k) f[k] = f16 ? f16_bits_to_f32(h[k]) : __uint_as_float(uint32_t(h[k]) << 16);
      reinterpret_cast<float4*>(dst)[q] = make_float4(f[0], f[1], f[2], f[3]);
    }
  } else {
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) dst[d] = widen(dtype, table, base + d);
  }
}

// One block per gathered row; a negative row index reads NaN (the caller's bug).
__global__ void __launch_bounds__(kThreads) gather_rows_kernel(const float* x, const int32_t* rows, int64_t dim,
                                                               float* out, bool vec) {
  const int32_t src = rows[blockIdx.x];
  float* dst = out + int64_t(blockIdx.x) * dim;
  if (src < 0) {
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) dst[d] = __int_as_float(0x7fc00000);
    return;
  }
  const float* row = x + int64_t(src) * dim;
  if (vec) {
    for (int64_t d = threadIdx.x; d < dim / 4; d += blockDim.x)
      reinterpret_cast<float4*>(dst)[d] = reinterpret_cast<const float4*>(row)[d];
  } else {
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) dst[d] = row[d];
  }
}

// Grid rows launched in chunks: gridDim.x may not exceed 2³¹ − 1.
constexpr int64_t kMaxGridX = 0x7fffffff;

}  // namespace

void rms_norm(const float* x, const float* weight, float* out, int64_t rows, int64_t dim, float eps,
              cudaStream_t stream) {
  if (rows <= 0 || dim <= 0) return;
  const bool vec = dim % 4 == 0 && dim / 4 <= int64_t(kThreads) * kRowItems && aligned16(x) && aligned16(weight) &&
                   aligned16(out);
  for (int64_t r0 = 0; r0 < rows; r0 += kMaxGridX) {
    const int64_t n = std::min(kMaxGridX, rows - r0);
    rms_norm_kernel<<<unsigned(n), kThreads, 0, stream>>>(x + r0 * dim, weight, out + r0 * dim, dim, eps, vec);
  }
}

void rms_norm_heads(float* x, int64_t rows, int64_t row_stride, int64_t offset, int64_t num_heads, int64_t head_dim,
                    const float* weight, float eps, cudaStream_t stream) {
  if (rows <= 0 || num_heads <= 0 || head_dim <= 0) return;
  constexpr int64_t kWarps = kThreads / 32;
  const int64_t blocks = (rows * num_heads + kWarps - 1) / kWarps;
  if (blocks > kMaxGridX) return;  // ~2·10¹⁰ heads: not a real shape
  rms_norm_heads_kernel<<<unsigned(blocks), kThreads, 0, stream>>>(x, rows, row_stride, offset, num_heads, head_dim,
                                                                    weight, eps);
}

void silu_mul(const float* gate_up, float* out, int64_t rows, int64_t inter, cudaStream_t stream) {
  if (rows <= 0 || inter <= 0) return;
  const bool vec = inter % 4 == 0 && aligned16(gate_up) && aligned16(out);
  gated_mul_kernel<Silu><<<blocks_for(rows * inter / (vec ? 4 : 1)), kThreads, 0, stream>>>(gate_up, out, rows, inter,
                                                                                              vec);
}

void gelu_tanh_mul(const float* gate_up, float* out, int64_t rows, int64_t inter, cudaStream_t stream) {
  if (rows <= 0 || inter <= 0) return;
  const bool vec = inter % 4 == 0 && aligned16(gate_up) && aligned16(out);
  gated_mul_kernel<GeluTanh><<<blocks_for(rows * inter / (vec ? 4 : 1)), kThreads, 0, stream>>>(gate_up, out, rows,
                                                                                                  inter, vec);
}

void add_in_place(float* x, const float* y, int64_t length, cudaStream_t stream) {
  if (length <= 0) return;
  const bool vec = aligned16(x) && aligned16(y);
  in_place_kernel<<<blocks_for(length / (vec ? 4 : 1)), kThreads, 0, stream>>>(x, y, length, AddOp{}, vec);
}

void softcap_in_place(float* x, int64_t length, float cap, cudaStream_t stream) {
  if (length <= 0) return;
  const bool vec = aligned16(x);
  in_place_kernel<<<blocks_for(length / (vec ? 4 : 1)), kThreads, 0, stream>>>(x, nullptr, length, SoftcapOp{cap},
                                                                               vec);
}

void scale_in_place(float* x, int64_t length, float factor, cudaStream_t stream) {
  if (length <= 0) return;
  const bool vec = aligned16(x);
  in_place_kernel<<<blocks_for(length / (vec ? 4 : 1)), kThreads, 0, stream>>>(x, nullptr, length, ScaleOp{factor},
                                                                               vec);
}

void embedding(const int32_t* ids, int64_t num_tokens, DType dtype, const void* table, int64_t dim, float* out,
               cudaStream_t stream) {
  if (num_tokens <= 0 || dim <= 0) return;
  const bool vec = dim % 4 == 0 && aligned16(table) && aligned16(out);
  for (int64_t t0 = 0; t0 < num_tokens; t0 += kMaxGridX) {
    const int64_t n = std::min(kMaxGridX, num_tokens - t0);
    embedding_kernel<<<unsigned(n), kThreads, 0, stream>>>(ids + t0, dtype, table, dim, out + t0 * dim, vec);
  }
}

void gather_rows(const float* x, const int32_t* rows, int64_t num_rows, int64_t dim, float* out, cudaStream_t stream) {
  if (num_rows <= 0 || dim <= 0) return;
  const bool vec = dim % 4 == 0 && aligned16(x) && aligned16(out);
  for (int64_t r0 = 0; r0 < num_rows; r0 += kMaxGridX) {
    const int64_t n = std::min(kMaxGridX, num_rows - r0);
    gather_rows_kernel<<<unsigned(n), kThreads, 0, stream>>>(x, rows + r0, dim, out + r0 * dim, vec);
  }
}

}  // namespace loraplex::cuda
