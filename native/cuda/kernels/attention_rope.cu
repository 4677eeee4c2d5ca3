// RoPE (rotate-half, partial rotary) on q and k, then the cache write of k and v: one block per token.
// Bit-exact with the CPU kernel (../../src/cpu/attention_rope.cpp): cos/sin in double rounded to f32 (as its
// float(std::cos(double(angle)))), every product and sum rounded separately (__fmul_rn/__fadd_rn: no FMA
// contraction), and bf16 rounding by the same integer rule as loraplex::f32_to_bf16.
#include "loraplex/cuda/attention.h"

namespace loraplex::cuda {

namespace {

constexpr int kRopeThreads = 256;
constexpr int kMaxHalf = 1024;  // R/2 ≤ D/2; check_attention_shape bounds nothing, so the host checks this

__device__ __forceinline__ uint16_t bf16_bits(float value) {
  const uint32_t x = __float_as_uint(value);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40u);
  return uint16_t((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// qkv [T, (Hq+2Hkv)·D] → q_out [T, Hq·D], caches [rows, Hkv·D] at row slot[t] (skipped when -1).
__global__ void __launch_bounds__(kRopeThreads)
    rope_cache_kernel(const float* __restrict__ qkv, int hq, int hkv, int head_dim, int half,
                      const int32_t* __restrict__ positions, const float* __restrict__ inv_freq,
                      float* __restrict__ q_out, void* __restrict__ k_cache, void* __restrict__ v_cache, bool bf16,
                      const int32_t* __restrict__ slot_mapping) {
  __shared__ float cos_t[kMaxHalf];
  __shared__ float sin_t[kMaxHalf];
  const int64_t t = blockIdx.x;
  const float pos = float(positions[t]);  // as torch's position_ids.float()
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    const float angle = __fmul_rn(pos, inv_freq[i]);
    double s, c;
    sincos(double(angle), &s, &c);
    cos_t[i] = float(c);
    sin_t[i] = float(s);
  }
  __syncthreads();

  const int D = head_dim;
  const int64_t slot = slot_mapping[t];
  const int64_t kv_width = int64_t(hkv) * D;
  const float* row = qkv + t * int64_t(hq + 2 * hkv) * D;
  // Padding tokens (slot -1) only produce q.
  const int elems = (slot >= 0 ? hq + 2 * hkv : hq) * D;
  for (int e = threadIdx.x; e < elems; e += blockDim.x) {
    const int head = e / D, i = e % D;
    const float* x = row + int64_t(head) * D;
    float y;
    if (head >= hq + hkv || i >= 2 * half) {
      y = x[i];  // v, or a dim past the rotary ones
    } else if (i < half) {
      y = __fsub_rn(__fmul_rn(x[i], cos_t[i]), __fmul_rn(x[i + half], sin_t[i]));
    } else {
      const int j = i - half;
      y = __fadd_rn(__fmul_rn(x[i], cos_t[j]), __fmul_rn(x[j], sin_t[j]));
    }
    if (head < hq) {
      q_out[(t * hq + head) * D + i] = y;
      continue;
    }
    const bool is_k = head < hq + hkv;
    const int64_t offset = slot * kv_width + int64_t(is_k ? head - hq : head - hq - hkv) * D + i;
    void* cache = is_k ? k_cache : v_cache;
    if (bf16)
      static_cast<uint16_t*>(cache)[offset] = bf16_bits(y);
    else
      static_cast<float*>(cache)[offset] = y;
  }
}

}  // namespace

void rope_and_cache_write(const float* qkv, int64_t num_tokens, const AttentionShape& shape, const int32_t* positions,
                          const float* inv_freq, float* q_out, void* k_cache, void* v_cache, KvDtype kv_dtype,
                          const int32_t* slot_mapping, cudaStream_t stream) {
  if (num_tokens <= 0) return;
  const int half = (shape.rotary_dim > 0 ? shape.rotary_dim : shape.head_dim) / 2;
  if (half > kMaxHalf || num_tokens > int64_t(INT32_MAX))
    throw std::runtime_error("rope_and_cache_write: rotary dim above 2048 or more than 2^31 tokens");
  rope_cache_kernel<<<unsigned(num_tokens), kRopeThreads, 0, stream>>>(
      qkv, shape.num_heads, shape.num_kv_heads, shape.head_dim, half, positions, inv_freq, q_out, k_cache, v_cache,
      kv_dtype == KvDtype::Bf16, slot_mapping);
}

}  // namespace loraplex::cuda
