#include "loraplex/thread_pool.h"

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

  void run(int64_t n_tasks, TaskFn fn, void* ctx) {
    thread_local bool in_task = false;
    if (n_threads_ == 1 || n_tasks == 1 || in_task) {
      for (int64_t t = 0; t < n_tasks; ++t) fn(ctx, t, 0);
      return;
    }
    std::lock_guard<std::mutex> serial(run_mutex_);  // one job at a time; callers queue
    fn_ = fn;
    ctx_ = ctx;
    n_tasks_ = n_tasks;
    next_task_.store(0, std::memory_order_relaxed);
    pending_workers_.store(n_threads_ - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(mutex_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    in_task = true;
    work(0);
    in_task = false;
    while (pending_workers_.load(std::memory_order_acquire) != 0) LORAPLEX_PAUSE();
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

  void work(int thread) {
    for (;;) {
      int64_t t = next_task_.fetch_add(1, std::memory_order_relaxed);
      if (t >= n_tasks_) break;
      fn_(ctx_, t, thread);
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
      pending_workers_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  int n_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::mutex run_mutex_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> next_task_{0};
  std::atomic<int> pending_workers_{0};
  bool quit_ = false;
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_tasks_ = 0;
};

int default_threads() {
  if (const char* s = std::getenv("LORAPLEX_THREADS")) {
    int n = std::atoi(s);
    if (n > 0) return n;
  }
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
