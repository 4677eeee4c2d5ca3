// Row-parallel drivers of the elementwise ops: pick the ISA's row routines, split rows (never a row) over the pool.
#include "loraplex/ops.h"

#include <algorithm>

#include "loraplex/cpu_features.h"
#include "loraplex/thread_pool.h"
#include "ops_kernels.h"

namespace loraplex {

const OpsRowKernels& ops_row_kernels() {
  const Isa isa = active_isa();
  if (isa >= Isa::Avx512) return kOpsAvx512;
  if (isa >= Isa::Avx2) return kOpsAvx2;
  return kOpsScalar;
}

// Rows per task so that a task holds at least ~16k elements (smaller jobs cost more to hand out than to do).
static int64_t rows_per_task(int64_t rows, int64_t width) {
  constexpr int64_t kMinElementsPerTask = 16384;
  return std::max<int64_t>(1, std::min(rows, kMinElementsPerTask / std::max<int64_t>(1, width)));
}

void rms_norm(const float* x, const float* weight, float* out, int64_t rows, int64_t dim, float eps) {
  const OpsRowKernels& k = ops_row_kernels();
  const int64_t per = rows_per_task(rows, dim);
  parallel_for((rows + per - 1) / per, [&](int64_t task, int) {
    const int64_t end = std::min(rows, (task + 1) * per);
    for (int64_t r = task * per; r < end; ++r) k.rms_norm_row(x + r * dim, weight, out + r * dim, dim, eps);
  });
}

void silu_mul(const float* gate_up, float* out, int64_t rows, int64_t inter) {
  const OpsRowKernels& k = ops_row_kernels();
  const int64_t per = rows_per_task(rows, inter);
  parallel_for((rows + per - 1) / per, [&](int64_t task, int) {
    const int64_t end = std::min(rows, (task + 1) * per);
    for (int64_t r = task * per; r < end; ++r) {
      const float* row = gate_up + r * 2 * inter;
      k.silu_mul_row(row, row + inter, out + r * inter, inter);
    }
  });
}

void rms_norm_heads(float* x, int64_t rows, int64_t row_stride, int64_t offset, int64_t num_heads, int64_t head_dim,
                    const float* weight, float eps) {
  const OpsRowKernels& k = ops_row_kernels();
  const int64_t per = rows_per_task(rows, num_heads * head_dim);
  parallel_for((rows + per - 1) / per, [&](int64_t task, int) {
    const int64_t end = std::min(rows, (task + 1) * per);
    for (int64_t r = task * per; r < end; ++r) {
      float* heads = x + r * row_stride + offset;
      for (int64_t h = 0; h < num_heads; ++h) k.rms_norm_row(heads + h * head_dim, weight, heads + h * head_dim, head_dim, eps);
    }
  });
}

void gelu_tanh_mul(const float* gate_up, float* out, int64_t rows, int64_t inter) {
  const OpsRowKernels& k = ops_row_kernels();
  const int64_t per = rows_per_task(rows, inter);
  parallel_for((rows + per - 1) / per, [&](int64_t task, int) {
    const int64_t end = std::min(rows, (task + 1) * per);
    for (int64_t r = task * per; r < end; ++r) {
      const float* row = gate_up + r * 2 * inter;
      k.gelu_tanh_mul_row(row, row + inter, out + r * inter, inter);
    }
  });
}

// Splits [0, length) into fixed spans (never depending on the thread count) and runs `span` on each.
template <typename Span>
static void for_spans(int64_t length, const Span& span) {
  constexpr int64_t kPerTask = 1 << 16;
  parallel_for((length + kPerTask - 1) / kPerTask, [&](int64_t task, int) {
    const int64_t begin = task * kPerTask;
    span(begin, std::min(length, begin + kPerTask) - begin);
  });
}

void softcap_in_place(float* x, int64_t length, float cap) {
  const OpsRowKernels& k = ops_row_kernels();
  for_spans(length, [&](int64_t begin, int64_t n) { k.softcap(x + begin, n, cap); });
}

void scale_in_place(float* x, int64_t length, float factor) {
  const OpsRowKernels& k = ops_row_kernels();
  for_spans(length, [&](int64_t begin, int64_t n) { k.scale(x + begin, n, factor); });
}

void add_in_place(float* x, const float* y, int64_t length) {
  const OpsRowKernels& k = ops_row_kernels();
  constexpr int64_t kPerTask = 1 << 16;
  parallel_for((length + kPerTask - 1) / kPerTask, [&](int64_t task, int) {
    const int64_t begin = task * kPerTask;
    k.add(x + begin, y + begin, std::min(length, begin + kPerTask) - begin);
  });
}

}  // namespace loraplex
