// Portable fused MoE kernels (any CPU; also what MOE_ISA_AVX2 runs): the engine of ffn_engine.inc with a plain C++
// register tile, fp32 multiply (bf16 weights widened while packing) and libm's exp in the GLU.
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "ffn.hpp"

namespace moe::detail {
namespace {

inline float madd(float a, float b, float c) { return a * b + c; }

template <class S>
inline float widen_s(S v) {
  if constexpr (sizeof(S) == 2) {
    const uint32_t u = uint32_t(v) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  } else {
    return v;
  }
}

template <class S>
void axpy_rows(float* __restrict acc, int64_t lda, const float* x, int64_t m, const S* __restrict w, int64_t n) {
  for (int64_t i = 0; i < m; ++i) {
    float* __restrict a = acc + i * lda;
    const float xi = x[i];
    for (int64_t j = 0; j < n; ++j) a[j] = madd(xi, widen_s(w[j]), a[j]);
  }
}

void store_row(const float* c, int64_t n, const float* bias, float* dst) {
  if (bias == nullptr) {
    std::memcpy(dst, c, size_t(n) * sizeof(float));
  } else {
    for (int64_t j = 0; j < n; ++j) dst[j] = c[j] + bias[j];
  }
}

inline float sigmoid_s(float x) { return 1.0f / (1.0f + std::exp(-x)); }

constexpr float kGeluC = 0.7978845608028654f;
constexpr float kGeluA = 0.044715f;

inline float act_s(moe_activation_t act, float z, float* df) {
  switch (act) {
    case MOE_ACT_SILU: {
      const float s = sigmoid_s(z);
      if (df != nullptr) *df = s * (z * (1.0f - s) + 1.0f);
      return z * s;
    }
    case MOE_ACT_GELU_TANH: {
      const float z2 = z * z;
      const float u = kGeluC * (z2 * z * kGeluA + z);
      const float s = sigmoid_s(u + u);
      if (df != nullptr) *df = z * (s * (1.0f - s)) * (2.0f * kGeluC * (z2 * (3.0f * kGeluA) + 1.0f)) + s;
      return z * s;
    }
    case MOE_ACT_SIGMOID: {
      const float s = sigmoid_s(z);
      if (df != nullptr) *df = s * (1.0f - s);
      return s;
    }
    case MOE_ACT_RELU:
      if (df != nullptr) *df = z > 0.0f ? 1.0f : 0.0f;
      return z > 0.0f ? z : 0.0f;
    case MOE_ACT_LINEAR:
    default:
      if (df != nullptr) *df = 1.0f;
      return z;
  }
}

// min(h, L) and max(h, -L) as the AVX-512 minps/maxps with the bound first: NaN passes through.
inline float min_b(float L, float h) { return L < h ? L : h; }
inline float max_b(float L, float h) { return L > h ? L : h; }
inline float below(float h, float L) { return h < L ? 1.0f : h == L ? 0.5f : 0.0f; }

void glu_fwd_row(const float* c0, const float* c1, int64_t n, const float* b0, const float* b1, moe_activation_t act,
                 float limit, float* out, float* h0o, float* h1o) {
  for (int64_t j = 0; j < n; ++j) {
    float h0 = c0[j], h1 = c1[j];
    if (b0 != nullptr) h0 += b0[j];
    if (b1 != nullptr) h1 += b1[j];
    if (h0o != nullptr) h0o[j] = h0;
    if (h1o != nullptr) h1o[j] = h1;
    if (limit > 0.0f) {
      const float a = min_b(limit, h0), b = min_b(limit, max_b(-limit, h1));
      out[j] = a * act_s(act, a * 1.702f, nullptr) * (b + 1.0f);
    } else {
      out[j] = act_s(act, h0, nullptr) * h1;
    }
  }
}

void glu_bwd_row(const float* d_act, const float* h0p, const float* h1p, int64_t n, moe_activation_t act, float limit,
                 float* dh0, float* dh1) {
  for (int64_t j = 0; j < n; ++j) {
    const float d = d_act[j], h0 = h0p[j], h1 = h1p[j];
    float df;
    if (limit > 0.0f) {
      const float a = min_b(limit, h0), b = min_b(limit, max_b(-limit, h1));
      const float f = act_s(act, a * 1.702f, &df);
      dh1[j] = d * (a * f) * (below(h1, limit) * below(-h1, limit));
      dh0[j] = d * (b + 1.0f) * ((a * 1.702f) * df + f) * below(h0, limit);
    } else {
      const float f = act_s(act, h0, &df);
      dh1[j] = d * f;
      dh0[j] = d * h1 * df;
    }
  }
}

#include "ffn_engine.inc"

// C[MR x 16] (+)= A * B over kc; A(i, p) = a[p * MR + i] (lda == 0) or a[i * lda + p].
template <int MR>
void ukr_s(int64_t kc, const float* __restrict a, int64_t lda, const float* __restrict b, float* __restrict c,
           int64_t ldc, bool accumulate) {
  constexpr int NR = 16;
  float acc[MR][NR];
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) acc[i][j] = accumulate ? c[i * ldc + j] : 0.0f;
  }
  for (int64_t p = 0; p < kc; ++p) {
    for (int i = 0; i < MR; ++i) {
      const float av = lda == 0 ? a[p * MR + i] : a[i * lda + p];
      for (int j = 0; j < NR; ++j) acc[i][j] = madd(av, b[p * NR + j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) c[i * ldc + j] = acc[i][j];
  }
}

using UkrS = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, bool);

template <int... R>
constexpr auto ukr_s_table(std::integer_sequence<int, R...>) {
  return std::array<UkrS, sizeof...(R)>{&ukr_s<R + 1>...};
}

struct TrS {
  static constexpr int MR = 4, NR = 16, KC = 256, KG = 1;
  using AT = float;
  static constexpr bool kPairs = false, kPadRows = false;
  static void ukr(int mr, int64_t kcp, const float* a, int64_t lda, const void* b, float* c, int64_t ldc, bool acc) {
    static constexpr auto table = ukr_s_table(std::make_integer_sequence<int, MR>());
    table[size_t(mr - 1)](kcp, a, lda, static_cast<const float*>(b), c, ldc, acc);
  }
  static void cvt_row(const float* src, int64_t n, int64_t npad, float* dst) {
    std::memcpy(dst, src, size_t(n) * sizeof(float));
    for (int64_t p = n; p < npad; ++p) dst[p] = 0.0f;
  }
  template <class S>
  static void pack_trans(const S* base, int64_t ldb, int64_t pc, int64_t kc, int64_t kcp, int64_t j0, int64_t nb,
                         float* dst) {
    pack_b_f32<NR>(base, true, ldb, pc, kc, kcp, j0, nb, dst);
  }
  static void begin() {}
  static void end() {}
};

FfnBlocking blocking(Mul) { return {TrS::MR, TrS::NR, TrS::KC, 128, 256, TrS::KG, 128, 256}; }

int64_t item_scratch(const FfnProblem& p, const FfnItem& it) {
  return it.stream ? stream_scratch_floats(p, it) : scratch_floats_t<TrS>(p, it);
}

void run_item(const FfnProblem& p, const FfnItem& it, float* scratch) {
  if (it.stream) {
    run_stream(p, it, scratch);
  } else {
    run_packed<TrS>(p, it, scratch);
  }
}

const FfnIsa kScalar = {MOE_ISA_SCALAR, &blocking, &item_scratch, &run_item, &glu_fwd_row, &glu_bwd_row};

}  // namespace

const FfnIsa& ffn_isa_scalar() { return kScalar; }

}  // namespace moe::detail
