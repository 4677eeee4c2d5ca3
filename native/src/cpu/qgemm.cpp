// The quantized GEMM driver: quantizes x's rows once (qgemm.h's Semantics), then splits N into runs of
// 8-row weight groups for the thread pool; each task runs its groups against tiles of up to kQMaxRows x
// rows, so a weight load serves the whole tile and the task's weights stay in cache across tiles. Threads
// never split K.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

#include "loraplex/cpu_features.h"
#include "loraplex/qgemm.h"
#include "loraplex/thread_pool.h"
#include "cpu_scratch.h"
#include "qgemm_amx.h"
#include "qgemm_kernels.h"

namespace loraplex {
namespace {

constexpr int64_t kTaskWeightValues = 32 * 1024;  // values of W per task (≤ 32 KB int8: stays in L1 / L2 while the x tiles pass)
constexpr double kSerialMacs = 1 << 18;          // below this, one thread: waking the pool costs more
constexpr int64_t kParallelQuantizeValues = 1 << 16;
// One x tile streams W once from memory: the kernels prefetch its blocks this far ahead into L2, which the
// hardware prefetchers alone do not keep busy enough (8B-shaped Q4_K GEMV cold: ~14 -> ~19 GB/s, 2 threads).
constexpr int kStreamPrefetchBytes = 4096;

std::atomic<bool> g_allow_amx{true};

const QgemmKernels& select_kernels() {
  if (active_isa() >= Isa::Avx512) {
    if (const QgemmKernels* k = qgemm_kernels_avx512vnni()) return *k;
  }
  if (active_isa() != Isa::Scalar) {
    if (const QgemmKernels* k = qgemm_kernels_avx2()) return *k;
  }
  return qgemm_kernels_scalar();
}

size_t align64(size_t n) { return (n + 63) / 64 * 64; }

}  // namespace

void set_qgemm_amx(bool allowed) { g_allow_amx.store(allowed, std::memory_order_relaxed); }

bool qgemm_amx_active() {
  return g_allow_amx.load(std::memory_order_relaxed) && &select_kernels() == qgemm_kernels_avx512vnni() &&
         amx_int8_usable();
}

void qgemm(const float* x, int64_t m, const QuantWeight& w, float* y, const float* bias, bool accumulate) {
  const int64_t n = w.rows(), k = w.cols();
  if (m <= 0 || n <= 0) return;
  const QgemmKernels& kernels = select_kernels();
  const int block = w.block();
  const bool q4k = w.type() == QuantType::Q4_K, q6k = w.type() == QuantType::Q6_K;
  const int bsum_block = q6k ? 16 : 32;

  // Quantized x: qs [m][k] int8, d [m][k / block] f32, bsum [m][k / bsum_block] int16 (Q4_K, Q6_K).
  const size_t qs_bytes = align64(static_cast<size_t>(m * k));
  const size_t d_bytes = align64(static_cast<size_t>(m * (k / block)) * 4);
  const size_t bsum_bytes = q4k || q6k ? align64(static_cast<size_t>(m * (k / bsum_block)) * 2) : 0;
  uint8_t* buf = thread_scratch<struct QuantizedXRows>(qs_bytes + d_bytes + bsum_bytes);
  QuantizedX qx;
  qx.qs = reinterpret_cast<int8_t*>(buf);
  qx.d = reinterpret_cast<float*>(buf + qs_bytes);
  qx.bsum = q4k || q6k ? reinterpret_cast<int16_t*>(buf + qs_bytes + d_bytes) : nullptr;
  qx.k = k;
  qx.block = block;
  qx.bsum_block = bsum_block;
  auto quantize = [&](int64_t r, int) {
    kernels.quantize(x + r * k, k, w.type(), const_cast<int8_t*>(qx.qs_row(r)), const_cast<float*>(qx.d_row(r)),
                     q4k ? const_cast<int16_t*>(qx.bsum_row(r)) : nullptr);
    if (q6k) q_bsum16(qx.qs_row(r), k, const_cast<int16_t*>(qx.bsum_row(r)));
  };
  const bool serial = pool_threads() == 1 || static_cast<double>(m) * n * k < kSerialMacs;
  if (!serial && m * k >= kParallelQuantizeValues) {
    parallel_for(m, quantize);
  } else {
    for (int64_t r = 0; r < m; ++r) quantize(r, 0);
  }

  if (q4k && m >= kQAmxMinRows && qgemm_amx_active()) return qgemm_amx_q4k(qx, m, w, y, bias, accumulate);

  const int64_t groups = w.groups();
  // One x tile (decode): W is read once, from memory; two long contiguous runs of groups per thread keep the
  // prefetchers on one stream, where small claimed tasks interleaved the threads' reads (docs/benchmarks.md).
  const int64_t groups_per_task = m <= kQMaxRows
                                      ? std::max<int64_t>(1, (groups + 2 * pool_threads() - 1) / (2 * pool_threads()))
                                      : std::max<int64_t>(1, kTaskWeightValues / (kQGroup * k));
  auto task = [&](int64_t t, int) {
    QTileArgs a;
    a.x = &qx;
    a.w = &w;
    a.g0 = t * groups_per_task;
    a.g1 = a.g0 + groups_per_task < groups ? a.g0 + groups_per_task : groups;
    a.y = y;
    a.ldy = n;
    a.bias = bias;
    a.accumulate = accumulate;
    a.prefetch = m <= kQMaxRows ? kStreamPrefetchBytes : 0;
    for (int64_t r0 = 0; r0 < m; r0 += kQMaxRows) {
      a.r0 = r0;
      a.rows = static_cast<int>(m - r0 < kQMaxRows ? m - r0 : kQMaxRows);
      (q4k ? kernels.q4_k : q6k ? kernels.q6_k : kernels.q8_0)(a);
    }
  };
  const int64_t tasks = (groups + groups_per_task - 1) / groups_per_task;
  if (serial) {
    for (int64_t t = 0; t < tasks; ++t) task(t, 0);
  } else {
    parallel_for(tasks, task);
  }
}

}  // namespace loraplex
