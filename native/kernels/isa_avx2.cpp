// AVX2 + FMA ISA unit of the GEMM engine, for x86-64 CPUs without AVX-512: engine_block.inc with a 6 x 16 ymm
// register tile. The fp32 products are the same fma chains as the AVX-512 unit's, so the matmuls give the same bits;
// the GLU uses the AVX-512 unit's exp polynomial with an exact division where that unit refines vrcp14ps, so
// activations may differ from it in the last bit. bf16 weights are widened to fp32 while packing.
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "engine.hpp"

#if defined(MOE_HAVE_X86_KERNELS)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

namespace moe::detail {
namespace {

#include "widen.inc"

template <class S>
inline __m256 load_w8(const S* w) {
  if constexpr (sizeof(S) == 2) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else if constexpr (kRawF32<S>) {
    return _mm256_loadu_ps(w);
  } else {  // F32R: rounded to bf16 in the integer lanes
    const __m256i u = _mm256_castps_si256(_mm256_loadu_ps(&w->v)), hi = _mm256_set1_epi32(int(0xffff0000u));
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i r = _mm256_and_si256(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb)), hi);
    const __m256i quiet = _mm256_and_si256(_mm256_or_si256(u, _mm256_set1_epi32(0x00400000)), hi);
    const __m256 v = _mm256_castsi256_ps(u);
    return _mm256_blendv_ps(_mm256_castsi256_ps(r), _mm256_castsi256_ps(quiet), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
}

// acc[i * lda + j] = fma(x[i], w[j], acc[i * lda + j]) for i < m, j < n (the packed kernels' chain).
template <class S>
void axpy_rows(float* acc, int64_t lda, const float* x, int64_t m, const S* w, int64_t n) {
  __m256 xv[kStreamRows];
  for (int64_t i = 0; i < m; ++i) xv[i] = _mm256_set1_ps(x[i]);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 wv = load_w8(w + j);
    for (int64_t i = 0; i < m; ++i) {
      float* a = acc + i * lda + j;
      _mm256_storeu_ps(a, _mm256_fmadd_ps(xv[i], wv, _mm256_loadu_ps(a)));
    }
  }
  for (; j < n; ++j) {
    const float wj = widen(w[j]);
    for (int64_t i = 0; i < m; ++i) acc[i * lda + j] = std::fma(x[i], wj, acc[i * lda + j]);
  }
}

void store_row(const float* c, int64_t n, const float* bias, float* dst) {
  if (bias == nullptr) {
    std::memcpy(dst, c, size_t(n) * sizeof(float));
    return;
  }
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(dst + j, _mm256_add_ps(_mm256_loadu_ps(c + j), _mm256_loadu_ps(bias + j)));
  for (; j < n; ++j) dst[j] = c[j] + bias[j];
}

// 2^n for integral n in [-150, 128] times p, rounded once (as vscalefps): two exact power-of-two factors.
inline __m256 scale2(__m256 p, __m256 n) {
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, f1), f2);
}

// exp(x) as the AVX-512 unit's exp512: the same reduction and polynomial.
inline __m256 exp8(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(-104.0f), _mm256_min_ps(_mm256_set1_ps(89.0f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  // NaN: the clamps passed it through; the integer scaling would not
  return _mm256_blendv_ps(scale2(p, n), x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

inline __m256 sigmoid8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluA = 0.044715f;

// f(z), and f'(z) when df != nullptr (the AVX-512 unit's act512).
inline __m256 act8(moe_activation_t act, __m256 z, __m256* df) {
  const __m256 one = _mm256_set1_ps(1.0f);
  switch (act) {
    case MOE_ACT_SILU: {
      const __m256 s = sigmoid8(z);
      if (df != nullptr) *df = _mm256_mul_ps(s, _mm256_fmadd_ps(z, _mm256_sub_ps(one, s), one));
      return _mm256_mul_ps(z, s);
    }
    case MOE_ACT_GELU_TANH: {
      const __m256 z2 = _mm256_mul_ps(z, z);
      const __m256 u = _mm256_mul_ps(_mm256_set1_ps(kGeluC), _mm256_fmadd_ps(_mm256_mul_ps(z2, z), _mm256_set1_ps(kGeluA), z));
      const __m256 s = sigmoid8(_mm256_add_ps(u, u));
      if (df != nullptr) {
        const __m256 du = _mm256_mul_ps(_mm256_set1_ps(2.0f * kGeluC), _mm256_fmadd_ps(z2, _mm256_set1_ps(3.0f * kGeluA), one));
        *df = _mm256_fmadd_ps(_mm256_mul_ps(z, _mm256_mul_ps(s, _mm256_sub_ps(one, s))), du, s);
      }
      return _mm256_mul_ps(z, s);
    }
    case MOE_ACT_SIGMOID: {
      const __m256 s = sigmoid8(z);
      if (df != nullptr) *df = _mm256_mul_ps(s, _mm256_sub_ps(one, s));
      return s;
    }
    case MOE_ACT_RELU: {
      const __m256 pos = _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GT_OQ);
      if (df != nullptr) *df = _mm256_and_ps(pos, one);
      return _mm256_and_ps(pos, z);
    }
    case MOE_ACT_LINEAR:
    default:
      if (df != nullptr) *df = one;
      return z;
  }
}

// d min(h, L)/dh: 1 below, 0.5 at the tie, 0 above (and for NaN).
inline __m256 below8(__m256 h, __m256 L) {
  const __m256 lt = _mm256_and_ps(_mm256_cmp_ps(h, L, _CMP_LT_OQ), _mm256_set1_ps(1.0f));
  return _mm256_blendv_ps(lt, _mm256_set1_ps(0.5f), _mm256_cmp_ps(h, L, _CMP_EQ_OQ));
}

// Rows of n values in blocks of 8; the last partial block goes through zero-padded copies, so every element takes
// the same vector path.
template <int kIn, int kOut, class F>
inline void by8(int64_t n, const float* const (&in)[kIn], float* const (&out)[kOut], F f) {
  int64_t j = 0;
  __m256 vi[kIn], vo[kOut];
  for (; j + 8 <= n; j += 8) {
    for (int t = 0; t < kIn; ++t) vi[t] = in[t] != nullptr ? _mm256_loadu_ps(in[t] + j) : _mm256_setzero_ps();
    f(vi, vo);
    for (int t = 0; t < kOut; ++t) {
      if (out[t] != nullptr) _mm256_storeu_ps(out[t] + j, vo[t]);
    }
  }
  if (j == n) return;
  alignas(32) float buf[8];
  for (int t = 0; t < kIn; ++t) {
    std::memset(buf, 0, sizeof buf);
    if (in[t] != nullptr) std::memcpy(buf, in[t] + j, size_t(n - j) * sizeof(float));
    vi[t] = _mm256_load_ps(buf);
  }
  f(vi, vo);
  for (int t = 0; t < kOut; ++t) {
    if (out[t] == nullptr) continue;
    _mm256_store_ps(buf, vo[t]);
    std::memcpy(out[t] + j, buf, size_t(n - j) * sizeof(float));
  }
}

void glu_fwd_row(const float* c0, const float* c1, int64_t n, const float* b0, const float* b1, moe_activation_t act,
                 float limit, float* out, float* h0o, float* h1o) {
  const __m256 L = _mm256_set1_ps(limit), nL = _mm256_set1_ps(-limit), one = _mm256_set1_ps(1.0f);
  const __m256 alpha = _mm256_set1_ps(1.702f);
  const bool bias0 = b0 != nullptr, bias1 = b1 != nullptr;
  by8<4, 3>(n, {c0, c1, b0, b1}, {out, h0o, h1o}, [&](const __m256* v, __m256* o) {
    const __m256 h0 = bias0 ? _mm256_add_ps(v[0], v[2]) : v[0];
    const __m256 h1 = bias1 ? _mm256_add_ps(v[1], v[3]) : v[1];
    o[1] = h0;
    o[2] = h1;
    if (limit > 0.0f) {
      const __m256 a = _mm256_min_ps(L, h0);
      const __m256 b = _mm256_min_ps(L, _mm256_max_ps(nL, h1));
      const __m256 g = _mm256_mul_ps(a, act8(act, _mm256_mul_ps(a, alpha), nullptr));
      o[0] = _mm256_mul_ps(g, _mm256_add_ps(b, one));
    } else {
      o[0] = _mm256_mul_ps(act8(act, h0, nullptr), h1);
    }
  });
}

void glu_bwd_row(const float* d_act, const float* h0p, const float* h1p, int64_t n, moe_activation_t act, float limit,
                 float* dh0, float* dh1) {
  const __m256 L = _mm256_set1_ps(limit), nL = _mm256_set1_ps(-limit), one = _mm256_set1_ps(1.0f);
  const __m256 alpha = _mm256_set1_ps(1.702f);
  by8<3, 2>(n, {d_act, h0p, h1p}, {dh0, dh1}, [&](const __m256* v, __m256* o) {
    const __m256 d = v[0], h0 = v[1], h1 = v[2];
    __m256 df;
    if (limit > 0.0f) {
      const __m256 a = _mm256_min_ps(L, h0);
      const __m256 b = _mm256_min_ps(L, _mm256_max_ps(nL, h1));
      const __m256 f = act8(act, _mm256_mul_ps(a, alpha), &df);
      const __m256 g = _mm256_mul_ps(a, f);
      const __m256 m1 = _mm256_mul_ps(below8(h1, L), below8(_mm256_sub_ps(_mm256_setzero_ps(), h1), L));
      o[1] = _mm256_mul_ps(_mm256_mul_ps(d, g), m1);
      const __m256 da = _mm256_mul_ps(_mm256_mul_ps(d, _mm256_add_ps(b, one)), _mm256_fmadd_ps(_mm256_mul_ps(a, alpha), df, f));
      o[0] = _mm256_mul_ps(da, below8(h0, L));
    } else {
      const __m256 f = act8(act, h0, &df);
      o[1] = _mm256_mul_ps(d, f);
      o[0] = _mm256_mul_ps(_mm256_mul_ps(d, h1), df);
    }
  });
}

#include "engine_block.inc"
#include "probe.inc"

// The k loop of an MR x 16 tile (two ymm accumulators per row). A(i, p) is a[p * MR + i] when packed, else
// a[i * lda + p]; B is a [kc][16] panel (32-byte aligned).
template <int MR, bool kPacked>
inline void ukr_avx2_loop(int64_t kc, const float* __restrict a, int64_t lda, const float* __restrict b,
                          __m256 (&acc)[MR][2]) {
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256 av = _mm256_broadcast_ss(kPacked ? a + i : a + i * lda);
      acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
    }
    a += kPacked ? MR : 1;
    b += 16;
  }
}

// C[MR x 16] (+)= A * B over kc.
template <int MR>
void ukr_f32(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, bool accumulate) {
  __m256 acc[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = accumulate ? _mm256_loadu_ps(c + i * ldc) : _mm256_setzero_ps();
    acc[i][1] = accumulate ? _mm256_loadu_ps(c + i * ldc + 8) : _mm256_setzero_ps();
  }
  if (lda == 0) {
    ukr_avx2_loop<MR, true>(kc, a, 0, b, acc);
  } else {
    ukr_avx2_loop<MR, false>(kc, a, lda, b, acc);
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    _mm256_storeu_ps(c + i * ldc, acc[i][0]);
    _mm256_storeu_ps(c + i * ldc + 8, acc[i][1]);
  }
}

template <int R>
struct UkrAvx2 {
  static constexpr UkrF32 run = &ukr_f32<R>;
};

struct TrAvx2 : F32Packing<16> {
  static constexpr int MR = 6, NR = 16, KG = 1;
  using AT = float;
  static constexpr bool kPairs = false, kPadRows = false;
  static constexpr auto ukr = &ukr_rows<UkrAvx2, MR>;
};

GemmBlocking blocking(Mul) {
  return blocking_for(MOE_ISA_AVX2, Mul::F32, {TrAvx2::MR, TrAvx2::NR, TrAvx2::KG, 4, 4});
}

const IsaUnit kAvx2 = {MOE_ISA_AVX2, &blocking, &item_scratch_one<TrAvx2>, &run_item_one<TrAvx2>, &glu_fwd_row,
                      &glu_bwd_row, nullptr, &bmm_thin, kStreamRows};

}  // namespace

const IsaUnit& isa_unit_avx2() { return kAvx2; }

// fp32 fma throughput: 12 independent ymm chains per thread (two fma pipes of 4-5 cycles' latency need 8-10),
// 16 flop per instruction.
double probe_fma_avx2(double seconds) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(float(i));
  __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  const int64_t steps = probe_steps(seconds, acc, [&](__m256(&a)[12]) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], x, y);
    __asm__ volatile("" : "+x"(x));
  });
  return double(steps) * 12.0 * 16.0;
}

}  // namespace moe::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // MOE_HAVE_X86_KERNELS
