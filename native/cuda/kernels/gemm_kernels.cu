// The built-in GEMM kernels and their launchers (interface and choice of kernel in gemm_kernels.h):
//   gemv_kernel     M ≤ kGemvMaxRows (decode): one warp per 4 output columns streams W rows; every dtype.
//   sgemm_kernel    f32 W: 64×64 shared-memory tiles, 4×4 outputs per thread, exact f32 FMAs.
//   wmma_kernel     bf16/f16 W: tensor cores (nvcuda::wmma 16×16×16, f32 accumulate), x rounded to W's dtype
//                   as its tile is staged; K padded with zeros in shared memory.
//   round_kernel, bias_kernel: x to 16 bits (for cuBLAS), y += bias (after cuBLAS).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <cstdint>

#include "gemm_kernels.h"

namespace loraplex::cuda::gemm_kernels {
namespace {

// ── 16-bit element helpers: tiles hold raw bit patterns (uint16_t); Tag picks the format. ──
struct Bf16Tag {
  using Wmma = __nv_bfloat16;
  static __device__ uint16_t round(float v) { return __bfloat16_as_ushort(__float2bfloat16_rn(v)); }
  static __device__ float widen(uint16_t b) { return __bfloat162float(__ushort_as_bfloat16(b)); }
};
struct F16Tag {
  using Wmma = __half;
  static __device__ uint16_t round(float v) { return __half_as_ushort(__float2half_rn(v)); }
  static __device__ float widen(uint16_t b) { return __half2float(__ushort_as_half(b)); }
};
struct F32Tag {};

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
inline unsigned blocks_for(int64_t n, int threads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 65536 ? (b > 0 ? b : 1) : 65536);  // grid-stride loops cover the rest
}

// ── Elementwise ──

template <typename Tag>
__global__ void round_kernel(const float* __restrict__ x, uint16_t* __restrict__ out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = Tag::round(x[i]);
}

// y[m, n] += bias[n]
__global__ void bias_kernel(float* __restrict__ y, const float* __restrict__ bias, int64_t m, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < m * n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += bias[i % n];
}

// ── GEMV for few rows: block = 8 warps × 4 columns; x staged in shared memory by K chunks (as f32, already
// rounded to W's dtype); each lane keeps kGemvLoads vector loads of W in flight per column. ──

constexpr int kGemvWarps = 8, kGemvCols = 4, kGemvLoads = 4;
constexpr int kGemvColsPerBlock = kGemvWarps * kGemvCols;

template <typename Tag>
struct GemvTraits {  // 16-bit: 8 elements per 16-byte load
  static constexpr int kVec = 8;
  static __device__ float x_value(float v) { return Tag::widen(Tag::round(v)); }
  static __device__ float w_value(const void* w, int64_t i) { return Tag::widen(static_cast<const uint16_t*>(w)[i]); }
  static __device__ uint4 w_vector(const void* w, int64_t i) {
    return *reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(w) + i);
  }
  static __device__ void unpack(const uint4& v, float out[kVec]) {
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int j = 0; j < 4; j++) {
      out[2 * j] = Tag::widen(static_cast<uint16_t>(words[j] & 0xffffu));
      out[2 * j + 1] = Tag::widen(static_cast<uint16_t>(words[j] >> 16));
    }
  }
};
template <>
struct GemvTraits<F32Tag> {  // f32: 4 elements per 16-byte load
  static constexpr int kVec = 4;
  static __device__ float x_value(float v) { return v; }
  static __device__ float w_value(const void* w, int64_t i) { return static_cast<const float*>(w)[i]; }
  static __device__ uint4 w_vector(const void* w, int64_t i) {
    return *reinterpret_cast<const uint4*>(static_cast<const float*>(w) + i);
  }
  static __device__ void unpack(const uint4& v, float out[kVec]) {
    out[0] = __uint_as_float(v.x), out[1] = __uint_as_float(v.y), out[2] = __uint_as_float(v.z),
    out[3] = __uint_as_float(v.w);
  }
};

constexpr int kGemvMaxChunk = 32 * 8 * kGemvLoads;  // K elements staged per pass (16-bit case)

template <typename Tag>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_kernel(const float* __restrict__ x, int m, int64_t k, const void* __restrict__ w, int64_t n,
                float* __restrict__ y, const float* __restrict__ bias, bool vectorized) {
  using T = GemvTraits<Tag>;
  constexpr int kChunk = 32 * T::kVec * kGemvLoads;
  __shared__ __align__(16) float xs[kGemvMaxRows][kGemvMaxChunk];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t n0 = blockIdx.x * int64_t(kGemvColsPerBlock) + warp * kGemvCols;
  float acc[kGemvCols][kGemvMaxRows] = {};

  for (int64_t k0 = 0; k0 < k; k0 += kChunk) {
    const int len = static_cast<int>(k - k0 < kChunk ? k - k0 : kChunk);
    __syncthreads();  // the previous chunk is consumed
    for (int i = threadIdx.x; i < m * kChunk; i += blockDim.x) {
      const int r = i / kChunk, c = i % kChunk;
      xs[r][c] = c < len ? T::x_value(x[r * k + k0 + c]) : 0.f;
    }
    __syncthreads();
    if (vectorized) {  // k % kVec == 0 and W 16-byte aligned: every vector starting before len is whole
      uint4 raw[kGemvCols][kGemvLoads];  // all of the warp's loads for this chunk in flight at once
#pragma unroll
      for (int col = 0; col < kGemvCols; col++)
#pragma unroll
        for (int l = 0; l < kGemvLoads; l++) {
          const int c = (l * 32 + lane) * T::kVec;
          raw[col][l] = n0 + col < n && c < len ? T::w_vector(w, (n0 + col) * k + k0 + c) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
      for (int col = 0; col < kGemvCols; col++)
#pragma unroll
        for (int l = 0; l < kGemvLoads; l++) {
          const int c = (l * 32 + lane) * T::kVec;
          if (n0 + col >= n || c >= len) continue;
          float wv[T::kVec];
          T::unpack(raw[col][l], wv);
#pragma unroll
          for (int r = 0; r < kGemvMaxRows; r++) {
            if (r >= m) break;
#pragma unroll
            for (int e = 0; e < T::kVec; e += 4) {  // 16-byte shared loads: lanes read disjoint vectors
              const float4 xv = *reinterpret_cast<const float4*>(&xs[r][c + e]);
              acc[col][r] = fmaf(wv[e], xv.x, acc[col][r]);
              acc[col][r] = fmaf(wv[e + 1], xv.y, acc[col][r]);
              acc[col][r] = fmaf(wv[e + 2], xv.z, acc[col][r]);
              acc[col][r] = fmaf(wv[e + 3], xv.w, acc[col][r]);
            }
          }
        }
    } else {
#pragma unroll
      for (int col = 0; col < kGemvCols; col++) {
        if (n0 + col >= n) continue;
        for (int c = lane; c < len; c += 32) {
          const float wv = T::w_value(w, (n0 + col) * k + k0 + c);
#pragma unroll
          for (int r = 0; r < kGemvMaxRows; r++)
            if (r < m) acc[col][r] = fmaf(wv, xs[r][c], acc[col][r]);
        }
      }
    }
  }
#pragma unroll
  for (int col = 0; col < kGemvCols; col++) {
    const int64_t nn = n0 + col;
#pragma unroll
    for (int r = 0; r < kGemvMaxRows; r++) {
      float v = acc[col][r];
#pragma unroll
      for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
      if (lane == 0 && r < m && nn < n) y[r * n + nn] = v + (bias ? bias[nn] : 0.f);
    }
  }
}

// ── f32 SIMT GEMM: 64×64 tile per block of 256 threads, 4×4 outputs per thread, K in steps of 16. ──

constexpr int kSgTile = 64, kSgK = 16, kSgThreads = 256;

__global__ void __launch_bounds__(kSgThreads)
    sgemm_kernel(const float* __restrict__ x, int64_t m, int64_t k, const float* __restrict__ w, int64_t n,
                 float* __restrict__ y, const float* __restrict__ bias) {
  __shared__ float xs[kSgK][kSgTile + 4];  // [k][row]
  __shared__ float ws[kSgK][kSgTile + 4];  // [k][column]
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t m0 = blockIdx.y * int64_t(kSgTile), n0 = blockIdx.x * int64_t(kSgTile);
  const int load_row = tid / 4, load_k = (tid % 4) * 4;  // each thread stages 4 consecutive k of one row
  float acc[4][4] = {};

  for (int64_t k0 = 0; k0 < k; k0 += kSgK) {
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int64_t kk = k0 + load_k + j, xr = m0 + load_row, wr = n0 + load_row;
      xs[load_k + j][load_row] = xr < m && kk < k ? x[xr * k + kk] : 0.f;
      ws[load_k + j][load_row] = wr < n && kk < k ? w[wr * k + kk] : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kSgK; kk++) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; i++) a[i] = xs[kk][ty * 4 + i], b[i] = ws[kk][tx * 4 + i];
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int64_t r = m0 + ty * 4 + i;
    if (r >= m) break;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int64_t c = n0 + tx * 4 + j;
      if (c < n) y[r * n + c] = acc[i][j] + (bias ? bias[c] : 0.f);
    }
  }
}

// ── Tensor-core GEMM: BM×BN tile per block of 4 warps (2×2), K in steps of BK. The next K step is loaded
// into registers while the current one is multiplied from shared memory. ──

constexpr int kTcPad = 8, kTcThreads = 128;

template <typename Tag, int BM, int BN, int BK>
__global__ void __launch_bounds__(kTcThreads)
    wmma_kernel(const float* __restrict__ x, int64_t m, int64_t k, const uint16_t* __restrict__ w, int64_t n,
                float* __restrict__ y, const float* __restrict__ bias, bool x_vec, bool w_vec) {
  using namespace nvcuda;
  using Wmma = typename Tag::Wmma;
  constexpr int kLd = BK + kTcPad;                   // rows stay 16-byte (and fragments 32-byte) aligned
  constexpr int kChunks = BK / 8;                    // 8-element chunks per tile row
  constexpr int kXLoads = BM * kChunks / kTcThreads;  // chunks per thread
  constexpr int kWLoads = BN * kChunks / kTcThreads;
  constexpr int kWM = BM / 2, kWN = BN / 2, kFM = kWM / 16, kFN = kWN / 16;
  constexpr int kLdC = BN + 4;
  constexpr int kTileBytes = (BM + BN) * kLd * 2, kCBytes = BM * kLdC * 4;
  static_assert(kXLoads >= 1 && kWLoads >= 1 && BM * kChunks % kTcThreads == 0 && BN * kChunks % kTcThreads == 0);
  __shared__ __align__(128) unsigned char smem[kTileBytes > kCBytes ? kTileBytes : kCBytes];
  uint16_t* xs = reinterpret_cast<uint16_t*>(smem);  // [BM][kLd]
  uint16_t* ws = xs + BM * kLd;                       // [BN][kLd]
  float* cs = reinterpret_cast<float*>(smem);         // [BM][kLdC], after the K loop

  const int tid = threadIdx.x, warp = tid / 32, wm = warp / 2, wn = warp % 2;
  const int64_t m0 = blockIdx.y * int64_t(BM), n0 = blockIdx.x * int64_t(BN);
  uint4 xr[kXLoads], wr[kWLoads];

  // Chunk c of a tile: row c / kChunks, 8 elements from k0 + (c % kChunks)·8; zeros past the edges.
  auto load = [&](int64_t k0) {
#pragma unroll
    for (int i = 0; i < kXLoads; i++) {
      const int c = tid + i * kTcThreads;
      const int64_t row = m0 + c / kChunks, kk = k0 + (c % kChunks) * 8;
      uint16_t h[8];
      if (row < m && x_vec && kk + 8 <= k) {
        const float4 a = *reinterpret_cast<const float4*>(x + row * k + kk);
        const float4 b = *reinterpret_cast<const float4*>(x + row * k + kk + 4);
        const float f[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
        for (int e = 0; e < 8; e++) h[e] = Tag::round(f[e]);
      } else {
#pragma unroll
        for (int e = 0; e < 8; e++) h[e] = row < m && kk + e < k ? Tag::round(x[row * k + kk + e]) : uint16_t(0);
      }
      xr[i] = make_uint4(h[0] | uint32_t(h[1]) << 16, h[2] | uint32_t(h[3]) << 16, h[4] | uint32_t(h[5]) << 16,
                         h[6] | uint32_t(h[7]) << 16);
    }
#pragma unroll
    for (int i = 0; i < kWLoads; i++) {
      const int c = tid + i * kTcThreads;
      const int64_t row = n0 + c / kChunks, kk = k0 + (c % kChunks) * 8;
      if (row < n && w_vec && kk + 8 <= k) {
        wr[i] = *reinterpret_cast<const uint4*>(w + row * k + kk);
      } else {
        uint16_t h[8];
#pragma unroll
        for (int e = 0; e < 8; e++) h[e] = row < n && kk + e < k ? w[row * k + kk + e] : uint16_t(0);
        wr[i] = make_uint4(h[0] | uint32_t(h[1]) << 16, h[2] | uint32_t(h[3]) << 16, h[4] | uint32_t(h[5]) << 16,
                           h[6] | uint32_t(h[7]) << 16);
      }
    }
  };
  auto store = [&] {
#pragma unroll
    for (int i = 0; i < kXLoads; i++) {
      const int c = tid + i * kTcThreads;
      *reinterpret_cast<uint4*>(xs + (c / kChunks) * kLd + (c % kChunks) * 8) = xr[i];
    }
#pragma unroll
    for (int i = 0; i < kWLoads; i++) {
      const int c = tid + i * kTcThreads;
      *reinterpret_cast<uint4*>(ws + (c / kChunks) * kLd + (c % kChunks) * 8) = wr[i];
    }
  };

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kFM][kFN];
#pragma unroll
  for (int i = 0; i < kFM; i++)
#pragma unroll
    for (int j = 0; j < kFN; j++) wmma::fill_fragment(acc[i][j], 0.f);

  const int64_t steps = (k + BK - 1) / BK;
  if (steps > 0) {
    load(0);
    store();
    __syncthreads();
  }
  for (int64_t s = 0; s < steps; s++) {
    if (s + 1 < steps) load((s + 1) * BK);  // in flight during the MMAs
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, Wmma, wmma::row_major> a[kFM];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, Wmma, wmma::col_major> b[kFN];
#pragma unroll
      for (int i = 0; i < kFM; i++)
        wmma::load_matrix_sync(a[i], reinterpret_cast<const Wmma*>(xs + (wm * kWM + i * 16) * kLd + kk), kLd);
#pragma unroll
      for (int j = 0; j < kFN; j++)
        wmma::load_matrix_sync(b[j], reinterpret_cast<const Wmma*>(ws + (wn * kWN + j * 16) * kLd + kk), kLd);
#pragma unroll
      for (int i = 0; i < kFM; i++)
#pragma unroll
        for (int j = 0; j < kFN; j++) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
    }
    __syncthreads();  // every warp is done with this step's tiles
    if (s + 1 < steps) {
      store();
      __syncthreads();
    }
  }

  // Stage the block's outputs in shared memory (over the tiles) and write the in-range ones with the bias.
#pragma unroll
  for (int i = 0; i < kFM; i++)
#pragma unroll
    for (int j = 0; j < kFN; j++)
      wmma::store_matrix_sync(cs + (wm * kWM + i * 16) * kLdC + wn * kWN + j * 16, acc[i][j], kLdC,
                              wmma::mem_row_major);
  __syncthreads();
  for (int i = tid; i < BM * BN; i += kTcThreads) {
    const int r = i / BN, c = i % BN;
    const int64_t row = m0 + r, col = n0 + c;
    if (row < m && col < n) y[row * n + col] = cs[r * kLdC + c] + (bias ? bias[col] : 0.f);
  }
}

template <typename Tag>
void launch_wmma(const float* x, int64_t m, int64_t k, const uint16_t* w, int64_t n, float* y, const float* bias,
                 int sms, cudaStream_t stream) {
  const bool x_vec = k % 4 == 0 && aligned16(x), w_vec = k % 8 == 0 && aligned16(w);
  const int64_t big_blocks = ((n + 127) / 128) * ((m + 63) / 64);
  if (big_blocks >= sms) {
    const dim3 grid(static_cast<unsigned>((n + 127) / 128), static_cast<unsigned>((m + 63) / 64));
    wmma_kernel<Tag, 64, 128, 32><<<grid, kTcThreads, 0, stream>>>(x, m, k, w, n, y, bias, x_vec, w_vec);
  } else {  // small M·N (decode-like): smaller tiles keep more SMs busy, longer K steps keep more bytes in flight
    const dim3 grid(static_cast<unsigned>((n + 63) / 64), static_cast<unsigned>((m + 31) / 32));
    wmma_kernel<Tag, 32, 64, 128><<<grid, kTcThreads, 0, stream>>>(x, m, k, w, n, y, bias, x_vec, w_vec);
  }
}

template <typename Tag>
void launch_gemv(const float* x, int64_t m, int64_t k, const void* w, int64_t n, float* y, const float* bias,
                 cudaStream_t stream) {
  const bool vec = k % GemvTraits<Tag>::kVec == 0 && aligned16(w);
  const unsigned grid = static_cast<unsigned>((n + kGemvColsPerBlock - 1) / kGemvColsPerBlock);
  gemv_kernel<Tag><<<grid, kGemvWarps * 32, 0, stream>>>(x, static_cast<int>(m), k, w, n, y, bias, vec);
}

}  // namespace

void gemv(DType dtype, const float* x, int64_t m, int64_t k, const void* w, int64_t n, float* y, const float* bias,
          cudaStream_t stream) {
  switch (dtype) {
    case DType::F32: launch_gemv<F32Tag>(x, m, k, w, n, y, bias, stream); break;
    case DType::F16: launch_gemv<F16Tag>(x, m, k, w, n, y, bias, stream); break;
    case DType::Bf16: launch_gemv<Bf16Tag>(x, m, k, w, n, y, bias, stream); break;
  }
}

void sgemm(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y, const float* bias,
           cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((n + kSgTile - 1) / kSgTile), static_cast<unsigned>((m + kSgTile - 1) / kSgTile));
  sgemm_kernel<<<grid, kSgThreads, 0, stream>>>(x, m, k, w, n, y, bias);
}

void tensor_gemm(DType dtype, const float* x, int64_t m, int64_t k, const uint16_t* w, int64_t n, float* y,
                 const float* bias, int sms, cudaStream_t stream) {
  if (dtype == DType::Bf16)
    launch_wmma<Bf16Tag>(x, m, k, w, n, y, bias, sms, stream);
  else
    launch_wmma<F16Tag>(x, m, k, w, n, y, bias, sms, stream);
}

void round_to_16(DType dtype, const float* x, uint16_t* out, int64_t count, cudaStream_t stream) {
  if (dtype == DType::Bf16)
    round_kernel<Bf16Tag><<<blocks_for(count, 256), 256, 0, stream>>>(x, out, count);
  else
    round_kernel<F16Tag><<<blocks_for(count, 256), 256, 0, stream>>>(x, out, count);
}

void add_bias(float* y, const float* bias, int64_t m, int64_t n, cudaStream_t stream) {
  bias_kernel<<<blocks_for(m * n, 256), 256, 0, stream>>>(y, bias, m, n);
}

}  // namespace loraplex::cuda::gemm_kernels
