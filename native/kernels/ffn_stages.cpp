// The stages of the fused FFN as engine problems (engine.hpp): the up projection with the gather and the GLU in its
// epilogue, the down projection, and their backward passes with the weight gradients as tgmm problems.
#include <algorithm>
#include <cstring>

#include "api_util.hpp"
#include "ffn_stages.hpp"
#include "workspace.hpp"

namespace moe::detail {
namespace {

// Rows mode over the routed rows with the multiply kind of the weights' element type (see rows_problem).
GemmProblem rows_problem(const Dims& d, int64_t n, int64_t k, const float* a, const void* w, BElem be, bool btrans) {
  GemmProblem P = rows_problem(d.off.data(), d.E, k, n, a, w, be, btrans);
  P.mul = mul_for(be);
  return P;
}

// tgmm mode: out_g (m x n, Store) = A_g^T @ B_g over group g's rows, A(i, p) = a[arow(p) * m + i]; the B halves
// (rows of n) and outputs are the caller's.
GemmProblem tgmm_problem(const Dims& d, int64_t m, int64_t n, const float* a, const int32_t* arow) {
  GemmProblem P;
  P.tgmm = true;
  P.off = d.off.data();
  P.groups = d.E;
  P.m = m;
  P.n = n;
  P.a[0] = a;
  P.lda = m;
  P.arow = arow;
  P.ldb = n;
  P.epi.kind = EpiKind::Store;
  P.epi.ldo = n;
  return P;
}

// Both up projections over the gathered tokens (x converted to bf16 once for the bf16-pair multiply kinds: every
// token is gathered K times per column block); the epilogue is the caller's.
GemmProblem up_problem(const Dims& d, const float* x, const int32_t* row_token, const void* wi0, const void* wi1, BElem be) {
  GemmProblem P = rows_problem(d, d.H, d.D, x, wi0, be, false);
  P.halves = 2;
  P.arow = row_token;
  P.b[1][0] = wi1;
  P.stream_small = true;
#if defined(MOE_HAVE_X86_KERNELS)
  if (P.mul != Mul::F32) {
    auto* x16 = static_cast<uint16_t*>(workspace().get(4, std::max<int64_t>(1, d.T * d.D) * 2));
    const int64_t chunk = 1 << 16, n = d.T * d.D;
    auto cvt = [&](int64_t item, int) {
      const int64_t b = item * chunk;
      to_bf16_avx512bf16(x + b, std::min(chunk, n - b), x16 + b);
    };
    parallel_items((n + chunk - 1) / chunk, double(n) < kSerialElems, cvt);
    P.a16 = x16;
  }
#endif
  return P;
}

}  // namespace

void up_fwd(const Dims& d, const float* x, const int32_t* row_token, const void* wi0, const void* wi1, BElem be,
            const float* b0, const float* b1, moe_activation_t act, float limit, float* act_out, float* h0,
            float* h1, int64_t ldx) {
  GemmProblem P = up_problem(d, x, row_token, wi0, wi1, be);
  if (ldx != 0) P.lda = ldx;
  P.epi.kind = EpiKind::GluFwd;
  P.epi.out[0] = act_out;
  P.epi.bias[0] = b0;
  P.epi.bias[1] = b1;
  P.epi.h_out[0] = h0;
  P.epi.h_out[1] = h1;
  P.epi.act = act;
  P.epi.limit = limit;
  run_problem(P);
  for (float* o : {act_out, h0, h1}) zero_rows(o, d.off.back(), d.R, d.H);
}

void up_fwd_store(const Dims& d, const float* x, const int32_t* row_token, const void* wi0, const void* wi1, BElem be,
                  float* h0, float* h1) {
  GemmProblem P = up_problem(d, x, row_token, wi0, wi1, be);
  P.epi.kind = EpiKind::Store;
  P.epi.out[0] = h0;
  P.epi.out[1] = h1;
  run_problem(P);
  for (float* o : {h0, h1}) zero_rows(o, d.off.back(), d.R, d.H);
}

void down_fwd(const Dims& d, const float* act, const void* wo, BElem be, const float* bo, float* o_rows) {
  GemmProblem P = rows_problem(d, d.D, d.H, act, wo, be, false);
  P.epi.kind = EpiKind::Store;
  P.epi.out[0] = o_rows;
  P.epi.bias[0] = bo;
  P.stream_small = true;
  run_problem(P);
  zero_rows(o_rows, d.off.back(), d.R, d.D);
}

void down_bwd(const Dims& d, const float* d_o, int64_t ldo, const float* act, const float* h0, const float* h1,
              const void* wo, BElem be, moe_activation_t a, float limit, float* dh0, float* dh1, float* dwo, float* dbo) {
  {  // d_act = d_o @ wo^T, GLU backward in the epilogue
    GemmProblem P = rows_problem(d, d.H, d.D, d_o, wo, be, true);  // B(p, j) = wo[g][j * D + p]
    P.lda = ldo;
    P.epi.kind = EpiKind::GluBwd;
    P.epi.out[0] = dh0;
    P.epi.out[1] = dh1;
    P.epi.h_in[0] = h0;
    P.epi.h_in[1] = h1;
    P.epi.act = a;
    P.epi.limit = limit;
    run_problem(P);
    zero_rows(dh0, d.off.back(), d.R, d.H);
    zero_rows(dh1, d.off.back(), d.R, d.H);
  }
  if (dwo != nullptr) {  // dwo[g] = act_g^T @ d_o_g
    GemmProblem P = tgmm_problem(d, d.H, d.D, act, nullptr);
    P.b[0][0] = d_o;
    P.ldb = ldo;
    P.epi.out[0] = dwo;
    run_problem(P);
  }
  if (dbo != nullptr) group_row_sums(d_o, d.D, ldo, d.off, dbo);
}

void up_bwd(const Dims& d, const float* dh0, const float* dh1, const float* x, const int32_t* row_token,
            const void* wi0, const void* wi1, BElem be, float* dx_rows, float* dwi0, float* dwi1, float* db0,
            float* db1) {
  {  // dx_rows = dh0 @ wi0^T + dh1 @ wi1^T: one contraction over [dh0 | dh1]
    GemmProblem P = rows_problem(d, d.D, d.H, dh0, wi0, be, true);  // B(p, j) = wi[g][j * H + p]
    P.k[1] = d.H;
    P.a[1] = dh1;
    P.b[0][1] = wi1;
    P.epi.kind = EpiKind::Store;
    P.epi.out[0] = dx_rows;
    run_problem(P);
    zero_rows(dx_rows, d.off.back(), d.R, d.D);
  }
  if (dwi0 != nullptr || dwi1 != nullptr) {  // dwi{0,1}[g] = x_rows_g^T @ dh{0,1}_g, x rows gathered while packing
    GemmProblem P = tgmm_problem(d, d.D, d.H, x, row_token);
    int h = 0;  // both: one pass, two halves sharing the packed x
    if (dwi0 != nullptr) {
      P.b[h][0] = dh0;
      P.epi.out[h++] = dwi0;
    }
    if (dwi1 != nullptr) {
      P.b[h][0] = dh1;
      P.epi.out[h++] = dwi1;
    }
    P.halves = h;
    run_problem(P);
  }
  if (db0 != nullptr) group_row_sums(dh0, d.H, d.H, d.off, db0);
  if (db1 != nullptr) group_row_sums(dh1, d.H, d.H, d.off, db1);
}

}  // namespace moe::detail
