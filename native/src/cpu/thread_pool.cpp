#include "loraplex/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LORAPLEX_PAUSE() _mm_pause()
#else
#define LORAPLEX_PAUSE() std::this_thread::yield()
#endif

namespace loraplex {
namespace {

constexpr int kSpinIterations = 20000;  // ~50-100 µs of spinning before a worker sleeps

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads) { start(n_threads); }
  ~ThreadPool() { stop(); }

  int threads() const { return n_threads_; }

  void resize(int n) {
    if (n < 1) n = 1;
    if (n == n_threads_) return;
    stop();
    start(n);
  }

  // Tasks are claimed through one atomic word, job | n_tasks | next index, so a worker can only claim a
  // task of the job it read and only while tasks remain. The caller works too and then waits for the tasks
  // that were claimed, never for a worker that has not woken up yet: a descheduled worker (a busy machine)
  // costs nothing. Jobs of 2^20 tasks or more run as several jobs.
  void run(int64_t n_tasks, TaskFn fn, void* ctx) {
    thread_local bool in_task = false;
    if (n_threads_ == 1 || n_tasks == 1 || in_task) {
      for (int64_t t = 0; t < n_tasks; ++t) fn(ctx, t, 0);
      return;
    }
    std::lock_guard<std::mutex> serial(run_mutex_);  // one job at a time; callers queue
    for (int64_t first = 0; first < n_tasks; first += kMaxTasks) {
      const int64_t n = std::min<int64_t>(kMaxTasks, n_tasks - first);
      run_job(n, fn, ctx, first, in_task);
    }
  }

 private:
  void start(int n) {
    n_threads_ = n;
    quit_ = false;
    // Read before any job can be issued: a worker that starts late must still see the first job.
    const uint64_t seen = generation_.load(std::memory_order_acquire);
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, i, seen] { worker_loop(i, seen); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(mutex_);
      quit_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  static constexpr int64_t kMaxTasks = int64_t{1} << 20;
  static constexpr uint64_t kIndexBits = 20, kCountBits = 20;
  static constexpr uint64_t kIndexMask = (uint64_t{1} << kIndexBits) - 1;

  void run_job(int64_t n, TaskFn fn, void* ctx, int64_t first, bool& in_task) {
    fn_ = fn;
    ctx_ = ctx;
    first_ = first;
    done_.store(0, std::memory_order_relaxed);
    const uint64_t job = (++job_id_) & ((uint64_t{1} << (64 - kIndexBits - kCountBits)) - 1);
    claim_.store((job << (kIndexBits + kCountBits)) | (static_cast<uint64_t>(n) << kIndexBits),
                 std::memory_order_release);
    {
      std::lock_guard<std::mutex> lk(mutex_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    in_task = true;
    work(0);
    in_task = false;
    while (done_.load(std::memory_order_acquire) != n) LORAPLEX_PAUSE();
  }

  // Claims and runs tasks of the current job until none is left.
  void work(int thread) {
    uint64_t c = claim_.load(std::memory_order_acquire);
    for (;;) {
      const uint64_t index = c & kIndexMask;
      const uint64_t count = (c >> kIndexBits) & kIndexMask;
      if (index >= count) return;
      if (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      // The job cannot finish (nor be replaced) before this task is counted, so its fields are stable.
      fn_(ctx_, first_ + static_cast<int64_t>(index), thread);
      done_.fetch_add(1, std::memory_order_release);
      c = claim_.load(std::memory_order_acquire);
    }
  }

  void worker_loop(int thread, uint64_t seen) {
    for (;;) {
      int spins = 0;
      while (generation_.load(std::memory_order_acquire) == seen && spins < kSpinIterations) {
        LORAPLEX_PAUSE();
        ++spins;
      }
      if (generation_.load(std::memory_order_acquire) == seen) {
        std::unique_lock<std::mutex> lk(mutex_);
        cv_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      }
      seen = generation_.load(std::memory_order_acquire);
      if (quit_) return;
      work(thread);
    }
  }

  int n_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::mutex run_mutex_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> claim_{0};  // job (24 bits) | task count (20) | next index (20)
  std::atomic<int64_t> done_{0};    // tasks of the current job finished
  uint64_t job_id_ = 0;
  bool quit_ = false;
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t first_ = 0;  // task offset of the current job (jobs of kMaxTasks or more are split)
};

// All cores until TypeScript configures the pool (setThreads); native code reads no environment.
int default_threads() {
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

ThreadPool& pool() {
  static ThreadPool p(default_threads());
  return p;
}

}  // namespace

void parallel_run(int64_t n_tasks, TaskFn fn, void* ctx) {
  if (n_tasks <= 0) return;
  pool().run(n_tasks, fn, ctx);
}

int pool_threads() { return pool().threads(); }
void set_pool_threads(int n) { pool().resize(n); }

}  // namespace loraplex
