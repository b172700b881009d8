// AVX-512 fp32 GEMM kernels. Compiled for baseline x86-64 like the rest of the library; the code below the
// target pragma is AVX-512 and only runs after isa.cpp found AVX-512 F/BW/VL + FMA on the CPU. The pragma names
// exactly the features isa.cpp checks (bf16 kernels would get their own unit and check).
#include <cstdint>
#include <cstring>
#include <utility>

#include "internal.hpp"

#if defined(MOE_HAVE_X86_KERNELS)
#include <immintrin.h>

// Register tile MR x (16 * NV) and blocking; overridable for tuning (native/lab).
#ifndef MOE_AVX512_MR
#define MOE_AVX512_MR 12
#endif
#ifndef MOE_AVX512_NV
#define MOE_AVX512_NV 2
#endif
#ifndef MOE_AVX512_KC
#define MOE_AVX512_KC 256
#endif
#ifndef MOE_AVX512_MC
#define MOE_AVX512_MC 528
#endif
#ifndef MOE_AVX512_NC
#define MOE_AVX512_NC 512
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,fma")
#endif

namespace moe::detail {
namespace {

#include "gemm_block.inc"

// The k loop of an MR x 16NV tile. A(i, p) is a[p * MR + i] when packed, else a[i * lda + p].
template <int MR, int NV, bool kPacked>
inline void ukr_avx512_loop(int64_t kc, const float* __restrict a, int64_t lda, const float* __restrict b,
                            __m512 (&acc)[MR][NV]) {
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; ++p) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(kPacked ? a[i] : a[i * lda]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
    }
    a += kPacked ? MR : 1;
    b += 16 * NV;
  }
}

template <int MR, int NV>
void ukr_avx512(int64_t kc, const float* __restrict a, int64_t lda, const float* __restrict b, float* __restrict c,
                int64_t ldc, bool accumulate, int nr) {
  __mmask16 mask[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    const int rem = nr - 16 * v;
    mask[v] = rem >= 16 ? __mmask16(0xFFFF) : rem <= 0 ? __mmask16(0) : __mmask16((1u << rem) - 1u);
  }
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      acc[i][v] = accumulate ? _mm512_maskz_loadu_ps(mask[v], c + i * ldc + 16 * v) : _mm512_setzero_ps();
    }
  }
  if (lda == 0) {
    ukr_avx512_loop<MR, NV, true>(kc, a, 0, b, acc);
  } else {
    ukr_avx512_loop<MR, NV, false>(kc, a, lda, b, acc);
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(c + i * ldc + 16 * v, mask[v], acc[i][v]);
  }
}

template <int NV, int... R>
UkrFn ukr_avx512_for(int mr, std::integer_sequence<int, R...>) {
  UkrFn fn = nullptr;
  ((fn = (mr == R + 1 ? &ukr_avx512<R + 1, NV> : fn)), ...);
  return fn;
}

struct Avx512 {
  static constexpr int MR = MOE_AVX512_MR, NR = 16 * MOE_AVX512_NV, KC = MOE_AVX512_KC;
  static UkrFn ukr(int mr) { return ukr_avx512_for<MOE_AVX512_NV>(mr, std::make_integer_sequence<int, MR>()); }
};

const GemmKernel kAvx512 = {MOE_ISA_AVX512, Avx512::MR, Avx512::NR, Avx512::KC, MOE_AVX512_MC, MOE_AVX512_NC,
                            &gemm_block<Avx512>};

}  // namespace
}  // namespace moe::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

const moe::detail::GemmKernel& moe::detail::gemm_kernel_avx512() { return kAvx512; }

#endif  // MOE_HAVE_X86_KERNELS
