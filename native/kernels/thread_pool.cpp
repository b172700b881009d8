// The calling thread's context: its thread pool (n - 1 sleeping workers plus the calling thread, dynamic scheduling
// of work items from an atomic counter), its workspace and the mutex its calls hold. Every thread that calls into the
// library gets its own, so ranks on different threads (Node workers) run their kernels concurrently instead of
// queueing on one pool. Which thread runs an item never affects its result (items are fixed by the shapes and each
// output element belongs to one item), so dynamic scheduling stays deterministic.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

#include "api_util.hpp"
#include "internal.hpp"
#include "workspace.hpp"

namespace moe::detail {
namespace {

int online_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? int(n) : 1;
}

struct Context;
thread_local Context* t_context = nullptr;

// Spins while `waiting()` holds, for up to 200 us; true if it stopped holding. Kernels come back to back (a forward
// is dozens of calls), and a worker parked on a condition variable takes 0.1-0.3 ms to wake on some VMs: the caller
// and the workers spin that long before they sleep. Yields now and then, for oversubscribed cores.
template <class F>
bool spin_while(F waiting) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
  for (int i = 1; waiting(); ++i) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    if ((i & 255) == 0) {
      if (std::chrono::steady_clock::now() > until) return false;
      std::this_thread::yield();
    }
  }
  return true;
}

class Pool {
 public:
  explicit Pool(Context* owner) : owner_(owner), threads_(online_cpus()) {}
  ~Pool() { stop_workers(); }

  int threads() const { return threads_; }

  void set_threads(int n) {
    if (n == threads_) return;
    stop_workers();
    threads_ = n;
  }

  void reserve(int64_t floats) {
    scratch_.resize(size_t(threads_));
    scratch_size_.resize(size_t(threads_), 0);
    for (size_t i = 0; i < scratch_.size(); ++i) {
      if (scratch_size_[i] >= floats) continue;
      scratch_[i].reset();
      scratch_size_[i] = 0;
      scratch_[i].reset(static_cast<float*>(::operator new(size_t(floats) * sizeof(float), kAlign)));
      scratch_size_[i] = floats;
    }
  }

  float* scratch(int worker) { return scratch_[size_t(worker)].get(); }

  void run(int64_t n_items, int max_workers, TaskFn fn, void* ctx) {
    const int p = int(std::min<int64_t>({int64_t(threads_), int64_t(max_workers), n_items}));
    if (p <= 1) {
      for (int64_t i = 0; i < n_items; ++i) fn(ctx, i, 0);
      return;
    }
    start_workers();
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = fn;
      ctx_ = ctx;
      n_items_ = n_items;
      participants_ = p;
      open_ = true;
      joined_ = 0;
      finished_.store(0, std::memory_order_relaxed);
      next_.store(0, std::memory_order_relaxed);
      generation_.store(generation_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }
    start_cv_.notify_all();
    drain(0);
    // every item is claimed: close the job to workers not yet awake (they would find nothing to do) and wait only
    // for those that joined, whose items may still run
    std::unique_lock<std::mutex> lk(mu_);
    open_ = false;
    const int joined = joined_;
    if (finished_.load(std::memory_order_acquire) == joined) return;
    lk.unlock();
    if (spin_while([&] { return finished_.load(std::memory_order_acquire) != joined; })) return;
    lk.lock();
    done_cv_.wait(lk, [&] { return finished_.load(std::memory_order_acquire) == joined; });
  }

 private:
  void drain(int worker) {
    for (int64_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < n_items_;) fn_(ctx_, i, worker);
  }

  // `seen` is the generation current when the worker was created: jobs started after it are new.
  void worker_main(int id, uint64_t seen) {
    t_context = owner_;  // the items it runs reach their caller's scratch and workspace
    for (;;) {
      spin_while([&] { return generation_.load(std::memory_order_acquire) == seen && !stop_.load(std::memory_order_acquire); });
      {
        std::unique_lock<std::mutex> lk(mu_);
        start_cv_.wait(lk, [&] { return stop_.load() || generation_.load() != seen; });
        if (stop_.load()) return;
        seen = generation_.load();
        if (!open_ || id >= participants_) continue;
        ++joined_;
      }
      drain(id);
      std::lock_guard<std::mutex> lk(mu_);
      finished_.fetch_add(1, std::memory_order_release);
      done_cv_.notify_one();
    }
  }

  void start_workers() {
    if (!workers_.empty()) return;
    stop_.store(false);
    workers_.reserve(size_t(threads_ - 1));
    const uint64_t gen = generation_.load();
    try {
      for (int id = 1; id < threads_; ++id) workers_.emplace_back([this, id, gen] { worker_main(id, gen); });
    } catch (...) {
      stop_workers();
      throw;
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_.store(true);
    }
    start_cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  Context* owner_;
  int threads_;
  std::vector<std::unique_ptr<float, AlignedFree>> scratch_;
  std::vector<int64_t> scratch_size_;

  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  std::vector<std::thread> workers_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> generation_{0};
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_items_ = 0;
  int participants_ = 0;
  bool open_ = false;            // workers may still join the current job
  int joined_ = 0;               // workers that joined it (open_ and joined_ under mu_)
  std::atomic<int> finished_{0};  // those done with it (read by the caller's spin)
  std::atomic<int64_t> next_{0};
};

struct Context {
  std::mutex mu;
  Workspace ws;
  Pool pool{this};  // last: its workers stop before the workspace goes
};

Context& context() {
  if (t_context != nullptr) return *t_context;
  thread_local std::unique_ptr<Context> own;
  own = std::make_unique<Context>();
  t_context = own.get();
  return *own;
}

Pool& pool() { return context().pool; }

}  // namespace

std::mutex& call_mutex() { return context().mu; }
Workspace& workspace() { return context().ws; }

int pool_threads() { return pool().threads(); }
int pool_default_threads() { return online_cpus(); }
void pool_set_threads(int n) { pool().set_threads(n); }
void parallel_for(int64_t n_items, int max_workers, TaskFn fn, void* ctx) { pool().run(n_items, max_workers, fn, ctx); }
int64_t rows_per_item(int64_t row_elems) { return row_elems >= 16384 ? 1 : 16384 / (row_elems > 0 ? row_elems : 1); }
void scratch_reserve(int64_t floats) { pool().reserve(floats); }
float* scratch(int worker) { return pool().scratch(worker); }

}  // namespace moe::detail
