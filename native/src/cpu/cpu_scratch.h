// What the GEMM drivers (gemm.cpp, gemm_amx.cpp, qgemm.cpp) share: per-thread scratch, and how a GEMM's output
// panels are cut into tasks for the pool.
#pragma once

#include <climits>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

namespace loraplex {

// Grow-only, 64-byte aligned scratch of the calling thread; each Tag is a buffer of its own.
template <typename Tag>
uint8_t* thread_scratch(size_t bytes) {
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<uint8_t, Free> buffer;
  thread_local size_t capacity = 0;
  if (bytes > capacity) {
    const size_t rounded = (bytes + 4095) / 4096 * 4096;
    void* p = nullptr;
    if (posix_memalign(&p, 64, rounded) != 0) throw std::bad_alloc();
    buffer.reset(static_cast<uint8_t*>(p));
    capacity = rounded;
  }
  return buffer.get();
}

// Panels per block: the fewest tasks that still give every thread `tasks_per_thread` of them (where there are
// enough panels) and the shortest schedule, counted in panel passes of the busiest thread; at most `max_panels`.
inline int64_t panels_per_block(int64_t panels, int64_t row_blocks, int threads, int64_t max_panels,
                                int64_t tasks_per_thread) {
  const auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  const int64_t max_ppb = panels < max_panels ? panels : max_panels;
  if (threads <= 1) return max_ppb;
  int64_t best = 1, best_span = INT64_MAX;
  for (int64_t ppb = max_ppb; ppb >= 1; --ppb) {
    const int64_t tasks = row_blocks * ceil_div(panels, ppb);
    if (tasks < threads * tasks_per_thread && ppb > 1) continue;
    const int64_t span = ceil_div(tasks, threads) * ppb;
    if (span < best_span) best = ppb, best_span = span;
  }
  return best;
}

}  // namespace loraplex
