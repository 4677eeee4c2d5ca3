// Embedding lookup: copy (f32) or widen (f16/bf16) one table row per token.
#include <cstring>

#include "loraplex/cpu_features.h"
#include "loraplex/ops.h"
#include "loraplex/thread_pool.h"
#include "ops_kernels.h"

namespace loraplex {

std::string check_embedding_ids(const int32_t* ids, int64_t num_tokens, int64_t vocab) {
  for (int64_t t = 0; t < num_tokens; ++t) {
    if (ids[t] < 0 || ids[t] >= vocab)
      return "token id " + std::to_string(ids[t]) + " (position " + std::to_string(t) +
             ") is outside the embedding table (vocab " + std::to_string(vocab) + ")";
  }
  return "";
}

void embedding(const int32_t* ids, int64_t num_tokens, TableDType dtype, const void* table, int64_t dim, float* out) {
  const OpsRowKernels& k = ops_row_kernels();
  // AVX2 CPUs without F16C do not exist in practice, but the check is cheap.
  const bool f16c = active_isa() != Isa::Avx2 || __builtin_cpu_supports("f16c");
  auto widen_f16 = f16c ? k.widen_f16 : kOpsScalar.widen_f16;
  parallel_for(num_tokens, [&](int64_t t, int) {
    const int64_t row = ids[t];
    float* dst = out + t * dim;
    if (dtype == TableDType::F32) {
      std::memcpy(dst, static_cast<const float*>(table) + row * dim, sizeof(float) * dim);
    } else if (dtype == TableDType::F16) {
      widen_f16(static_cast<const uint16_t*>(table) + row * dim, dst, dim);
    } else {
      k.widen_bf16(static_cast<const uint16_t*>(table) + row * dim, dst, dim);
    }
  });
}

}  // namespace loraplex
