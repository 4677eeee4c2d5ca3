// Elementwise and small ops of the forward pass: RMSNorm (per row, per head), SiLU·mul, GeLU(tanh)·mul,
// residual add, soft-capping, scaling, embedding lookup.
// Each row is computed by one fixed routine (per ISA), so its bits never depend on the other rows or the threads.
#pragma once

#include <cstdint>
#include <string>

namespace loraplex {

// x, out [rows, dim]; weight [dim]. out may alias x.
// Semantics: r = 1 / sqrt(mean_d(x[r,d]²) + eps) (f32); out[r,d] = weight[d] · (x[r,d] · r)
void rms_norm(const float* x, const float* weight, float* out, int64_t rows, int64_t dim, float eps);

// gate_up [rows, 2·inter] = [gate | up] per row; out [rows, inter] (must not alias gate_up).
// Semantics: out[r,i] = silu(gate[r,i]) · up[r,i], silu(g) = g / (1 + exp(-g))
void silu_mul(const float* gate_up, float* out, int64_t rows, int64_t inter);

// Semantics: x[i] += y[i] for i < length
void add_in_place(float* x, const float* y, int64_t length);

// In place, per head of strided rows (Qwen3 / Gemma 3 q_norm and k_norm on the fused q|k|v rows):
// x [rows, row_stride]; the heads are x[r·row_stride + offset + h·head_dim ..+ head_dim), h < num_heads;
// weight [head_dim]. Semantics: each head is what rms_norm does to one row of head_dim values.
void rms_norm_heads(float* x, int64_t rows, int64_t row_stride, int64_t offset, int64_t num_heads, int64_t head_dim,
                    const float* weight, float eps);

// gate_up [rows, 2·inter] = [gate | up] per row; out [rows, inter] (must not alias gate_up). Gemma's GeGLU.
// Semantics: out[r,i] = gelu_tanh(gate[r,i]) · up[r,i],
//   gelu_tanh(g) = 0.5·g·(1 + tanh(√(2/π)·(g + 0.044715·g³)))   (torch's gelu(approximate='tanh'), f32)
void gelu_tanh_mul(const float* gate_up, float* out, int64_t rows, int64_t inter);

// Semantics: x[i] = cap · tanh(x[i] / cap) for i < length (Gemma's final-logit soft-capping; cap > 0)
void softcap_in_place(float* x, int64_t length, float cap);

// Semantics: x[i] = x[i] · factor for i < length (f32)
void scale_in_place(float* x, int64_t length, float factor);

enum class TableDType { F32, F16, Bf16 };

// Empty string when every id is a row of the table; otherwise the first bad id.
std::string check_embedding_ids(const int32_t* ids, int64_t num_tokens, int64_t vocab);

// ids [T]; table [vocab, dim] in its dtype (f16/bf16 as raw bit patterns); out [T, dim] f32.
// Semantics: out[t, :] = f32(table[ids[t], :])
void embedding(const int32_t* ids, int64_t num_tokens, TableDType dtype, const void* table, int64_t dim, float* out);

}  // namespace loraplex
