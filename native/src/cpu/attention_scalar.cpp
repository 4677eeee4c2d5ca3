// Paged attention chunk step, portable scalar path (see attention_kernels.h for the semantics).
#include <cmath>
#include <cstdint>

#include "attention_kernels.h"
#include "loraplex/attention.h"

namespace loraplex {

namespace {

void fold_head(const float* q, const float* const* k_rows, const float* const* v_rows, int n, int head_dim,
               float scale, float softcap, AttentionState* state) {
  float p[kAttentionKeyChunk];
  float chunk_max = -INFINITY;
  for (int j = 0; j < n; ++j) {
    const float* k = k_rows[j];
    float dot = 0.0f;
    for (int d = 0; d < head_dim; ++d) dot += q[d] * k[d];
    p[j] = dot * scale;
    if (softcap > 0.0f) p[j] = softcap * std::tanh(p[j] / softcap);
    chunk_max = std::fmax(chunk_max, p[j]);
  }
  const float new_max = std::fmax(state->max, chunk_max);
  const float correction = state->max == -INFINITY ? 0.0f : std::exp(state->max - new_max);
  float chunk_sum = 0.0f;
  for (int j = 0; j < n; ++j) {
    p[j] = std::exp(p[j] - new_max);
    chunk_sum += p[j];
  }
  float* acc = state->acc;
  if (correction != 1.0f) {
    for (int d = 0; d < head_dim; ++d) acc[d] *= correction;
  }
  for (int j = 0; j < n; ++j) {
    const float* v = v_rows[j];
    for (int d = 0; d < head_dim; ++d) acc[d] += p[j] * v[d];
  }
  state->sum = state->sum * correction + chunk_sum;
  state->max = new_max;
}

}  // namespace

void attention_chunk_scalar(const float* q, int heads, AttentionState* states, const float* const* k_rows,
                            const float* const* v_rows, int n, int head_dim, float scale, float softcap) {
  for (int h = 0; h < heads; ++h)
    fold_head(q + int64_t(h) * head_dim, k_rows, v_rows, n, head_dim, scale, softcap, states + h);
}

}  // namespace loraplex
