// Paged causal GQA attention on the device (semantics: ../../include/loraplex/attention.h).
//
// A block owns up to 8 (query, head) rows that share one kv head: for decode the group's query heads of one
// sequence (so the group shares every K/V load), for prefill a tile of consecutive queries times those heads.
// It walks its keys in chunks of 32, copying each chunk's K and V rows into shared memory with cp.async,
// double-buffered; each of its (up to 4) warps takes one or two rows: one key per lane for the scores, then
// lanes across the head dim for p·V, with an f32 online softmax per row. When the step has too few blocks for
// the SMs (few sequences, long contexts), the keys are split over blocks (flash-decoding) and a second kernel
// merges the partial states.
#include <cuda_pipeline.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <map>
#include <mutex>
#include <utility>

#include "loraplex/cuda/attention.h"

namespace loraplex::cuda {

namespace {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kChunk = 32;      // keys per chunk: one per lane
constexpr int kMaxRows = 8;     // (query, head) rows per block
constexpr int kMaxWarps = 4;    // a block's warps share each K/V chunk; each takes up to two of its rows
constexpr int kRowsPerWarp = 2;
constexpr int kMaxQuads = 2;    // 4-wide column groups per lane in p·V: padded head dim ≤ 2·32·4
constexpr int kMaxHeadDim = 256;
constexpr int kMinSplitKeys = 128;
constexpr size_t kWorkspaceFloats = size_t(16) << 20;  // 64 MiB of split partials per (device, stream)

struct Params {
  const float* q;  // [T, Hq·D]
  const void* k_cache;
  const void* v_cache;
  float* out;  // [T, Hq·D]
  const int32_t* q_start;
  const int32_t* kv_len;
  const int32_t* block_tables;
  const int32_t* block_table_start;
  float* part_max;  // split > 1: [splits, T, Hq]
  float* part_sum;  // [splits, T, Hq]
  float* part_acc;  // [splits, T, Hq, D]
  int num_seqs, num_tokens, hq, hkv, head_dim, block_size, window;
  float scale, softcap;
  int group;            // Hq / Hkv
  int heads_per_block;  // HG ≤ 8
  int head_groups;      // ceil(group / HG)
  int q_tile;           // QT: queries per block; QT·HG ≤ 8
  int split_len;        // keys per split, a multiple of kChunk
  int padded_dim;       // D rounded up to a 16-byte granule of the cache dtype (pad columns are zero)
  int row_granules;     // shared-memory row stride in 16-byte granules, odd: lane-per-row reads hit distinct banks
  bool copy16;          // rows are copied in 16-byte pieces (else 4-byte)
};

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, o));
  return x;
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(kFullMask, x, o);
  return x;
}

__device__ __forceinline__ float bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }

// 16 bytes of a cache row in shared memory → 4 (f32) or 8 (bf16) floats.
__device__ __forceinline__ void widen_granule(const float*, const char* src, float* dst) {
  const float4 v = *reinterpret_cast<const float4*>(src);
  dst[0] = v.x, dst[1] = v.y, dst[2] = v.z, dst[3] = v.w;
}
__device__ __forceinline__ void widen_granule(const uint16_t*, const char* src, float* dst) {
  const uint4 v = *reinterpret_cast<const uint4*>(src);
  dst[0] = bf16_lo(v.x), dst[1] = bf16_hi(v.x), dst[2] = bf16_lo(v.y), dst[3] = bf16_hi(v.y);
  dst[4] = bf16_lo(v.z), dst[5] = bf16_hi(v.z), dst[6] = bf16_lo(v.w), dst[7] = bf16_hi(v.w);
}
// Elements 4c..4c+3 of a cache row in shared memory.
__device__ __forceinline__ float4 load_quad(const float*, const char* row, int c) {
  return reinterpret_cast<const float4*>(row)[c];
}
__device__ __forceinline__ float4 load_quad(const uint16_t*, const char* row, int c) {
  const uint2 v = reinterpret_cast<const uint2*>(row)[c];
  return make_float4(bf16_lo(v.x), bf16_hi(v.x), bf16_lo(v.y), bf16_hi(v.y));
}

// Largest s with tile_base(s) ≤ v, where the tiles of sequence s are [tile_base(s), tile_base(s) + ⌈qLen/QT⌉):
// tile_base(s) = slack·s + ⌊q_start[s]/QT⌋ (slack 1 when QT > 1) never lets two sequences' tiles overlap.
__device__ __forceinline__ int tile_base(const Params& P, int s) {
  return (P.q_tile > 1 ? s : 0) + P.q_start[s] / P.q_tile;
}

template <typename KV>
__global__ void __launch_bounds__(kMaxWarps * 32, 4) paged_attention_kernel(const Params P) {
  constexpr int kEpg = 16 / int(sizeof(KV));  // elements per 16-byte granule
  extern __shared__ float4 smem[];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, threads = blockDim.x;
  const int warps = threads / 32;
  const KV* tag = nullptr;  // selects the dtype overloads

  // The block's sequence and query tile.
  const int v = blockIdx.x;
  if (v < tile_base(P, 0)) return;
  int lo = 0, hi = P.num_seqs - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (tile_base(P, mid) <= v) lo = mid;
    else hi = mid - 1;
  }
  const int s = lo;
  const int q0 = P.q_start[s];
  const int q_len = P.q_start[s + 1] - q0;
  const int qi0 = (v - tile_base(P, s)) * P.q_tile;
  if (qi0 >= q_len) return;
  const int nq = min(P.q_tile, q_len - qi0);
  const int g = blockIdx.y / P.head_groups;
  const int h0 = int(blockIdx.y % P.head_groups) * P.heads_per_block;
  const int nh = min(P.heads_per_block, P.group - h0);
  const int rows = nq * nh;  // row r: query qi0 + r / nh, head g·group + h0 + r % nh
  const int first_pos = P.kv_len[s] - q_len + qi0;
  const int D = P.head_dim, Dp = P.padded_dim;

  // Keys of the block: the union of its rows' ranges, cut to its split.
  int key_lo = P.window > 0 ? max(0, first_pos - P.window + 1) : 0;
  int key_hi = first_pos + nq;
  key_lo = int(max(int64_t(key_lo), int64_t(blockIdx.z) * P.split_len));
  key_hi = int(min(int64_t(key_hi), (int64_t(blockIdx.z) + 1) * P.split_len));

  const int row_bytes = P.row_granules * 16;
  float* q_s = reinterpret_cast<float*>(smem);                    // [rows, Dp]
  float* p_s = q_s + P.heads_per_block * P.q_tile * Dp;           // [kMaxRows, kChunk]
  char* kv_s = reinterpret_cast<char*>(p_s + kMaxRows * kChunk);  // K stage 0, 1, then V stage 0, 1
  auto k_stage = [&](int st) { return kv_s + st * kChunk * row_bytes; };
  auto v_stage = [&](int st) { return kv_s + (2 + st) * kChunk * row_bytes; };

  for (int i = threadIdx.x; i < rows * Dp; i += threads) {
    const int r = i / Dp, d = i % Dp;
    const int64_t t = q0 + qi0 + r / nh;
    q_s[i] = d < D ? P.q[(t * P.hq + g * P.group + h0 + r % nh) * D + d] : 0.0f;
  }
  if (Dp != D) {  // zero pad columns: they meet zero q pads in the dot product and are never copied over
    const int pad_words = (Dp - D) * int(sizeof(KV)) / 4;
    for (int i = threadIdx.x; i < 4 * kChunk * pad_words; i += threads) {
      const int row = i / pad_words, word = i % pad_words;
      reinterpret_cast<uint32_t*>(kv_s + row * row_bytes + D * sizeof(KV))[word] = 0u;
    }
  }

  const int32_t* table = P.block_tables + P.block_table_start[s];
  const char* k_base = static_cast<const char*>(P.k_cache);
  const char* v_base = static_cast<const char*>(P.v_cache);
  // Cache row of key c0 + lane, -1 outside [key_lo, key_hi): looked up one chunk ahead of its copy.
  auto row_of_key = [&](int c0) {
    const int key = c0 + lane;
    return key >= key_lo && key < key_hi ? table[key / P.block_size] * P.block_size + key % P.block_size : -1;
  };
  // Copies the K and V rows of keys c0..c0+31 (lane j's src_row) into stage st, then commits; V rows of keys
  // outside the block's range are zeroed, so p·V may run over the whole chunk (their p is 0). Every warp
  // copies its share of the 16- or 4-byte pieces.
  auto load_chunk = [&](int st, int src_row) {
    char* k_dst = k_stage(st);
    char* v_dst = v_stage(st);
    const int piece = P.copy16 ? 16 : 4;
    const int per_row = D * int(sizeof(KV)) / piece;
    const float inv_per_row = 1.0f / float(per_row);
    // The pieces of a warp's step are 32 consecutive indices: all in range or none, so the shuffle is uniform.
#pragma unroll 4
    for (int i = threadIdx.x; i < kChunk * per_row; i += threads) {
      // i / per_row by a float product: exact here (i < 2^13: the quotient stays ≥ 1/(2·per_row) from an integer)
      const int j = int((float(i) + 0.5f) * inv_per_row), off = (i - j * per_row) * piece;
      const int row_j = __shfl_sync(kFullMask, src_row, j);
      if (row_j < 0) {
        if (P.copy16) *reinterpret_cast<uint4*>(v_dst + j * row_bytes + off) = make_uint4(0u, 0u, 0u, 0u);
        else *reinterpret_cast<uint32_t*>(v_dst + j * row_bytes + off) = 0u;
        continue;
      }
      const int64_t src_j = (int64_t(row_j) * P.hkv + g) * D * int64_t(sizeof(KV));
      if (P.copy16) {
        __pipeline_memcpy_async(k_dst + j * row_bytes + off, k_base + src_j + off, 16);
        __pipeline_memcpy_async(v_dst + j * row_bytes + off, v_base + src_j + off, 16);
      } else {
        __pipeline_memcpy_async(k_dst + j * row_bytes + off, k_base + src_j + off, 4);
        __pipeline_memcpy_async(v_dst + j * row_bytes + off, v_base + src_j + off, 4);
      }
    }
    __pipeline_commit();
  };

  // This warp's rows: warp, warp + warps (at most kRowsPerWarp since rows ≤ 2·warps).
  int my_rows = 0, row_pos[kRowsPerWarp];
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = warp + i * warps;
    if (r < rows) ++my_rows;
    row_pos[i] = first_pos + (r < rows ? r / nh : 0);
  }
  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][kMaxQuads][4];
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    m[i] = -INFINITY, l[i] = 0.0f;
#pragma unroll
    for (int c = 0; c < kMaxQuads; ++c)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][c][e] = 0.0f;
  }
  // p·V lanes: `quads` 4-wide column groups per row; with fewer than 32, lanes also split the keys `kp_count` ways.
  const int quads = Dp / 4;
  const int lane_quads = quads > kChunk ? 2 : 1;  // column groups per lane (warp-uniform)
  const int kp_count = quads >= kChunk ? 1 : kChunk / quads;
  const int kp = quads >= kChunk ? 0 : lane / quads;
  const int quad0 = quads >= kChunk ? lane : lane % quads;
  const bool pv_lane = kp < kp_count;

  const int c_begin = key_lo / kChunk * kChunk;
  int next_row = row_of_key(c_begin);
  if (key_lo < key_hi) {
    load_chunk(0, next_row);
    next_row = row_of_key(c_begin + kChunk);
  }
  int st = 0;
  for (int c0 = c_begin; c0 < key_hi; c0 += kChunk, st ^= 1) {
    if (c0 + kChunk < key_hi) {
      load_chunk(st ^ 1, next_row);
      next_row = row_of_key(c0 + 2 * kChunk);
    } else {
      __pipeline_commit();
    }
    __pipeline_wait_prior(1);
    __syncthreads();  // the stage's copies by every thread are visible

    // Scores: lane j holds key c0 + j for each of the warp's rows.
    const int key = c0 + lane;
    const bool loaded = key >= key_lo && key < key_hi;
    float sc[kRowsPerWarp];
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) sc[i] = 0.0f;
    if (loaded && my_rows > 0) {
      const char* k_row = k_stage(st) + lane * row_bytes;
#pragma unroll 4
      for (int gi = 0; gi < Dp / kEpg; ++gi) {
        float kf[kEpg];
        widen_granule(tag, k_row + gi * 16, kf);
#pragma unroll
        for (int i = 0; i < kRowsPerWarp; ++i) {
          if (i < my_rows) {
            const float4* qv = reinterpret_cast<const float4*>(q_s + (warp + i * warps) * Dp + gi * kEpg);
#pragma unroll
            for (int e = 0; e < kEpg / 4; ++e) {
              const float4 qq = qv[e];
              sc[i] += qq.x * kf[4 * e] + qq.y * kf[4 * e + 1] + qq.z * kf[4 * e + 2] + qq.w * kf[4 * e + 3];
            }
          }
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      if (i >= my_rows) break;
      const bool visible = loaded && key <= row_pos[i] && (P.window <= 0 || key > row_pos[i] - P.window);
      float x = sc[i] * P.scale;
      if (P.softcap > 0.0f) x = P.softcap * tanhf(x / P.softcap);
      x = visible ? x : -INFINITY;
      const float new_max = fmaxf(m[i], warp_max(x));
      float p = 0.0f, correction = 1.0f;
      if (new_max != -INFINITY) {  // some key of the row seen so far
        p = expf(x - new_max);
        correction = expf(m[i] - new_max);
      }
      l[i] = l[i] * correction + p;  // per-lane partial sum, same correction on every lane
      m[i] = new_max;
      p_s[(warp + i * warps) * kChunk + lane] = p;
      if (correction != 1.0f) {
#pragma unroll
        for (int c = 0; c < kMaxQuads; ++c)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[i][c][e] *= correction;
      }
    }
    __syncwarp();  // p of the warp's rows

    // p·V over the chunk (keys outside a row's range have p = 0, outside the block's range V = 0 too).
    if (pv_lane && my_rows > 0 && kp_count == 1) {
#pragma unroll
      for (int j0 = 0; j0 < kChunk; j0 += 4) {
        float4 p4[kRowsPerWarp];
#pragma unroll
        for (int i = 0; i < kRowsPerWarp; ++i)
          p4[i] = i < my_rows ? *reinterpret_cast<const float4*>(p_s + (warp + i * warps) * kChunk + j0)
                              : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
        for (int jj = 0; jj < 4; ++jj) {
          const char* v_row = v_stage(st) + (j0 + jj) * row_bytes;
#pragma unroll
          for (int c = 0; c < kMaxQuads; ++c) {
            if (c >= lane_quads) break;
            const int quad = quad0 + c * kChunk;
            if (quad >= quads) continue;
            const float4 vq = load_quad(tag, v_row, quad);
#pragma unroll
            for (int i = 0; i < kRowsPerWarp; ++i) {
              if (i >= my_rows) break;
              const float p = jj == 0 ? p4[i].x : jj == 1 ? p4[i].y : jj == 2 ? p4[i].z : p4[i].w;
              acc[i][c][0] += p * vq.x;
              acc[i][c][1] += p * vq.y;
              acc[i][c][2] += p * vq.z;
              acc[i][c][3] += p * vq.w;
            }
          }
        }
      }
    } else if (pv_lane && my_rows > 0) {  // head dim below 128 (f32) / 128 (bf16): lanes split keys
      for (int j = kp; j < kChunk; j += kp_count) {
        const char* v_row = v_stage(st) + j * row_bytes;
        const float4 vq = load_quad(tag, v_row, quad0);
#pragma unroll
        for (int i = 0; i < kRowsPerWarp; ++i) {
          if (i < my_rows) {
            const float p = p_s[(warp + i * warps) * kChunk + j];
            acc[i][0][0] += p * vq.x;
            acc[i][0][1] += p * vq.y;
            acc[i][0][2] += p * vq.z;
            acc[i][0][3] += p * vq.w;
          }
        }
      }
    }
    __syncthreads();  // the next iteration's copy overwrites the stage just read
  }

  // Lanes that split the keys add their partial acc into the first kp lane.
  if (kp_count > 1) {
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      if (i >= my_rows) break;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float total = acc[i][0][e];
        for (int k = 1; k < kp_count; ++k) total += __shfl_sync(kFullMask, acc[i][0][e], (lane + k * quads) & 31);
        acc[i][0][e] = total;
      }
    }
  }
  const bool split = gridDim.z > 1;
  const int64_t plane = int64_t(P.num_tokens) * P.hq;
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    if (i >= my_rows) break;
    const int r = warp + i * warps;
    const float sum = warp_sum(l[i]);
    const int64_t row = (int64_t(q0) + qi0 + r / nh) * P.hq + g * P.group + h0 + r % nh;
    float* dst = split ? P.part_acc + (blockIdx.z * plane + row) * D : P.out + row * D;
    if (split && lane == 0) {
      P.part_max[blockIdx.z * plane + row] = m[i];
      P.part_sum[blockIdx.z * plane + row] = sum;
    }
    if (kp != 0) continue;
#pragma unroll
    for (int c = 0; c < kMaxQuads; ++c) {
      const int quad = quad0 + c * kChunk;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int d = 4 * quad + e;
        if (quad < quads && d < D) dst[d] = split ? acc[i][c][e] : acc[i][c][e] / sum;
      }
    }
  }
}

// out[t, h] = Σ_z w_z·acc_z / Σ_z w_z·sum_z with w_z = exp(max_z - max): the splits' states merged.
__global__ void merge_splits_kernel(const Params P, int splits) {
  const int64_t row = blockIdx.x;  // t·Hq + h
  if (row / P.hq < P.q_start[0]) return;  // rows before the batch are not written
  const int64_t plane = int64_t(P.num_tokens) * P.hq;
  float top = -INFINITY;
  for (int z = 0; z < splits; ++z) top = fmaxf(top, P.part_max[z * plane + row]);
  float total = 0.0f;
  for (int z = 0; z < splits; ++z) {
    const float mz = P.part_max[z * plane + row];
    if (mz != -INFINITY) total += expf(mz - top) * P.part_sum[z * plane + row];
  }
  for (int d = threadIdx.x; d < P.head_dim; d += blockDim.x) {
    float x = 0.0f;
    for (int z = 0; z < splits; ++z) {
      const float mz = P.part_max[z * plane + row];
      if (mz != -INFINITY) x += expf(mz - top) * P.part_acc[(z * plane + row) * P.head_dim + d];
    }
    P.out[row * P.head_dim + d] = x / total;
  }
}

// Split partials for one (device, stream), allocated once on first need, never grown: a step that would need
// more runs with fewer splits. Streams used concurrently each get their own.
float* split_workspace(cudaStream_t stream) {
  static std::mutex mutex;
  static std::map<std::pair<int, cudaStream_t>, float*> buffers;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return nullptr;
  std::lock_guard<std::mutex> lock(mutex);
  float*& buffer = buffers[{device, stream}];
  if (!buffer && cudaMalloc(&buffer, kWorkspaceFloats * sizeof(float)) != cudaSuccess) {
    cudaGetLastError();  // clear the failed allocation: the caller runs without splits
    buffer = nullptr;
  }
  return buffer;
}

int sm_count() {
  static std::atomic<int> cached[64];
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= 64) return 132;
  int n = cached[device].load();
  if (n == 0) {
    if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || n <= 0) n = 132;
    cached[device].store(n);
  }
  return n;
}

// Dynamic shared memory of the largest block (8 rows, head dim 256): q rows, p, two stages of K and V.
template <typename KV>
constexpr size_t smem_limit() {
  constexpr int epg = 16 / int(sizeof(KV));
  return size_t(kMaxRows) * kMaxHeadDim * 4 + size_t(kMaxRows) * kChunk * 4 +
         size_t(4) * kChunk * ((kMaxHeadDim / epg) | 1) * 16;
}

template <typename KV>
void launch(const Params& P, dim3 grid, int warps, size_t smem, cudaStream_t stream) {
  static std::atomic<uint64_t> configured{0};  // devices whose shared-memory limit is raised
  int device = 0;
  check_cuda(cudaGetDevice(&device), "paged_attention: cudaGetDevice");
  const uint64_t bit = uint64_t(1) << (device & 63);
  if (!(configured.load() & bit)) {
    check_cuda(cudaFuncSetAttribute(paged_attention_kernel<KV>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    int(smem_limit<KV>())),
               "paged_attention: cudaFuncSetAttribute");
    configured.fetch_or(bit);
  }
  paged_attention_kernel<KV><<<grid, 32 * warps, smem, stream>>>(P);
}

}  // namespace

void paged_attention(const float* q, const void* k_cache, const void* v_cache, KvDtype kv_dtype, float* out,
                     const AttentionShape& shape, const DeviceAttentionBatch& batch, cudaStream_t stream) {
  if (batch.num_seqs <= 0 || batch.num_tokens <= 0 || batch.max_q_len <= 0) return;
  const int D = shape.head_dim;
  if (D <= 0 || D > kMaxHeadDim || D % 2 != 0)
    throw std::runtime_error("paged_attention (CUDA): headDim must be even and at most 256, got " + std::to_string(D));
  const int esize = kv_dtype == KvDtype::F32 ? 4 : 2;
  const int epg = 16 / esize;
  const auto aligned = [](const void* p, uintptr_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; };
  if (!aligned(k_cache, 4) || !aligned(v_cache, 4))
    throw std::runtime_error("paged_attention (CUDA): caches must be 4-byte aligned");

  Params P{};
  P.q = q, P.k_cache = k_cache, P.v_cache = v_cache, P.out = out;
  P.q_start = batch.q_start, P.kv_len = batch.kv_len;
  P.block_tables = batch.block_tables, P.block_table_start = batch.block_table_start;
  P.num_seqs = batch.num_seqs, P.num_tokens = batch.num_tokens;
  P.hq = shape.num_heads, P.hkv = shape.num_kv_heads, P.head_dim = D, P.block_size = shape.block_size;
  P.window = shape.sliding_window;
  P.scale = shape.scale > 0.0f ? shape.scale : float(1.0 / std::sqrt(double(D)));
  P.softcap = shape.softcap;
  P.group = shape.num_heads / shape.num_kv_heads;
  P.heads_per_block = std::min(P.group, kMaxRows);
  P.head_groups = (P.group + P.heads_per_block - 1) / P.heads_per_block;
  P.q_tile = batch.max_q_len > 1 ? std::max(1, std::min(kMaxRows / P.heads_per_block, batch.max_q_len)) : 1;
  P.padded_dim = (D + epg - 1) / epg * epg;
  P.row_granules = (P.padded_dim / epg) | 1;
  P.copy16 = P.padded_dim == D && aligned(k_cache, 16) && aligned(v_cache, 16);

  const int64_t tiles = int64_t(P.q_tile > 1 ? batch.num_seqs : 0) + (batch.num_tokens + P.q_tile - 1) / P.q_tile;
  const int64_t heads_y = int64_t(P.hkv) * P.head_groups;
  if (tiles > INT_MAX || heads_y > 65535) throw std::runtime_error("paged_attention (CUDA): batch too large");

  // Flash-decoding split when the blocks would not fill the SMs several times over.
  int splits = 1;
  P.split_len = INT_MAX;
  const int64_t busy_blocks = int64_t(P.q_tile > 1 ? (batch.num_tokens + P.q_tile - 1) / P.q_tile : batch.num_seqs) * heads_y;
  const int64_t target_blocks = int64_t(16) * sm_count();
  if (busy_blocks < target_blocks && batch.max_kv_len >= 2 * kMinSplitKeys) {
    const int64_t per_split = int64_t(batch.num_tokens) * P.hq * (D + 2);
    int64_t want = std::min<int64_t>((target_blocks + busy_blocks - 1) / busy_blocks, batch.max_kv_len / kMinSplitKeys);
    want = std::min<int64_t>(want, int64_t(kWorkspaceFloats) / per_split);
    if (want >= 2) {
      const int64_t len = ((batch.max_kv_len + want - 1) / want + kChunk - 1) / kChunk * kChunk;
      const int64_t n = (batch.max_kv_len + len - 1) / len;
      float* ws = n >= 2 ? split_workspace(stream) : nullptr;
      if (ws) {
        splits = int(n);
        P.split_len = int(len);
        P.part_max = ws;
        P.part_sum = ws + splits * int64_t(batch.num_tokens) * P.hq;
        P.part_acc = ws + 2 * splits * int64_t(batch.num_tokens) * P.hq;
      }
    }
  }

  const int rows_alloc = P.heads_per_block * P.q_tile;
  const size_t smem = size_t(rows_alloc) * P.padded_dim * 4 + size_t(kMaxRows) * kChunk * 4 +
                      size_t(4) * kChunk * P.row_granules * 16;
  const dim3 grid{unsigned(tiles), unsigned(heads_y), unsigned(splits)};
  const int warps = std::min(kMaxWarps, rows_alloc);  // rows_alloc ≤ 2·warps
  if (kv_dtype == KvDtype::F32) launch<float>(P, grid, warps, smem, stream);
  else launch<uint16_t>(P, grid, warps, smem, stream);
  if (splits > 1) merge_splits_kernel<<<unsigned(batch.num_tokens * int64_t(P.hq)), 64, 0, stream>>>(P, splits);
}

}  // namespace loraplex::cuda
