// Standalone test of the native kernels: every operation against naive loops on a table of shapes, for every
// ISA this CPU runs and 1, 2 and 3 threads. Checks
//   - |out - exact| <= 2 k u sum|a_p b_p| (a rigorous fp32 bound for any summation order), exact in double;
//   - bit-identical results for every thread count;
//   - on the FMA paths, bit-identical results to a sequential fmaf chain (the documented reduction order);
//   - argument errors.
// Build and run: native/test/run.sh
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "moe-kernels.h"
#include "check.hpp"

namespace {

using moe_test::g_checks;
using moe_test::g_failures;
using moe_test::Rng;

std::vector<float> rand_vec(size_t n, uint64_t seed) {
  Rng r{seed * 0x9E3779B97F4A7C15ull + 1};
  std::vector<float> v(n);
  for (auto& x : v) x = r.next();
  return v;
}

// One expected output element: fp32 fma chain, exact value (double) and sum |a_p b_p|.
struct Expect {
  std::vector<float> chain;
  std::vector<double> exact, mag;
  int64_t depth = 0;  // longest contraction
  explicit Expect(size_t n) : chain(n, 0.0f), exact(n, 0.0), mag(n, 0.0) {}
  void add(size_t idx, float a, float b) {
    chain[idx] = std::fma(a, b, chain[idx]);
    exact[idx] += double(a) * double(b);
    mag[idx] += std::fabs(double(a) * double(b));
  }
};

// Compares `got` with `want`; returns a description of the first mismatch or "".
std::string compare(const std::vector<float>& got, const Expect& want, bool fma_exact) {
  const double u = std::ldexp(1.0, -24);
  for (size_t i = 0; i < got.size(); ++i) {
    const double bound = 2.0 * double(want.depth) * u * want.mag[i] + 1e-30;
    const double diff = std::fabs(double(got[i]) - want.exact[i]);
    if (!(diff <= bound)) {
      return "element " + std::to_string(i) + ": got " + std::to_string(got[i]) + ", want " +
             std::to_string(want.exact[i]) + " (bound " + std::to_string(bound) + ")";
    }
    if (fma_exact && std::memcmp(&got[i], &want.chain[i], sizeof(float)) != 0) {
      return "element " + std::to_string(i) + ": got " + std::to_string(got[i]) + ", fma chain gives " +
             std::to_string(want.chain[i]);
    }
  }
  return "";
}

std::vector<int64_t> offsets(const std::vector<int32_t>& gs) {
  std::vector<int64_t> off{0};
  for (int32_t s : gs) off.push_back(off.back() + s);
  return off;
}

struct GmmCase {
  int64_t m, k, n;
  std::vector<int32_t> gs;
};

std::string describe(const GmmCase& c) {
  std::string s = "m=" + std::to_string(c.m) + " k=" + std::to_string(c.k) + " n=" + std::to_string(c.n) + " gs=[";
  for (size_t i = 0; i < c.gs.size(); ++i) s += (i ? "," : "") + std::to_string(c.gs[i]);
  return s + "]";
}

Expect naive_gmm(const GmmCase& c, const std::vector<float>& lhs, const std::vector<float>& rhs, bool trans) {
  Expect e(size_t(c.m * c.n));
  e.depth = c.k;
  const auto off = offsets(c.gs);
  for (size_t g = 0; g < c.gs.size(); ++g) {
    for (int64_t r = off[g]; r < off[g + 1]; ++r) {
      for (int64_t j = 0; j < c.n; ++j) {
        for (int64_t p = 0; p < c.k; ++p) {
          const float w = trans ? rhs[(g * c.n + j) * c.k + p] : rhs[(g * c.k + p) * c.n + j];
          e.add(size_t(r * c.n + j), lhs[size_t(r * c.k + p)], w);
        }
      }
    }
  }
  return e;
}

Expect naive_tgmm(const GmmCase& c, const std::vector<float>& lhs, const std::vector<float>& dout) {
  const int64_t G = int64_t(c.gs.size());
  Expect e(size_t(G * c.k * c.n));
  const auto off = offsets(c.gs);
  for (int64_t g = 0; g < G; ++g) {
    e.depth = std::max<int64_t>(e.depth, c.gs[size_t(g)]);
    for (int64_t i = 0; i < c.k; ++i) {
      for (int64_t j = 0; j < c.n; ++j) {
        for (int64_t r = off[size_t(g)]; r < off[size_t(g) + 1]; ++r) {
          e.add(size_t((g * c.k + i) * c.n + j), lhs[size_t(r * c.k + i)], dout[size_t(r * c.n + j)]);
        }
      }
    }
  }
  return e;
}

using Run = std::function<moe_status_t(std::vector<float>&)>;

// Runs `run` for every thread count, checks each against `want` and against the 1-thread result.
void check_threads(const std::string& what, size_t out_size, const Expect& want, bool fma_exact, const Run& run) {
  std::vector<float> first;
  for (int threads : {1, 2, 3}) {
    moe_set_num_threads(threads);
    std::vector<float> out(out_size, std::nanf(""));  // kernels must write every element
    const moe_status_t st = run(out);
    EXPECT(st == MOE_STATUS_OK, "%s threads=%d: status %s (%s)", what.c_str(), threads, moe_status_string(st),
           moe_last_error());
    if (st != MOE_STATUS_OK) return;
    const std::string err = compare(out, want, fma_exact);
    EXPECT(err.empty(), "%s threads=%d: %s", what.c_str(), threads, err.c_str());
    if (threads == 1) {
      first = out;
    } else {
      EXPECT(out.empty() || std::memcmp(first.data(), out.data(), out.size() * sizeof(float)) == 0,
             "%s: %d threads differ from 1 thread", what.c_str(), threads);
    }
  }
}

std::vector<GmmCase> gmm_cases(int mr, int nr) {
  std::vector<GmmCase> cs = {
      {0, 5, 7, {}},
      {0, 5, 7, {0, 0}},
      {1, 7, 1, {1}},
      {1, 1, 7, {1}},
      {1, 100, 100, {0, 1, 0}},
      {5, 7, 9, {2, 0, 2}},          // one row past the sum
      {9, 0, 7, {4, 5}},             // k = 0
      {7, 7, 0, {3, 4}},             // n = 0
      {7, 1, 33, {0, 0, 7}},
      {13, 100, 7, {13}},
      {40, 33, 100, {10, 0, 0, 17, 3}},  // 10 rows past the sum
      {64, 17, 31, {16, 16, 16, 16}},
      {300, 64, 48, {300}},          // more rows than one work item
      {50, 400, 70, {25, 25}},       // k past one contraction block
      {30, 769, 20, {10, 20}},       // k just past two blocks
      {20, 30, 530, {7, 13}},        // n wider than one work item
      {420, 1024, 40, {210, 0, 210}},  // lhs rows 4 KiB apart, groups past the streamed size: copied, not read in place
  };
  // One off the register tile and the panel width of the active ISA.
  for (int64_t m : {mr - 1, mr, mr + 1, 2 * mr + 1}) {
    for (int64_t n : {nr - 1, nr, nr + 1, 2 * nr - 1}) {
      if (m > 0 && n > 0) cs.push_back({m, 37, n, {int32_t(m)}});
    }
  }
  return cs;
}

void test_gmm_family(moe_isa_t isa, int mr, int nr) {
  const bool fma = isa != MOE_ISA_SCALAR;
  const std::string tag = std::string("[") + moe_isa_name(isa) + "] ";
  uint64_t seed = 1;
  for (const GmmCase& c : gmm_cases(mr, nr)) {
    const int64_t G = int64_t(c.gs.size());
    const auto lhs = rand_vec(size_t(c.m * c.k), seed++);
    const auto rhs = rand_vec(size_t(G * c.k * c.n), seed++);
    const auto dout = rand_vec(size_t(c.m * c.n), seed++);
    for (int trans = 0; trans < 2; ++trans) {
      const std::string t = trans ? " transposed" : "";
      check_threads(tag + "gmm " + describe(c) + t, size_t(c.m * c.n), naive_gmm(c, lhs, rhs, trans), fma,
                    [&](std::vector<float>& out) {
                      return moe_gmm_fwd_f32(lhs.data(), rhs.data(), c.gs.data(), c.m, c.k, c.n, G, trans, out.data());
                    });
    }
    check_threads(tag + "tgmm " + describe(c), size_t(G * c.k * c.n), naive_tgmm(c, lhs, dout), fma,
                  [&](std::vector<float>& out) {
                    return moe_gmm_bwd_rhs_f32(lhs.data(), dout.data(), c.gs.data(), c.m, c.k, c.n, G, out.data());
                  });
  }
}

void test_bmm(moe_isa_t isa) {
  const bool fma = isa != MOE_ISA_SCALAR;
  const std::string tag = std::string("[") + moe_isa_name(isa) + "] ";
  struct Case {
    int64_t b, m, k, n;
  };
  uint64_t seed = 1000;
  for (const Case& c : std::vector<Case>{{0, 3, 4, 5}, {1, 1, 1, 1}, {2, 0, 3, 4}, {3, 5, 0, 4}, {2, 7, 100, 1},
                                         {4, 13, 31, 33}, {1, 100, 7, 100}, {5, 1, 385, 17},
                                         // the thin shapes of an unpermute and its gradients, enough entries for threads
                                         {64, 8, 1, 96}, {40, 9, 300, 1}, {50, 1, 8, 70}, {3000, 8, 1, 64}}) {
    const auto a = rand_vec(size_t(c.b * c.m * c.k), seed++);
    const auto b = rand_vec(size_t(c.b * c.k * c.n), seed++);
    Expect e(size_t(c.b * c.m * c.n));
    e.depth = c.k;
    for (int64_t bb = 0; bb < c.b; ++bb) {
      for (int64_t i = 0; i < c.m; ++i) {
        for (int64_t j = 0; j < c.n; ++j) {
          for (int64_t p = 0; p < c.k; ++p) {
            e.add(size_t((bb * c.m + i) * c.n + j), a[size_t((bb * c.m + i) * c.k + p)], b[size_t((bb * c.k + p) * c.n + j)]);
          }
        }
      }
    }
    const std::string what = tag + "bmm b=" + std::to_string(c.b) + " m=" + std::to_string(c.m) + " k=" +
                             std::to_string(c.k) + " n=" + std::to_string(c.n);
    check_threads(what, e.chain.size(), e, fma, [&](std::vector<float>& out) {
      return moe_bmm_f32(a.data(), b.data(), c.b, c.m, c.k, c.n, out.data());
    });
  }
}

// A problem big enough to run on several threads (the pool is skipped below ~2 Mflop).
void test_large(moe_isa_t isa) {
  const bool fma = isa != MOE_ISA_SCALAR;
  const GmmCase c{600, 160, 200, {100, 0, 250, 1, 200}};
  const int64_t G = int64_t(c.gs.size());
  const auto lhs = rand_vec(size_t(c.m * c.k), 77);
  const auto rhs = rand_vec(size_t(G * c.k * c.n), 78);
  const auto dout = rand_vec(size_t(c.m * c.n), 79);
  const std::string tag = std::string("[") + moe_isa_name(isa) + "] large ";
  check_threads(tag + "gmm", size_t(c.m * c.n), naive_gmm(c, lhs, rhs, false), fma, [&](std::vector<float>& out) {
    return moe_gmm_fwd_f32(lhs.data(), rhs.data(), c.gs.data(), c.m, c.k, c.n, G, 0, out.data());
  });
  check_threads(tag + "tgmm", size_t(G * c.k * c.n), naive_tgmm(c, lhs, dout), fma, [&](std::vector<float>& out) {
    return moe_gmm_bwd_rhs_f32(lhs.data(), dout.data(), c.gs.data(), c.m, c.k, c.n, G, out.data());
  });
}

// int8 products: int32 operands in int8 range against an int64 loop, exactly, on 1 and 2 threads; rows past the
// groups are 0; the rhs read transposed too.
void test_int8_gmm(moe_isa_t isa) {
  Rng rng{uint64_t(17 + int(isa))};
  struct Case {
    int64_t m, k, n;
    std::vector<int32_t> gs;
  };
  for (const Case& c : {Case{9, 7, 70, {3, 0, 5}}, Case{40, 131, 129, {17, 23}}, Case{5, 1, 1, {4}}}) {
    const int64_t G = int64_t(c.gs.size());
    std::vector<int32_t> lhs(size_t(c.m * c.k)), rhs(size_t(G * c.k * c.n));
    for (auto& v : lhs) v = int32_t(rng.below(256)) - 128;
    for (auto& v : rhs) v = int32_t(rng.below(256)) - 128;
    for (int trans = 0; trans < 2; ++trans) {
      std::vector<int32_t> want(size_t(c.m * c.n), 0);
      int64_t r = 0;
      for (int64_t g = 0; g < G; ++g) {
        for (int64_t i = 0; i < c.gs[size_t(g)]; ++i, ++r) {
          for (int64_t j = 0; j < c.n; ++j) {
            int64_t s = 0;
            for (int64_t p = 0; p < c.k; ++p) {
              const int32_t b = trans ? rhs[size_t((g * c.n + j) * c.k + p)] : rhs[size_t((g * c.k + p) * c.n + j)];
              s += int64_t(lhs[size_t(r * c.k + p)]) * b;
            }
            want[size_t(r * c.n + j)] = int32_t(s);
          }
        }
      }
      for (int threads : {1, 2}) {
        moe_set_num_threads(threads);
        std::vector<int32_t> out(size_t(c.m * c.n), -1);
        EXPECT(moe_gmm_i8(lhs.data(), rhs.data(), c.gs.data(), c.m, c.k, c.n, G, trans, out.data()) == MOE_STATUS_OK,
               "moe_gmm_i8: %s", moe_last_error());
        EXPECT(out == want, "%s int8 gmm m=%lld k=%lld n=%lld trans=%d threads=%d", moe_isa_name(isa), (long long)c.m,
               (long long)c.k, (long long)c.n, trans, threads);
      }
    }
  }
  moe_set_num_threads(0);
  const int32_t in_range[3] = {-128, 0, 127}, out_of_range[3] = {-129, 0, 1};
  EXPECT(moe_i32_fits_i8(in_range, 3) == 1 && moe_i32_fits_i8(out_of_range, 3) == 0, "moe_i32_fits_i8");
}

// Abs-max quantization against a loop written from prims/quantize.ts's contract (double arithmetic, round half to
// even), every flavour and width, with and without noise; a non-finite element is reported by its index.
// P x C x Q with Q = 5 (one partial vector of the AVX-512 column loop), Q = 21 (two whole ones and a part) and Q = 1
// (runs along the reduced axis), where one slice holds ties: max 127.5 makes the divisor 1 (8 bits) or 17 (4 bits), and
// 42.5 / -59.5 land halfway.
void test_quantize_shape(int64_t P, int64_t C, int64_t Q) {
  Rng rng{29};
  const int64_t n = P * C * Q;
  std::vector<float> x(static_cast<size_t>(n)), noise(static_cast<size_t>(n));
  for (auto& v : x) v = 4 * rng.next();
  for (auto& v : noise) v = 0.49f * rng.next();
  const int64_t zp = Q > 1 ? 0 : 1, zj = Q > 1 ? 1 : 0, tp = Q > 3 ? 0 : P - 1, tj = Q > 3 ? 3 : 0;
  for (int64_t c = 0; c < C; ++c) x[size_t((zp * C + c) * Q + zj)] = 0;  // a zero slice
  for (int64_t c = 0; c < C; ++c) x[size_t((tp * C + c) * Q + tj)] = c == 0 ? 127.5f : c % 2 == 1 ? 42.5f : -59.5f;
  for (int bits : {8, 4}) {
    for (int qwix = 0; qwix < 2; ++qwix) {
      for (int noisy = 0; noisy < 2; ++noisy) {
        std::vector<int32_t> q(static_cast<size_t>(n)), want(static_cast<size_t>(n), 0);
        std::vector<float> scales(size_t(P * Q)), want_s(size_t(P * Q));
        int64_t bad = 0;
        EXPECT(moe_quantize_f32(x.data(), noisy ? noise.data() : nullptr, P, C, Q, bits, qwix, q.data(), scales.data(), &bad) ==
                   MOE_STATUS_OK,
               "moe_quantize_f32: %s", moe_last_error());
        const double Qb = std::ldexp(1.0, bits - 1) - 0.5, lo = qwix ? -(Qb + 0.5) : -(Qb - 0.5), hi = Qb - 0.5;
        for (int64_t p = 0; p < P; ++p) {
          for (int64_t j = 0; j < Q; ++j) {
            double m = 0;
            for (int64_t c = 0; c < C; ++c) m = std::max(m, std::fabs(double(x[size_t((p * C + c) * Q + j)])));
            want_s[size_t(p * Q + j)] = m == 0 ? 1.0f : float(m / Qb);
            for (int64_t c = 0; c < C && m != 0; ++c) {
              const size_t i = size_t((p * C + c) * Q + j);
              const double v = std::fabs(double(x[i])) == m ? std::copysign(Qb, double(x[i])) : double(x[i]) / (m / Qb);
              const double u = noisy ? double(noise[i]) : 0.0;
              want[i] = int32_t(qwix ? std::min(hi, std::max(lo, std::nearbyint(v + u))) : std::nearbyint(std::min(hi, std::max(lo, v)) + u));
            }
          }
        }
        EXPECT(bad == -1 && q == want && scales == want_s, "quantize Q=%lld bits=%d qwix=%d noise=%d", (long long)Q, bits,
               qwix, noisy);
      }
    }
  }
}

void test_quantize() {
  test_quantize_shape(3, 7, 5);
  test_quantize_shape(2, 5, 21);
  test_quantize_shape(4, 37, 1);
  Rng rng{29};
  const int64_t P = 3, C = 7, Q = 5, n = P * C * Q;
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = 4 * rng.next();
  x[size_t(40)] = std::nanf("");
  std::vector<int32_t> q(static_cast<size_t>(n));
  std::vector<float> scales(size_t(P * Q));
  int64_t bad = 0;
  EXPECT(moe_quantize_f32(x.data(), nullptr, P, C, Q, 8, 0, q.data(), scales.data(), &bad) == MOE_STATUS_OK && bad == 40,
         "the first non-finite element: %lld", (long long)bad);
  // runs along the reduced axis (Q = 1, 3 slices of 35): an infinity in the second slice, a NaN after it in the third
  x[size_t(40)] = std::numeric_limits<float>::infinity();
  x[size_t(90)] = std::nanf("");
  EXPECT(moe_quantize_f32(x.data(), nullptr, P, C * Q, 1, 8, 0, q.data(), scales.data(), &bad) == MOE_STATUS_OK && bad == 40,
         "the first non-finite element (Q = 1): %lld", (long long)bad);
  x[size_t(40)] = 1.0f;
  EXPECT(moe_quantize_f32(x.data(), nullptr, P, C * Q, 1, 8, 0, q.data(), scales.data(), &bad) == MOE_STATUS_OK && bad == 90,
         "the NaN (Q = 1): %lld", (long long)bad);
}

void test_errors() {
  float x[8] = {};
  float out[8];
  const int32_t neg[2] = {-1, 2};
  const int32_t big[2] = {2, 3};
  EXPECT(moe_gmm_fwd_f32(x, x, neg, 2, 1, 1, 2, 0, out) == MOE_STATUS_INVALID_ARGUMENT, "negative group size");
  EXPECT(std::strstr(moe_last_error(), "group_sizes[0]") != nullptr, "message names the group: %s", moe_last_error());
  EXPECT(moe_gmm_fwd_f32(x, x, big, 4, 1, 1, 2, 0, out) == MOE_STATUS_INVALID_ARGUMENT, "sum(groups) > m");
  EXPECT(moe_gmm_fwd_f32(x, x, big, -1, 1, 1, 2, 0, out) == MOE_STATUS_INVALID_ARGUMENT, "negative m");
  EXPECT(moe_gmm_fwd_f32(nullptr, x, big, 5, 1, 1, 2, 0, out) == MOE_STATUS_INVALID_ARGUMENT, "NULL lhs");
  EXPECT(moe_gmm_bwd_rhs_f32(x, x, neg, 2, 1, 1, 2, out) == MOE_STATUS_INVALID_ARGUMENT, "tgmm negative group");
  EXPECT(moe_bmm_f32(x, x, 1, int64_t(1) << 40, int64_t(1) << 40, 1, out) == MOE_STATUS_INVALID_ARGUMENT, "overflow");
  EXPECT(moe_gmm_fwd_f32(x, x, big, 5, 1, 1, 2, 0, out) == MOE_STATUS_OK, "valid call");
  EXPECT(std::strcmp(moe_last_error(), "") == 0, "a good call clears the error");
  EXPECT(moe_set_num_threads(-1) == MOE_STATUS_INVALID_ARGUMENT, "negative threads");
  EXPECT(moe_set_isa(moe_isa_t(int(moe_isa_best()) + 1)) == MOE_STATUS_UNSUPPORTED, "isa above best");
}

// exp and sigmoid in place (out == x) give the out-of-place bits, the lanes the 8-wide path hands to libm included
// (not finite, or beyond +-700); softmax equals its naive loop (double max and sum chains, float subtraction and
// division, the unary exp) bit for bit, for every thread count and in place.
void test_exp_softmax(moe_isa_t isa) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> x = rand_vec(61, 91);
  for (auto& v : x) v *= 30.0f;
  const float odd[] = {inf, -inf, nan, 701.0f, -750.0f, 88.0f, -104.0f};
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; ++i) x[3 + 7 * i] = odd[i];
  for (moe_unary_op_t op : {MOE_UNARY_EXP, MOE_UNARY_SIGMOID}) {
    std::vector<float> apart(x.size()), inplace = x;
    EXPECT(moe_unary_f32(op, x.data(), apart.data(), int64_t(x.size())) == MOE_STATUS_OK, "unary");
    EXPECT(moe_unary_f32(op, inplace.data(), inplace.data(), int64_t(x.size())) == MOE_STATUS_OK, "unary in place");
    EXPECT(std::memcmp(apart.data(), inplace.data(), x.size() * sizeof(float)) == 0, "%s op %d: in place differs",
           moe_isa_name(isa), int(op));
  }
  for (int64_t n : {1, 7, 8, 61}) {
    const int64_t rows = int64_t(x.size()) / n;
    std::vector<float> want(size_t(rows * n));
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x.data() + r * n;
      float* w = want.data() + r * n;
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < n; ++j) m = std::isnan(m) || std::isnan(xr[j]) ? double(nan) : (m > xr[j] ? m : xr[j]);
      for (int64_t j = 0; j < n; ++j) w[j] = xr[j] - float(m);
      moe_unary_f32(MOE_UNARY_EXP, w, w, n);
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) sum += w[j];
      for (int64_t j = 0; j < n; ++j) w[j] = w[j] / float(sum);
    }
    for (int threads : {1, 2, 3}) {
      moe_set_num_threads(threads);
      std::vector<float> got(want.size());
      EXPECT(moe_softmax_f32(x.data(), rows, n, got.data()) == MOE_STATUS_OK, "softmax");
      EXPECT(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)) == 0, "%s softmax n=%lld threads %d",
             moe_isa_name(isa), (long long)n, threads);
    }
    std::vector<float> inplace(x.begin(), x.begin() + rows * n);
    EXPECT(moe_softmax_f32(inplace.data(), rows, n, inplace.data()) == MOE_STATUS_OK, "softmax in place");
    EXPECT(std::memcmp(inplace.data(), want.data(), want.size() * sizeof(float)) == 0, "%s softmax n=%lld in place",
           moe_isa_name(isa), (long long)n);
  }
  float out[2];
  EXPECT(moe_softmax_f32(x.data(), -1, 2, out) == MOE_STATUS_INVALID_ARGUMENT, "softmax negative rows");
  EXPECT(moe_softmax_f32(nullptr, 1, 2, out) == MOE_STATUS_INVALID_ARGUMENT, "softmax NULL x");
}

}  // namespace

// Block sizes change speed only: gmm (rhs as stored and transposed) and tgmm (ragged groups, several kc blocks, items split along rows and columns)
// give the same bits under the model's blocking and under blocks from the smallest to larger than the problem; the
// kc, mc and nc that moe_set_blocking refuses are named.
void test_blocking(moe_isa_t isa) {
  int b[6];
  EXPECT(moe_get_blocking("f32", b) == MOE_STATUS_OK, "get blocking %s", moe_isa_name(isa));
  EXPECT(b[2] % 32 == 0 && b[3] % b[0] == 0 && b[4] % b[1] == 0 && b[5] == 0, "%s model blocking kc %d mc %d nc %d",
         moe_isa_name(isa), b[2], b[3], b[4]);
  const int64_t G = 3, k = 200, n = 150;
  const std::vector<int32_t> gs = {70, 0, 131};
  const int64_t m = 201;
  const std::vector<float> lhs = rand_vec(size_t(m * k), 41), rhs = rand_vec(size_t(G * k * n), 42),
                           dout = rand_vec(size_t(m * n), 43);
  auto run = [&]() {
    std::vector<float> y(size_t(m * n)), yt(size_t(m * n)), g(size_t(G * k * n));
    EXPECT(moe_gmm_fwd_f32(lhs.data(), rhs.data(), gs.data(), m, k, n, G, 0, y.data()) == MOE_STATUS_OK, "gmm");
    EXPECT(moe_gmm_fwd_f32(lhs.data(), rhs.data(), gs.data(), m, k, n, G, 1, yt.data()) == MOE_STATUS_OK, "gmm, rhs^T");
    y.insert(y.end(), yt.begin(), yt.end());
    EXPECT(moe_gmm_bwd_rhs_f32(lhs.data(), dout.data(), gs.data(), m, k, n, G, g.data()) == MOE_STATUS_OK, "tgmm");
    y.insert(y.end(), g.begin(), g.end());
    return y;
  };
  const std::vector<float> want = run();
  const int sets[3][3] = {{32, b[0], b[1]}, {96, 2 * b[0], 3 * b[1]}, {4096, 500 * b[0], 200 * b[1]}};
  for (const auto& s : sets) {
    EXPECT(moe_set_blocking("f32", s[0], s[1], s[2]) == MOE_STATUS_OK, "set blocking %d %d %d", s[0], s[1], s[2]);
    const std::vector<float> got = run();
    EXPECT(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)) == 0, "%s kc %d mc %d nc %d: same bits",
           moe_isa_name(isa), s[0], s[1], s[2]);
  }
  EXPECT(moe_set_blocking("f32", 48, 0, 0) == MOE_STATUS_INVALID_ARGUMENT &&
             std::strstr(moe_last_error(), "kc = 48") != nullptr,
         "kc 48 refused: %s", moe_last_error());
  EXPECT(moe_set_blocking("f32", 0, b[0] + 1, 0) == MOE_STATUS_INVALID_ARGUMENT, "mc off the tile refused");
  EXPECT(moe_set_blocking("f32", 0, 0, b[1] + 1) == MOE_STATUS_INVALID_ARGUMENT, "nc off the tile refused");
  EXPECT(moe_set_blocking("fp8", 0, 0, 0) == MOE_STATUS_INVALID_ARGUMENT, "unknown kind refused");
  EXPECT(moe_set_blocking("f32", 0, 0, 0) == MOE_STATUS_OK, "model blocking back");
}

int main() {
  std::printf("moe-kernels %s: best ISA %s, %d default threads\n", moe_version(), moe_isa_name(moe_isa_best()),
              moe_default_num_threads());
  // Register tile per ISA (the fp32 units isa_scalar.cpp, isa_avx2.cpp, isa_avx512.cpp), to probe sizes one off it.
  const int mr[] = {4, 6, 12}, nr[] = {16, 16, 32};
  for (int i = 0; i <= int(moe_isa_best()); ++i) {
    const moe_isa_t isa = moe_isa_t(i);
    EXPECT(moe_set_isa(isa) == MOE_STATUS_OK, "set isa %s", moe_isa_name(isa));
    test_gmm_family(isa, mr[i], nr[i]);
    test_bmm(isa);
    test_large(isa);
    test_int8_gmm(isa);
    test_blocking(isa);
    test_exp_softmax(isa);
  }
  test_quantize();
  test_errors();
  moe_set_num_threads(0);
  std::printf("%d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
