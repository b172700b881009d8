// The fused FFN of a bfloat16 layer (moe_ffn_fwd_bf16): the passes that round its intermediates where the op
// composition in bfloat16 rounds them. Each op's result is computed in double from its bf16 operands, stored as float
// and rounded to bf16, scalars rounded to bf16 too, as the reference kernels compute it; the matmuls before them are
// engine problems (fp32 accumulation), rounded here.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "ffn_stages.hpp"

namespace moe::detail {
namespace {

#include "widen.inc"

// float(v) rounded to bf16 (widen.inc's round_bf16: ties to even, NaN made quiet), as a double.
inline double rb(double v) { return round_bf16(float(v)); }

inline double sigmoid(double x) { return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x)); }
inline double min2(double a, double b) { return std::isnan(a) || std::isnan(b) ? NAN : a < b ? a : b; }
inline double max2(double a, double b) { return std::isnan(a) || std::isnan(b) ? NAN : a > b ? a : b; }

// The GLU as ops/nn.ts builds it, every op rounded.
struct GluBf16 {
  moe_activation_t act;
  double limit, lo, alpha, gelu_c, gelu_a;

  GluBf16(moe_activation_t a, float clamp_limit)
      : act(a),
        limit(rb(clamp_limit)),
        lo(rb(-double(clamp_limit))),
        alpha(rb(1.702)),
        gelu_c(rb(std::sqrt(2 / 3.141592653589793))),
        gelu_a(rb(0.044715)) {}

  double f(double x) const {
    switch (act) {
      case MOE_ACT_SILU: return rb(x * rb(sigmoid(x)));
      case MOE_ACT_SIGMOID: return rb(sigmoid(x));
      case MOE_ACT_RELU: return x > 0 ? x : 0;
      case MOE_ACT_GELU_TANH: {
        const double inner = rb(rb(x + rb(rb(rb(x * x) * x) * gelu_a)) * gelu_c);
        return rb(rb(x * 0.5) * rb(rb(std::tanh(inner)) + 1));
      }
      case MOE_ACT_LINEAR:
      default: return x;
    }
  }

  double operator()(double h0, double h1) const {
    if (limit == 0) return rb(f(h0) * h1);
    const double a = min2(h0, limit), b = min2(max2(h1, lo), limit);
    return rb(rb(a * f(rb(a * alpha))) * rb(b + 1));
  }
};

// f(row, group) for the grouped rows [0, off.back()) in chunks on the pool.
template <class F>
void grouped_rows(const std::vector<int64_t>& off, int64_t width, F&& f) {
  const int64_t rows = off.back();
  const int64_t chunk = std::max<int64_t>(1, 4096 / std::max<int64_t>(width, 1));
  auto body = [&](int64_t item, int) {
    const int64_t r0 = item * chunk, r1 = std::min(rows, r0 + chunk);
    int64_t g = int64_t(std::upper_bound(off.begin(), off.end(), r0) - off.begin()) - 1;
    for (int64_t r = r0; r < r1; ++r) {
      while (r >= off[size_t(g) + 1]) ++g;
      f(r, g);
    }
  };
  parallel_items((rows + chunk - 1) / chunk, double(rows) * double(width) < kSerialElems, body);
}

// v rounded, then + the rounded bias, rounded (the composition's matmul output and its bias add).
inline double biased(float v, const float* bias) { return bias == nullptr ? rb(v) : rb(rb(v) + rb(*bias)); }

}  // namespace

void round_bf16(const float* src, int64_t n, float* dst) {
  constexpr int64_t kBlk = 1 << 14;
  auto body = [&](int64_t item, int) {
    for (int64_t i = item * kBlk, e = std::min(n, i + kBlk); i < e; ++i) dst[i] = float(rb(src[i]));
  };
  parallel_items((n + kBlk - 1) / kBlk, double(n) < kSerialElems, body);
}

void glu_row_bf16(float* h0, float* h1, int64_t n, const float* b0, const float* b1, moe_activation_t act, float limit,
                  float* out) {
  const IsaUnit& isa = active_isa_unit();
  if (isa.glu_fwd_bf16 != nullptr && isa.glu_fwd_bf16(h0, h1, n, b0, b1, act, limit, out)) return;
  const GluBf16 glu(act, limit);
  for (int64_t j = 0; j < n; ++j) {
    const double v0 = biased(h0[j], b0 != nullptr ? b0 + j : nullptr);
    const double v1 = biased(h1[j], b1 != nullptr ? b1 + j : nullptr);
    h0[j] = float(v0);
    h1[j] = float(v1);
    out[j] = float(glu(v0, v1));
  }
}

void glu_fwd_bf16(const Dims& d, float* h0, float* h1, const float* b0, const float* b1, moe_activation_t act,
                  float limit, float* out) {
  const int64_t H = d.H;
  grouped_rows(d.off, H, [&](int64_t r, int64_t g) {
    glu_row_bf16(h0 + r * H, h1 + r * H, H, b0 != nullptr ? b0 + g * H : nullptr, b1 != nullptr ? b1 + g * H : nullptr,
                 act, limit, out + r * H);
  });
}

void round_rows_bf16(const Dims& d, float* o, const float* bias) {
  const int64_t D = d.D;
  grouped_rows(d.off, D, [&](int64_t r, int64_t g) {
    for (int64_t j = 0; j < D; ++j) o[r * D + j] = float(biased(o[r * D + j], bias != nullptr ? bias + g * D + j : nullptr));
  });
}

}  // namespace moe::detail
