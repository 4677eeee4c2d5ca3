// Paged attention and RoPE + cache write on the device, with the semantics of the CPU kernels (../attention.h):
// the same layouts (qkv, q, out, paged caches f32 or bf16), GQA, sliding window, scale, soft-cap and partial
// rotary. Results agree with the CPU kernels to f32 rounding (summation order differs).
#pragma once

#include "../attention.h"  // AttentionShape, KvDtype
#include "common.h"

namespace loraplex::cuda {

// The step's attention batch: the arrays are DEVICE pointers (as AttentionBatch's); the extents are host-known.
struct DeviceAttentionBatch {
  const int32_t* q_start;            // [num_seqs + 1]
  const int32_t* kv_len;             // [num_seqs]
  const int32_t* block_tables;       // flattened
  const int32_t* block_table_start;  // [num_seqs]
  int num_seqs;
  int num_tokens;  // q_start[num_seqs]
  int max_q_len;   // longest query range of the step
  int max_kv_len;  // longest kv_len of the step
};

// positions, slot_mapping: device [T]; inv_freq: device [R/2].
void rope_and_cache_write(const float* qkv, int64_t num_tokens, const AttentionShape& shape, const int32_t* positions,
                          const float* inv_freq, float* q_out, void* k_cache, void* v_cache, KvDtype kv_dtype,
                          const int32_t* slot_mapping, cudaStream_t stream);

void paged_attention(const float* q, const void* k_cache, const void* v_cache, KvDtype kv_dtype, float* out,
                     const AttentionShape& shape, const DeviceAttentionBatch& batch, cudaStream_t stream);

}  // namespace loraplex::cuda
