// AVX-512 ISA unit of the GEMM engine, fp32 multiply (fp32 weights, and bf16 weights widened while packing). The
// code below the target pragma only runs after isa.cpp found AVX-512 F/BW/VL/DQ + FMA (the pragma's features). The
// bf16 and AMX multiply kinds live in their own units (isa_avx512bf16.cpp, isa_amx.cpp) so that nothing here needs
// more.
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <array>
#include <utility>

#include "engine.hpp"

#if defined(MOE_HAVE_X86_KERNELS)
#include <immintrin.h>

#ifndef MOE_GEMM_F32_MR
#define MOE_GEMM_F32_MR 12
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma"))), apply_to = function)
#else
#pragma GCC push_options
// GCC 12 flags _mm512_undefined_ps() (self-initialized) inside min/max/scalef/roundscale: a known false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#endif

namespace moe::detail {

// Entry points of the other AVX-512 units.
GemmBlocking dpbf16_blocking();
int64_t dpbf16_scratch(const GemmProblem& p, const GemmItem& it);
void dpbf16_run(const GemmProblem& p, const GemmItem& it, float* scratch);
GemmBlocking amx_blocking();
int64_t amx_scratch(const GemmProblem& p, const GemmItem& it);
void amx_run(const GemmProblem& p, const GemmItem& it, float* scratch);

namespace {

#include "isa_avx512_math.inc"
#include "transpose16.inc"
#include "engine_block.inc"

// C[MR x 32] (+)= A * B over kc: the stage-1 register tile. A(i, p) = a[p * MR + i] (packed) or a[i * lda + p].
template <int MR, bool kPacked>
void ukr_f32_t(int64_t kc, const float* __restrict a, int64_t lda, const float* __restrict b, float* __restrict c,
               int64_t ldc, bool accumulate) {
  __m512 acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = accumulate ? _mm512_loadu_ps(c + i * ldc) : _mm512_setzero_ps();
    acc[i][1] = accumulate ? _mm512_loadu_ps(c + i * ldc + 16) : _mm512_setzero_ps();
  }
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(kPacked ? a[i] : a[i * lda]);
      acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
    }
    a += kPacked ? MR : 1;
    b += 32;
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    _mm512_storeu_ps(c + i * ldc, acc[i][0]);
    _mm512_storeu_ps(c + i * ldc + 16, acc[i][1]);
  }
}

template <int MR>
void ukr_f32(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, bool accumulate) {
  if (lda == 0) {
    ukr_f32_t<MR, true>(kc, a, 0, b, c, ldc, accumulate);
  } else {
    ukr_f32_t<MR, false>(kc, a, lda, b, c, ldc, accumulate);
  }
}

template <int R>
struct UkrAvx512 {
  static constexpr UkrF32 run = &ukr_f32<R>;
};

struct TrF32 : F32Rows {
  static constexpr int MR = MOE_GEMM_F32_MR, NR = 32, KG = 1;
  using AT = float;
  static constexpr bool kPairs = false, kPadRows = false;
  static constexpr auto ukr = &ukr_rows<UkrAvx512, MR>;
  static void pack_trans(const float* base, int64_t ldb, int64_t pc, int64_t kc, int64_t kcp, int64_t j0, int64_t nb,
                         float* dst) {
    pack_trans32<0>(base, ldb, pc, kc, kcp, j0, nb, dst);
  }
  static void pack_trans(const uint16_t* base, int64_t ldb, int64_t pc, int64_t kc, int64_t kcp, int64_t j0, int64_t nb,
                         float* dst) {
    pack_trans32<1>(base, ldb, pc, kc, kcp, j0, nb, dst);
  }
};

// The blocked streaming kernel (run_stream_blk; 0: engine_block.inc's run_stream for groups of <= kStreamRows), its
// block of weight rows and its prefetch of the next block. Paired A/B on Zen 4 (bench/RESULTS.md): against run_stream
// and the packed path, T=64 took 0.61x the time, T=8 0.91x; 8-row blocks 1.14x the time of 16, 32 0.99x; without the
// prefetch 1.51x at T=8. The prefetch (MOE_STREAM_BLK_PF): 2, the next block's whole rows in address order, a slice
// per strip, where an item spans whole rows (else as 1); 1, each strip the same columns of the next block's rows
// (strided), into the L2. 2 against 1 on Zen 5, paired A/B, with the band prefetched into the L2: T=64 0.83x the time,
// T=256 0.97x in the VM's slower bandwidth regime, within 2% either way in its faster one; then the band into the L1
// against the L2 (Zen 5; stream_prefetch_l1 chooses per machine): T=64 0.89x (faster regime) and 0.96x (slower), T=256
// 0.84-0.90x (both); into the L3 (_MM_HINT_T2), 1.22x the L1's. Blocks of 32 rows above 16 rows (MOE_STREAM_KB_WIDE)
// against 64, with the band into the L1: T=256 0.84-0.92x in the slower regime (16 rows: 1.06x the time of 32); at
// T=64, 8 or 32 rows for the groups of <= 16 rows within 1% of 16.
#ifndef MOE_STREAM_BLK
#define MOE_STREAM_BLK 1
#endif
#ifndef MOE_STREAM_KB
#define MOE_STREAM_KB 16
#endif
// MOE_STREAM_KB_MID: the block for groups of 5-16 rows (16-row blocks send each chunk's sums through the L2 once per
// 16 weight rows; the ~90 KB of sums of 8 rows of the gate and up projections do not fit the L1). Paired A/B on Zen 4,
// same bits, against 16: one expert of 8 rows in the L3 0.760x the time; T=64 fp32 0.959x, 0.970x, 0.974x and 1.013x
// (110 rounds, caches flushed, both bandwidth regimes), bf16 weights (dpbf16) 0.953x, widened 0.967x. Groups of at
// most 4 rows (the bf16 decode) keep 16: 64 took 1.085x the time at T=8. Only where the band goes to the L2 and two
// blocks of rows (the one read, the one prefetched) fit in 3/4 of it, halved until they do; where the band goes to the
// L1 (48 KiB or more, Zen 5 and Intel), untried, 16.
#ifndef MOE_STREAM_KB_MID
#define MOE_STREAM_KB_MID 64
#endif
#ifndef MOE_STREAM_KB_WIDE
#define MOE_STREAM_KB_WIDE 32
#endif
#ifndef MOE_STREAM_BLK_PF
#define MOE_STREAM_BLK_PF 2
#endif
// MOE_STREAM_BY_STRIP (run_strips_by_column): groups of more than 16 rows sweep each strip of columns over all weight
// rows (blocks of MOE_STREAM_KB_STRIP, the accumulators through memory once per block) before the next strip, which
// their row chunks prefetch into the L2 meanwhile, where the weight rows are not a multiple of 1 KB apart. Paired A/B
// on Zen 5 at T=256 (two threads unless said), same bits, against every group in blocks of weight rows: as here
// (gate and up, rows 5.5 KB apart, blocks of 128 rows) 0.966x, 0.975x and 0.977x the time in three runs, 1.007x with a
// read probe before each round; blocks of 64 rows 0.964x, 256 0.977x, 32 1.024x; the down projection too (rows 4 KB
// apart) 1.038x (one thread). A standalone copy of the kernel, one matrix of rows 5.5 KB apart, 32 rows, one thread:
// 1.23x the speed with the weights in the L3, 1.14x from memory.
#ifndef MOE_STREAM_BY_STRIP
#define MOE_STREAM_BY_STRIP 1
#endif
// MOE_STREAM_WIDE_ROWS: fp32 groups of more than 8 rows take chunks of up to this many rows, in strips of 32 columns
// (24 accumulators either way), instead of chunks of up to 8 rows in strips of 48: fewer chunks reread each strip.
// Paired A/B on Zen 5, same bits: T=256 (groups of 21-43 rows) 0.932x the time; with a read probe before each round,
// against the commit before, 0.922x / 0.936x (14 rows: 0.941x / 0.946x); 14 against 12 rows 0.987x (0.993x with the
// probe), 10 against 12 1.029x, 15 against 14 1.024x (the accumulators spill); the down projection (the row order) in
// chunks of 8 rows 1.029x, in the column order 1.027x; blocks of 256 weight rows 1.020x. T=64 (groups of 9-12 rows in
// one chunk instead of two): 0.973x / 0.976x in the VM's slower bandwidth regime.
#ifndef MOE_STREAM_WIDE_ROWS
#define MOE_STREAM_WIDE_ROWS 12
#endif
static_assert(MOE_STREAM_WIDE_ROWS >= 8 && MOE_STREAM_WIDE_ROWS <= 14, "2 x 16 columns of at most 14 rows: 28 accumulators");
#ifndef MOE_STREAM_KB_STRIP
#define MOE_STREAM_KB_STRIP 128
#endif
// MOE_STREAM_TAIL_V: a strip at the end of an item's columns, narrower than 16 V, runs the kernel of as many vectors
// as it has (1408 columns are 29 strips of 48 and one of 16). Paired A/B on Zen 5, same bits, with fp32 strips of 48
// columns at T=256: 0.990-0.994x the time; one expert in the L3 (T=32, items of 352 columns) 0.961x.
#ifndef MOE_STREAM_TAIL_V
#define MOE_STREAM_TAIL_V 1
#endif
// MOE_STREAM_STRIP_PF: in the column order, the first chunk of rows prefetches its strip this many weight rows ahead
// into the L1 (rows 5.5 KB apart, each in another 4 KB page, which the hardware's prefetchers do not follow). Paired
// A/B on Zen 5 at T=256, same bits, against none: 0.963x, 0.949x the time, 0.943x with a read probe before each round;
// 8 and 32 rows within 1% of 16, 4 rows 1.007x the time of 8; every chunk prefetching 1.017x the time of the first
// alone; the row order's first chunk too (the down projection) 1.032x.
#ifndef MOE_STREAM_STRIP_PF
#define MOE_STREAM_STRIP_PF 16
#endif
// MOE_STREAM_NEXT_STRIP: in the row order, fp32 groups of at most 16 rows prefetch the next strip of the block's rows
// into the L1 while the current one runs (the band brings them only as far as the L2 in time: it runs a whole block
// ahead, through an L1 that cannot hold a block). Paired A/B on Zen 5 at T=64, same bits, a read probe before each
// round: 0.958x / 0.962x the time in the VM's faster bandwidth regime (probe medians 80 / 76 GB/s; 0.965x / 0.972x in
// another run), 0.989x / 0.994x in its slower one (54 GB/s); T=8 0.996x. For the 4 KB-strided groups of more than 16
// rows (the down projection at T=256) 1.029x: they do not take it. bf16 weights take it for groups of at most 4 rows
// where the band goes to the L2 only (stream_prefetch_l1): on Zen 5 (band into the L1) T=8 took 1.07-1.09x the time; on
// Zen 4 (band into the L2) T=8 0.950x (60 rounds, both bandwidth regimes), the bf16 layer's dpbf16 path 0.954x, while
// T=64 (groups of about 8 rows) took 1.029x. Each line of a bf16 strip is prefetched once rather than once per 16
// weights (half a line): T=8 0.969x (60 rounds, against `a156a66`), the dpbf16 path 0.990x.
#ifndef MOE_STREAM_NEXT_STRIP
#define MOE_STREAM_NEXT_STRIP 1
#endif

// One strip of the blocked streaming kernel: R rows against the 16 V columns [jc, jc + 16 V) of weight rows
// [p0, p0 + kb): c[i * ldc + 16 v + lane] continues its fma chain (from zero when `first`) over those rows, p
// ascending, in registers. Prefetched meanwhile: `next` (or NULL), the same strip of the next block's rows, into the
// L2; `band` (or NULL), band_lines cache lines from there, spread over the block's rows, into the L1 or the L2
// (stream_prefetch_l1); while p < near_rows, near + p ldb (the same columns further on, or the next columns), into the
// L1.
template <int R, int V, class S>
void stream_strip(const float* a, const S* w, int64_t ldb, int64_t p0, int64_t kb, int64_t cols, bool first,
                  const S* next, int64_t kb_next, const char* band, int64_t band_lines, float* c, int64_t ldc,
                  const S* near, int64_t near_rows) {
  const int64_t per = band != nullptr && kb > 0 ? (band_lines + kb - 1) / kb : 0;  // band lines per weight row
  const bool band_l1 = stream_prefetch_l1();
  // every loop over rows and vectors unrolled (with unroll 8, the accumulators of 12 rows lived on the stack: 2.13x)
  __mmask16 m[V];
#pragma GCC unroll 16
  for (int v = 0; v < V; ++v) m[v] = cols - 16 * v <= 0 ? __mmask16(0) : tail_mask(cols - 16 * v);
  __m512 acc[R][V];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 16
    for (int v = 0; v < V; ++v) acc[i][v] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m[v], c + i * ldc + 16 * v);
  }
  for (int64_t p = 0; p < kb; ++p) {
    const S* wr = w + (p0 + p) * ldb;
    for (int64_t l = p * per, le = l + per < band_lines ? l + per : band_lines; l < le; ++l) {
      if (band_l1) {
        _mm_prefetch(band + 64 * l, _MM_HINT_T0);
      } else {
        _mm_prefetch(band + 64 * l, _MM_HINT_T1);
      }
    }
    if (next != nullptr && p < kb_next) {
#pragma GCC unroll 16
      for (int v = 0; v < V; ++v) _mm_prefetch(reinterpret_cast<const char*>(next + p * ldb + 16 * v), _MM_HINT_T1);
    }
    if (p < near_rows) {
      if constexpr (sizeof(S) == 2) {  // 16 bf16 weights are half a line: each line of the strip once
        const auto q = reinterpret_cast<uintptr_t>(near + p * ldb);
        for (uintptr_t l = q & ~uintptr_t(63); l < q + 32 * V; l += 64) _mm_prefetch(reinterpret_cast<const char*>(l), _MM_HINT_T0);
      } else {
#pragma GCC unroll 16
        for (int v = 0; v < V; ++v) _mm_prefetch(reinterpret_cast<const char*>(near + p * ldb + 16 * v), _MM_HINT_T0);
      }
    }
    __m512 b[V];
#pragma GCC unroll 16
    for (int v = 0; v < V; ++v) b[v] = load_w16(wr + 16 * v, m[v], false);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const __m512 av = _mm512_set1_ps(a[p * R + i]);
#pragma GCC unroll 16
      for (int v = 0; v < V; ++v) acc[i][v] = _mm512_fmadd_ps(av, b[v], acc[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 16
    for (int v = 0; v < V; ++v) {
      if (m[v] != 0) _mm512_mask_storeu_ps(c + i * ldc + 16 * v, m[v], acc[i][v]);
    }
  }
}

template <class S>
using StreamStrip = void (*)(const float*, const S*, int64_t, int64_t, int64_t, int64_t, bool, const S*, int64_t,
                             const char*, int64_t, float*, int64_t, const S*, int64_t);

template <class S, int V, int... R>
constexpr std::array<StreamStrip<S>, sizeof...(R)> stream_strip_table(std::integer_sequence<int, R...>) {
  return {&stream_strip<R + 1, V, S>...};
}

// stream_strip<r, v, S>: v is 8 (r <= 2), 4 (r <= 4), 3 (r <= 8) or 1-2 (r <= MOE_STREAM_WIDE_ROWS).
template <class S>
StreamStrip<S> strip_kernel(int64_t v, int64_t r) {
  static constexpr auto t8 = stream_strip_table<S, 8>(std::make_integer_sequence<int, 2>());
  static constexpr auto t4 = stream_strip_table<S, 4>(std::make_integer_sequence<int, 4>());
  static constexpr auto t3 = stream_strip_table<S, 3>(std::make_integer_sequence<int, 8>());
  static constexpr auto t2 = stream_strip_table<S, 2>(std::make_integer_sequence<int, MOE_STREAM_WIDE_ROWS>());
  static constexpr auto t1 = stream_strip_table<S, 1>(std::make_integer_sequence<int, MOE_STREAM_WIDE_ROWS>());
  const size_t ri = size_t(r - 1);
  return v == 8 ? t8[ri] : v == 4 ? t4[ri] : v == 3 ? t3[ri] : v == 2 ? t2[ri] : t1[ri];
}

// Groups of more than 16 rows, strips of sw columns (rows in chunks of rc, each rereading the strip): each strip
// over all weight rows in blocks of MOE_STREAM_KB_STRIP, the chunks prefetching their share of the next strip's rows of
// the block into the L2. The same chains as run_stream_blk_t's other order.
template <class S>
void run_strips_by_column(const GemmProblem& P, const GemmItem& it, const float* apack, int64_t rc, int64_t sw,
                          float* scratch, int64_t ncols, int64_t nbp) {
  const int64_t K = P.k[0], chunks = (it.mb + rc - 1) / rc;
  for (int h = 0; h < P.halves; ++h) {
    const S* w = static_cast<const S*>(b_source(P, it, h, 0)) + it.j0;
    for (int64_t jc = 0; jc < it.nb; jc += sw) {
      const int64_t vl = imin(sw / 16, (it.nb - jc + 15) / 16);
      const bool more = jc + sw < it.nb;
      for (int64_t p0 = 0; p0 < K; p0 += MOE_STREAM_KB_STRIP) {
        const int64_t len = imin(MOE_STREAM_KB_STRIP, K - p0), share = (len + chunks - 1) / chunks;
        for (int64_t i0 = 0, q = 0; i0 < it.mb; i0 += rc, ++q) {
          const int64_t r = imin(rc, it.mb - i0);
          const StreamStrip<S> f = strip_kernel<S>(vl, r);
          const int64_t q0 = imin(q * share, len), nl = more ? imin(share, len - q0) : 0;
          const int64_t near_rows = i0 == 0 ? imin(len, K - p0 - MOE_STREAM_STRIP_PF) : 0;
          const S* near = near_rows > 0 ? w + jc + (p0 + MOE_STREAM_STRIP_PF) * P.ldb : nullptr;
          f(apack + i0 * K + p0 * r, w + jc, P.ldb, p0, len, it.nb - jc, p0 == 0, nl > 0 ? w + jc + sw + (p0 + q0) * P.ldb : nullptr, nl,
            nullptr, 0, scratch + i0 * ncols + h * nbp + jc, ncols, near, near_rows);
        }
      }
    }
  }
}

// Rows row0 .. row0 + r - 1 (r <= MOE_STREAM_WIDE_ROWS) of the problem's lhs, inputs [0, K), p-major into d:
// d[p * r + i] = x_i[p], 16 inputs of every row at a time transposed in registers, each input's r values one masked
// store. Paired A/B on Zen 5 at T=256, same bits: the scalar loop in address order took 1.003-1.008x the time; before
// it, row by row with stores r floats apart 1.02x the scalar loop's, and a 16-input buffer with gathers 1.01x.
void pack_pmajor(const GemmProblem& P, int64_t row0, int64_t r, int64_t K, float* d) {
  const float* x[MOE_STREAM_WIDE_ROWS];
  for (int64_t i = 0; i < r; ++i) x[i] = P.a[0] + arow(P, row0 + i) * P.lda;
  const __mmask16 m = tail_mask(r);
  int64_t p = 0;
  for (; p + 16 <= K; p += 16) {
    __m512 v[16];
    for (int i = 0; i < 16; ++i) v[i] = i < r ? _mm512_loadu_ps(x[i] + p) : _mm512_setzero_ps();
    transpose16(v);
    for (int q = 0; q < 16; ++q) _mm512_mask_storeu_ps(d + (p + q) * r, m, v[q]);
  }
  for (; p < K; ++p) {
    for (int64_t i = 0; i < r; ++i) d[p * r + i] = x[i][p];
  }
}

// The small-group path of this unit for kStreamRows < mb <= kBlkStreamRows, and for every streamed group of bf16
// weights (run_item): run_stream's chains (acc[i][j] over p ascending, from zero), but over blocks of MOE_STREAM_KB
// weight rows (MOE_STREAM_KB_MID for 5-16 rows, MOE_STREAM_KB_WIDE above 16), each swept in strips of 16 V columns
// whose accumulators stay in registers for the block (rows in chunks of at most 8, or MOE_STREAM_WIDE_ROWS for fp32
// groups of more than 8 rows, which reread the strip from the L1), with the next block's strip prefetched into the L2
// meanwhile: the weights are read from memory once, and the accumulators go through memory once per block instead of
// once per weight row. Chunks of 5 rows or more take strips of 32 columns with fp32 weights, 48 with bf16 (measured on
// chunks of 5-8 rows of groups of <= 16 rows, paired A/B at T=64 on Zen 5: 32 columns against 48 with fp32 weights
// 0.96-0.97x the time in both bandwidth regimes; 16 columns 1.19x; 32 with bf16 weights 1.02-1.08x, and at T=256, where
// chunks of 8 rows of 32-row groups are FLOPs-bound, 1.07x). Groups of more than 16 rows whose weight rows are not a
// multiple of 1 KB apart take the strips in the other order (run_strips_by_column). The rows' inputs are packed first,
// p-major per chunk, so the loop reads them through one pointer (with a pointer per row, the 8-row loop kept some of
// them on the stack): paired A/B on Zen 5, same bits, T=256 0.964x and 0.974x the time, T=64 0.993x, T=8 0.997x, bf16
// weights (dpbf16) at T=64 and T=8 0.996x and 1.002x; one expert in the L3 (items of 352 columns, each packing the
// group's rows again) 1.031x, noisy (0.91-1.17). A standalone copy of the pipeline (gate, up, GLU, down; 25 or 36 rows
// per expert, one thread): gate and up 1.17-1.25x the speed, down 1.12-1.15x.
template <class S>
void run_stream_blk_t(const GemmProblem& P, const GemmItem& it, float* scratch) {
  const int64_t nbp = round_up(it.nb, 16), ncols = stream_ldc(P.halves * nbp);
  const int64_t r0 = P.off[it.g];
  const int64_t cmax = sizeof(S) == 4 && it.mb > 8 ? MOE_STREAM_WIDE_ROWS : 8;
  const int64_t chunks = (it.mb + cmax - 1) / cmax, rc = (it.mb + chunks - 1) / chunks, K = P.k[0];
  // the rows' inputs packed per chunk of rc rows, p-major (chunk at row i0: apack + i0 K, input p of its row i at
  // p * r + i), after the sums in the scratch (item_scratch)
  float* apack = scratch + it.mb * ncols + 16;
  for (int64_t i0 = 0; i0 < it.mb; i0 += rc) {
    const int64_t r = imin(rc, it.mb - i0);
    pack_pmajor(P, r0 + it.i0 + i0, r, K, apack + i0 * K);
  }
  const int V = rc <= 2 ? 8 : rc <= 4 ? 4 : sizeof(S) == 4 ? 2 : 3;
  const int64_t stride = P.ldb * int64_t(sizeof(S));
  const int64_t kb = stream_block_rows_avx512(it.mb, stride);
  const int64_t strips = (it.nb + 16 * V - 1) / (16 * V);
  if (MOE_STREAM_BY_STRIP && it.mb > 16 && K > 0 && (stride & -stride) <= 512) {
    run_strips_by_column<S>(P, it, apack, rc, 16 * V, scratch, ncols, nbp);
    return epilogue(P, it, scratch, ncols, nbp);
  }
  for (int h = 0; h < P.halves; ++h) {
    const S* w = static_cast<const S*>(b_source(P, it, h, 0)) + it.j0;
    for (int64_t p0 = 0; p0 < K; p0 += kb) {
      const int64_t len = imin(kb, K - p0), next_len = MOE_STREAM_BLK_PF ? imin(kb, K - p0 - len) : 0;
      // the next block's rows are one contiguous band where the item spans whole rows: each strip prefetches its slice
      const bool band = MOE_STREAM_BLK_PF == 2 && it.nb == P.ldb && next_len > 0;
      const int64_t band_lines = band ? (next_len * P.ldb * int64_t(sizeof(S)) + 63) / 64 : 0;
      const int64_t slice = (band_lines + strips - 1) / strips;
      const char* band0 = reinterpret_cast<const char*>(w + (p0 + len) * P.ldb);
      for (int64_t jc = 0, s = 0; jc < it.nb; jc += 16 * V, ++s) {
        for (int64_t i0 = 0; i0 < it.mb; i0 += rc) {
          const int64_t r = imin(rc, it.mb - i0);
          const int64_t vl = MOE_STREAM_TAIL_V && V <= 3 ? imin(V, (it.nb - jc + 15) / 16) : V;
          const StreamStrip<S> f = strip_kernel<S>(vl, r);
          const bool ns = MOE_STREAM_NEXT_STRIP && (sizeof(S) == 4 ? it.mb <= 16 : it.mb <= 4 && !stream_prefetch_l1()) && i0 == 0 && jc + 16 * V < it.nb;
          const S* near = ns ? w + jc + 16 * V + p0 * P.ldb : nullptr;
          const S* next = !band && next_len > 0 && i0 == 0 ? w + jc + (p0 + len) * P.ldb : nullptr;
          const int64_t nl = band && i0 == 0 && s * slice < band_lines ? imin(slice, band_lines - s * slice) : 0;
          f(apack + i0 * K + p0 * r, w + jc, P.ldb, p0, len, it.nb - jc, p0 == 0, next, next_len, nl > 0 ? band0 + 64 * s * slice : nullptr,
            nl, scratch + i0 * ncols + h * nbp + jc, ncols, near, ns ? len : 0);
        }
      }
    }
    if (K == 0) {
      for (int64_t i = 0; i < it.mb; ++i) std::memset(scratch + i * ncols + h * nbp, 0, size_t(nbp) * sizeof(float));
    }
  }
  epilogue(P, it, scratch, ncols, nbp);
}

void run_stream_blk(const GemmProblem& P, const GemmItem& it, float* scratch) {
  with_weight_type(P.belem, [&](auto s) { run_stream_blk_t<decltype(s)>(P, it, scratch); });
}

GemmBlocking blocking(Mul mul) {
  switch (mul) {
    case Mul::DPBF16: return dpbf16_blocking();
    case Mul::AMX: return amx_blocking();
    case Mul::F32: break;
  }
  return blocking_for(MOE_ISA_AVX512, Mul::F32, {TrF32::MR, TrF32::NR, TrF32::KG, 4, 4});
}

int64_t item_scratch(const GemmProblem& p, const GemmItem& it) {
  if (it.stream) return stream_scratch_floats(p, it) + it.mb * p.k[0];  // + run_stream_blk_t's packed inputs
  switch (p.mul) {
    case Mul::DPBF16: return dpbf16_scratch(p, it);
    case Mul::AMX: return amx_scratch(p, it);
    case Mul::F32: break;
  }
  return scratch_floats_t<TrF32>(p, it);
}

void run_item(const GemmProblem& p, const GemmItem& it, float* scratch) {
  // a group of up to kStreamRows rows of fp32 weights reads each weight matrix as one contiguous stream (run_stream:
  // whole rows, its accumulator rows in the L1): paired A/B at T=8 on Zen 4, one-row groups 0.96x the time of the
  // blocked kernel, groups of 2-4 rows 0.89x (the VM's high-bandwidth rounds); on Zen 5, 0.86x. bf16 weights take the
  // blocked kernel (the band prefetch added since): on Zen 5 at T=8, 0.85-0.90x the time of run_stream in the VM's
  // faster bandwidth regime and 0.97-0.98x in its slower one (on Zen 4, before that prefetch, run_stream was 0.92x).
  if (it.stream) {
    const bool blk = MOE_STREAM_BLK && (it.mb > kStreamRows || p.belem == BElem::BF16);
    return blk ? run_stream_blk(p, it, scratch) : run_stream(p, it, scratch);
  }
  switch (p.mul) {
    case Mul::DPBF16: return dpbf16_run(p, it, scratch);
    case Mul::AMX: return amx_run(p, it, scratch);
    case Mul::F32: break;
  }
  run_packed<TrF32>(p, it, scratch);
}

const IsaUnit kAvx512 = {MOE_ISA_AVX512, &blocking, &item_scratch, &run_item, &glu_fwd_row, &glu_bwd_row,
                         &glu_fwd_bf16_row, &bmm_thin, MOE_STREAM_BLK ? kBlkStreamRows : kStreamRows};

}  // namespace

int64_t stream_block_rows_avx512(int64_t rows, int64_t row_bytes) {
  if (rows > 16) return MOE_STREAM_KB_WIDE;
  if (rows <= kStreamRows || stream_prefetch_l1()) return MOE_STREAM_KB;
  int64_t kb = MOE_STREAM_KB_MID;  // halved until two blocks (the one read, the one prefetched) fit in 3/4 of the l2
  while (kb > MOE_STREAM_KB && 2 * kb * row_bytes > cache_l2_bytes() / 4 * 3) kb /= 2;
  return kb;
}

// fp32 fma throughput: 24 independent chains per thread, 32 flop per instruction.
double probe_fma_avx512(double seconds) {
  __m512 acc[24];
  for (int i = 0; i < 24; ++i) acc[i] = _mm512_set1_ps(float(i));
  __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  const int64_t steps = probe_steps(seconds, acc, [&](__m512(&a)[24]) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i) a[i] = _mm512_fmadd_ps(a[i], x, y);
    __asm__ volatile("" : "+v"(x));
  });
  return double(steps) * 24.0 * 32.0;
}

namespace {

// exp(r) for |r| <= ln2 / 2 + a little: Taylor to degree 13 (truncation below 2^-53 relative), Horner with fma.
inline __m512d exp_reduced(__m512d r) {
  static constexpr double kInvFact[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                                        1.0 / 362880.0,     1.0 / 40320.0,     1.0 / 5040.0,      1.0 / 720.0,
                                        1.0 / 120.0,        1.0 / 24.0,        1.0 / 6.0,         0.5,
                                        1.0,                1.0};
  __m512d p = _mm512_set1_pd(kInvFact[0]);
  for (int k = 1; k < 14; ++k) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(kInvFact[k]));
  return p;
}

// exp(x) for |x| <= 700: x = n ln2 + r (ln2 split in two, n nearest), exp(r) * 2^n.
inline __m512d exp_pd(__m512d x) {
  const __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634)), _MM_FROUND_TO_NEAREST_INT);
  __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(6.93147180369123816490e-01), x);
  r = _mm512_fnmadd_pd(n, _mm512_set1_pd(1.90821492927058770002e-10), r);
  return _mm512_scalef_pd(exp_reduced(r), n);
}

}  // namespace

void unary_f64_avx512(const float* x, float* out, int64_t n, bool sigmoid, void (*scalar)(const float*, float*, int64_t)) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));
    const __m512d a = sigmoid ? _mm512_abs_pd(v) : v;
    // not finite, or beyond +-700 (exp leaves double's normal range near 709): the scalar path takes the lane
    const __mmask8 odd = _mm512_cmp_pd_mask(_mm512_abs_pd(v), _mm512_set1_pd(700.0), _CMP_NLE_UQ);
    __m512d y;
    if (sigmoid) {
      const __m512d e = exp_pd(_mm512_sub_pd(_mm512_setzero_pd(), a));  // exp(-|x|)
      const __m512d one = _mm512_set1_pd(1.0), den = _mm512_add_pd(one, e);
      const __mmask8 neg = _mm512_cmp_pd_mask(v, _mm512_setzero_pd(), _CMP_LT_OQ);
      y = _mm512_div_pd(_mm512_mask_blend_pd(neg, one, e), den);
    } else {
      y = exp_pd(v);
    }
    if (odd == 0) {
      _mm256_storeu_ps(out + i, _mm512_cvtpd_ps(y));
      continue;
    }
    float in[8];  // read before the store: out may alias x
    std::memcpy(in, x + i, sizeof in);
    _mm256_storeu_ps(out + i, _mm512_cvtpd_ps(y));
    for (int l = 0; l < 8; ++l) {
      if ((odd >> l) & 1) scalar(in + l, out + i + l, 1);
    }
  }
  if (i < n) scalar(x + i, out + i, n - i);
}

// a * b rounded on its own: never contracted into an fma with the sum it goes to
inline __m512 mul_rounded(__m512 a, __m512 b) {
  __m512 r = _mm512_mul_ps(a, b);
  __asm__("" : "+v"(r));
  return r;
}

void combine_row_avx512(const float* const* src, const float* w, int64_t K, int64_t D, float* y) {
  for (int64_t j = 0; j < D; j += 16) {
    const __mmask16 m = tail_mask(D - j);
    __m512 acc = _mm512_mul_ps(_mm512_set1_ps(w[0]), _mm512_maskz_loadu_ps(m, src[0] + j));
    for (int64_t k = 1; k < K; ++k) {
      acc = _mm512_add_ps(acc, mul_rounded(_mm512_set1_ps(w[k]), _mm512_maskz_loadu_ps(m, src[k] + j)));
    }
    _mm512_mask_storeu_ps(y + j, m, acc);
  }
}

void adamw_avx512(float* p, const float* g, float* m, float* v, int64_t n, const moe_adamw_t& c) {
  const __m512 b1 = _mm512_set1_ps(c.b1), omb1 = _mm512_set1_ps(c.one_minus_b1), b2 = _mm512_set1_ps(c.b2),
               omb2 = _mm512_set1_ps(c.one_minus_b2), bc1 = _mm512_set1_ps(c.bias_correction1),
               bc2 = _mm512_set1_ps(c.bias_correction2), eps = _mm512_set1_ps(c.eps),
               wd = _mm512_set1_ps(c.weight_decay), lr = _mm512_set1_ps(c.learning_rate);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    const __m512 gi = _mm512_maskz_loadu_ps(k, g + i);
    const __m512 mi = _mm512_add_ps(mul_rounded(b1, _mm512_maskz_loadu_ps(k, m + i)), mul_rounded(omb1, gi));
    const __m512 vi = _mm512_add_ps(mul_rounded(b2, _mm512_maskz_loadu_ps(k, v + i)), mul_rounded(omb2, mul_rounded(gi, gi)));
    _mm512_mask_storeu_ps(m + i, k, mi);
    _mm512_mask_storeu_ps(v + i, k, vi);
    const __m512 pi = _mm512_maskz_loadu_ps(k, p + i);  // after the moments' stores, as the scalar loop reads it
    const __m512 den = _mm512_add_ps(_mm512_sqrt_ps(_mm512_div_ps(vi, bc2)), eps);
    const __m512 u = _mm512_add_ps(_mm512_div_ps(_mm512_div_ps(mi, bc1), den), mul_rounded(wd, pi));
    _mm512_mask_storeu_ps(p + i, k, _mm512_sub_ps(pi, mul_rounded(lr, u)));
  }
}

bool topk_row_avx512(const float* x, int64_t n, int64_t k, float* vals, int32_t* ids) {
  constexpr int64_t kMax = 512;
  if (n > kMax || k > n) return false;
  const int64_t nv = (n + 15) / 16;
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 v[kMax / 16];
  __mmask16 live[kMax / 16];  // not yet taken (and inside the row)
  for (int64_t b = 0; b < nv; ++b) {
    live[b] = tail_mask(n - 16 * b);
    v[b] = _mm512_mask_loadu_ps(ninf, live[b], x + 16 * b);
    if (_mm512_mask_cmp_ps_mask(live[b], v[b], v[b], _CMP_UNORD_Q) != 0) return false;  // NaN: the scalar order
  }
  // each pass takes the largest value left, at its lowest index (taken ones read as -inf but are not live)
  for (int64_t t = 0; t < k; ++t) {
    __m512 m = v[0];
    for (int64_t b = 1; b < nv; ++b) m = _mm512_max_ps(m, v[b]);
    const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(m));
    for (int64_t b = 0; b < nv; ++b) {
      const __mmask16 eq = _mm512_mask_cmp_ps_mask(live[b], v[b], top, _CMP_EQ_OQ);
      if (eq == 0) continue;
      const int lane = __builtin_ctz(unsigned(eq));
      const int64_t j = 16 * b + lane;
      vals[t] = x[j];
      ids[t] = int32_t(j);
      live[b] = __mmask16(live[b] & ~(1u << lane));
      v[b] = _mm512_mask_mov_ps(v[b], __mmask16(1u << lane), ninf);
      break;
    }
  }
  return true;
}

}  // namespace moe::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

const moe::detail::IsaUnit& moe::detail::isa_unit_avx512() { return kAvx512; }

#endif  // MOE_HAVE_X86_KERNELS
