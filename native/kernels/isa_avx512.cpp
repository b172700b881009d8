// AVX-512 ISA unit of the GEMM engine, fp32 multiply (fp32 weights, and bf16 weights widened while packing). The
// code below the target pragma only runs after isa.cpp found AVX-512 F/BW/VL/DQ + FMA (the pragma's features). The
// bf16 and AMX multiply kinds live in their own units (isa_avx512bf16.cpp, isa_amx.cpp) so that nothing here needs
// more.
#include <chrono>
#include <cstdint>
#include <cstring>
#include <array>
#include <utility>

#include "engine.hpp"

#if defined(MOE_HAVE_X86_KERNELS)
#include <immintrin.h>

#ifndef MOE_GEMM_F32_MC
#define MOE_GEMM_F32_MC 528
#endif
#ifndef MOE_GEMM_F32_NC
#define MOE_GEMM_F32_NC 1024
#endif
#ifndef MOE_GEMM_F32_TMC
#define MOE_GEMM_F32_TMC 528
#endif
#ifndef MOE_GEMM_F32_TNC
#define MOE_GEMM_F32_TNC 1024
#endif
#ifndef MOE_GEMM_F32_MR
#define MOE_GEMM_F32_MR 12
#endif
#ifndef MOE_GEMM_F32_KC
#define MOE_GEMM_F32_KC 256
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
  static constexpr int MR = MOE_GEMM_F32_MR, NR = 32, KC = MOE_GEMM_F32_KC, KG = 1;
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

GemmBlocking blocking(Mul mul) {
  switch (mul) {
    case Mul::DPBF16: return dpbf16_blocking();
    case Mul::AMX: return amx_blocking();
    case Mul::F32: break;
  }
  return {TrF32::MR, TrF32::NR, TrF32::KC, MOE_GEMM_F32_MC, MOE_GEMM_F32_NC, TrF32::KG, MOE_GEMM_F32_TMC, MOE_GEMM_F32_TNC};
}

int64_t item_scratch(const GemmProblem& p, const GemmItem& it) {
  if (it.stream) return stream_scratch_floats(p, it);
  switch (p.mul) {
    case Mul::DPBF16: return dpbf16_scratch(p, it);
    case Mul::AMX: return amx_scratch(p, it);
    case Mul::F32: break;
  }
  return scratch_floats_t<TrF32>(p, it);
}

void run_item(const GemmProblem& p, const GemmItem& it, float* scratch) {
  if (it.stream) return run_stream(p, it, scratch);
  switch (p.mul) {
    case Mul::DPBF16: return dpbf16_run(p, it, scratch);
    case Mul::AMX: return amx_run(p, it, scratch);
    case Mul::F32: break;
  }
  run_packed<TrF32>(p, it, scratch);
}

const IsaUnit kAvx512 = {MOE_ISA_AVX512, &blocking, &item_scratch, &run_item, &glu_fwd_row, &glu_bwd_row,
                         &glu_fwd_bf16_row};

}  // namespace

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

}  // namespace moe::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

const moe::detail::IsaUnit& moe::detail::isa_unit_avx512() { return kAvx512; }

#endif  // MOE_HAVE_X86_KERNELS
