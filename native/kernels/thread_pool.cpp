// The calling thread's context: its thread pool (n - 1 sleeping workers plus the calling thread, dynamic scheduling
// of work items from an atomic counter), its workspace and the mutex its calls hold. Every thread that calls into the
// library gets its own, so ranks on different threads (Node workers) run their kernels concurrently instead of
// queueing on one pool. Which thread runs an item never affects its result (items are fixed by the shapes and each
// output element belongs to one item), so dynamic scheduling stays deterministic.
#include <algorithm>
#include <atomic>
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
      pending_ = p - 1;
      next_.store(0, std::memory_order_relaxed);
      ++generation_;
    }
    start_cv_.notify_all();
    drain(0);
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [this] { return pending_ == 0; });
  }

 private:
  void drain(int worker) {
    for (int64_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < n_items_;) fn_(ctx_, i, worker);
  }

  // `seen` is the generation current when the worker was created: jobs started after it are new.
  void worker_main(int id, uint64_t seen) {
    t_context = owner_;  // the items it runs reach their caller's scratch and workspace
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      start_cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (id >= participants_) continue;
      lk.unlock();
      drain(id);
      lk.lock();
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }

  void start_workers() {
    if (!workers_.empty()) return;
    stop_ = false;
    workers_.reserve(size_t(threads_ - 1));
    const uint64_t gen = generation_;
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
      stop_ = true;
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
  bool stop_ = false;
  uint64_t generation_ = 0;
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_items_ = 0;
  int participants_ = 0;
  int pending_ = 0;
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
void scratch_reserve(int64_t floats) { pool().reserve(floats); }
float* scratch(int worker) { return pool().scratch(worker); }

}  // namespace moe::detail
