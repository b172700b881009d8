// The C ABI of moe-kernels.h: argument checks, error reporting, and the mapping of each operation onto
// grouped GEMM descriptors.
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <system_error>
#include <vector>

#include "api_util.hpp"
#include "internal.hpp"

using moe::detail::GemmGroup;
using moe::detail::Checker;
using moe::detail::fail;
using moe::detail::group_offsets;
using moe::detail::guarded;
using moe::detail::zero_rows;

std::mutex& moe::detail::call_mutex() {
  static std::mutex mu;
  return mu;
}

std::string& moe::detail::last_error() {
  thread_local std::string msg;
  return msg;
}

extern "C" {

const char* moe_version(void) { return "0.1.0"; }

const char* moe_status_string(moe_status_t status) {
  switch (status) {
    case MOE_STATUS_OK: return "ok";
    case MOE_STATUS_INVALID_ARGUMENT: return "invalid argument";
    case MOE_STATUS_OUT_OF_MEMORY: return "out of memory";
    case MOE_STATUS_UNSUPPORTED: return "unsupported";
    case MOE_STATUS_INTERNAL: return "internal error";
  }
  return "unknown status";
}

const char* moe_last_error(void) { return moe::detail::last_error().c_str(); }

const char* moe_isa_name(moe_isa_t isa) {
  switch (isa) {
    case MOE_ISA_SCALAR: return "scalar";
    case MOE_ISA_AVX2: return "avx2";
    case MOE_ISA_AVX512: return "avx512";
  }
  return "unknown";
}

moe_isa_t moe_isa_best(void) { return moe::detail::isa_best(); }
moe_isa_t moe_isa_active(void) { return moe::detail::isa_active(); }

moe_status_t moe_set_isa(moe_isa_t isa) {
  return guarded("moe_set_isa", [&] {
    if (isa < MOE_ISA_SCALAR || isa > moe::detail::isa_best()) {
      return fail(MOE_STATUS_UNSUPPORTED, std::string("moe_set_isa: ") + moe_isa_name(isa) +
                                              " is not available (best: " + moe_isa_name(moe::detail::isa_best()) +
                                              ")");
    }
    moe::detail::isa_set(isa);
    return MOE_STATUS_OK;
  });
}

int moe_num_threads(void) {
  std::lock_guard<std::mutex> lk(moe::detail::call_mutex());
  return moe::detail::pool_threads();
}

int moe_default_num_threads(void) { return moe::detail::pool_default_threads(); }

moe_status_t moe_set_num_threads(int n) {
  return guarded("moe_set_num_threads", [&] {
    if (n < 0 || n > 1024) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_set_num_threads: n = " + std::to_string(n) + " not in [0, 1024]");
    }
    moe::detail::pool_set_threads(n == 0 ? moe::detail::pool_default_threads() : n);
    return MOE_STATUS_OK;
  });
}

namespace {

// The two row-grouped products: forward out[m, n] = lhs[m, k] @ rhs[g] (k x n), and the lhs gradient
// grad_lhs[m, k] = grad_out[m, n] @ rhs[g]^T; rhs[g] is stored [k, n], or [n, k] with transpose_rhs.
moe_status_t gmm_rows(const char* where, const char* a_name, const char* out_name, bool bwd, const float* a,
                      const float* rhs, const int32_t* group_sizes, int64_t m, int64_t k, int64_t n, int64_t num_groups,
                      int transpose_rhs, float* out) {
  return guarded(where, [&] {
    Checker ck{where, {}};
    std::vector<int64_t> off;
    const int64_t kk = bwd ? n : k, nn = bwd ? k : n;  // contraction and output columns
    if (!(ck.size("m", m) && ck.size("k", k) && ck.size("n", n) && ck.size("num_groups", num_groups) &&
          ck.tensor(a_name, a, {m, kk}) && ck.tensor("rhs", rhs, {num_groups, k, n}) &&
          ck.tensor("group_sizes", group_sizes, {num_groups}) && ck.tensor(out_name, out, {m, nn}) &&
          group_offsets(ck, group_sizes, num_groups, m, off))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    // B(p, j) = rhs[g] element (p, j) (forward) or (j, p) (backward), in whichever layout rhs is stored
    const bool rows_of_b_contiguous = bwd == bool(transpose_rhs);
    std::vector<GemmGroup> groups(static_cast<size_t>(num_groups));
    for (int64_t g = 0; g < num_groups; ++g) {
      const int64_t r0 = off[size_t(g)];
      GemmGroup& d = groups[size_t(g)];
      d.a = a + r0 * kk;
      d.a_rs = kk;
      d.a_cs = 1;
      d.b = rhs + g * k * n;
      d.b_rs = rows_of_b_contiguous ? nn : 1;
      d.b_cs = rows_of_b_contiguous ? 1 : kk;
      d.c = out + r0 * nn;
      d.ldc = nn;
      d.m = off[size_t(g) + 1] - r0;
      d.k = kk;
    }
    moe::detail::grouped_gemm(groups.data(), num_groups, nn);
    zero_rows(out, off.back(), m, nn);
    return MOE_STATUS_OK;
  });
}

}  // namespace

moe_status_t moe_gmm_fwd_f32(const float* lhs, const float* rhs, const int32_t* group_sizes, int64_t m, int64_t k,
                             int64_t n, int64_t num_groups, int transpose_rhs, float* out) {
  return gmm_rows("moe_gmm_fwd_f32", "lhs", "out", false, lhs, rhs, group_sizes, m, k, n, num_groups, transpose_rhs,
                  out);
}

moe_status_t moe_gmm_bwd_lhs_f32(const float* grad_out, const float* rhs, const int32_t* group_sizes, int64_t m,
                                 int64_t k, int64_t n, int64_t num_groups, int transpose_rhs, float* grad_lhs) {
  return gmm_rows("moe_gmm_bwd_lhs_f32", "grad_out", "grad_lhs", true, grad_out, rhs, group_sizes, m, k, n, num_groups,
                  transpose_rhs, grad_lhs);
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
    std::vector<GemmGroup> groups(static_cast<size_t>(num_groups));
    for (int64_t g = 0; g < num_groups; ++g) {
      const int64_t r0 = off[size_t(g)];
      GemmGroup& d = groups[size_t(g)];
      d.a = lhs + r0 * k;  // A(i, p) = lhs[r0 + p, i]
      d.a_rs = 1;
      d.a_cs = k;
      d.b = grad_out + r0 * n;
      d.b_rs = n;
      d.b_cs = 1;
      d.c = grad_rhs + g * k * n;
      d.ldc = n;
      d.m = k;
      d.k = off[size_t(g) + 1] - r0;
    }
    moe::detail::grouped_gemm(groups.data(), num_groups, n);
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
    std::vector<GemmGroup> groups(static_cast<size_t>(batch));
    for (int64_t i = 0; i < batch; ++i) {
      groups[size_t(i)] = GemmGroup{a + i * m * k, k, 1, b + i * k * n, n, 1, out + i * m * n, n, m, k};
    }
    moe::detail::grouped_gemm(groups.data(), batch, n);
    return MOE_STATUS_OK;
  });
}

}  // extern "C"
