// Portable ISA unit of the GEMM engine (any CPU): engine_block.inc with a plain C++ register tile,
// fp32 multiply (bf16 weights widened while packing) and libm's exp in the GLU.
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "engine.hpp"

namespace moe::detail {
namespace {

inline float madd(float a, float b, float c) { return a * b + c; }

#include "widen.inc"

template <class S>
void axpy_rows(float* __restrict acc, int64_t lda, const float* x, int64_t m, const S* __restrict w, int64_t n) {
  for (int64_t i = 0; i < m; ++i) {
    float* __restrict a = acc + i * lda;
    const float xi = x[i];
    for (int64_t j = 0; j < n; ++j) a[j] = madd(xi, widen(w[j]), a[j]);
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

#include "engine_block.inc"

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

template <int R>
struct UkrS {
  static constexpr UkrF32 run = &ukr_s<R>;
};

struct TrS : F32Packing<16> {
  static constexpr int MR = 4, NR = 16, KG = 1;
  using AT = float;
  static constexpr bool kPairs = false, kPadRows = false;
  static constexpr auto ukr = &ukr_rows<UkrS, MR>;
};

GemmBlocking blocking(Mul) { return blocking_for(MOE_ISA_SCALAR, Mul::F32, {TrS::MR, TrS::NR, TrS::KG, 4, 4}); }

const IsaUnit kScalar = {MOE_ISA_SCALAR, &blocking, &item_scratch_one<TrS>, &run_item_one<TrS>, &glu_fwd_row,
                        &glu_bwd_row, nullptr, &bmm_thin, kStreamRows};

}  // namespace

const IsaUnit& isa_unit_scalar() { return kScalar; }

}  // namespace moe::detail
