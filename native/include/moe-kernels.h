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
 *   native/test/run.sh [quick]      standalone C++ tests (every ISA and bf16 path the CPU has, 1-3 threads)
 *   native/test/run.sh bench [op] [threads...]
 *                                   gmm GFLOP/s at the expert up-projection shape (native/lab/bench_gmm.cpp)
 *   native/test/run.sh bench_ffn [threads...]
 *                                   the fused MoE FFN (stage 2, below): forward / backward / decode against the
 *                                   probes (native/lab/bench_ffn.cpp)
 *   TS side: src/backends/native (MOEKIT_NATIVE=0 disables the addon, MOEKIT_NATIVE_ADDON=path overrides it).
 *
 * Layout of the kernels: one blocked GEMM engine serves gmm, tgmm, bmm and the fused FFN. A call becomes engine
 * problems (kernels/gemm.cpp for the plain matmuls, kernels/ffn_stages.cpp for the FFN; the problem descriptor and
 * the ISA unit interface are in kernels/engine.hpp), which kernels/engine.cpp splits into work items fixed by the
 * shapes and group sizes and runs on the pool (kernels/thread_pool.cpp) with the unit of the active ISA
 * (kernels/isa.cpp). The blocking loop (kernels/engine_block.inc) is compiled once per ISA unit, each with its
 * register tile: isa_avx512.cpp fp32 12 x 32, isa_avx512bf16.cpp vdpbf16ps 12 x 32, isa_amx.cpp 32 x 32 AMX tiles,
 * isa_avx2.cpp 6 x 16, isa_scalar.cpp portable 4 x 16. B is packed into panels per contraction block, row-major A
 * is read in place, and an epilogue (store with bias, GLU forward, GLU backward) is applied to each finished block.
 * The bf16 path policy (bf16_path.cpp, cpu_features.cpp), the workspace (workspace.cpp) and the peak probes
 * (probes.cpp) have their own files. The FFN's stages can also be called one by one, for tests and the lab only
 * (native/test/stages_abi.h).
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
  MOE_ISA_AVX512 = 2  /* x86-64 AVX-512 F/BW/VL/DQ + FMA */
} moe_isa_t;

/* Library version, "MAJOR.MINOR.PATCH". */
MOE_API const char* moe_version(void);

/* Constant name of a status ("ok", "invalid argument", ...). */
MOE_API const char* moe_status_string(moe_status_t status);

/* Message for the last failed call on this thread ("" if none). */
MOE_API const char* moe_last_error(void);

/* ---- Instruction set dispatch ----------------------------------------------------------------------
 * Chosen once at load time with __builtin_cpu_supports: the best ISA the CPU supports and this build has
 * kernels for; moe_set_isa lowers it (moekit's TypeScript side does so for MOEKIT_NATIVE_ISA). */

/* Constant name of an ISA ("scalar", "avx2", "avx512"); "unknown" for other values. */
MOE_API const char* moe_isa_name(moe_isa_t isa);

/* The GEMM engine's blocking with the active ISA, as text: the cache sizes it was derived from, and per multiply
 * kind the register tile (mr x nr), the contraction block kc, the item size mc x nc and whether they are the
 * model's or were set (moe_set_blocking). Valid until the next call on this thread. */
MOE_API const char* moe_blocking_info(void);

/* Sets the block sizes of one multiply kind ("f32"; "dpbf16" or "amx" with avx512) of the active ISA, for every
 * thread: kc a multiple of 32, mc a multiple of the kind's mr, nc of its nr; 0 puts the model's value back (all three
 * 0: the model's blocking). Results do not depend on them, only speed (moekit tune). INVALID_ARGUMENT names the bad
 * value. Not to be called while a kernel runs. */
MOE_API moe_status_t moe_set_blocking(const char* kind, int kc, int mc, int nc);

/* The blocking of one multiply kind of the active ISA: out = {mr, nr, kc, mc, nc, set (1 when moe_set_blocking set
 * any of them)}. */
MOE_API moe_status_t moe_get_blocking(const char* kind, int out[6]);

/* The processor's brand string (cpuid), "" where unknown. */
MOE_API const char* moe_cpu_brand(void);

/* Best ISA usable on this CPU (ignores the environment cap and moe_set_isa). */
MOE_API moe_isa_t moe_isa_best(void);

/* ISA the kernels currently use. */
MOE_API moe_isa_t moe_isa_active(void);

/* Use `isa` from now on (for tests and benchmarks). UNSUPPORTED if isa > moe_isa_best(). */
MOE_API moe_status_t moe_set_isa(moe_isa_t isa);

/* ---- Thread pool ------------------------------------------------------------------------------------
 * Each thread that calls into the library has its own context: a pool of worker threads, a workspace and a
 * thread count, so calls from different threads (ranks on Node workers) run concurrently. The calling thread
 * takes part in every kernel, so n threads means n - 1 workers. Small problems run on the calling thread alone.
 * The settings below are the calling thread's; the ISA and the bf16 path are the process's. */

/* Number of threads the calling thread's kernels use (>= 1). Default: the number of online CPUs. */
MOE_API int moe_num_threads(void);

/* The default thread count (number of online CPUs). */
MOE_API int moe_default_num_threads(void);

/* Set the calling thread's thread count; 0 restores the default. INVALID_ARGUMENT if n < 0 or n > 1024. */
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

/* ==== Stage 2: the fused MoE expert FFN ===============================================================
 *
 * The routed-expert feed-forward of a MoE layer (MaxText's sparse_matmul path), forward and backward, with the
 * routing permutation fused into the kernels. Legend: T tokens, K experts per token, R = T*K routed rows,
 * E experts, D model dim, H expert hidden dim. The rows are sorted by expert: routed choice c = t*K + k
 * (token t, its k-th expert) sits in sorted row r with order[r] = c; expert e owns the consecutive rows of
 * group e (group_sizes, as for gmm above). Derived maps: row_token[r] = order[r] / K (the token a row reads)
 * and inv[order[r]] = r (the row holding a choice).
 *
 * The spec (MaxText gather -> expert FFN -> unpermute; moekit: gatherSorted -> expertFfn -> unpermute):
 *   x_rows[r] = x[row_token[r]]                                         [R, D]
 *   h0[r] = x_rows[r] @ wi0[e] + b0[e],  h1[r] = x_rows[r] @ wi1[e] + b1[e]    (e the group of r)  [R, H]
 *   act[r] = glu(h0[r], h1[r])                                          [R, H]
 *   o_rows[r] = act[r] @ wo[e] + bo[e]                                  [R, D]
 *   y[t] = sum_k w[t, k] * o_rows[inv[t*K + k]]                         [T, D]
 * with weights wi0, wi1 [E, D, H], wo [E, H, D], optional biases b0, b1 [E, H], bo [E, D] (NULL: none) and
 * combine weights w [T, K] (NULL: all ones, llama4). Rows past sum(group_sizes) belong to no expert: their
 * h0, h1, act and o_rows are 0 (no bias) and their gradients are 0.
 *
 * GLU: with f = `activation` (below), act = f(h0) * h1 when clamp_limit == 0; with L = clamp_limit > 0 the
 * GPT-OSS form  a = min(h0, L), b = clip(h1, -L, L), act = a * f(1.702 a) * (b + 1).
 * Derivative conventions (as JAX): relu'(0) = 0; min/clip pass half the gradient at an exact tie (h0 == L,
 * h1 == +-L), like jax.lax.min/max, and none beyond the bound. The gradients of silu, gelu and sigmoid are
 * their closed forms; gelu is the tanh approximation computed as gelu(x) = x * sigmoid(2u),
 * u = sqrt(2/pi) (x + 0.044715 x^3) (= 0.5 x (1 + tanh u)).
 *
 * Numerics and determinism: as the grouped matmuls above. Every output element is produced by one thread with
 * a fixed reduction order (contractions ascending; the combine and the scatter of dx over k = 0..K-1; row sums
 * ascending in r), so results are bit-identical for every thread count. Work splits depend on the shapes and
 * group sizes only. exp/tanh in the GLU are the library's own vectorized approximations (relative error
 * ~1e-7) on the AVX-512 and AVX2 paths and libm on the portable path. The fused kernels have AVX-512, AVX2 + FMA
 * and portable implementations; the fp32 products of the AVX2 and AVX-512 ones are the same fma chains (same
 * bits), their GLUs may differ in the last bit (the AVX2 sigmoid divides where AVX-512 refines vrcp14ps).
 *
 * Small groups (decode, small batches): in the forward, groups of at most 48 rows with the fp32 multiply on AVX-512
 * (16 with the dpbf16 / amx paths; 4 on AVX2 and the portable path) skip packing and stream their weights once, in
 * blocks of weight rows swept in register strips (groups of at most 4 rows, on every ISA: whole weight rows in order,
 * one contiguous stream per matrix), with the packed path's fp32 fma chain, so fp32 results do not
 * depend on the path; bf16 weights are widened exactly to fp32 there and the activations are not rounded, so such a
 * group's bf16 product is not rounded like the dpbf16 / amx paths round.
 *
 * Layout of the code: ffn_api.cpp (this ABI: argument checks, index maps, the order of the stages) runs the stages of
 * ffn_stages.cpp, each a fused grouped-GEMM problem of the engine: up to two B matrices side by side sharing the
 * packed A (wi0|wi1), up to two contraction segments ([dh0|dh1] against [wi0^T; wi1^T]), A rows gathered through an
 * index map while packing, and the epilogue; the memory-bound passes (combine, row sums) are ffn_passes.cpp.
 *
 * bf16 weights (the `_bf16w` variants): weights are uint16_t bf16 bit patterns in the same layouts; activations,
 * biases, outputs and gradients stay fp32. How products are formed depends on moe_bf16_path():
 *   MOE_BF16_DPBF16  AVX512_BF16 vdpbf16ps: activations are rounded to bf16 (round to nearest even) as they are
 *                    packed, products are summed in pairs into fp32 accumulators.
 *   MOE_BF16_AMX     AMX-BF16 tiles: same rounding of the activations, fp32 accumulation in the tile unit.
 *   MOE_BF16_WIDEN   weights widened (exactly) to fp32 as they are packed; fp32 fma (no activation rounding:
 *                    equals the fp32 kernels on the bf16 values). The fallback when the CPU lacks AVX512_BF16.
 * The default is AMX where the CPU and OS allow it; else DPBF16 on AMD cores (Zen 4, Zen 5: vdpbf16ps at twice the
 * fp32 fma rate); else WIDEN. Intel cores run vdpbf16ps at half their fp32 fma rate, so without AMX (Cooper Lake,
 * or a VM that hides AMX) DPBF16 is slower than WIDEN there (bench/RESULTS.md). The rule looks at the CPU vendor, not at a
 * timing, so the path (and with it the rounding of the activations) is the same on every run; compare
 * moe_probe_bf16_peak with moe_probe_fma_peak_f32 and choose with moe_set_bf16_path to override. Only the products with
 * weights use the path: the weight gradients (tgmm of activations against gradients) are fp32 on every path.
 *
 * Scratch: kernels keep a per-worker packing scratch; the one-shot moe_ffn_fwd/bwd calls also keep their
 * intermediates ([R, H] and [R, D] buffers, the index maps) in a library workspace that grows to the largest problem
 * seen and is reused by later calls, as does the bf16 copy of x that the up projection makes on the DPBF16 / AMX
 * paths (x is converted once per call instead of once per gathered tile); moe_workspace_release() frees it. No
 * kernel allocates per call beyond that (and small per-call index arrays: work items, group offsets, the
 * permutation check of inv).
 */

/* Activation f of the GLU. */
typedef enum moe_activation {
  MOE_ACT_LINEAR = 0,    /* f(x) = x */
  MOE_ACT_SILU = 1,      /* x * sigmoid(x) (swish) */
  MOE_ACT_GELU_TANH = 2, /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (jax.nn.gelu, approximate) */
  MOE_ACT_SIGMOID = 3,   /* 1 / (1 + exp(-x)) */
  MOE_ACT_RELU = 4       /* max(x, 0) */
} moe_activation_t;

/* How bf16 weights are multiplied (see above). */
typedef enum moe_bf16_path {
  MOE_BF16_WIDEN = 0,
  MOE_BF16_DPBF16 = 1,
  MOE_BF16_AMX = 2
} moe_bf16_path_t;

/* Constant name of a path ("widen", "dpbf16", "amx"). */
MOE_API const char* moe_bf16_path_name(moe_bf16_path_t path);
/* Whether the CPU has AVX512_BF16 (vdpbf16ps) / usable AMX-BF16 (CPUID, OS state and, on Linux, the
 * arch_prctl permission for tile data). */
MOE_API int moe_cpu_has_avx512_bf16(void);
MOE_API int moe_cpu_has_amx_bf16(void);
/* The path bf16-weight kernels use now; set it (UNSUPPORTED if the CPU or the active ISA lacks it: DPBF16 and
 * AMX need moe_isa_active() == MOE_ISA_AVX512). The initial path is the default rule below; moekit's TypeScript
 * side sets MOEKIT_NATIVE_BF16's. */
MOE_API moe_bf16_path_t moe_bf16_path(void);
MOE_API moe_status_t moe_set_bf16_path(moe_bf16_path_t path);

/* Bytes held by the calling thread's one-shot workspace; release it (the next one-shot call allocates again). */
MOE_API int64_t moe_workspace_bytes(void);
MOE_API void moe_workspace_release(void);

/* Hint that [p, p + bytes) is fresh memory about to be written in full (an output array just allocated by the
 * caller): on Linux, large ranges get transparent huge pages for their 2 MiB-aligned interior, so that first
 * writes fault once per 2 MiB rather than per 4 KiB. Never changes contents or results; a no-op elsewhere. */
MOE_API void moe_advise_fresh_output(void* p, int64_t bytes);


/* ---- Integer products of the quantized matmuls (int8.cpp) ------------------------------------------
 * moe_i32_fits_i8: 1 when every x[i] is in [-128, 127].
 * moe_gmm_i8: out [m, n] (int32) = lhs rows of group g @ rhs[g] as moe_gmm_fwd_f32 lays them out (rhs [G, k, n], or
 *   [G, n, k] read transposed), for int32 operands whose values fit in int8 (the caller checks), accumulated exactly
 *   in int32 (k <= 131071); rows past sum(group_sizes) are 0. vpdpbusd where AVX512-VNNI and the AVX-512 ISA are
 *   active, plain loops elsewhere: the same bits either way.
 * moe_quantize_f32: prims/quantize.ts's abs-max quantization of x [P, C, Q] over C (one scale per (p, q)): q [P, C, Q]
 *   int32, scales [P, Q]; noise (NULL, or [P, C, Q] in [-0.5, 0.5)) is added before rounding; qwix != 0 rounds then
 *   saturates, else clips then rounds (aqt). *first_bad = the flat index of the first non-finite x (else -1); the
 *   outputs are then incomplete. */
MOE_API int moe_i32_fits_i8(const int32_t* x, int64_t n);
MOE_API moe_status_t moe_gmm_i8(const int32_t* lhs, const int32_t* rhs, const int32_t* group_sizes, int64_t m, int64_t k,
                                int64_t n, int64_t num_groups, int transpose_rhs, int32_t* out);
MOE_API moe_status_t moe_quantize_f32(const float* x, const float* noise, int64_t P, int64_t C, int64_t Q, int bits,
                                      int qwix, int32_t* q, float* scales, int64_t* first_bad);

/* ---- Grouped matmul over quantized weights (serve mode; qgmm.cpp) ------------------------------------
 * moekit's Prim.QuantizedGmm (src/prims/quantized-gmm.ts states the contract): the rhs [G, k, n] stays in its storage
 * format and is decoded block by block inside the packing (never a float copy of the weights):
 *   out[r, j] = fl( sum_b fl(sum_{p in b} lhs[r, p] * c[g, p, j]) * fl(sl[r] * s[g, b, j]) )   g: the group of r
 * with b the format's scale blocks along k (ascending), c the decoded code, s the block's scale, sl the lhs's row
 * scale (1 for a float lhs), fl rounding to fp32. Rows past sum(group_sizes) are 0.
 *   MOE_WF_INT8      codes int8 [G, k, n];                    scales fp32 [G, n] (one block)
 *   MOE_WF_INT4      codes uint8 [G, k, ceil(n/2)], column j in byte j/2, low nibble = even j, two's complement;
 *                    scales fp32 [G, n] (one block)
 *   MOE_WF_FP8_E4M3  codes uint8 [G, n, k], float8_e4m3fn bits (S.1111.111 is NaN); scales fp32
 *                    [G, ceil(n/128), ceil(k/128)] (blocks of 128 along k)
 *   MOE_WF_MXFP4     codes uint8 [G, n, k/2], element p in byte p/2, low nibble = even p, e2m1; scales uint8
 *                    [G, n, k/32], e8m0 2^(e - 127), 255 NaN (blocks of 32 along k); k a multiple of 32
 *   MOE_WF_INT8_TILES, MOE_WF_INT4_TILES  the int8 / int4 codes and scales above with the codes in tiles, the order the
 *                    decode streams read them: a tile is 64 rows of k by 64 bytes (64 int8 or 128 int4 columns, each
 *                    row as the row layout holds it), zero past k and n; tile (t, q) of group g starts at byte
 *                    4096 ((g ceil(k/64) + t) ceil(n/c) + q), c = 64 (int8) or 128 (int4), its row p % 64 at
 *                    64 (p % 64): codes [G, ceil(k/64), ceil(n/c), 4096] bytes
 * lhs: fp32 [m, k] (lhs_int == 0, lhs_scales NULL), or int32 [m, k] with values in [-128, 127] (lhs_int != 0) and
 * lhs_scales fp32 [m] (int8 serve mode: activations quantized per row).
 * Numerics: each block's partial sum is one fp32 chain over p ascending (fma on AVX-512), then
 * acc = fma(partial, fl(sl * s), acc) over the blocks in order, from +0 (the reference sums the blocks in float64, so
 * multi-block formats may differ from it in the last bits). int8 / int4 codes with an int lhs multiply exactly in int32
 * (vpdpbusd where AVX512-VNNI and the AVX-512 ISA are active, plain loops elsewhere) and give fl(P * fl(sl * s)):
 * bit-identical to the reference on every ISA. Every output element comes from one work item in a fixed order, so
 * results do not depend on the thread count. Work items: (group, up to 128 rows, a span of 64-column panels: as many as
 * rows x columns <= 8192 allows, so a small group reads whole rows of [k, n] codes; one panel on the int path, except
 * groups of <= 8 rows on VNNI); a group of <= 128 rows reads each code byte once.
 * ISAs: AVX-512 decodes in registers (int4 nibbles, e4m3 bits, e2m1 table lookups; the [n, k] formats transposed 16 x 16
 * in registers) and runs a 6 x 64 fma tile; groups of <= 12 rows with int8 / int4 codes stream instead (each row of
 * codes decoded in registers straight into the tile's accumulators, chunks of 32 rows of k (64 for codes in tiles),
 * the next chunk prefetched;
 * the same chain), and on the int path groups of <= 8 rows on VNNI stream the codes as unsigned bytes (code + 128, or
 * + 8 for int4) into 4 x 64 vpdpbusd tiles, the bias taken out with the row's sum (exact, the same bits). AVX2 and
 * scalar run portable loops. */
typedef enum moe_weight_format {
  MOE_WF_INT8 = 0,
  MOE_WF_INT4 = 1,
  MOE_WF_FP8_E4M3 = 2,
  MOE_WF_MXFP4 = 3,
  MOE_WF_INT8_TILES = 4,
  MOE_WF_INT4_TILES = 5
} moe_weight_format_t;
MOE_API moe_status_t moe_quantized_gmm(moe_weight_format_t format, const void* lhs, int lhs_int, const float* lhs_scales,
                                       const void* codes, const void* scales, const int32_t* group_sizes, int64_t m,
                                       int64_t k, int64_t n, int64_t num_groups, float* out);

/* moe_ffn_fwd_quantized: the forward of the fused FFN below (moe_ffn_fwd_f32's spec, a float32 layer) with the expert
 * weights held quantized and read as moe_quantized_gmm reads them: wi0, wi1 as [E, D, H] and wo as [E, H, D] codes of
 * `format` with their scales (the layouts above). lhs_bits 0: the GMMs take the float rows (weight-only); 2..8: each
 * GMM's input rows (the gathered x, then the GLU's output) are quantized per row first by moe_quantize_f32's AQT rule
 * (P = R, C = k, Q = 1, no noise) and multiplied as integers. Every routed row must be in a group (sum(group_sizes)
 * = T * K). Each bias add is one fp32 add; GLU and combine as moe_ffn_fwd_f32. Intermediates live in the workspace.
 * With int8 / int4 codes the quantized rows go straight into the integer tiles' packed layout (AVX-512: 8 doubles
 * at a time, the same divisions and rounding), the same bits as moe_quantize_f32 then moe_quantized_gmm.
 * bf16_layer != 0: a bfloat16 layer's forward, rounded where moe_ffn_fwd_bf16 rounds (x, h0 and h1 after each GMM and
 * after their biases, every op of the GLU, o before and after its bias), so the int8 rows are quantized from bf16
 * values; its weight-only form takes int8 / int4 codes only and rounds as QuantizedGmm in bf16 does,
 * bf16(bf16(P) * bf16(s)) with P the unscaled product. A non-finite GMM input is an INVALID_ARGUMENT naming its
 * routed row. */
MOE_API moe_status_t moe_ffn_fwd_quantized(moe_weight_format_t format, int lhs_bits, int bf16_layer, const float* x, int64_t T,
                                           int64_t D, const int32_t* order, int64_t K, const float* w,
                                           const void* wi0_codes, const void* wi0_scales, const void* wi1_codes,
                                           const void* wi1_scales, const void* wo_codes, const void* wo_scales,
                                           const float* b0, const float* b1, const float* bo,
                                           const int32_t* group_sizes, int64_t E, int64_t H,
                                           moe_activation_t activation, float clamp_limit, float* y);

/* ---- Forward and backward ----------------------------------------------------------------------------
 * Shapes: x [T, D]; group_sizes [E] (sum <= R); wi0, wi1 [E, D, H]; wo [E, H, D]; b0, b1 [E, H], bo [E, D] (NULL:
 * no bias); w [T, K] (NULL: ones). `_bf16w` variants take the weights as bf16 bits, everything else fp32.
 * moe_ffn_fwd_bf16 is the forward of a layer whose dtype is bfloat16 (bf16 weight bits; x and the biases are fp32,
 * rounded to bf16 on use): h0 and h1, each after its bias, every op of the GLU and o before and after its bias are
 * rounded to bf16 where the op composition rounds them (kernels/bf16_acts.cpp); y is the fp32 sum.
 * moe_ffn_fwd_bf16_f32w is the same with fp32 weights, each rounded to bf16 as the kernels read it.
 * clamp_limit: 0, or L > 0 for the GPT-OSS form. The whole spec from the sort order: order [R] with R = T*K (a permutation of [0, R)); row_token and inv are
 * derived. Intermediates live in the workspace unless the caller asks for them:
 *   forward: y [T, D]; res_act, res_h0, res_h1 [R, H] and res_o_rows [R, D] are written when non-NULL (a
 *   training forward passes all four and hands them to the backward).
 *   backward: from dy [T, D] and the forward's residuals: dx [T, D]; and, each when non-NULL (NULL skips its
 *   work): dw [T, K] (dw[t, k] = <o_rows[inv[t*K + k]], dy[t]>, also when w is NULL), dwi0, dwi1 [E, D, H],
 *   dwo [E, H, D], db0, db1 [E, H], dbo [E, D]. */
MOE_API moe_status_t moe_ffn_fwd_f32(const float* x, int64_t T, int64_t D, const int32_t* order, int64_t K,
                                     const float* w, const float* wi0, const float* wi1, const float* wo,
                                     const float* b0, const float* b1, const float* bo, const int32_t* group_sizes,
                                     int64_t E, int64_t H, moe_activation_t activation, float clamp_limit, float* y,
                                     float* res_act, float* res_h0, float* res_h1, float* res_o_rows);
MOE_API moe_status_t moe_ffn_fwd_bf16w(const float* x, int64_t T, int64_t D, const int32_t* order, int64_t K,
                                       const float* w, const uint16_t* wi0, const uint16_t* wi1, const uint16_t* wo,
                                       const float* b0, const float* b1, const float* bo, const int32_t* group_sizes,
                                       int64_t E, int64_t H, moe_activation_t activation, float clamp_limit, float* y,
                                       float* res_act, float* res_h0, float* res_h1, float* res_o_rows);
MOE_API moe_status_t moe_ffn_fwd_bf16(const float* x, int64_t T, int64_t D, const int32_t* order, int64_t K,
                                      const float* w, const uint16_t* wi0, const uint16_t* wi1, const uint16_t* wo,
                                      const float* b0, const float* b1, const float* bo, const int32_t* group_sizes,
                                      int64_t E, int64_t H, moe_activation_t activation, float clamp_limit, float* y,
                                      float* res_act, float* res_h0, float* res_h1, float* res_o_rows);
MOE_API moe_status_t moe_ffn_fwd_bf16_f32w(const float* x, int64_t T, int64_t D, const int32_t* order, int64_t K,
                                           const float* w, const float* wi0, const float* wi1, const float* wo,
                                           const float* b0, const float* b1, const float* bo,
                                           const int32_t* group_sizes, int64_t E, int64_t H,
                                           moe_activation_t activation, float clamp_limit, float* y, float* res_act,
                                           float* res_h0, float* res_h1, float* res_o_rows);
MOE_API moe_status_t moe_ffn_bwd_f32(const float* dy, const float* x, int64_t T, int64_t D, const int32_t* order,
                                     int64_t K, const float* w, const float* wi0, const float* wi1, const float* wo,
                                     const int32_t* group_sizes, int64_t E, int64_t H, moe_activation_t activation,
                                     float clamp_limit, const float* res_act, const float* res_h0,
                                     const float* res_h1, const float* res_o_rows, float* dx, float* dw, float* dwi0,
                                     float* dwi1, float* dwo, float* db0, float* db1, float* dbo);
MOE_API moe_status_t moe_ffn_bwd_bf16w(const float* dy, const float* x, int64_t T, int64_t D, const int32_t* order,
                                       int64_t K, const float* w, const uint16_t* wi0, const uint16_t* wi1,
                                       const uint16_t* wo, const int32_t* group_sizes, int64_t E, int64_t H,
                                       moe_activation_t activation, float clamp_limit, const float* res_act,
                                       const float* res_h0, const float* res_h1, const float* res_o_rows, float* dx,
                                       float* dw, float* dwi0, float* dwi1, float* dwo, float* db0, float* db1,
                                       float* dbo);

/* ---- Probes (benchmarks) ------------------------------------------------------------------------------
 * Measured on the library's pool with the current thread count (each thread runs the loop on its own data):
 *   moe_probe_fma_peak_f32   fp32 fma throughput of the active ISA (register-only loop), GFLOP/s (fma = 2 flop)
 *   moe_probe_bf16_peak      vdpbf16ps throughput (each 512-bit instruction = 64 flop), GFLOP/s; 0 without
 *                            AVX512_BF16
 *   moe_probe_int8_peak      vpdpbusd throughput (each 512-bit instruction = 64 multiply-adds = 128 ops), GOP/s; 0
 *                            where the int8 products run on plain loops (no AVX512-VNNI, or the ISA below avx512)
 *   moe_probe_amx_peak       AMX tdpbf16ps throughput (16x16x32 tile product = 16384 flop), GFLOP/s; 0 without
 *   moe_probe_read_bandwidth GB/s of summing a buffer of `bytes` (split between the threads; best of a few passes)
 *   moe_probe_read_bandwidth_of  the same over the caller's n floats (n >= 2^18; written, so not the zero page): a
 *                            buffer kept between readings spares each reading the mapping and unmapping of its own
 * `seconds` is the run time of each measurement (clamped to [0.01, 10]). Return < 0 on failure. */
MOE_API double moe_probe_fma_peak_f32(double seconds);
MOE_API double moe_probe_bf16_peak(double seconds);
MOE_API double moe_probe_int8_peak(double seconds);
MOE_API double moe_probe_amx_peak(double seconds);
MOE_API double moe_probe_read_bandwidth(int64_t bytes);
MOE_API double moe_probe_read_bandwidth_of(const float* data, int64_t n);

/* ---- Routing -----------------------------------------------------------------------------------------
 * Top-k along the last axis of x [rows, n]: values [rows, k] and indices [rows, k], larger first, NaN before
 * any number, equal values by lower index (jax.lax.top_k). 0 <= k <= n. */
MOE_API moe_status_t moe_topk_f32(const float* x, int64_t rows, int64_t n, int64_t k, float* values,
                                  int32_t* indices);

/* Stable ascending argsort of int32 keys [n] into out [n] (counting sort when the key range is at most
 * 4n + 1024, else a stable comparison sort). */
MOE_API moe_status_t moe_argsort_i32(const int32_t* keys, int64_t n, int32_t* out);

/* ---- Conversion ---------------------------------------------------------------------------------------
 * bf16 bit patterns of src [n] into dst [n]: round to nearest even (exact for bf16-valued data, denormals
 * included); a NaN keeps its sign and top payload bits and becomes quiet (bits | 0x40). On the thread pool. */
MOE_API moe_status_t moe_f32_to_bf16_bits(const float* src, int64_t n, uint16_t* dst);
/* src [n] rounded to bf16 values into dst [n] (float32; dst may be src): nearest even, a NaN left as it is (the
 * TypeScript dispatcher's rounding of a bfloat16 result, bit for bit). On the thread pool. */
MOE_API moe_status_t moe_round_bf16_f32(const float* src, int64_t n, float* dst);

/* ---- Elementwise -------------------------------------------------------------------------------------------
 * out[i] = a[i] op b[i] for i < n, one IEEE float32 operation each (out may alias a or b). On the thread pool. */
typedef enum moe_binary_op { MOE_BINARY_ADD = 0, MOE_BINARY_SUB = 1, MOE_BINARY_MUL = 2, MOE_BINARY_DIV = 3 } moe_binary_op_t;
MOE_API moe_status_t moe_binary_f32(moe_binary_op_t op, const float* a, const float* b, float* out, int64_t n);
/* int32: out[i] = a[i] op b[i] for add, sub, mul (div is INVALID_ARGUMENT), formed as JavaScript forms it (the float64
 * result, wrapped to int32 modulo 2^32: a product past 2^53 is rounded first). */
MOE_API moe_status_t moe_binary_i32(moe_binary_op_t op, const int32_t* a, const int32_t* b, int32_t* out, int64_t n);
/* out[i] = op(x[i]): neg (exact), exp = (float)exp((double)x), sigmoid = (float) of x >= 0 ? 1 / (1 + exp(-x)) :
 * exp(x) / (1 + exp(x)) in double. The reference backend forms the same double with V8's Math.exp (fdlibm), which
 * may differ from this libm's exp in the last bit of the double: the float32 results then differ in a few inputs
 * in 2^28 at most by one ulp. On the thread pool (out may alias x). */
typedef enum moe_unary_op { MOE_UNARY_NEG = 0, MOE_UNARY_EXP = 1, MOE_UNARY_SIGMOID = 2 } moe_unary_op_t;
MOE_API moe_status_t moe_unary_f32(moe_unary_op_t op, const float* x, float* out, int64_t n);

/* ---- Reductions, movement, indexing (the reference kernels' results, bit for bit) ----------------------------
 * moe_reduce_f32: x [P, R, Q] reduced over R into out [P, Q], each output one float64 chain over r ascending,
 *   rounded once to float32 (sum from +0, max from -inf; max keeps the accumulator only when it is greater, and a
 *   NaN anywhere gives NaN). Outputs are independent chains: on the thread pool, same bits for any thread count.
 * moe_copy_strided_b32: 4-byte elements (float32 or int32 bits), dst row-major over shape [ndim] with
 *   dst[flat] = src[offset + sum_d idx[d] strides[d]]; strides >= 0 (0 broadcasts), every read inside src_len.
 *   Transposes go in 32 x 32 tiles. 0 <= ndim <= 16.
 * moe_gather_b32: out [n, inner] = x [rows, inner] at rows idx[n] (4-byte elements).
 * moe_scatter_add_f32: out [num_rows, inner] = zeros with u [n, inner] added at rows idx[n], each output a float64
 *   chain over i ascending from +0, rounded once (rows bucketed by a counting sort, then on the thread pool).
 *   For both: *bad = the first position whose index is outside [0, rows) (the outputs are then unspecified), else -1.
 * moe_iota_i32: out [outer, n, inner] = the index along n.
 * moe_bincount_i32: out [length] = how often each value in [0, length) occurs in x [n]; other values are ignored. */
typedef enum moe_reduce_op { MOE_REDUCE_SUM = 0, MOE_REDUCE_MAX = 1 } moe_reduce_op_t;
MOE_API moe_status_t moe_reduce_f32(moe_reduce_op_t op, const float* x, int64_t P, int64_t R, int64_t Q, float* out);
/* moe_softmax_f32: out [rows, n] = the softmax of each row of x [rows, n] as the reference kernel forms it: m = the
 * row's maximum (moe_reduce_f32's), e = exp(x - m) (float32 subtraction, moe_unary_f32's exp), out = e / s with s
 * = the float64 chain of e over the row rounded once. out may alias x. On the thread pool. */
MOE_API moe_status_t moe_softmax_f32(const float* x, int64_t rows, int64_t n, float* out);
MOE_API moe_status_t moe_copy_strided_b32(const void* src, int64_t src_len, void* dst, int ndim, const int64_t* shape,
                                          const int64_t* strides, int64_t offset);
MOE_API moe_status_t moe_gather_b32(const void* x, int64_t rows, int64_t inner, const int32_t* idx, int64_t n, void* out,
                                    int64_t* bad);
MOE_API moe_status_t moe_scatter_add_f32(const float* u, const int32_t* idx, int64_t n, int64_t inner, int64_t num_rows,
                                         float* out, int64_t* bad);
MOE_API moe_status_t moe_iota_i32(int64_t outer, int64_t n, int64_t inner, int32_t* out);
MOE_API moe_status_t moe_bincount_i32(const int32_t* x, int64_t n, int64_t length, int32_t* out);

/* ---- Optimizer updates ------------------------------------------------------------------------------------
 * In place over float32 parameters p [n] with gradients g [n], every element with float operations in this
 * order (no fused multiply-adds; the caller computes the per-step scalars):
 *   AdamW: m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) (g g);
 *          p = p - lr ((m / bc1) / (sqrt(v / bc2) + eps) + wd p),  bc1 = 1 - b1^t, bc2 = 1 - b2^t.
 *   SGD:   d = g, or with a momentum trace d = momentum trace + g, trace = d;  p = p - lr d. */
typedef struct moe_adamw {
  float learning_rate, b1, one_minus_b1, b2, one_minus_b2, bias_correction1, bias_correction2, eps, weight_decay;
} moe_adamw_t;
MOE_API moe_status_t moe_adamw_f32(float* p, const float* g, float* m, float* v, int64_t n, const moe_adamw_t* h);
/* trace NULL: plain SGD. */
MOE_API moe_status_t moe_sgd_f32(float* p, const float* g, float* trace, int64_t n, float learning_rate,
                                 float momentum);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOEKIT_MOE_KERNELS_H */
