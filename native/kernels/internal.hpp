// Internal interfaces between the C ABI (api.cpp), the thread pool and the per-ISA kernel files.
// Only plain structs and functions defined in baseline-compiled translation units live here, so the
// ISA translation units (compiled for AVX2/AVX-512) never emit shared inline code the linker could pick
// for a baseline caller.
#pragma once

#include <cstddef>
#include <cstdint>

#include "moe-kernels.h"

namespace moe::detail {

// One matmul of a grouped problem: C[m x n] = A[m x k] * B[k x n], element (i, p) of A at
// a[i * a_rs + p * a_cs], element (p, j) of B at b[p * b_rs + j * b_cs], element (i, j) of C at c[i * ldc + j].
// Either a_cs == 1 or a_rs == 1, and either b_cs == 1 or b_rs == 1.
struct GemmGroup {
  const float* a;
  int64_t a_rs, a_cs;
  const float* b;
  int64_t b_rs, b_cs;
  float* c;
  int64_t ldc;
  int64_t m, k;
};

// Computes the block C[i0 : i0 + mb, j0 : j0 + nb] of one group over its full k (zeros when k == 0).
// `scratch` holds at least GemmKernel::scratch_floats(nb) floats, 64-byte aligned.
using GemmBlockFn = void (*)(const GemmGroup& g, int64_t n, int64_t i0, int64_t mb, int64_t j0, int64_t nb,
                             float* scratch);

// A kernel set for one ISA and its blocking: mr x nr register tile, kc contraction block, and the largest
// block (mc x nc) one work item computes.
struct GemmKernel {
  moe_isa_t isa;
  int mr, nr, kc, mc, nc;
  GemmBlockFn block;
};

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
inline int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

// Scratch one work item needs: a packed kc x nb' panel of B plus a packed mr x kc tile of A.
inline int64_t scratch_floats(const GemmKernel& kern, int64_t nb) {
  return kern.kc * round_up(nb, kern.nr) + int64_t(kern.mr) * kern.kc + 16;
}

const GemmKernel& gemm_kernel_scalar();
#if defined(__x86_64__) || defined(_M_X64)
#define MOE_HAVE_X86_KERNELS 1
const GemmKernel& gemm_kernel_avx2();
const GemmKernel& gemm_kernel_avx512();
#endif

// Runs C_g = A_g * B_g for every group on the thread pool with the active ISA. Work items are blocks of
// at most (mc x nc) of one group's C, fixed by the shapes alone; each is computed by one thread.
void grouped_gemm(const GemmGroup* groups, int64_t num_groups, int64_t n);

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
// Ensures every worker has a 64-byte aligned scratch buffer of at least `floats` floats; throws std::bad_alloc.
void scratch_reserve(int64_t floats);
float* scratch(int worker);

// ---- ISA (isa.cpp) ----
moe_isa_t isa_best();
moe_isa_t isa_active();
void isa_set(moe_isa_t isa);

}  // namespace moe::detail
