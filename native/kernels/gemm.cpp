// The C ABI of the plain matmuls (gmm, tgmm, bmm): argument checks and their mapping onto engine problems (engine.hpp).
// Each output element is one chain over the contraction in ascending order, as in the fused FFN.
#include <algorithm>
#include <string>
#include <vector>

#include "api_util.hpp"
#include "engine.hpp"
#include "internal.hpp"

using moe::detail::BElem;
using moe::detail::Checker;
using moe::detail::fail;
using moe::detail::GemmProblem;
using moe::detail::group_offsets;
using moe::detail::guarded;
using moe::detail::rows_problem;

namespace {
// Contractions up to this length go to the units' bmm_thin: the engine's packing would cost more than the multiply.
constexpr int64_t kThinK = 16;
}  // namespace

extern "C" {

moe_status_t moe_gmm_fwd_f32(const float* lhs, const float* rhs, const int32_t* group_sizes, int64_t m, int64_t k,
                             int64_t n, int64_t num_groups, int transpose_rhs, float* out) {
  return guarded("moe_gmm_fwd_f32", [&] {
    Checker ck{"moe_gmm_fwd_f32", {}};
    std::vector<int64_t> off;
    if (!gmm_operands(ck, lhs, rhs, group_sizes, m, k, n, num_groups, out, off)) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    GemmProblem P = rows_problem(off.data(), num_groups, k, n, lhs, rhs, BElem::F32, transpose_rhs != 0);
    P.epi.out[0] = out;
    moe::detail::run_problem(P);
    moe::detail::zero_rows(out, off.back(), m, n);
    return MOE_STATUS_OK;
  });
}

moe_status_t moe_gmm_bwd_rhs_f32(const float* lhs, const float* grad_out, const int32_t* group_sizes, int64_t m,
                                 int64_t k, int64_t n, int64_t num_groups, float* grad_rhs) {
  return guarded("moe_gmm_bwd_rhs_f32", [&] {
    Checker ck{"moe_gmm_bwd_rhs_f32", {}};
    std::vector<int64_t> off;
    if (!(ck.size("m", m) && ck.size("k", k) && ck.size("n", n) && ck.size("num_groups", num_groups) &&
          ck.tensor("lhs", lhs, {m, k}) && ck.tensor("grad_out", grad_out, {m, n}) &&
          ck.tensor("group_sizes", group_sizes, {num_groups}) && ck.tensor("grad_rhs", grad_rhs, {num_groups, k, n}) &&
          group_offsets(ck, group_sizes, num_groups, m, off))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    // grad_rhs[g] (k x n) = lhs_g^T @ grad_out_g: A(i, p) = lhs[off[g] + p, i], B(p, j) = grad_out[off[g] + p, j]
    GemmProblem P;
    P.tgmm = true;
    P.off = off.data();
    P.groups = num_groups;
    P.m = k;
    P.n = n;
    P.a[0] = lhs;
    P.lda = k;
    P.b[0][0] = grad_out;
    P.ldb = n;
    P.epi.kind = moe::detail::EpiKind::Store;
    P.epi.out[0] = grad_rhs;
    P.epi.ldo = n;
    moe::detail::run_problem(P);
    return MOE_STATUS_OK;
  });
}

moe_status_t moe_bmm_f32(const float* a, const float* b, int64_t batch, int64_t m, int64_t k, int64_t n, float* out) {
  return guarded("moe_bmm_f32", [&] {
    Checker ck{"moe_bmm_f32", {}};
    if (!(ck.size("batch", batch) && ck.size("m", m) && ck.size("k", k) && ck.size("n", n) &&
          ck.tensor("a", a, {batch, m, k}) && ck.tensor("b", b, {batch, k, n}) && ck.tensor("out", out, {batch, m, n}))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    if (n == 1 && m > 1) {
      // out_e^T [1 x m] = b_e^T [1 x k] @ a_e^T: one row per batch entry against a_e read transposed, which the
      // engine streams once (its small-group path) instead of packing a panel for one column
      std::vector<int64_t> off(size_t(batch) + 1);
      for (int64_t i = 0; i <= batch; ++i) off[size_t(i)] = i;
      GemmProblem P = rows_problem(off.data(), batch, k, m, b, a, BElem::F32, true);
      P.epi.out[0] = out;
      moe::detail::run_problem(P);
      return MOE_STATUS_OK;
    }
    if (k <= kThinK) {
      // per batch entry, in fixed chunks of entries (each output belongs to one)
      const moe::detail::IsaUnit& isa = moe::detail::active_isa_unit();
      const int64_t per_entry = std::max<int64_t>(1, m * k * n);
      auto f = [&](int64_t b0, int64_t b1) {
        for (int64_t e = b0; e < b1; ++e) isa.bmm_thin(a + e * m * k, b + e * k * n, m, k, n, out + e * m * n);
      };
      moe::detail::parallel_chunks(batch, std::max<int64_t>(1, (int64_t(1) << 16) / per_entry), f);
      return MOE_STATUS_OK;
    }
    std::vector<int64_t> off(size_t(batch) + 1);  // each batch entry is a group of m rows
    for (int64_t i = 0; i <= batch; ++i) off[size_t(i)] = i * m;
    GemmProblem P = rows_problem(off.data(), batch, k, n, a, b, BElem::F32, false);
    P.epi.out[0] = out;
    moe::detail::run_problem(P);
    return MOE_STATUS_OK;
  });
}

}  // extern "C"
