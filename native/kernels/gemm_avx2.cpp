// AVX2 + FMA fp32 GEMM kernels, for x86-64 CPUs without AVX-512. The code below the target pragma only runs
// after isa.cpp found AVX2 and FMA on the CPU.
#include <cstdint>
#include <cstring>
#include <utility>

#include "internal.hpp"

#if defined(MOE_HAVE_X86_KERNELS)
#include <immintrin.h>

#ifndef MOE_AVX2_KC
#define MOE_AVX2_KC 256
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

namespace moe::detail {
namespace {

#include "gemm_block.inc"

#include "avx2_tile.inc"

// MR x 16 tile: 2 ymm accumulators per row.
template <int MR>
void ukr_avx2(int64_t kc, const float* __restrict a, int64_t lda, const float* __restrict b, float* __restrict c,
              int64_t ldc, bool accumulate, int nr) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), lane);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8), lane);
  __m256 acc[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    if (accumulate) {
      acc[i][0] = _mm256_maskload_ps(c + i * ldc, m0);
      acc[i][1] = _mm256_maskload_ps(c + i * ldc + 8, m1);
    } else {
      acc[i][0] = _mm256_setzero_ps();
      acc[i][1] = _mm256_setzero_ps();
    }
  }
  if (lda == 0) {
    ukr_avx2_loop<MR, true>(kc, a, 0, b, acc);
  } else {
    ukr_avx2_loop<MR, false>(kc, a, lda, b, acc);
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    _mm256_maskstore_ps(c + i * ldc, m0, acc[i][0]);
    _mm256_maskstore_ps(c + i * ldc + 8, m1, acc[i][1]);
  }
}

template <int... R>
UkrFn ukr_avx2_for(int mr, std::integer_sequence<int, R...>) {
  UkrFn fn = nullptr;
  ((fn = (mr == R + 1 ? &ukr_avx2<R + 1> : fn)), ...);
  return fn;
}

struct Avx2 {
  static constexpr int MR = 6, NR = 16, KC = MOE_AVX2_KC;
  static UkrFn ukr(int mr) { return ukr_avx2_for(mr, std::make_integer_sequence<int, MR>()); }
};

const GemmKernel kAvx2 = {MOE_ISA_AVX2, Avx2::MR, Avx2::NR, Avx2::KC, 120, 256, &gemm_block<Avx2>};

}  // namespace
}  // namespace moe::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

const moe::detail::GemmKernel& moe::detail::gemm_kernel_avx2() { return kAvx2; }

#endif  // MOE_HAVE_X86_KERNELS
