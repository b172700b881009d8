// Reductions over the middle axis of x [P, R, Q], as the reference backend's reduceAxes forms them: every output is
// one float64 chain over r ascending, rounded once to float32, so the results equal the reference's bit for bit.
// The chains are independent: work items of whole outputs on the thread pool, same bits for any thread count. The
// softmax of rows is built from the same chains (its max and its sum) and moe_unary_f32's exp.
#include <cmath>
#include <cstdint>
#include <limits>

#include "api_util.hpp"
#include "internal.hpp"
#include "moe-kernels.h"

namespace {

constexpr int64_t kWork = int64_t(1) << 16;  // input elements per work item (about)
constexpr int64_t kQBlock = 512;             // columns per work item when Q > 1

struct Sum {
  static constexpr double init = 0.0;
  static double step(double acc, double v) { return acc + v; }
};
// ref/kernels/elementwise.ts max2(acc, v): NaN wins, else acc only when greater (so max(+0, -0) = -0, as there)
struct Max {
  static constexpr double init = -std::numeric_limits<double>::infinity();
  static double step(double acc, double v) {
    if (std::isnan(acc) || std::isnan(v)) return std::numeric_limits<double>::quiet_NaN();
    return acc > v ? acc : v;
  }
};

// The chain of Op over v [n] in order, rounded once.
template <class Op>
float chain(const float* v, int64_t n) {
  double acc = Op::init;
  for (int64_t r = 0; r < n; ++r) acc = Op::step(acc, double(v[r]));
  return float(acc);
}

template <class Op>
void reduce(const float* x, int64_t P, int64_t R, int64_t Q, float* out) {
  if (Q == 1) {
    // a chain per row of R
    const int64_t rows = std::max<int64_t>(1, kWork / std::max<int64_t>(R, 1));
    auto pass = [&](int64_t s, int64_t e) {
      for (int64_t p = s; p < e; ++p) out[p] = chain<Op>(x + p * R, R);
    };
    moe::detail::parallel_chunks(P, rows, pass);
    return;
  }
  // chains side by side over a block of columns, r outermost (each chain's order unchanged)
  const int64_t blocks = (Q + kQBlock - 1) / kQBlock;
  auto pass = [&](int64_t s, int64_t e) {
    double acc[kQBlock];
    for (int64_t item = s; item < e; ++item) {
      const int64_t p = item / blocks, q0 = (item % blocks) * kQBlock, nq = std::min(kQBlock, Q - q0);
      for (int64_t q = 0; q < nq; ++q) acc[q] = Op::init;
      for (int64_t r = 0; r < R; ++r) {
        const float* row = x + (p * R + r) * Q + q0;
        for (int64_t q = 0; q < nq; ++q) acc[q] = Op::step(acc[q], double(row[q]));
      }
      for (int64_t q = 0; q < nq; ++q) out[p * Q + q0 + q] = float(acc[q]);
    }
  };
  const int64_t per = std::max<int64_t>(1, kWork / std::max<int64_t>(R * kQBlock, 1));
  moe::detail::parallel_chunks(P * blocks, per, pass);
}

}  // namespace

extern "C" moe_status_t moe_reduce_f32(moe_reduce_op_t op, const float* x, int64_t P, int64_t R, int64_t Q, float* out) {
  using namespace moe::detail;
  Checker ck{"moe_reduce_f32", {}};
  if (!(check_sizes(ck, {{"P", P}, {"R", R}, {"Q", Q}}) && ck.tensor("x", x, {P, R, Q}) && ck.tensor("out", out, {P, Q}) &&
        ck.require(op == MOE_REDUCE_SUM || op == MOE_REDUCE_MAX, "unknown op " + std::to_string(int(op))))) {
    return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
  }
  return guarded("moe_reduce_f32", [&] {
    if (P * Q == 0) return MOE_STATUS_OK;
    if (op == MOE_REDUCE_SUM) reduce<Sum>(x, P, R, Q, out);
    else reduce<Max>(x, P, R, Q, out);
    return MOE_STATUS_OK;
  });
}

extern "C" moe_status_t moe_softmax_f32(const float* x, int64_t rows, int64_t n, float* out) {
  using namespace moe::detail;
  Checker ck{"moe_softmax_f32", {}};
  if (!(check_sizes(ck, {{"rows", rows}, {"n", n}}) && ck.tensor("x", x, {rows, n}) && ck.tensor("out", out, {rows, n}))) {
    return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
  }
  return guarded("moe_softmax_f32", [&] {
    if (rows * n == 0) return MOE_STATUS_OK;
    auto pass = [&](int64_t s, int64_t e) {
      for (int64_t p = s; p < e; ++p) {
        const float* xr = x + p * n;
        float* o = out + p * n;
        const float m = chain<Max>(xr, n);
        for (int64_t r = 0; r < n; ++r) o[r] = xr[r] - m;
        exp_f32(o, o, n);
        const float sum = chain<Sum>(o, n);
        for (int64_t r = 0; r < n; ++r) o[r] = o[r] / sum;
      }
    };
    parallel_chunks(rows, std::max<int64_t>(1, kWork / n), pass);
    return MOE_STATUS_OK;
  });
}
