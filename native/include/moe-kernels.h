/*
 * moe-kernels.h: moekit's native CPU kernels behind a flat C ABI.
 *
 * This header is the documentation of the native library. The Node-API addon (native/napi/addon.cpp) is a
 * thin wrapper over these functions; the kernels themselves (native/kernels/) are plain C++17 with no
 * Node dependency and can be linked into any program.
 *
 * Building and testing
 *   npm run build:native            the addon, native/build/Release/moekit_native.node (node-gyp, offline:
 *                                   native/build.mjs points node-gyp at the running Node's headers)
 *   native/test/run.sh              standalone C++ tests (every ISA the CPU has, 1-3 threads)
 *   native/test/run.sh bench [op] [threads...]
 *                                   gmm GFLOP/s at the expert up-projection shape (native/lab/bench_gmm.cpp)
 *   TS side: src/backends/native (MOEKIT_NATIVE=0 disables the addon, MOEKIT_NATIVE_ADDON=path overrides it).
 *
 * Layout of the kernels: each grouped matmul becomes per-group GEMM descriptors (kernels/api.cpp), split
 * into work items of at most mc x nc outputs fixed by the shapes (kernels/gemm.cpp), run on the pool
 * (kernels/thread_pool.cpp). Per ISA (kernels/gemm_{avx512,avx2,scalar}.cpp): B is packed into NR-wide
 * panels per kc block, row-major A is read in place, and an MR x NR register tile accumulates in fp32
 * (AVX-512: 12 x 32, kc = 256; AVX2: 6 x 16; scalar: 4 x 8).
 *
 * Conventions
 *   - Tensors are dense and row-major. Floating tensors are fp32, group sizes are int32.
 *   - Sizes are int64_t and must be >= 0. A pointer may be NULL only when its tensor has no elements.
 *   - Outputs are written completely (callers need not zero them) and must not overlap any input.
 *   - Arithmetic is fp32 with fp32 accumulation. Every output element is computed by exactly one thread
 *     as one chain over the contraction index in ascending order (fused multiply-adds on the AVX2 and
 *     AVX-512 paths; on the scalar path the compiler decides whether to fuse). Results therefore do not
 *     depend on the thread count or on how work is split between threads (they may differ between ISAs).
 *   - Calls may come from any thread; concurrent calls are serialized on the library's thread pool.
 *   - On a non-OK status the contents of the outputs are unspecified, and moe_last_error() returns a
 *     message describing the failure (per calling thread, valid until that thread's next call).
 *
 * Grouped matmuls (the Megablox gmm/tgmm contracts)
 *   The m rows of the row operand are split into num_groups consecutive groups: group g holds rows
 *   [off_g, off_g + group_sizes[g]) with off_g = sum(group_sizes[0..g)). Every group size must be >= 0 and
 *   their sum must be <= m. Rows past the sum belong to no group.
 */
#ifndef MOEKIT_MOE_KERNELS_H
#define MOEKIT_MOE_KERNELS_H

#include <stdint.h>

#if defined(_WIN32)
#define MOE_API
#else
#define MOE_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum moe_status {
  MOE_STATUS_OK = 0,
  MOE_STATUS_INVALID_ARGUMENT = 1, /* bad size, NULL pointer, negative group size, sum(groups) > m */
  MOE_STATUS_OUT_OF_MEMORY = 2,    /* scratch buffers or thread creation failed */
  MOE_STATUS_UNSUPPORTED = 3,      /* e.g. moe_set_isa with an ISA this CPU or build lacks */
  MOE_STATUS_INTERNAL = 4
} moe_status_t;

/* Instruction sets with kernels, ordered: a CPU that runs one runs every lower one. */
typedef enum moe_isa {
  MOE_ISA_SCALAR = 0, /* portable C++ */
  MOE_ISA_AVX2 = 1,   /* x86-64 AVX2 + FMA */
  MOE_ISA_AVX512 = 2  /* x86-64 AVX-512 F/BW/VL + FMA */
} moe_isa_t;

/* Library version, "MAJOR.MINOR.PATCH". */
MOE_API const char* moe_version(void);

/* Constant name of a status ("ok", "invalid argument", ...). */
MOE_API const char* moe_status_string(moe_status_t status);

/* Message for the last failed call on this thread ("" if none). */
MOE_API const char* moe_last_error(void);

/* ---- Instruction set dispatch ----------------------------------------------------------------------
 * Chosen once at load time with __builtin_cpu_supports: the best ISA the CPU supports and this build has
 * kernels for. The environment variable MOEKIT_NATIVE_ISA=scalar|avx2|avx512 caps the choice. */

/* Constant name of an ISA ("scalar", "avx2", "avx512"); "unknown" for other values. */
MOE_API const char* moe_isa_name(moe_isa_t isa);

/* Best ISA usable on this CPU (ignores the environment cap and moe_set_isa). */
MOE_API moe_isa_t moe_isa_best(void);

/* ISA the kernels currently use. */
MOE_API moe_isa_t moe_isa_active(void);

/* Use `isa` from now on (for tests and benchmarks). UNSUPPORTED if isa > moe_isa_best(). */
MOE_API moe_status_t moe_set_isa(moe_isa_t isa);

/* ---- Thread pool ------------------------------------------------------------------------------------
 * The library owns a pool of worker threads; the calling thread takes part in every kernel, so n threads
 * means n - 1 workers. Small problems run on the calling thread alone. */

/* Number of threads kernels use (>= 1). Default: the number of online CPUs. */
MOE_API int moe_num_threads(void);

/* The default thread count (number of online CPUs). */
MOE_API int moe_default_num_threads(void);

/* Set the thread count; 0 restores the default. INVALID_ARGUMENT if n < 0 or n > 1024. */
MOE_API moe_status_t moe_set_num_threads(int n);

/* ---- Kernels ----------------------------------------------------------------------------------------- */

/* Grouped matmul, forward (Megablox gmm):
 *   lhs         [m, k]
 *   rhs         [num_groups, k, n], or [num_groups, n, k] when transpose_rhs != 0
 *   group_sizes [num_groups]
 *   out         [m, n]:  out[r] = lhs[r] @ rhs[g]      (rhs[g]^T when transposed) for r in group g,
 *                        out[r] = 0                    for rows past sum(group_sizes). */
MOE_API moe_status_t moe_gmm_fwd_f32(const float* lhs, const float* rhs, const int32_t* group_sizes, int64_t m,
                                     int64_t k, int64_t n, int64_t num_groups, int transpose_rhs, float* out);

/* Gradient of moe_gmm_fwd_f32 with respect to lhs (a gmm against the transposed weights):
 *   grad_out    [m, n]
 *   rhs         [num_groups, k, n], or [num_groups, n, k] when transpose_rhs != 0 (as in the forward)
 *   grad_lhs    [m, k]:  grad_lhs[r] = grad_out[r] @ rhs[g]^T   (rhs[g] when transposed) for r in group g,
 *                        0 for rows past sum(group_sizes). */
MOE_API moe_status_t moe_gmm_bwd_lhs_f32(const float* grad_out, const float* rhs, const int32_t* group_sizes,
                                         int64_t m, int64_t k, int64_t n, int64_t num_groups, int transpose_rhs,
                                         float* grad_lhs);

/* Transposed grouped matmul (Megablox tgmm), the gradient of moe_gmm_fwd_f32 with respect to rhs:
 *   lhs         [m, k]
 *   grad_out    [m, n]
 *   grad_rhs    [num_groups, k, n]:  grad_rhs[g] = lhs_g^T @ grad_out_g over the rows of group g;
 *                                    empty groups give 0, rows past sum(group_sizes) are ignored.
 * (For a forward with transpose_rhs != 0 the gradient [num_groups, n, k] is this with lhs and grad_out
 * swapped.) */
MOE_API moe_status_t moe_gmm_bwd_rhs_f32(const float* lhs, const float* grad_out, const int32_t* group_sizes,
                                         int64_t m, int64_t k, int64_t n, int64_t num_groups, float* grad_rhs);

/* Batched matmul: a [batch, m, k] x b [batch, k, n] -> out [batch, m, n]. */
MOE_API moe_status_t moe_bmm_f32(const float* a, const float* b, int64_t batch, int64_t m, int64_t k, int64_t n,
                                 float* out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOEKIT_MOE_KERNELS_H */
