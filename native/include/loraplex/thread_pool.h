// A persistent pool of worker threads, sized to the cores, shared by every kernel.
// Workers spin briefly after each job (decode issues hundreds of small jobs per step,
// and waking a sleeping thread costs more than the job), then sleep on a condition variable.
#pragma once

#include <cstdint>
#include <utility>

namespace loraplex {

using TaskFn = void (*)(void* ctx, int64_t task, int thread);

// Runs fn(ctx, task, thread) for task in [0, n_tasks) across the pool; the caller takes part.
// Blocks until all tasks are done. Nested calls from inside a task run serially on the caller.
void parallel_run(int64_t n_tasks, TaskFn fn, void* ctx);

int pool_threads();              // workers + the caller
void set_pool_threads(int n);    // resize (--threads, tests, benchmarks); 1 = serial

template <typename F>
void parallel_for(int64_t n_tasks, F&& f) {
  if (n_tasks <= 0) return;
  using Fn = std::remove_reference_t<F>;
  parallel_run(
      n_tasks,
      [](void* ctx, int64_t task, int thread) { (*static_cast<Fn*>(ctx))(task, thread); },
      const_cast<void*>(static_cast<const void*>(&f)));
}

}  // namespace loraplex
