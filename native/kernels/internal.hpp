// Internal interfaces between the C ABI units, the thread pool and the ISA choice.
// Only plain structs and functions defined in baseline-compiled translation units live here, so the
// ISA translation units (compiled for AVX2/AVX-512) never emit shared inline code the linker could pick
// for a baseline caller.
#pragma once

#include <cstddef>
#include <cstdint>

#include "moe-kernels.h"

namespace moe::detail {

#if defined(__x86_64__) || defined(_M_X64)
#define MOE_HAVE_X86_KERNELS 1
#endif

// ---- thread pool (thread_pool.cpp) ----
using TaskFn = void (*)(void* ctx, int64_t item, int worker);
int pool_threads();
int pool_default_threads();
void pool_set_threads(int n);  // n >= 1; throws std::system_error / std::bad_alloc
// Runs fn(ctx, item, worker) for item in [0, n_items) on at most max_workers threads (the caller is worker 0).
void parallel_for(int64_t n_items, int max_workers, TaskFn fn, void* ctx);

// f(begin, end) over [0, n) in fixed chunks of `chunk` elements (the last one shorter), on the pool's threads: the
// split depends on n and chunk only. For elementwise passes.
template <class F>
void parallel_chunks(int64_t n, int64_t chunk, F& f) {
  struct Job {
    F* f;
    int64_t n, chunk;
  } job{&f, n, chunk};
  auto body = [](void* ctx, int64_t item, int) {
    const Job& j = *static_cast<const Job*>(ctx);
    const int64_t b = item * j.chunk;
    (*j.f)(b, b + j.chunk < j.n ? b + j.chunk : j.n);
  };
  const int64_t items = (n + chunk - 1) / chunk;
  parallel_for(items, items > 1 ? pool_threads() : 1, body, &job);
}
// Rows of `row_elems` 4-byte elements per work item of a row-major pass over the pool: 64 KiB of them (at least one
// row), so that each thread reads runs long enough for the prefetchers.
int64_t rows_per_item(int64_t row_elems);
// Ensures every worker has a 64-byte aligned scratch buffer of at least `floats` floats; throws std::bad_alloc.
void scratch_reserve(int64_t floats);
float* scratch(int worker);
// out = exp(x) for n values on the calling thread, as moe_unary_f32's exp (elementwise.cpp).
void exp_f32(const float* x, float* out, int64_t n);

// ---- ISA (isa.cpp) ----
// Whether the streaming kernels (the blocked float stream, the quantized codes' streams) prefetch the weights they read
// next into the L1, else into the L2: from the L1's size (blocking.cpp states the rule and its measurements).
bool stream_prefetch_l1();
moe_isa_t isa_best();
moe_isa_t isa_active();
void isa_set(moe_isa_t isa);

}  // namespace moe::detail
