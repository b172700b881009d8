// Standalone test of moe_quantized_gmm (the grouped matmul over quantized weights) against naive loops in double, for
// every format, both lhs kinds, every ISA this CPU runs and 1, 2 and 3 threads. Checks
//   - int8 / int4 codes with an int lhs: bit-identical to the contract evaluated in double (exact int32 sums);
//   - float products: the documented fp32 chain exactly (fma on AVX-512, unfused on the portable path), and within
//     2 (k + blocks + 1) u sum|x c s| of the double result;
//   - bit-identical results for every thread count; rows past the groups 0; argument errors.
// Build and run: native/test/run.sh
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "moe-kernels.h"
#include "check.hpp"

namespace {

using moe_test::Rng;

struct Case {
  int64_t m, k, n;
  std::vector<int32_t> gs;
};

const char* kNames[] = {"int8", "int4", "fp8_e4m3", "mxfp4", "int8 tiles", "int4 tiles"};

float e4m3(int c) {
  const int e = (c >> 3) & 15, m = c & 7;
  const float v = e == 15 && m == 7 ? NAN : e == 0 ? std::ldexp(float(m), -9) : std::ldexp(float(8 + m), e - 10);
  return (c & 128) != 0 ? -v : v;
}

float e2m1(int c) {
  const float t[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  return c >= 8 ? -t[c - 8] : t[c];
}

// A format's weights: codes, scales (float or e8m0 bytes) and their decoded views.
struct Weights {
  moe_weight_format_t f;
  int64_t G, k, n, bk;
  std::vector<uint8_t> codes, e8m0;
  std::vector<float> scales;
  float code(int64_t g, int64_t p, int64_t j) const {
    switch (f) {
      case MOE_WF_INT8: return float(int8_t(codes[size_t((g * k + p) * n + j)]));
      case MOE_WF_INT4: {
        const int v = (codes[size_t((g * k + p) * ((n + 1) / 2) + j / 2)] >> ((j & 1) * 4)) & 15;
        return float(v >= 8 ? v - 16 : v);
      }
      case MOE_WF_FP8_E4M3: return e4m3(codes[size_t((g * n + j) * k + p)]);
      default: return e2m1((codes[size_t((g * n + j) * (k / 2) + p / 2)] >> ((p & 1) * 4)) & 15);
    }
  }
  float scale(int64_t g, int64_t b, int64_t j) const {
    if (f == MOE_WF_FP8_E4M3) return scales[size_t((g * ((n + 127) / 128) + j / 128) * ((k + 127) / 128) + b)];
    if (f == MOE_WF_MXFP4) return std::ldexp(1.0f, int(e8m0[size_t((g * n + j) * (k / 32) + b)]) - 127);
    return scales[size_t(g * n + j)];
  }
  const void* scale_ptr() const { return f == MOE_WF_MXFP4 ? static_cast<const void*>(e8m0.data()) : scales.data(); }
  // the codes as moe_quantized_gmm takes them in format `as`: these, or int8 / int4 ones laid out in tiles
  // (moe-kernels.h: 64 rows of k x 64 bytes, tile (t, q) of group g at 4096 ((g ceil(k/64) + t) ceil(n/c) + q))
  std::vector<uint8_t> stored(moe_weight_format_t as) const {
    if (as == f) return codes;
    const int64_t c = f == MOE_WF_INT8 ? 64 : 128, ld = f == MOE_WF_INT8 ? n : (n + 1) / 2;
    const int64_t kt = (k + 63) / 64, across = (n + c - 1) / c;
    std::vector<uint8_t> t(size_t(G * kt * across * 4096), 0);
    for (int64_t g = 0; g < G; ++g) {
      for (int64_t p = 0; p < k; ++p) {
        for (int64_t b = 0; b < ld; ++b) {  // byte b of the row: columns b (int8) or 2b, 2b + 1 (int4)
          const int64_t col = f == MOE_WF_INT8 ? b : 2 * b;
          const int64_t at = ((g * kt + p / 64) * across + col / c) * 4096 + (p % 64) * 64 + (col % c) / (c / 64);
          t[size_t(at)] = codes[size_t((g * k + p) * ld + b)];
        }
      }
    }
    return t;
  }
};

// The format codes of `f` are stored in: itself, or its tiled int8 / int4 form.
moe_weight_format_t base_of(moe_weight_format_t f) {
  return f == MOE_WF_INT8_TILES ? MOE_WF_INT8 : f == MOE_WF_INT4_TILES ? MOE_WF_INT4 : f;
}

Weights make_weights(moe_weight_format_t f, int64_t G, int64_t k, int64_t n, uint64_t seed) {
  Rng r{seed * 0x9E3779B97F4A7C15ull + 7};
  Weights w{f, G, k, n, f == MOE_WF_FP8_E4M3 ? 128 : f == MOE_WF_MXFP4 ? 32 : (k > 0 ? k : 1), {}, {}, {}};
  const int64_t bytes = f == MOE_WF_INT8 ? G * k * n : f == MOE_WF_INT4 ? G * k * ((n + 1) / 2) : f == MOE_WF_FP8_E4M3 ? G * n * k : G * n * k / 2;
  w.codes.resize(size_t(bytes));
  for (auto& c : w.codes) {
    c = uint8_t(r.below(256));
    if (f == MOE_WF_FP8_E4M3 && (c & 0x7f) == 0x7f) c = uint8_t(c - 1);  // no NaN codes here
  }
  if (f == MOE_WF_INT4 && n % 2 == 1) {  // the padding nibble of odd rows is 0, as quantizeWeight writes it
    for (int64_t row = 0; row < G * k; ++row) w.codes[size_t(row * ((n + 1) / 2) + n / 2)] &= 0x0f;
  }
  if (f == MOE_WF_MXFP4) {
    w.e8m0.resize(size_t(G * n * (k / 32)));
    for (auto& e : w.e8m0) e = uint8_t(118 + r.below(16));
  } else {
    const int64_t ns = f == MOE_WF_FP8_E4M3 ? G * ((n + 127) / 128) * ((k + 127) / 128) : G * n;
    w.scales.resize(size_t(ns));
    for (auto& s : w.scales) s = 0.01f + 0.02f * std::fabs(r.next());
  }
  return w;
}

// The contract in double (exact sums per block, each rounded to fp32), the documented fp32 chain, and the error bound.
struct Expect {
  std::vector<float> want, chain;
  std::vector<double> bound;
};

Expect expect(const Weights& w, const Case& c, const std::vector<float>& x, const float* sl, bool fused) {
  Expect e{std::vector<float>(size_t(c.m * c.n), 0.0f), std::vector<float>(size_t(c.m * c.n), 0.0f),
           std::vector<double>(size_t(c.m * c.n), 0.0)};
  const double u = std::ldexp(1.0, -24);
  int64_t r = 0;
  for (size_t g = 0; g < c.gs.size(); ++g) {
    for (int64_t i = 0; i < c.gs[g]; ++i, ++r) {
      const float rs = sl != nullptr ? sl[r] : 1.0f;
      for (int64_t j = 0; j < c.n; ++j) {
        double acc = 0.0, mag = 0.0;
        float chain = 0.0f;
        int64_t blocks = 0;
        for (int64_t pb = 0; pb < c.k; pb += w.bk, ++blocks) {
          double part = 0.0, pm = 0.0;
          float pc = 0.0f;
          for (int64_t p = pb; p < std::min(c.k, pb + w.bk); ++p) {
            const float a = x[size_t(r * c.k + p)], b = w.code(int64_t(g), p, j);
            part += double(a) * double(b);
            pm += std::fabs(double(a) * double(b));
            pc = fused ? std::fma(a, b, pc) : pc + a * b;
          }
          const float scl = rs * w.scale(int64_t(g), pb / w.bk, j);
          acc += double(float(part)) * double(scl);
          mag += pm * std::fabs(double(scl));
          chain = fused ? std::fma(pc, scl, chain) : pc * scl + chain;
        }
        const size_t o = size_t(r * c.n + j);
        e.want[o] = float(acc);
        e.chain[o] = chain;
        e.bound[o] = 2.0 * double(c.k + blocks + 1) * u * mag + 1e-30;
      }
    }
  }
  return e;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }

void run_case(moe_isa_t isa, moe_weight_format_t sf, const Case& c, bool int_lhs, uint64_t seed) {
  const int64_t G = int64_t(c.gs.size());
  const moe_weight_format_t f = base_of(sf);
  const Weights w = make_weights(f, G, c.k, c.n, seed);
  const std::vector<uint8_t> codes = w.stored(sf);
  Rng r{seed + 99};
  std::vector<int32_t> xi(size_t(c.m * c.k));
  std::vector<float> xf(size_t(c.m * c.k)), sl(size_t(c.m));
  for (size_t i = 0; i < xi.size(); ++i) {
    xi[i] = int32_t(r.below(256)) - 128;
    xf[i] = int_lhs ? float(xi[i]) : r.next();
  }
  for (auto& s : sl) s = 0.001f + 0.01f * std::fabs(r.next());
  const bool fused = isa == MOE_ISA_AVX512;
  const Expect e = expect(w, c, xf, int_lhs ? sl.data() : nullptr, fused);
  const bool exact = int_lhs && (f == MOE_WF_INT8 || f == MOE_WF_INT4);
  const std::string what = std::string("[") + moe_isa_name(isa) + "] " + kNames[sf] + (int_lhs ? " int lhs" : " float lhs") +
                           " m=" + std::to_string(c.m) + " k=" + std::to_string(c.k) + " n=" + std::to_string(c.n);
  std::vector<float> first;
  for (int threads : {1, 2, 3}) {
    moe_set_num_threads(threads);
    std::vector<float> out(size_t(c.m * c.n), 123.0f);
    const void* lhs = int_lhs ? static_cast<const void*>(xi.data()) : xf.data();
    const moe_status_t st = moe_quantized_gmm(sf, lhs, int_lhs ? 1 : 0, int_lhs ? sl.data() : nullptr, codes.data(),
                                              w.scale_ptr(), c.gs.data(), c.m, c.k, c.n, G, out.data());
    EXPECT(st == MOE_STATUS_OK, "%s: status %s (%s)", what.c_str(), moe_status_string(st), moe_last_error());
    if (st != MOE_STATUS_OK) return;
    int bad = 0;
    for (size_t i = 0; i < out.size() && bad < 3; ++i) {
      const bool ok = exact ? same_bits(out[i], e.want[i])
                            : same_bits(out[i], e.chain[i]) && std::fabs(double(out[i]) - double(e.want[i])) <= e.bound[i];
      if (!ok) ++bad;
      EXPECT(ok, "%s threads=%d: element %zu got %.9g, want %.9g (chain %.9g)", what.c_str(), threads, i, out[i], e.want[i],
             e.chain[i]);
    }
    if (first.empty()) {
      first = out;
    } else {
      EXPECT(std::memcmp(first.data(), out.data(), out.size() * 4) == 0, "%s: threads=%d differs from 1 thread", what.c_str(),
             threads);
    }
  }
}

void test_errors() {
  float x[64] = {}, out[64];
  int32_t xi[64] = {};
  uint8_t codes[64] = {};
  float sc[64] = {};
  const int32_t gs[1] = {2}, big[1] = {5};
  EXPECT(moe_quantized_gmm(MOE_WF_INT8, x, 0, nullptr, codes, sc, gs, 2, 2, 2, 1, out) == MOE_STATUS_OK, "valid call");
  EXPECT(moe_quantized_gmm(moe_weight_format_t(7), x, 0, nullptr, codes, sc, gs, 2, 2, 2, 1, out) ==
             MOE_STATUS_INVALID_ARGUMENT, "unknown format");
  EXPECT(moe_quantized_gmm(MOE_WF_MXFP4, x, 0, nullptr, codes, codes, gs, 2, 16, 2, 1, out) == MOE_STATUS_INVALID_ARGUMENT,
         "mxfp4 k %% 32");
  EXPECT(moe_quantized_gmm(MOE_WF_INT8, x, 0, nullptr, codes, sc, big, 2, 2, 2, 1, out) == MOE_STATUS_INVALID_ARGUMENT,
         "sum(groups) > m");
  xi[3] = 128;
  EXPECT(moe_quantized_gmm(MOE_WF_INT8, xi, 1, sc, codes, sc, gs, 2, 2, 2, 1, out) == MOE_STATUS_INVALID_ARGUMENT,
         "int lhs out of int8 range");
  EXPECT(std::strstr(moe_last_error(), "[-128, 127]") != nullptr, "message: %s", moe_last_error());
  EXPECT(moe_quantized_gmm(MOE_WF_INT8, xi, 1, nullptr, codes, sc, gs, 2, 2, 2, 1, out) == MOE_STATUS_INVALID_ARGUMENT,
         "int lhs without scales");
}

// NaN codes (fp8 S.1111.111) and NaN scales (e8m0 255) give NaN where they are used, nowhere else.
void test_nan(moe_isa_t isa) {
  const int32_t gs[1] = {1};
  float x[32], out[2];
  for (float& v : x) v = 1.0f;
  uint8_t fp8[64] = {}, fp4[32] = {}, e8m0[2] = {127, 255};
  fp8[5] = 0x7f;
  const float s8[1] = {1.0f};
  EXPECT(moe_quantized_gmm(MOE_WF_FP8_E4M3, x, 0, nullptr, fp8, s8, gs, 1, 32, 2, 1, out) == MOE_STATUS_OK, "fp8 nan");
  EXPECT(std::isnan(out[0]) && out[1] == 0.0f, "[%s] fp8 NaN code: %g %g", moe_isa_name(isa), out[0], out[1]);
  EXPECT(moe_quantized_gmm(MOE_WF_MXFP4, x, 0, nullptr, fp4, e8m0, gs, 1, 32, 2, 1, out) == MOE_STATUS_OK, "mxfp4 nan");
  EXPECT(out[0] == 0.0f && std::isnan(out[1]), "[%s] e8m0 255: %g %g", moe_isa_name(isa), out[0], out[1]);
}

// moe_ffn_fwd_quantized against its steps composed from the public calls: gather, moe_quantize_f32 per row (lhs_bits >
// 0), moe_quantized_gmm, bias adds, the linear GLU h0 * h1 (one fp32 multiply, so the composition is exact here),
// moe_quantized_gmm, bias, combine (ascending k, mul then add). Bit-identical for every format and thread count; also
// a non-finite input row named by the error.
struct FfnShape {
  int64_t T, D, H;  // K = 2; T * K coprime with 7 (the routing below)
  std::vector<int32_t> gs;
  bool error_cases;  // the non-finite cases, whose rows are picked for T = 11
};

void test_served_ffn(moe_isa_t isa, moe_weight_format_t sf, int lhs_bits, uint64_t seed, const FfnShape& sh) {
  const int64_t T = sh.T, K = 2, D = sh.D, H = sh.H, R = T * K;
  const std::vector<int32_t>& gs = sh.gs;
  const int64_t E = int64_t(gs.size());
  const moe_weight_format_t f = base_of(sf);  // the composition's GMMs read the rows layout
  const Weights w0 = make_weights(f, E, D, H, seed), w1 = make_weights(f, E, D, H, seed + 1),
                wo = make_weights(f, E, H, D, seed + 2);
  const std::vector<uint8_t> c0 = w0.stored(sf), c1 = w1.stored(sf), co = wo.stored(sf);
  Rng r{seed + 5};
  std::vector<float> x(static_cast<size_t>(T * D)), cw(static_cast<size_t>(R)), b0(static_cast<size_t>(E * H)), b1(static_cast<size_t>(E * H)), bo(static_cast<size_t>(E * D));
  for (auto* v : {&x, &cw, &b0, &b1, &bo}) {
    for (float& e : *v) e = r.next();
  }
  // token 0: quotients x / (max|x| / Qb) exactly halfway between integers (max|x| = 17.25: 5.75 gives 42.5 for 8 bits,
  // Qb = 127.5, and 2.5 for 4 bits, Qb = 7.5), where x times the divisor's reciprocal lands past the tie (42.50000000000001,
  // 2.5000000000000004) and would round the other way
  for (int64_t p = 0; p < D; ++p) x[size_t(p)] = p == 0 ? 17.25f : p % 3 == 1 ? 5.75f : p % 3 == 2 ? -5.75f : x[size_t(p)];
  std::vector<int32_t> order(static_cast<size_t>(R));
  for (int64_t i = 0; i < R; ++i) order[size_t(i)] = int32_t((i * 7) % R);  // 7 and R coprime: a permutation
  // the composition
  auto gmm = [&](const std::vector<float>& rows, const Weights& wt, int64_t k, int64_t n) {
    std::vector<float> out(static_cast<size_t>(R * n));
    std::vector<int32_t> q(static_cast<size_t>(R * k));
    std::vector<float> qs(static_cast<size_t>(R));
    int64_t bad = -1;
    if (lhs_bits != 0) {
      EXPECT(moe_quantize_f32(rows.data(), nullptr, R, k, 1, lhs_bits, 0, q.data(), qs.data(), &bad) == MOE_STATUS_OK && bad < 0, "quantize");
    }
    const void* lhs = lhs_bits != 0 ? static_cast<const void*>(q.data()) : rows.data();
    EXPECT(moe_quantized_gmm(f, lhs, lhs_bits != 0, lhs_bits != 0 ? qs.data() : nullptr, wt.codes.data(), wt.scale_ptr(),
                             gs.data(), R, k, n, E, out.data()) == MOE_STATUS_OK, "gmm %s", moe_last_error());
    return out;
  };
  std::vector<float> xr(static_cast<size_t>(R * D)), act(static_cast<size_t>(R * H));
  std::vector<int64_t> expert(static_cast<size_t>(R));
  for (int64_t e = 0, r0 = 0; e < E; r0 += gs[size_t(e)], ++e) {
    for (int64_t i = r0; i < r0 + gs[size_t(e)]; ++i) expert[size_t(i)] = e;
  }
  for (int64_t i = 0; i < R; ++i) std::memcpy(&xr[size_t(i * D)], &x[size_t(order[size_t(i)] / K * D)], size_t(D) * 4);
  const std::vector<float> h0 = gmm(xr, w0, D, H), h1 = gmm(xr, w1, D, H);
  for (int64_t i = 0; i < R * H; ++i) {
    const int64_t e = expert[size_t(i / H)], j = i % H;
    act[size_t(i)] = (h0[size_t(i)] + b0[size_t(e * H + j)]) * (h1[size_t(i)] + b1[size_t(e * H + j)]);
  }
  std::vector<float> o = gmm(act, wo, H, D), want(size_t(T * D), 0.0f);
  std::vector<int64_t> row_of(static_cast<size_t>(R));
  for (int64_t i = 0; i < R; ++i) row_of[size_t(order[size_t(i)])] = i;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t q = 0; q < D; ++q) {
      float acc = 0.0f;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t i = row_of[size_t(t * K + k)];
        const float v = o[size_t(i * D + q)] + bo[size_t(expert[size_t(i)] * D + q)];
        const float prod = cw[size_t(t * K + k)] * v;
        acc = acc + prod;
      }
      want[size_t(t * D + q)] = acc;
    }
  }
  const std::string what = std::string("[") + moe_isa_name(isa) + "] served ffn " + kNames[sf] + " lhs_bits " + std::to_string(lhs_bits);
  for (int threads : {1, 2, 3}) {
    moe_set_num_threads(threads);
    std::vector<float> y(size_t(T * D), 123.0f);
    const moe_status_t st = moe_ffn_fwd_quantized(sf, lhs_bits, 0, x.data(), T, D, order.data(), K, cw.data(), c0.data(),
                                                  w0.scale_ptr(), c1.data(), w1.scale_ptr(), co.data(),
                                                  wo.scale_ptr(), b0.data(), b1.data(), bo.data(), gs.data(), E, H,
                                                  MOE_ACT_LINEAR, 0.0f, y.data());
    EXPECT(st == MOE_STATUS_OK, "%s: %s", what.c_str(), moe_last_error());
    int bad = 0;
    for (size_t i = 0; i < y.size(); ++i) bad += std::memcmp(&y[i], &want[i], 4) != 0;
    EXPECT(bad == 0, "%s threads %d: %d of %zu outputs differ from the composition", what.c_str(), threads, bad, y.size());
  }
  if (lhs_bits != 0 && sh.error_cases) {
    std::vector<float> y(static_cast<size_t>(T * D));
    x[size_t(3 * D + 17)] = NAN;  // token 3: routed choices 6 and 7, sorted rows 4 and 1 (7 * 4 = 28 = 6 mod 22)
    const moe_status_t st = moe_ffn_fwd_quantized(sf, lhs_bits, 0, x.data(), T, D, order.data(), K, cw.data(), c0.data(),
                                                  w0.scale_ptr(), c1.data(), w1.scale_ptr(), co.data(),
                                                  wo.scale_ptr(), nullptr, nullptr, nullptr, gs.data(), E, H,
                                                  MOE_ACT_LINEAR, 0.0f, y.data());
    EXPECT(st == MOE_STATUS_INVALID_ARGUMENT && std::strstr(moe_last_error(), "element 17 of routed row 1 ") != nullptr,
           "%s: NaN input: %s", what.c_str(), moe_last_error());
    // an activation that overflows (expert 0's biases at column 5): the row of the down projection's input is named
    x[size_t(3 * D + 17)] = 0.5f;
    std::vector<float> big0 = b0, big1 = b1;
    big0[5] = 3e38f;
    big1[5] = 3e38f;
    const moe_status_t st2 = moe_ffn_fwd_quantized(sf, lhs_bits, 0, x.data(), T, D, order.data(), K, cw.data(), c0.data(),
                                                   w0.scale_ptr(), c1.data(), w1.scale_ptr(), co.data(),
                                                   wo.scale_ptr(), big0.data(), big1.data(), bo.data(), gs.data(), E, H,
                                                   MOE_ACT_LINEAR, 0.0f, y.data());
    EXPECT(st2 == MOE_STATUS_INVALID_ARGUMENT && std::strstr(moe_last_error(), "element 5 of routed row 0 ") != nullptr,
           "%s: overflowing activation: %s", what.c_str(), moe_last_error());
  }
}

// A bfloat16 layer's int8 / int4 weight-only FFN (sf: stored format; T * K = sum(gs)), on AVX512_BF16 by vdpbf16ps,
// pairs of rows of k: groups of 1-6 rows stream int4 codes (qg_stream_dpbf16), larger groups take the pair tile
// (qg_tile_dpbf16). The same bits on 1, 2 and 3 threads, and within a few flipped bf16 roundings of the portable ISA's
// fp32 chains (the layer rounds each product to bf16; the sums differ in order).
void test_bf16_layer(moe_weight_format_t sf, int64_t T, int64_t K, const std::vector<int32_t>& gs) {
  const int64_t D = 255, H = 448, R = T * K;  // k odd; 3.5 pairs of panels; a last partial panel (wo)
  const moe_weight_format_t cf = sf == MOE_WF_INT8_TILES ? MOE_WF_INT8 : sf == MOE_WF_INT4_TILES ? MOE_WF_INT4 : sf;
  const int64_t E = int64_t(gs.size());
  const Weights w0 = make_weights(cf, E, D, H, 91), w1 = make_weights(cf, E, D, H, 92), wo = make_weights(cf, E, H, D, 93);
  const std::vector<uint8_t> c0 = w0.stored(sf), c1 = w1.stored(sf), co = wo.stored(sf);
  Rng r{94};
  std::vector<float> x(static_cast<size_t>(T * D)), cw(static_cast<size_t>(R));
  for (float& v : x) v = 2.0f * r.next();
  for (float& v : cw) v = r.next();
  std::vector<int32_t> order(static_cast<size_t>(R));
  for (int64_t i = 0; i < R; ++i) order[size_t(i)] = int32_t((i * 7) % R);  // a permutation (7, R coprime)
  auto run = [&](moe_isa_t isa, int threads) {
    EXPECT(moe_set_isa(isa) == MOE_STATUS_OK, "set isa %s", moe_isa_name(isa));
    moe_set_num_threads(threads);
    std::vector<float> y(size_t(T * D), 123.0f);
    const moe_status_t st = moe_ffn_fwd_quantized(sf, 0, 1, x.data(), T, D, order.data(), K, cw.data(), c0.data(),
                                                  w0.scale_ptr(), c1.data(), w1.scale_ptr(), co.data(), wo.scale_ptr(),
                                                  nullptr, nullptr, nullptr, gs.data(), E, H, MOE_ACT_SILU, 0.0f, y.data());
    EXPECT(st == MOE_STATUS_OK, "bf16 layer %s: %s", kNames[sf], moe_last_error());
    return y;
  };
  const moe_isa_t best = moe_isa_best();
  const std::vector<float> one = run(best, 1), port = run(MOE_ISA_SCALAR, 1);
  for (int threads : {2, 3}) {
    const std::vector<float> y = run(best, threads);
    EXPECT(std::memcmp(y.data(), one.data(), y.size() * 4) == 0, "bf16 layer %s [%s]: threads %d differ from 1",
           kNames[sf], moe_isa_name(best), threads);
  }
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < one.size(); ++i) {
    num += (double(one[i]) - double(port[i])) * (double(one[i]) - double(port[i]));
    den += double(port[i]) * double(port[i]);
  }
  EXPECT(den > 0.0 && std::sqrt(num / den) < 3e-4, "bf16 layer %s [%s]: %.2e relative to the portable ISA's result",
         kNames[sf], moe_isa_name(best), std::sqrt(num / den));
  moe_set_isa(best);
  moe_set_num_threads(0);
}

}  // namespace

int main() {
  std::printf("moe_quantized_gmm: best ISA %s\n", moe_isa_name(moe_isa_best()));
  const Case cases[] = {
      {9, 7, 70, {3, 0, 5}},          // a group of 0 rows, a row past the groups, k not a multiple of 4 / 16 / 128
      {20, 300, 129, {13, 6}},        // two fp8 column blocks, n odd (int4), k across chunks and blocks
      {3, 64, 1, {3}},                // one column
      {140, 96, 65, {135, 5}},        // a group over two row blocks (128 rows), tiles of 6 and 4 rows with remainders
      {64, 256, 300, {30, 0, 34}},    // several panels per group: many work items for the threads
      {5, 0, 3, {5}},                 // k = 0
      {30, 600, 201, {1, 7, 12, 4, 2, 3}},  // small groups (streaming): chunks of k, a last panel of 9 columns, 1-12 rows
      {3, 40, 4480, {2, 1}},          // a group of 2 rows over two spans of 35 panels (tiled int4: no pair across tiles)
      {1100, 36, 70, {1030, 70}},     // a group over two items of the integer tiles (1024 rows)
  };
  for (int i = 0; i <= int(moe_isa_best()); ++i) {
    const moe_isa_t isa = moe_isa_t(i);
    EXPECT(moe_set_isa(isa) == MOE_STATUS_OK, "set isa %s", moe_isa_name(isa));
    uint64_t seed = 1;
    for (int f = 0; f < 6; ++f) {
      for (const Case& c0 : cases) {
        Case c = c0;
        if (f == MOE_WF_MXFP4) c.k = (c.k + 31) / 32 * 32;
        for (bool int_lhs : {false, true}) run_case(isa, moe_weight_format_t(f), c, int_lhs, seed++);
      }
    }
    for (int f = 0; f < 6; ++f) {
      for (int bits : {0, 8, 4}) {
        // H: two panels and 32 columns (mxfp4: k of wo); then a group over two items of the integer tiles (1024 rows)
        for (const FfnShape& sh : {FfnShape{11, 96, 160, {7, 0, 12, 3}, true}, FfnShape{601, 64, 96, {1030, 0, 172}, false}}) {
          test_served_ffn(isa, moe_weight_format_t(f), bits, seed++, sh);
        }
      }
    }
    moe_set_num_threads(0);
    test_nan(isa);
  }
  for (moe_weight_format_t sf : {MOE_WF_INT4, MOE_WF_INT4_TILES, MOE_WF_INT8, MOE_WF_INT8_TILES}) {
    test_bf16_layer(sf, 4, 2, {1, 2, 0, 5});               // decode sizes
    test_bf16_layer(sf, 40, 4, {1, 2, 0, 140, 17});        // a group over two row blocks (128 + 12), tiles of 6 and 5
  }
  test_errors();
  moe_set_num_threads(0);
  std::printf("%d checks, %d failures\n", moe_test::g_checks, moe_test::g_failures);
  return moe_test::g_failures == 0 ? 0 : 1;
}
