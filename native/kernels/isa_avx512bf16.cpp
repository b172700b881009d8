// AVX-512 BF16 ISA unit of the GEMM engine: bf16 weights multiplied with vdpbf16ps (activations rounded to bf16 as
// they are packed, pairs of products summed into fp32 accumulators). Runs only when cpu_features.cpp found AVX512_BF16.
#include <chrono>
#include <cstdint>
#include <cstring>
#include <utility>
#include <array>

#include "engine.hpp"

#if defined(MOE_HAVE_X86_KERNELS)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512bf16"))), \
                             apply_to = function)
#else
#pragma GCC push_options
// GCC 12 flags _mm512_undefined_ps() (self-initialized) inside min/max/scalef/roundscale: a known false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512bf16")
#endif

namespace moe::detail {
namespace {

#include "isa_avx512_math.inc"
#include "engine_block.inc"

inline uint32_t load_u32(const uint16_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// C[MR x 32] (+)= A * B over kcp (even): A bf16 rows (A(i, p) = a[i * lda + p]), B pair panel [kcp/2][32][2].
template <int MR>
void ukr_dp(int64_t kcp, const uint16_t* __restrict a, int64_t lda, const uint16_t* __restrict b, float* __restrict c,
            int64_t ldc, bool accumulate) {
  __m512 acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = accumulate ? _mm512_loadu_ps(c + i * ldc) : _mm512_setzero_ps();
    acc[i][1] = accumulate ? _mm512_loadu_ps(c + i * ldc + 16) : _mm512_setzero_ps();
  }
  const int64_t np = kcp / 2;
#pragma GCC unroll 2
  for (int64_t pp = 0; pp < np; ++pp) {
    const __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 32);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(int(load_u32(a + i * lda + 2 * pp)));
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, b1);
    }
    b += 64;
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    _mm512_storeu_ps(c + i * ldc, acc[i][0]);
    _mm512_storeu_ps(c + i * ldc + 16, acc[i][1]);
  }
}

using UkrDp = void (*)(int64_t, const uint16_t*, int64_t, const uint16_t*, float*, int64_t, bool);

template <int... R>
constexpr auto ukr_dp_table(std::integer_sequence<int, R...>) {
  return std::array<UkrDp, sizeof...(R)>{&ukr_dp<R + 1>...};
}

// fp32 -> bf16, round to nearest even (vcvtne2ps2bf16), zero padded to npad.
void cvt_row_bf16(const float* src, int64_t n, int64_t npad, uint16_t* dst) {
  int64_t p = 0;
  for (; p + 32 <= n; p += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + p + 16), _mm512_loadu_ps(src + p));
    _mm512_storeu_si512(dst + p, (__m512i)v);
  }
  for (; p < npad; p += 32) {
    const int64_t r = n - p;
    const __mmask16 lo = r <= 0 ? 0 : tail_mask(r), hi = r <= 16 ? 0 : tail_mask(r - 16);
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, src + p + 16), _mm512_maskz_loadu_ps(lo, src + p));
    const int64_t w = npad - p < 32 ? npad - p : 32;
    _mm512_mask_storeu_epi16(dst + p, w >= 32 ? __mmask32(0xFFFFFFFFu) : __mmask32((1u << w) - 1u), (__m512i)v);
  }
}

struct TrDp : PairPanels {
  static constexpr int MR = 12, NR = 32, KG = 2;
  using AT = uint16_t;
  static constexpr bool kPairs = true, kPadRows = false;
  static void ukr(int mr, int64_t kcp, const uint16_t* a, int64_t lda, const void* b, float* c, int64_t ldc, bool acc) {
    static constexpr auto table = ukr_dp_table(std::make_integer_sequence<int, MR>());
    table[size_t(mr - 1)](kcp, a, lda, static_cast<const uint16_t*>(b), c, ldc, acc);
  }
  static void cvt_row(const float* src, int64_t n, int64_t npad, uint16_t* dst) { cvt_row_bf16(src, n, npad, dst); }
  static void begin() {}
  static void end() {}
};

}  // namespace

void to_bf16_avx512bf16(const float* src, int64_t n, uint16_t* dst) { cvt_row_bf16(src, n, n, dst); }
void to_bf16_padded_avx512bf16(const float* src, int64_t n, int64_t npad, uint16_t* dst) { cvt_row_bf16(src, n, npad, dst); }

GemmBlocking dpbf16_blocking() { return blocking_for(MOE_ISA_AVX512, Mul::DPBF16, {TrDp::MR, TrDp::NR, TrDp::KG, 2, 2}); }
int64_t dpbf16_scratch(const GemmProblem& p, const GemmItem& it) { return scratch_floats_t<TrDp>(p, it); }
void dpbf16_run(const GemmProblem& p, const GemmItem& it, float* scratch) { run_packed<TrDp>(p, it, scratch); }

// vdpbf16ps throughput: 24 independent chains per thread, 64 flop per instruction.
double probe_dpbf16(double seconds) {
  __m512 acc[24];
  for (int i = 0; i < 24; ++i) acc[i] = _mm512_setzero_ps();
  __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80);
  const int64_t steps = probe_steps(seconds, acc, [&](__m512(&a)[24]) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i) a[i] = _mm512_dpbf16_ps(a[i], x, x);
    __asm__ volatile("" : "+v"(x));
  });
  return double(steps) * 24.0 * 64.0;
}

}  // namespace moe::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

#endif  // MOE_HAVE_X86_KERNELS
