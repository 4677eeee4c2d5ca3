// Elementwise and small ops on the device, with the semantics of the CPU ops (../ops.h). Device pointers.
#pragma once

#include "common.h"

namespace loraplex::cuda {

void rms_norm(const float* x, const float* weight, float* out, int64_t rows, int64_t dim, float eps,
              cudaStream_t stream);
void rms_norm_heads(float* x, int64_t rows, int64_t row_stride, int64_t offset, int64_t num_heads, int64_t head_dim,
                    const float* weight, float eps, cudaStream_t stream);
void silu_mul(const float* gate_up, float* out, int64_t rows, int64_t inter, cudaStream_t stream);
void gelu_tanh_mul(const float* gate_up, float* out, int64_t rows, int64_t inter, cudaStream_t stream);
void add_in_place(float* x, const float* y, int64_t length, cudaStream_t stream);
void softcap_in_place(float* x, int64_t length, float cap, cudaStream_t stream);
void scale_in_place(float* x, int64_t length, float factor, cudaStream_t stream);
// ids [T] device; table [vocab, dim] device in `dtype`; out [T, dim].
void embedding(const int32_t* ids, int64_t num_tokens, DType dtype, const void* table, int64_t dim, float* out,
               cudaStream_t stream);
// out[r, :] = x[rows[r], :] (dim columns); rows device [num_rows].
void gather_rows(const float* x, const int32_t* rows, int64_t num_rows, int64_t dim, float* out, cudaStream_t stream);

}  // namespace loraplex::cuda
