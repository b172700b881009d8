// Standalone test of the fused MoE FFN kernels (stage 2) against naive double-precision loops, for every ISA this
// CPU runs, every bf16 path it has, and 1, 2 and 3 threads. Checks
//   - matmul-like outputs: |got - exact| <= 2 n u sum|a_p b_p| + tiny (any summation order), where for the bf16
//     paths that round activations (dpbf16, amx) "exact" uses the bf16-rounded activations;
//   - GLU outputs against the double GLU of the kernel's own pre-activations (forward) or of the exact d_act
//     (backward), relative 2e-5;
//   - bit-identical results for 1, 2 and 3 threads, and the inference forward (no h0/h1) identical to the training one;
//   - the one-shot forward/backward equal to the composition of the stages, bit for bit;
//   - the AVX2 unit's fp32 products bit-identical to the AVX-512 unit's;
//   - GLU derivative conventions at ties, relu'(0), argument errors, the workspace and the probes.
// Build and run: native/test/run.sh
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "check.hpp"
#include "stages_abi.h"

namespace {

using moe_test::g_checks;
using moe_test::g_failures;
using moe_test::Rng;

std::vector<float> rand_vec(size_t n, uint64_t seed, float scale = 1.0f) {
  Rng r{seed * 0x9E3779B97F4A7C15ull + 7};
  std::vector<float> v(n);
  for (auto& x : v) x = r.next() * scale;
  return v;
}

uint16_t bf16_bits(float x) {  // round to nearest even
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu) != 0) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

float bf16_value(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float round_bf16(float x) { return bf16_value(bf16_bits(x)); }

// ---- double references ----

double sigmoid_d(double x) { return 1.0 / (1.0 + std::exp(-x)); }

double act_d(moe_activation_t a, double z, double* df) {
  switch (a) {
    case MOE_ACT_SILU: {
      const double s = sigmoid_d(z);
      *df = s * (1 + z * (1 - s));
      return z * s;
    }
    case MOE_ACT_GELU_TANH: {
      // 0.5 z (1 + tanh u) = z sigmoid(2u): the sigmoid form keeps the tiny negative tail
      const double c = std::sqrt(2.0 / M_PI), u = c * (z + 0.044715 * z * z * z), s = sigmoid_d(2 * u);
      *df = s + z * s * (1 - s) * 2 * c * (1 + 3 * 0.044715 * z * z);
      return z * s;
    }
    case MOE_ACT_SIGMOID: {
      const double s = sigmoid_d(z);
      *df = s * (1 - s);
      return s;
    }
    case MOE_ACT_RELU:
      *df = z > 0 ? 1 : 0;
      return z > 0 ? z : 0;
    default:
      *df = 1;
      return z;
  }
}

double below_d(double h, double L) { return h < L ? 1 : h == L ? 0.5 : 0; }

double glu_d(moe_activation_t a, double L, double h0, double h1) {
  double df;
  if (L > 0) {
    const double x = std::min(h0, L), y = std::min(std::max(h1, -L), L);
    return x * act_d(a, 1.702 * x, &df) * (y + 1);
  }
  return act_d(a, h0, &df) * h1;
}

// d glu / d h0, d h1
void glu_grad_d(moe_activation_t a, double L, double h0, double h1, double* g0, double* g1) {
  double df;
  if (L > 0) {
    const double x = std::min(h0, L), y = std::min(std::max(h1, -L), L);
    const double f = act_d(a, 1.702 * x, &df);
    *g1 = x * f * below_d(h1, L) * below_d(-h1, L);
    *g0 = (y + 1) * (f + x * 1.702 * df) * below_d(h0, L);
  } else {
    const double f = act_d(a, h0, &df);
    *g1 = f;
    *g0 = h1 * df;
  }
}

// Expected matmul-like values: exact sum, sum of |terms|, contraction depth.
struct Acc {
  std::vector<double> v, mag;
  int64_t depth = 1;
  explicit Acc(size_t n) : v(n, 0.0), mag(n, 0.0) {}
  void add(size_t i, double a, double b) {
    v[i] += a * b;
    mag[i] += std::fabs(a * b);
  }
  double bound(size_t i) const { return 2.0 * double(depth + 2) * std::ldexp(1.0, -24) * mag[i] + 1e-30; }
};

std::string check_acc(const std::vector<float>& got, const Acc& want, const std::vector<double>* extra = nullptr) {
  for (size_t i = 0; i < got.size(); ++i) {
    const double bound = want.bound(i) + (extra != nullptr ? (*extra)[i] : 0.0);
    const double diff = std::fabs(double(got[i]) - want.v[i]);
    if (!(diff <= bound)) {
      return "element " + std::to_string(i) + ": got " + std::to_string(got[i]) + ", want " + std::to_string(want.v[i]) +
             " (bound " + std::to_string(bound) + ")";
    }
  }
  return "";
}

// ---- problem instances ----

struct Case {
  const char* name;
  int64_t T, K, E, D, H;
  std::vector<int32_t> gs;  // empty: routed at random (sum = T*K)
  int64_t extra_rows;       // rows past the group sum (stage kernels only)
  moe_activation_t act;
  float limit;
  bool bias;
};

std::vector<Case> cases() {
  return {
      {"tiny", 1, 1, 1, 5, 7, {}, 0, MOE_ACT_SILU, 0.0f, false},
      {"one token K=E", 1, 4, 4, 9, 11, {}, 0, MOE_ACT_GELU_TANH, 0.0f, true},
      {"empty experts", 7, 2, 6, 13, 17, {0, 5, 0, 0, 9, 0}, 0, MOE_ACT_SIGMOID, 0.0f, true},
      {"rows past the sum", 6, 2, 3, 10, 12, {3, 0, 5}, 4, MOE_ACT_RELU, 0.0f, true},
      {"odd", 13, 3, 4, 37, 45, {}, 0, MOE_ACT_LINEAR, 0.0f, false},
      {"gpt_oss clamp", 11, 2, 3, 33, 29, {}, 0, MOE_ACT_SIGMOID, 0.6f, true},
      {"gpt_oss silu", 9, 2, 2, 19, 21, {}, 0, MOE_ACT_SILU, 0.4f, false},
      {"decode (small groups)", 2, 4, 8, 40, 50, {}, 0, MOE_ACT_SILU, 0.0f, true},
      {"big group, k past blocks", 40, 8, 2, 300, 70, {300, 20}, 0, MOE_ACT_GELU_TANH, 0.0f, true},
      {"wide H", 30, 2, 3, 48, 530, {}, 0, MOE_ACT_SILU, 0.0f, false},
      {"streamed strips, k past blocks", 20, 3, 3, 150, 130, {40, 17, 3}, 0, MOE_ACT_SILU, 0.0f, true},
      {"groups of 5-16 rows, k past 64-row blocks", 10, 2, 3, 150, 100, {9, 6, 5}, 0, MOE_ACT_SILU, 0.0f, true},
      {"rows 1 KB apart, streamed groups past 48 rows", 50, 2, 3, 256, 256, {70, 25, 5}, 0, MOE_ACT_SILU, 0.0f, false},
      {"pool-sized", 64, 4, 4, 64, 96, {}, 0, MOE_ACT_SILU, 0.0f, true},
      {"gathered rows of 4 KiB, padded", 400, 1, 2, 1024, 16, {}, 0, MOE_ACT_SILU, 0.0f, true},
      {"small groups' sums of 4 KiB rows, padded", 8, 2, 8, 1024, 16, {2, 4, 1, 3, 2, 1, 2, 1}, 0, MOE_ACT_SILU, 0.0f, true},
      {"streamed strips of 128 columns and a tail", 3, 1, 2, 130, 150, {1, 2}, 0, MOE_ACT_SILU, 0.0f, true},
      {"H = 0", 3, 2, 2, 5, 0, {}, 0, MOE_ACT_SILU, 0.0f, true},
      {"D = 0", 3, 2, 2, 0, 4, {}, 0, MOE_ACT_GELU_TANH, 0.0f, true},
      {"no tokens", 0, 2, 3, 6, 5, {}, 0, MOE_ACT_SILU, 0.0f, true},
      {"no experts used", 2, 1, 2, 4, 3, {0, 0}, 2, MOE_ACT_RELU, 0.0f, true},
  };
}

struct Data {
  int64_t T, K, E, D, H, R;
  std::vector<int32_t> gs, order, row_token, inv;
  std::vector<int64_t> off;
  std::vector<float> x, w, wi0, wi1, wo, b0, b1, bo;
  std::vector<uint16_t> wi0b, wi1b, wob;
  std::vector<float> wi0r, wi1r, wor;  // bf16 values of the weights
};

Data make_data(const Case& c, uint64_t seed) {
  Data d;
  d.T = c.T;
  d.K = c.K;
  d.E = c.E;
  d.D = c.D;
  d.H = c.H;
  Rng rng{seed};
  const int64_t TK = c.T * c.K;
  d.R = TK;
  if (c.gs.empty()) {
    // each token picks K distinct experts at random; rows sorted by expert (stable)
    std::vector<int32_t> expert(static_cast<size_t>(TK));
    for (int64_t t = 0; t < c.T; ++t) {
      std::vector<int32_t> pool(size_t(c.E));
      for (int64_t e = 0; e < c.E; ++e) pool[size_t(e)] = int32_t(e);
      for (int64_t k = 0; k < c.K; ++k) {
        const uint32_t j = uint32_t(k) + rng.below(uint32_t(c.E - k));
        std::swap(pool[size_t(k)], pool[j]);
        expert[size_t(t * c.K + k)] = pool[size_t(k)];
      }
    }
    d.order.resize(size_t(TK));
    for (int64_t i = 0; i < TK; ++i) d.order[size_t(i)] = int32_t(i);
    std::stable_sort(d.order.begin(), d.order.end(), [&](int32_t a, int32_t b) { return expert[size_t(a)] < expert[size_t(b)]; });
    d.gs.assign(size_t(c.E), 0);
    for (int32_t e : expert) d.gs[size_t(e)]++;
  } else {
    d.gs = c.gs;
    int64_t sum = 0;
    for (int32_t s : d.gs) sum += s;
    d.R = sum + c.extra_rows;
    // a random permutation of the choices (sum + extra == T*K for the one-shot cases; stage kernels only need R)
    d.order.resize(size_t(d.R));
    for (int64_t i = 0; i < d.R; ++i) d.order[size_t(i)] = int32_t(i % TK);
    for (int64_t i = d.R - 1; i > 0; --i) std::swap(d.order[size_t(i)], d.order[rng.below(uint32_t(i + 1))]);
  }
  d.off.assign(1, 0);
  for (int32_t s : d.gs) d.off.push_back(d.off.back() + s);
  d.row_token.resize(size_t(d.R));
  for (int64_t r = 0; r < d.R; ++r) d.row_token[size_t(r)] = int32_t(d.order[size_t(r)] / c.K);
  if (d.R == TK) {
    d.inv.assign(size_t(TK), -1);
    for (int64_t r = 0; r < d.R; ++r) d.inv[size_t(d.order[size_t(r)])] = int32_t(r);
  }
  d.x = rand_vec(size_t(c.T * c.D), seed + 1);
  d.w = rand_vec(size_t(TK), seed + 2);
  const float ws = 1.0f / std::sqrt(float(c.D)), wso = 1.0f / std::sqrt(float(c.H));
  d.wi0 = rand_vec(size_t(c.E * c.D * c.H), seed + 3, 2 * ws);
  d.wi1 = rand_vec(size_t(c.E * c.D * c.H), seed + 4, 2 * ws);
  d.wo = rand_vec(size_t(c.E * c.H * c.D), seed + 5, 2 * wso);
  d.b0 = rand_vec(size_t(c.E * c.H), seed + 6, 0.5f);
  d.b1 = rand_vec(size_t(c.E * c.H), seed + 7, 0.5f);
  d.bo = rand_vec(size_t(c.E * c.D), seed + 8, 0.5f);
  for (auto* p : {&d.wi0, &d.wi1, &d.wo}) {
    std::vector<uint16_t> b(p->size());
    std::vector<float> r(p->size());
    for (size_t i = 0; i < p->size(); ++i) {
      b[i] = bf16_bits((*p)[i]);
      r[i] = bf16_value(b[i]);
    }
    if (p == &d.wi0) {
      d.wi0b = b;
      d.wi0r = r;
    } else if (p == &d.wi1) {
      d.wi1b = b;
      d.wi1r = r;
    } else {
      d.wob = b;
      d.wor = r;
    }
  }
  return d;
}

// What a configuration multiplies with.
struct Mode {
  moe_isa_t isa;
  bool bf16;              // bf16 weights
  moe_bf16_path_t path;   // when bf16
  std::string tag() const {
    return std::string("[") + moe_isa_name(isa) + (bf16 ? std::string(" bf16 ") + moe_bf16_path_name(path) : "") + "] ";
  }
  // Whether activations (the A operand) are rounded to bf16 in a weight matmul over a group of `rows` rows: the
  // bf16-pair paths (AVX-512 only) stream forward groups of at most 16 rows with fp32 activations.
  bool rounds(int64_t rows, bool fwd) const {
    if (!bf16 || path == MOE_BF16_WIDEN) return false;
    return !(fwd && rows <= 16);
  }
};

const std::vector<float>& W(const Data& d, const Mode& m, int which) {
  if (which == 0) return m.bf16 ? d.wi0r : d.wi0;
  if (which == 1) return m.bf16 ? d.wi1r : d.wi1;
  return m.bf16 ? d.wor : d.wo;
}

int64_t group_of(const Data& d, int64_t r) {
  for (int64_t g = 0; g < d.E; ++g) {
    if (r < d.off[size_t(g) + 1]) return g;
  }
  return -1;
}

// Runs f for 1, 2, 3 threads; checks every output bit-identical to the 1-thread run; returns the 1-thread outputs.
using Outs = std::vector<std::vector<float>>;
Outs run_threads(const std::string& what, const std::function<moe_status_t(Outs&)>& f, const std::vector<size_t>& sizes) {
  Outs first;
  for (int threads : {1, 2, 3}) {
    moe_set_num_threads(threads);
    Outs o;
    for (size_t s : sizes) o.emplace_back(s, std::nanf(""));
    const moe_status_t st = f(o);
    EXPECT(st == MOE_STATUS_OK, "%s threads=%d: %s (%s)", what.c_str(), threads, moe_status_string(st), moe_last_error());
    if (threads == 1) {
      first = o;
      continue;
    }
    for (size_t i = 0; i < o.size(); ++i) {
      EXPECT(o[i].empty() || std::memcmp(o[i].data(), first[i].data(), o[i].size() * 4) == 0,
             "%s: output %zu with %d threads differs from 1 thread", what.c_str(), i, threads);
    }
  }
  moe_set_num_threads(0);
  return first;
}

void test_case(const Case& c, const Mode& m, uint64_t seed) {
  const Data d = make_data(c, seed);
  const std::string tag = m.tag() + c.name + ": ";
  const int64_t T = d.T, K = d.K, E = d.E, D = d.D, H = d.H, R = d.R;
  const float* b0 = c.bias ? d.b0.data() : nullptr;
  const float* b1 = c.bias ? d.b1.data() : nullptr;
  const float* bo = c.bias ? d.bo.data() : nullptr;
  const auto& wi0 = W(d, m, 0);
  const auto& wi1 = W(d, m, 1);
  const auto& wo = W(d, m, 2);
  const size_t RH = size_t(R * H), RD = size_t(R * D);

  // ---- up forward ----
  auto up = [&](Outs& o, bool keep_h) {
    float* h0 = keep_h ? o[1].data() : nullptr;
    float* h1 = keep_h ? o[2].data() : nullptr;
    return m.bf16 ? moe_ffn_up_fwd_bf16w(d.x.data(), T, D, d.row_token.data(), R, d.wi0b.data(), d.wi1b.data(), b0, b1,
                                         d.gs.data(), E, H, c.act, c.limit, o[0].data(), h0, h1)
                  : moe_ffn_up_fwd_f32(d.x.data(), T, D, d.row_token.data(), R, d.wi0.data(), d.wi1.data(), b0, b1,
                                       d.gs.data(), E, H, c.act, c.limit, o[0].data(), h0, h1);
  };
  const Outs u = run_threads(tag + "up_fwd", [&](Outs& o) { return up(o, true); }, {RH, RH, RH});
  const Outs u_inf = run_threads(tag + "up_fwd (no h)", [&](Outs& o) { return up(o, false); }, {RH});
  EXPECT(std::memcmp(u[0].data(), u_inf[0].data(), RH * 4) == 0, "%sact without h0/h1 differs", tag.c_str());
  {
    Acc e0(RH), e1(RH);
    e0.depth = e1.depth = D;
    std::vector<double> slack(RH, 0.0);
    for (int64_t r = 0; r < R; ++r) {
      const int64_t g = group_of(d, r);
      if (g < 0) continue;
      const bool rnd = m.rounds(d.gs[size_t(g)], true);
      for (int64_t j = 0; j < H; ++j) {
        const size_t i = size_t(r * H + j);
        for (int64_t p = 0; p < D; ++p) {
          float a = d.x[size_t(d.row_token[size_t(r)] * D + p)];
          if (rnd) a = round_bf16(a);
          e0.add(i, a, wi0[size_t((g * D + p) * H + j)]);
          e1.add(i, a, wi1[size_t((g * D + p) * H + j)]);
        }
        if (c.bias) {
          e0.v[i] += d.b0[size_t(g * H + j)];
          e1.v[i] += d.b1[size_t(g * H + j)];
          slack[i] = std::ldexp(std::fabs(e0.v[i]) + std::fabs(e1.v[i]) + 1.0, -23);
        }
      }
    }
    std::string err = check_acc(u[1], e0, &slack);
    EXPECT(err.empty(), "%sh0: %s", tag.c_str(), err.c_str());
    err = check_acc(u[2], e1, &slack);
    EXPECT(err.empty(), "%sh1: %s", tag.c_str(), err.c_str());
    for (size_t i = 0; i < RH; ++i) {
      const double want = glu_d(c.act, c.limit, u[1][i], u[2][i]);
      if (!(std::fabs(u[0][i] - want) <= 2e-5 * std::fabs(want) + 1e-30)) {
        EXPECT(false, "%sact[%zu] = %g, glu(h0, h1) = %g", tag.c_str(), i, double(u[0][i]), want);
        break;
      }
    }
  }

  // ---- down forward ----
  const Outs dn = run_threads(tag + "down_fwd", [&](Outs& o) {
    return m.bf16 ? moe_ffn_down_fwd_bf16w(u[0].data(), R, H, d.wob.data(), bo, d.gs.data(), E, D, o[0].data())
                  : moe_ffn_down_fwd_f32(u[0].data(), R, H, d.wo.data(), bo, d.gs.data(), E, D, o[0].data());
  }, {RD});
  {
    Acc e(RD);
    e.depth = H;
    std::vector<double> slack(RD, 0.0);
    for (int64_t r = 0; r < R; ++r) {
      const int64_t g = group_of(d, r);
      if (g < 0) continue;
      const bool rnd = m.rounds(d.gs[size_t(g)], true);
      for (int64_t j = 0; j < D; ++j) {
        const size_t i = size_t(r * D + j);
        for (int64_t p = 0; p < H; ++p) {
          float a = u[0][size_t(r * H + p)];
          if (rnd) a = round_bf16(a);
          e.add(i, a, wo[size_t((g * H + p) * D + j)]);
        }
        if (c.bias) {
          e.v[i] += d.bo[size_t(g * D + j)];
          slack[i] = std::ldexp(std::fabs(e.v[i]) + 1.0, -23);
        }
      }
    }
    const std::string err = check_acc(dn[0], e, &slack);
    EXPECT(err.empty(), "%so_rows: %s", tag.c_str(), err.c_str());
  }

  // ---- backward stages, with random upstream gradients ----
  const auto d_o = rand_vec(RD, seed + 20);
  const Outs db = run_threads(tag + "down_bwd", [&](Outs& o) {
    float* dbo = c.bias ? o[3].data() : nullptr;
    return m.bf16 ? moe_ffn_down_bwd_bf16w(d_o.data(), u[0].data(), u[1].data(), u[2].data(), R, H, d.wob.data(),
                                           d.gs.data(), E, D, c.act, c.limit, o[0].data(), o[1].data(), o[2].data(), dbo)
                  : moe_ffn_down_bwd_f32(d_o.data(), u[0].data(), u[1].data(), u[2].data(), R, H, d.wo.data(),
                                         d.gs.data(), E, D, c.act, c.limit, o[0].data(), o[1].data(), o[2].data(), dbo);
  }, {RH, RH, size_t(E * H * D), c.bias ? size_t(E * D) : 0});
  {
    // dh = glu'(h0, h1) * d_act with d_act exact
    Acc da(RH);
    da.depth = D;
    for (int64_t r = 0; r < R; ++r) {
      const int64_t g = group_of(d, r);
      if (g < 0) continue;
      const bool rnd = m.rounds(d.gs[size_t(g)], false);
      for (int64_t j = 0; j < H; ++j) {
        for (int64_t p = 0; p < D; ++p) {
          float a = d_o[size_t(r * D + p)];
          if (rnd) a = round_bf16(a);
          da.add(size_t(r * H + j), a, wo[size_t((g * H + j) * D + p)]);
        }
      }
    }
    bool ok = true;
    for (size_t i = 0; i < RH && ok; ++i) {
      double g0, g1;
      glu_grad_d(c.act, c.limit, u[1][i], u[2][i], &g0, &g1);
      for (int which = 0; which < 2 && ok; ++which) {
        const double gg = which == 0 ? g0 : g1;
        const double want = gg * da.v[i], got = db[size_t(which)][i];
        // fp32 evaluation of glu' cancels near its roots (e.g. silu'(-1.28) = 0): allow eps-sized absolute error
        // on the scale of its terms.
        const double scale = std::fabs(da.v[i]) * (1 + std::fabs(u[1][i])) * (1 + std::fabs(u[2][i]));
        const double tol = std::fabs(gg) * da.bound(i) + 2e-5 * std::fabs(want) + 2e-6 * scale + 1e-30;
        if (!(std::fabs(got - want) <= tol)) {
          EXPECT(false, "%sdh%d[%zu] = %g, want %g (tol %g)", tag.c_str(), which, i, got, want, tol);
          ok = false;
        }
      }
    }
    Acc ew(size_t(E * H * D)), eb(size_t(E * D));
    for (int64_t g = 0; g < E; ++g) {
      ew.depth = std::max<int64_t>(ew.depth, d.gs[size_t(g)]);
      for (int64_t r = d.off[size_t(g)]; r < d.off[size_t(g) + 1]; ++r) {
        for (int64_t i = 0; i < H; ++i) {
          for (int64_t j = 0; j < D; ++j) ew.add(size_t((g * H + i) * D + j), u[0][size_t(r * H + i)], d_o[size_t(r * D + j)]);
        }
        for (int64_t j = 0; j < D; ++j) eb.add(size_t(g * D + j), d_o[size_t(r * D + j)], 1.0);
      }
    }
    eb.depth = ew.depth;
    std::string err = check_acc(db[2], ew);
    EXPECT(err.empty(), "%sdwo: %s", tag.c_str(), err.c_str());
    if (c.bias) {
      err = check_acc(db[3], eb);
      EXPECT(err.empty(), "%sdbo: %s", tag.c_str(), err.c_str());
    }
  }

  const Outs ub = run_threads(tag + "up_bwd", [&](Outs& o) {
    float* db0 = c.bias ? o[3].data() : nullptr;
    float* db1 = c.bias ? o[4].data() : nullptr;
    return m.bf16 ? moe_ffn_up_bwd_bf16w(db[0].data(), db[1].data(), R, H, d.x.data(), T, D, d.row_token.data(),
                                         d.wi0b.data(), d.wi1b.data(), d.gs.data(), E, o[0].data(), o[1].data(),
                                         o[2].data(), db0, db1)
                  : moe_ffn_up_bwd_f32(db[0].data(), db[1].data(), R, H, d.x.data(), T, D, d.row_token.data(),
                                       d.wi0.data(), d.wi1.data(), d.gs.data(), E, o[0].data(), o[1].data(),
                                       o[2].data(), db0, db1);
  }, {RD, size_t(E * D * H), size_t(E * D * H), c.bias ? size_t(E * H) : 0, c.bias ? size_t(E * H) : 0});
  {
    Acc ex(RD);
    ex.depth = 2 * H;
    for (int64_t r = 0; r < R; ++r) {
      const int64_t g = group_of(d, r);
      if (g < 0) continue;
      const bool rnd = m.rounds(d.gs[size_t(g)], false);
      for (int64_t j = 0; j < D; ++j) {
        for (int64_t p = 0; p < H; ++p) {
          float a0 = db[0][size_t(r * H + p)], a1 = db[1][size_t(r * H + p)];
          if (rnd) {
            a0 = round_bf16(a0);
            a1 = round_bf16(a1);
          }
          ex.add(size_t(r * D + j), a0, wi0[size_t((g * D + j) * H + p)]);
          ex.add(size_t(r * D + j), a1, wi1[size_t((g * D + j) * H + p)]);
        }
      }
    }
    std::string err = check_acc(ub[0], ex);
    EXPECT(err.empty(), "%sdx_rows: %s", tag.c_str(), err.c_str());
    Acc e0(size_t(E * D * H)), e1(size_t(E * D * H)), c0(size_t(E * H)), c1(size_t(E * H));
    for (int64_t g = 0; g < E; ++g) {
      e0.depth = std::max<int64_t>(e0.depth, d.gs[size_t(g)]);
      for (int64_t r = d.off[size_t(g)]; r < d.off[size_t(g) + 1]; ++r) {
        for (int64_t i = 0; i < D; ++i) {
          const float xv = d.x[size_t(d.row_token[size_t(r)] * D + i)];
          for (int64_t j = 0; j < H; ++j) {
            e0.add(size_t((g * D + i) * H + j), xv, db[0][size_t(r * H + j)]);
            e1.add(size_t((g * D + i) * H + j), xv, db[1][size_t(r * H + j)]);
          }
        }
        for (int64_t j = 0; j < H; ++j) {
          c0.add(size_t(g * H + j), db[0][size_t(r * H + j)], 1.0);
          c1.add(size_t(g * H + j), db[1][size_t(r * H + j)], 1.0);
        }
      }
    }
    e1.depth = c0.depth = c1.depth = e0.depth;
    err = check_acc(ub[1], e0);
    EXPECT(err.empty(), "%sdwi0: %s", tag.c_str(), err.c_str());
    err = check_acc(ub[2], e1);
    EXPECT(err.empty(), "%sdwi1: %s", tag.c_str(), err.c_str());
    if (c.bias) {
      err = check_acc(ub[3], c0);
      EXPECT(err.empty(), "%sdb0: %s", tag.c_str(), err.c_str());
      err = check_acc(ub[4], c1);
      EXPECT(err.empty(), "%sdb1: %s", tag.c_str(), err.c_str());
    }
  }

  if (R != T * K) return;  // the combine and the one-shot calls need a full permutation

  // ---- combine ----
  const Outs y = run_threads(tag + "combine_fwd", [&](Outs& o) {
    return moe_combine_fwd_f32(dn[0].data(), R, D, d.inv.data(), d.w.data(), T, K, o[0].data());
  }, {size_t(T * D)});
  {
    Acc e(size_t(T * D));
    e.depth = K;
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t k = 0; k < K; ++k) {
        for (int64_t j = 0; j < D; ++j) e.add(size_t(t * D + j), d.w[size_t(t * K + k)], dn[0][size_t(d.inv[size_t(t * K + k)] * D + j)]);
      }
    }
    const std::string err = check_acc(y[0], e);
    EXPECT(err.empty(), "%scombine: %s", tag.c_str(), err.c_str());
  }
  const auto dy = rand_vec(size_t(T * D), seed + 30);
  const Outs cb = run_threads(tag + "combine_bwd", [&](Outs& o) {
    return moe_combine_bwd_f32(dy.data(), dn[0].data(), R, D, d.inv.data(), d.w.data(), T, K, o[0].data(), o[1].data());
  }, {RD, size_t(T * K)});
  {
    bool ok = true;
    Acc e(size_t(T * K));
    e.depth = D;
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t k = 0; k < K; ++k) {
        const int64_t r = d.inv[size_t(t * K + k)];
        for (int64_t j = 0; j < D; ++j) {
          e.add(size_t(t * K + k), dn[0][size_t(r * D + j)], dy[size_t(t * D + j)]);
          ok = ok && cb[0][size_t(r * D + j)] == d.w[size_t(t * K + k)] * dy[size_t(t * D + j)];
        }
      }
    }
    EXPECT(ok, "%scombine_bwd d_rows is not w * dy", tag.c_str());
    const std::string err = check_acc(cb[1], e);
    EXPECT(err.empty(), "%scombine_bwd dw: %s", tag.c_str(), err.c_str());
  }

  // ---- one-shot forward / backward = the stages composed ----
  const Outs fw = run_threads(tag + "ffn_fwd", [&](Outs& o) {
    return m.bf16 ? moe_ffn_fwd_bf16w(d.x.data(), T, D, d.order.data(), K, d.w.data(), d.wi0b.data(), d.wi1b.data(),
                                      d.wob.data(), b0, b1, bo, d.gs.data(), E, H, c.act, c.limit, o[0].data(),
                                      o[1].data(), o[2].data(), o[3].data(), o[4].data())
                  : moe_ffn_fwd_f32(d.x.data(), T, D, d.order.data(), K, d.w.data(), d.wi0.data(), d.wi1.data(),
                                    d.wo.data(), b0, b1, bo, d.gs.data(), E, H, c.act, c.limit, o[0].data(), o[1].data(),
                                    o[2].data(), o[3].data(), o[4].data());
  }, {size_t(T * D), RH, RH, RH, RD});
  EXPECT(std::memcmp(fw[0].data(), y[0].data(), size_t(T * D) * 4) == 0, "%sffn_fwd y != stages", tag.c_str());
  EXPECT(std::memcmp(fw[1].data(), u[0].data(), RH * 4) == 0 && std::memcmp(fw[2].data(), u[1].data(), RH * 4) == 0 &&
             std::memcmp(fw[3].data(), u[2].data(), RH * 4) == 0 && std::memcmp(fw[4].data(), dn[0].data(), RD * 4) == 0,
         "%sffn_fwd residuals != stages", tag.c_str());
  {
    std::vector<float> y2(size_t(T * D));
    const moe_status_t st =
        m.bf16 ? moe_ffn_fwd_bf16w(d.x.data(), T, D, d.order.data(), K, d.w.data(), d.wi0b.data(), d.wi1b.data(),
                                   d.wob.data(), b0, b1, bo, d.gs.data(), E, H, c.act, c.limit, y2.data(), nullptr,
                                   nullptr, nullptr, nullptr)
               : moe_ffn_fwd_f32(d.x.data(), T, D, d.order.data(), K, d.w.data(), d.wi0.data(), d.wi1.data(),
                                 d.wo.data(), b0, b1, bo, d.gs.data(), E, H, c.act, c.limit, y2.data(), nullptr, nullptr,
                                 nullptr, nullptr);
    EXPECT(st == MOE_STATUS_OK && std::memcmp(y2.data(), y[0].data(), y2.size() * 4) == 0,
           "%sinference ffn_fwd differs", tag.c_str());
  }
  const Outs bw = run_threads(tag + "ffn_bwd", [&](Outs& o) {
    float* db0p = c.bias ? o[5].data() : nullptr;
    float* db1p = c.bias ? o[6].data() : nullptr;
    float* dbop = c.bias ? o[7].data() : nullptr;
    return m.bf16 ? moe_ffn_bwd_bf16w(dy.data(), d.x.data(), T, D, d.order.data(), K, d.w.data(), d.wi0b.data(),
                                      d.wi1b.data(), d.wob.data(), d.gs.data(), E, H, c.act, c.limit, fw[1].data(),
                                      fw[2].data(), fw[3].data(), fw[4].data(), o[0].data(), o[1].data(), o[2].data(),
                                      o[3].data(), o[4].data(), db0p, db1p, dbop)
                  : moe_ffn_bwd_f32(dy.data(), d.x.data(), T, D, d.order.data(), K, d.w.data(), d.wi0.data(),
                                    d.wi1.data(), d.wo.data(), d.gs.data(), E, H, c.act, c.limit, fw[1].data(),
                                    fw[2].data(), fw[3].data(), fw[4].data(), o[0].data(), o[1].data(), o[2].data(),
                                    o[3].data(), o[4].data(), db0p, db1p, dbop);
  }, {size_t(T * D), size_t(T * K), size_t(E * D * H), size_t(E * D * H), size_t(E * H * D), c.bias ? size_t(E * H) : 0,
      c.bias ? size_t(E * H) : 0, c.bias ? size_t(E * D) : 0});
  {
    // NULL outputs skip their work and leave the others unchanged.
    std::vector<float> dx2(size_t(T * D)), dwi1(size_t(E * D * H));
    const moe_status_t st =
        m.bf16 ? moe_ffn_bwd_bf16w(dy.data(), d.x.data(), T, D, d.order.data(), K, d.w.data(), d.wi0b.data(),
                                   d.wi1b.data(), d.wob.data(), d.gs.data(), E, H, c.act, c.limit, fw[1].data(),
                                   fw[2].data(), fw[3].data(), fw[4].data(), dx2.data(), nullptr, nullptr, dwi1.data(),
                                   nullptr, nullptr, nullptr, nullptr)
               : moe_ffn_bwd_f32(dy.data(), d.x.data(), T, D, d.order.data(), K, d.w.data(), d.wi0.data(),
                                 d.wi1.data(), d.wo.data(), d.gs.data(), E, H, c.act, c.limit, fw[1].data(), fw[2].data(),
                                 fw[3].data(), fw[4].data(), dx2.data(), nullptr, nullptr, dwi1.data(), nullptr, nullptr,
                                 nullptr, nullptr);
    EXPECT(st == MOE_STATUS_OK, "%sffn_bwd with NULL gradients: %s", tag.c_str(), moe_last_error());
    EXPECT(std::memcmp(dx2.data(), bw[0].data(), dx2.size() * 4) == 0 &&
               (dwi1.empty() || std::memcmp(dwi1.data(), bw[3].data(), dwi1.size() * 4) == 0),
           "%sffn_bwd with NULL gradients differs", tag.c_str());
  }
  {
    // Compose the stages by hand.
    std::vector<float> drows(RD), dw(size_t(T * K)), dh0(RH), dh1(RH), dwo(size_t(E * H * D)), dbo(size_t(E * D));
    std::vector<float> dxr(RD), dwi0(size_t(E * D * H)), dwi1(size_t(E * D * H)), db0(size_t(E * H)), db1(size_t(E * H));
    std::vector<float> dx(size_t(T * D));
    bool ok = moe_combine_bwd_f32(dy.data(), dn[0].data(), R, D, d.inv.data(), d.w.data(), T, K, drows.data(), dw.data()) == MOE_STATUS_OK;
    ok = ok && (m.bf16 ? moe_ffn_down_bwd_bf16w(drows.data(), u[0].data(), u[1].data(), u[2].data(), R, H, d.wob.data(),
                                                d.gs.data(), E, D, c.act, c.limit, dh0.data(), dh1.data(), dwo.data(), dbo.data())
                       : moe_ffn_down_bwd_f32(drows.data(), u[0].data(), u[1].data(), u[2].data(), R, H, d.wo.data(),
                                              d.gs.data(), E, D, c.act, c.limit, dh0.data(), dh1.data(), dwo.data(),
                                              dbo.data())) == MOE_STATUS_OK;
    ok = ok && (m.bf16 ? moe_ffn_up_bwd_bf16w(dh0.data(), dh1.data(), R, H, d.x.data(), T, D, d.row_token.data(),
                                              d.wi0b.data(), d.wi1b.data(), d.gs.data(), E, dxr.data(), dwi0.data(),
                                              dwi1.data(), db0.data(), db1.data())
                       : moe_ffn_up_bwd_f32(dh0.data(), dh1.data(), R, H, d.x.data(), T, D, d.row_token.data(),
                                            d.wi0.data(), d.wi1.data(), d.gs.data(), E, dxr.data(), dwi0.data(),
                                            dwi1.data(), db0.data(), db1.data())) == MOE_STATUS_OK;
    ok = ok && moe_combine_fwd_f32(dxr.data(), R, D, d.inv.data(), nullptr, T, K, dx.data()) == MOE_STATUS_OK;
    EXPECT(ok, "%sstages for the backward failed: %s", tag.c_str(), moe_last_error());
    auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
      return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
    };
    EXPECT(same(bw[0], dx), "%sffn_bwd dx != stages", tag.c_str());
    EXPECT(same(bw[1], dw), "%sffn_bwd dw != stages", tag.c_str());
    EXPECT(same(bw[2], dwi0) && same(bw[3], dwi1) && same(bw[4], dwo), "%sffn_bwd weight grads != stages", tag.c_str());
    if (c.bias) EXPECT(same(bw[5], db0) && same(bw[6], db1) && same(bw[7], dbo), "%sffn_bwd bias grads != stages", tag.c_str());
    // dx against the double scatter of dx_rows
    Acc e(size_t(T * D));
    e.depth = K;
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t k = 0; k < K; ++k) {
        for (int64_t j = 0; j < D; ++j) e.add(size_t(t * D + j), dxr[size_t(d.inv[size_t(t * K + k)] * D + j)], 1.0);
      }
    }
    const std::string err = check_acc(dx, e);
    EXPECT(err.empty(), "%sdx scatter: %s", tag.c_str(), err.c_str());
  }
}

void test_glu_conventions() {
  const float L = 0.75f;
  // ties: h0 == L, h1 == +-L; relu at 0
  const std::vector<float> h0 = {L, L, -0.3f, 2.0f, 0.0f}, h1 = {L, -L, 0.2f, 5.0f, 0.5f}, d(5, 1.0f);
  std::vector<float> g0(5), g1(5), a(5);
  EXPECT(moe_glu_bwd_f32(d.data(), h0.data(), h1.data(), 5, MOE_ACT_SIGMOID, L, g0.data(), g1.data()) == MOE_STATUS_OK, "glu_bwd");
  for (int i = 0; i < 5; ++i) {
    double w0, w1;
    glu_grad_d(MOE_ACT_SIGMOID, L, h0[size_t(i)], h1[size_t(i)], &w0, &w1);
    EXPECT(std::fabs(g0[size_t(i)] - w0) <= 1e-5 * (1 + std::fabs(w0)) && std::fabs(g1[size_t(i)] - w1) <= 1e-5 * (1 + std::fabs(w1)),
           "clamp grads at %d: got (%g, %g), want (%g, %g)", i, double(g0[size_t(i)]), double(g1[size_t(i)]), w0, w1);
  }
  EXPECT(g0[3] == 0.0f && g1[3] == 0.0f, "beyond the bounds the gradient is 0");
  const std::vector<float> z = {0.0f, -0.0f, 1e-30f};
  const std::vector<float> one(3, 1.0f);
  std::vector<float> r0(3), r1(3);
  EXPECT(moe_glu_bwd_f32(one.data(), z.data(), one.data(), 3, MOE_ACT_RELU, 0.0f, r0.data(), r1.data()) == MOE_STATUS_OK, "relu bwd");
  EXPECT(r0[0] == 0.0f && r0[1] == 0.0f && r0[2] == 1.0f, "relu'(0) = 0, relu'(tiny) = 1: %g %g %g", double(r0[0]), double(r0[1]), double(r0[2]));
  // forward of every activation against double over a range, large arguments included
  std::vector<float> xs;
  for (int i = -400; i <= 400; ++i) xs.push_back(float(i) * 0.05f);
  for (float v : {-100.0f, -88.0f, 88.0f, 100.0f, 1e-8f}) xs.push_back(v);
  std::vector<float> ones(xs.size(), 1.0f), out(xs.size()), d0(xs.size()), d1(xs.size());
  for (moe_activation_t act : {MOE_ACT_LINEAR, MOE_ACT_SILU, MOE_ACT_GELU_TANH, MOE_ACT_SIGMOID, MOE_ACT_RELU}) {
    moe_glu_fwd_f32(xs.data(), ones.data(), int64_t(xs.size()), act, 0.0f, out.data());
    moe_glu_bwd_f32(ones.data(), xs.data(), ones.data(), int64_t(xs.size()), act, 0.0f, d0.data(), d1.data());
    for (size_t i = 0; i < xs.size(); ++i) {
      double df;
      const double f = act_d(act, xs[i], &df);
      // relative error of the fp32 argument of exp (gelu: 2u ~ 0.07 z^3) is amplified by |argument|
      const double z = xs[i], arg = act == MOE_ACT_GELU_TANH ? std::fabs(1.6 * (z + 0.044715 * z * z * z)) : std::fabs(z);
      const double rel = 2e-6 + 4e-7 * arg;
      EXPECT(std::fabs(out[i] - f) <= rel * std::fabs(f) + 1e-37, "act %d f(%g) = %g, want %g", int(act), z, double(out[i]), f);
      // f' = s (1 - s) terms cancel in fp32 (1 - s for s near 1): eps-sized absolute error on the scale of the terms
      EXPECT(std::fabs(d0[i] - df) <= rel * std::fabs(df) + 3e-7 * (1 + std::fabs(z)), "act %d f'(%g) = %g, want %g", int(act), z, double(d0[i]), df);
    }
  }
  // NaN propagates through the forward
  const float nan = std::nanf("");
  float hn[2] = {nan, 1.0f}, on[2];
  EXPECT(moe_glu_fwd_f32(hn, hn + 1, 1, MOE_ACT_SILU, 0.0f, on) == MOE_STATUS_OK && std::isnan(on[0]), "NaN in, NaN out");
  EXPECT(moe_glu_fwd_f32(hn, hn + 1, 1, MOE_ACT_SILU, 1.0f, on) == MOE_STATUS_OK && std::isnan(on[0]), "NaN in, NaN out (clamp)");
}

void test_errors() {
  float x[64] = {};
  int32_t tok[4] = {0, 1, 0, 5}, gs[2] = {2, 2}, inv_bad[4] = {0, 1, 1, 2};
  EXPECT(moe_ffn_up_fwd_f32(x, 2, 2, tok, 4, x, x, nullptr, nullptr, gs, 2, 2, MOE_ACT_SILU, 0.0f, x + 32, nullptr,
                            nullptr) == MOE_STATUS_INVALID_ARGUMENT, "row_token out of range");
  EXPECT(std::strstr(moe_last_error(), "row_token[3]") != nullptr, "message names the row: %s", moe_last_error());
  tok[3] = 1;
  EXPECT(moe_ffn_up_fwd_f32(x, 2, 2, tok, 4, x, x, nullptr, nullptr, gs, 2, 2, moe_activation_t(9), 0.0f, x + 32,
                            nullptr, nullptr) == MOE_STATUS_INVALID_ARGUMENT, "unknown activation");
  EXPECT(moe_ffn_up_fwd_f32(x, 2, 2, tok, 4, x, x, nullptr, nullptr, gs, 2, 2, MOE_ACT_SILU, -1.0f, x + 32, nullptr,
                            nullptr) == MOE_STATUS_INVALID_ARGUMENT, "negative limit");
  EXPECT(moe_ffn_up_fwd_f32(x, 2, 2, tok, 4, x, x, nullptr, nullptr, gs, 2, 2, MOE_ACT_SILU, 0.0f, x + 32, nullptr,
                            nullptr) == MOE_STATUS_OK, "valid up");
  EXPECT(moe_combine_fwd_f32(x, 4, 2, inv_bad, nullptr, 2, 2, x + 32) == MOE_STATUS_INVALID_ARGUMENT, "inv not a permutation");
  EXPECT(moe_combine_fwd_f32(x, 4, 2, tok, nullptr, 3, 2, x + 32) == MOE_STATUS_INVALID_ARGUMENT, "T*K != R");
  int32_t gs_big[2] = {3, 2};
  EXPECT(moe_ffn_down_fwd_f32(x, 4, 2, x, nullptr, gs_big, 2, 2, x + 32) == MOE_STATUS_INVALID_ARGUMENT, "sum(groups) > R");
  int32_t order[4] = {0, 1, 2, 2};
  EXPECT(moe_ffn_fwd_f32(x, 2, 2, order, 2, nullptr, x, x, x, nullptr, nullptr, nullptr, gs, 2, 2, MOE_ACT_SILU, 0.0f,
                         x + 32, nullptr, nullptr, nullptr, nullptr) == MOE_STATUS_INVALID_ARGUMENT, "order not a permutation");
  EXPECT(moe_set_bf16_path(moe_bf16_path_t(7)) == MOE_STATUS_UNSUPPORTED, "unknown bf16 path");
}

void test_workspace_and_probes() {
  EXPECT(moe_workspace_bytes() > 0, "one-shot calls keep a workspace");
  moe_workspace_release();
  EXPECT(moe_workspace_bytes() == 0, "released");
  moe_set_num_threads(1);
  const double fma1 = moe_probe_fma_peak_f32(0.05);
  moe_set_num_threads(2);
  const double fma2 = moe_probe_fma_peak_f32(0.05);
  const double bw = moe_probe_read_bandwidth(int64_t(64) << 20);
  const double bf = moe_probe_bf16_peak(0.05), amx = moe_probe_amx_peak(0.05);
  moe_set_num_threads(0);
  std::printf("probes: fma %.1f GFLOP/s (1 thread), %.1f (2 threads); dpbf16 %.1f; amx %.1f; read %.1f GB/s\n", fma1,
              fma2, bf, amx, bw);
  EXPECT(fma1 > 0 && fma2 > 0 && bw > 0, "probes measure something");
  std::vector<float> kept(size_t(1) << 20, 1.0f);
  EXPECT(moe_probe_read_bandwidth_of(kept.data(), int64_t(kept.size())) > 0, "the probe over the caller's buffer");
  EXPECT(moe_probe_read_bandwidth_of(nullptr, int64_t(1) << 20) < 0, "no buffer: failure");
  EXPECT(moe_probe_read_bandwidth_of(kept.data(), (int64_t(1) << 18) - 1) < 0, "under 1 MiB: failure");
  EXPECT((bf > 0) == (moe_cpu_has_avx512_bf16() != 0), "bf16 probe iff AVX512_BF16");
  EXPECT((amx > 0) == (moe_cpu_has_amx_bf16() != 0), "amx probe iff AMX");
}

// moe_advise_fresh_output is a hint: any range (null, tiny, unaligned, large) is accepted and no content changes.
void test_advise_fresh_output() {
  moe_advise_fresh_output(nullptr, 0);
  moe_advise_fresh_output(nullptr, int64_t(1) << 30);
  std::vector<float> small(100, 1.5f);
  moe_advise_fresh_output(small.data(), int64_t(small.size() * sizeof(float)));
  std::vector<float> big((size_t(24) << 20) / sizeof(float) + 3);
  for (size_t i = 0; i < big.size(); ++i) big[i] = float(i % 1021);
  moe_advise_fresh_output(big.data() + 1, int64_t((big.size() - 2) * sizeof(float)));  // unaligned start and end
  bool same = small[0] == 1.5f && small[99] == 1.5f;
  for (size_t i = 0; i < big.size(); ++i) same = same && big[i] == float(i % 1021);
  EXPECT(same, "advising a range leaves its contents as they were");
}

// The fp32 products of the AVX2 and AVX-512 units are the same fma chains: their pre-activations (h0, h1), down
// projections and gradients agree bit for bit (packed groups, and small groups that the AVX-512 unit streams in
// register strips over blocks of weight rows, alike).
void test_cross_isa_products() {
  if (moe_isa_best() != MOE_ISA_AVX512) return;
  const int64_t T = 37, K = 3, D = 70, H = 90, E = 8, R = T * K;
  // groups the AVX-512 unit streams (1, 3, 4, 15, 16, 22 rows: every strip width, one to three row chunks, both block
  // lengths), one empty, one it packs (50 rows)
  const std::vector<int32_t> gs = {1, 0, 50, 3, 22, 4, 15, 16};
  std::vector<int32_t> row_token(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) row_token[size_t(r)] = int32_t((r * 7) % T);
  const auto x = rand_vec(size_t(T * D), 91), wi0 = rand_vec(size_t(E * D * H), 92), wi1 = rand_vec(size_t(E * D * H), 93);
  const auto wo = rand_vec(size_t(E * H * D), 94), dh0 = rand_vec(size_t(R * H), 95), dh1 = rand_vec(size_t(R * H), 96);
  struct Out {
    std::vector<float> act, h0, h1, orow, dx, dwi0, dwi1;
  };
  auto run = [&](moe_isa_t isa) {
    EXPECT(moe_set_isa(isa) == MOE_STATUS_OK, "set isa");
    Out o{std::vector<float>(size_t(R * H)), std::vector<float>(size_t(R * H)), std::vector<float>(size_t(R * H)),
          std::vector<float>(size_t(R * D)), std::vector<float>(size_t(R * D)), std::vector<float>(wi0.size()),
          std::vector<float>(wi0.size())};
    EXPECT(moe_ffn_up_fwd_f32(x.data(), T, D, row_token.data(), R, wi0.data(), wi1.data(), nullptr, nullptr, gs.data(), E, H,
                              MOE_ACT_LINEAR, 0.0f, o.act.data(), o.h0.data(), o.h1.data()) == MOE_STATUS_OK,
           "up fwd");
    EXPECT(moe_ffn_down_fwd_f32(o.h0.data(), R, H, wo.data(), nullptr, gs.data(), E, D, o.orow.data()) == MOE_STATUS_OK,
           "down fwd");
    EXPECT(moe_ffn_up_bwd_f32(dh0.data(), dh1.data(), R, H, x.data(), T, D, row_token.data(), wi0.data(), wi1.data(),
                              gs.data(), E, o.dx.data(), o.dwi0.data(), o.dwi1.data(), nullptr, nullptr) == MOE_STATUS_OK,
           "up bwd");
    return o;
  };
  const Out a = run(MOE_ISA_AVX2), b = run(MOE_ISA_AVX512);
  moe_set_isa(moe_isa_best());
  auto same = [](const std::vector<float>& u, const std::vector<float>& v) {
    return u.size() == v.size() && std::memcmp(u.data(), v.data(), u.size() * sizeof(float)) == 0;
  };
  EXPECT(same(a.h0, b.h0) && same(a.h1, b.h1) && same(a.act, b.act), "avx2 vs avx512: up-projection products");
  EXPECT(same(a.orow, b.orow), "avx2 vs avx512: down projection");
  EXPECT(same(a.dx, b.dx) && same(a.dwi0, b.dwi0) && same(a.dwi1, b.dwi1), "avx2 vs avx512: up-projection gradients");
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "quick") == 0;
  std::printf("moe-kernels %s fused FFN: best ISA %s, avx512_bf16 %d, amx %d, bf16 path %s\n", moe_version(),
              moe_isa_name(moe_isa_best()), moe_cpu_has_avx512_bf16(), moe_cpu_has_amx_bf16(),
              moe_bf16_path_name(moe_bf16_path()));
  const moe_bf16_path_t default_path = moe_bf16_path();
  std::vector<Mode> modes;
  for (int i = 0; i <= int(moe_isa_best()); ++i) {
    const moe_isa_t isa = moe_isa_t(i);
    modes.push_back({isa, false, MOE_BF16_WIDEN});
    modes.push_back({isa, true, MOE_BF16_WIDEN});
    if (isa == MOE_ISA_AVX512) {
      if (moe_cpu_has_avx512_bf16()) modes.push_back({isa, true, MOE_BF16_DPBF16});
      if (moe_cpu_has_amx_bf16()) modes.push_back({isa, true, MOE_BF16_AMX});
    }
  }
  uint64_t seed = 1;
  for (const Mode& m : modes) {
    EXPECT(moe_set_isa(m.isa) == MOE_STATUS_OK, "set isa");
    if (m.bf16) EXPECT(moe_set_bf16_path(m.path) == MOE_STATUS_OK, "set bf16 path %s", moe_bf16_path_name(m.path));
    for (const Case& c : cases()) {
      if (quick && c.D * c.H > 20000) continue;
      test_case(c, m, seed++);
    }
  }
  moe_set_isa(moe_isa_best());
  moe_set_bf16_path(default_path);
  test_glu_conventions();
  test_cross_isa_products();
  test_errors();
  test_workspace_and_probes();
  test_advise_fresh_output();
  std::printf("%d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
