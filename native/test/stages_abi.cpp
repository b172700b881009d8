// The staged C ABI of stages_abi.h: argument checks, then the stage itself (kernels/ffn_stages.hpp). Built into the
// native tests and the lab by native/test/run.sh, never into the addon.
#include <cstdint>
#include <string>
#include <vector>

#include "api_util.hpp"
#include "ffn_stages.hpp"
#include "stages_abi.h"

namespace moe::detail {
namespace {

bool check_row_token(Checker& ck, const int32_t* row_token, int64_t R, int64_t T) {
  for (int64_t r = 0; r < R; ++r) {
    if (row_token[r] < 0 || row_token[r] >= T) {
      return ck.require(false, "row_token[" + std::to_string(r) + "] = " + std::to_string(row_token[r]) +
                                   " is not a token in [0, " + std::to_string(T) + ")");
    }
  }
  return ck.error.empty();
}

// inv must be a permutation of [0, n).
bool check_permutation(Checker& ck, const char* name, const int32_t* p, int64_t n) {
  if (!ck.error.empty()) return false;
  std::vector<uint8_t> seen(size_t(n), 0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = p[i];
    if (v < 0 || v >= n || seen[size_t(v)] != 0) {
      return ck.require(false, std::string(name) + " is not a permutation of [0, " + std::to_string(n) + "): " + name +
                                   "[" + std::to_string(i) + "] = " + std::to_string(v));
    }
    seen[size_t(v)] = 1;
  }
  return true;
}

moe_status_t up_fwd_api(const char* where, const float* x, int64_t T, int64_t D, const int32_t* row_token, int64_t R,
                        const void* wi0, const void* wi1, BElem be, const float* b0, const float* b1,
                        const int32_t* gs, int64_t E, int64_t H, moe_activation_t act, float limit, float* act_out,
                        float* h0, float* h1) {
  return guarded(where, [&] {
    Checker ck{where, {}};
    Dims d{T, D, R, E, H, {}};
    if (!(check_sizes(ck, {{"T", T}, {"D", D}, {"R", R}, {"E", E}, {"H", H}}) && check_index_range(ck, R) &&
          ck.tensor("x", x, {T, D}) && ck.tensor("row_token", row_token, {R}) && ck.tensor("wi0", wi0, {E, D, H}) &&
          ck.tensor("wi1", wi1, {E, D, H}) && ck.tensor("group_sizes", gs, {E}) && ck.tensor("act", act_out, {R, H}) &&
          check_activation(ck, act, limit) && group_offsets(ck, gs, E, R, d.off) && check_row_token(ck, row_token, R, T))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    up_fwd(d, x, row_token, wi0, wi1, be, b0, b1, act, limit, act_out, h0, h1);
    return MOE_STATUS_OK;
  });
}

moe_status_t down_fwd_api(const char* where, const float* act, int64_t R, int64_t H, const void* wo, BElem be,
                          const float* bo, const int32_t* gs, int64_t E, int64_t D, float* o_rows) {
  return guarded(where, [&] {
    Checker ck{where, {}};
    Dims d{0, D, R, E, H, {}};
    if (!(check_sizes(ck, {{"R", R}, {"H", H}, {"E", E}, {"D", D}}) && ck.tensor("act", act, {R, H}) &&
          ck.tensor("wo", wo, {E, H, D}) && ck.tensor("group_sizes", gs, {E}) && ck.tensor("o_rows", o_rows, {R, D}) &&
          group_offsets(ck, gs, E, R, d.off))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    down_fwd(d, act, wo, be, bo, o_rows);
    return MOE_STATUS_OK;
  });
}

moe_status_t down_bwd_api(const char* where, const float* d_o, const float* act, const float* h0, const float* h1,
                          int64_t R, int64_t H, const void* wo, BElem be, const int32_t* gs, int64_t E, int64_t D,
                          moe_activation_t a, float limit, float* dh0, float* dh1, float* dwo, float* dbo) {
  return guarded(where, [&] {
    Checker ck{where, {}};
    Dims d{0, D, R, E, H, {}};
    if (!(check_sizes(ck, {{"R", R}, {"H", H}, {"E", E}, {"D", D}}) && ck.tensor("d_o_rows", d_o, {R, D}) &&
          ck.tensor("act", act, {R, H}) && ck.tensor("h0", h0, {R, H}) && ck.tensor("h1", h1, {R, H}) &&
          ck.tensor("wo", wo, {E, H, D}) && ck.tensor("group_sizes", gs, {E}) && ck.tensor("dh0", dh0, {R, H}) &&
          ck.tensor("dh1", dh1, {R, H}) && check_activation(ck, a, limit) &&
          group_offsets(ck, gs, E, R, d.off))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    down_bwd(d, d_o, D, act, h0, h1, wo, be, a, limit, dh0, dh1, dwo, dbo);
    return MOE_STATUS_OK;
  });
}

moe_status_t up_bwd_api(const char* where, const float* dh0, const float* dh1, int64_t R, int64_t H, const float* x,
                        int64_t T, int64_t D, const int32_t* row_token, const void* wi0, const void* wi1, BElem be,
                        const int32_t* gs, int64_t E, float* dx_rows, float* dwi0, float* dwi1, float* db0,
                        float* db1) {
  return guarded(where, [&] {
    Checker ck{where, {}};
    Dims d{T, D, R, E, H, {}};
    if (!(check_sizes(ck, {{"R", R}, {"H", H}, {"T", T}, {"D", D}, {"E", E}}) && check_index_range(ck, R) &&
          ck.tensor("dh0", dh0, {R, H}) && ck.tensor("dh1", dh1, {R, H}) && ck.tensor("x", x, {T, D}) &&
          ck.tensor("row_token", row_token, {R}) && ck.tensor("wi0", wi0, {E, D, H}) &&
          ck.tensor("wi1", wi1, {E, D, H}) && ck.tensor("group_sizes", gs, {E}) &&
          ck.tensor("dx_rows", dx_rows, {R, D}) && group_offsets(ck, gs, E, R, d.off) &&
          check_row_token(ck, row_token, R, T))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    up_bwd(d, dh0, dh1, x, row_token, wi0, wi1, be, dx_rows, dwi0, dwi1, db0, db1);
    return MOE_STATUS_OK;
  });
}

}  // namespace
}  // namespace moe::detail

using moe::detail::BElem;

extern "C" {

moe_status_t moe_ffn_up_fwd_f32(const float* x, int64_t T, int64_t D, const int32_t* row_token, int64_t R,
                                const float* wi0, const float* wi1, const float* b0, const float* b1,
                                const int32_t* group_sizes, int64_t E, int64_t H, moe_activation_t activation,
                                float clamp_limit, float* act, float* h0_out, float* h1_out) {
  return moe::detail::up_fwd_api("moe_ffn_up_fwd_f32", x, T, D, row_token, R, wi0, wi1, BElem::F32, b0, b1,
                                 group_sizes, E, H, activation, clamp_limit, act, h0_out, h1_out);
}

moe_status_t moe_ffn_up_fwd_bf16w(const float* x, int64_t T, int64_t D, const int32_t* row_token, int64_t R,
                                  const uint16_t* wi0, const uint16_t* wi1, const float* b0, const float* b1,
                                  const int32_t* group_sizes, int64_t E, int64_t H, moe_activation_t activation,
                                  float clamp_limit, float* act, float* h0_out, float* h1_out) {
  return moe::detail::up_fwd_api("moe_ffn_up_fwd_bf16w", x, T, D, row_token, R, wi0, wi1, BElem::BF16, b0, b1,
                                 group_sizes, E, H, activation, clamp_limit, act, h0_out, h1_out);
}

moe_status_t moe_ffn_down_fwd_f32(const float* act, int64_t R, int64_t H, const float* wo, const float* bo,
                                  const int32_t* group_sizes, int64_t E, int64_t D, float* o_rows) {
  return moe::detail::down_fwd_api("moe_ffn_down_fwd_f32", act, R, H, wo, BElem::F32, bo, group_sizes, E, D, o_rows);
}

moe_status_t moe_ffn_down_fwd_bf16w(const float* act, int64_t R, int64_t H, const uint16_t* wo, const float* bo,
                                    const int32_t* group_sizes, int64_t E, int64_t D, float* o_rows) {
  return moe::detail::down_fwd_api("moe_ffn_down_fwd_bf16w", act, R, H, wo, BElem::BF16, bo, group_sizes, E, D,
                                   o_rows);
}

moe_status_t moe_combine_fwd_f32(const float* rows, int64_t R, int64_t D, const int32_t* inv, const float* w,
                                 int64_t T, int64_t K, float* y) {
  using namespace moe::detail;
  return guarded("moe_combine_fwd_f32", [&] {
    Checker ck{"moe_combine_fwd_f32", {}};
    int64_t TK = 0;
    if (!(check_sizes(ck, {{"R", R}, {"D", D}, {"T", T}, {"K", K}}) &&
          ck.require(!__builtin_mul_overflow(T, K, &TK) && TK == R, "T * K must equal R") && check_index_range(ck, R) &&
          ck.tensor("rows", rows, {R, D}) && ck.tensor("inv", inv, {R}) && ck.tensor("y", y, {T, D}) &&
          check_permutation(ck, "inv", inv, R))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    combine_fwd(rows, D, inv, w, T, K, y);
    return MOE_STATUS_OK;
  });
}

moe_status_t moe_combine_bwd_f32(const float* dy, const float* rows, int64_t R, int64_t D, const int32_t* inv,
                                 const float* w, int64_t T, int64_t K, float* d_rows, float* dw) {
  using namespace moe::detail;
  return guarded("moe_combine_bwd_f32", [&] {
    Checker ck{"moe_combine_bwd_f32", {}};
    int64_t TK = 0;
    if (!(check_sizes(ck, {{"R", R}, {"D", D}, {"T", T}, {"K", K}}) &&
          ck.require(!__builtin_mul_overflow(T, K, &TK) && TK == R, "T * K must equal R") && check_index_range(ck, R) &&
          ck.tensor("dy", dy, {T, D}) && ck.tensor("inv", inv, {R}) && ck.tensor("d_rows", d_rows, {R, D}) &&
          (dw == nullptr || ck.tensor("rows", rows, {R, D})) && check_permutation(ck, "inv", inv, R))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    combine_bwd(dy, rows, D, inv, w, T, K, d_rows, D, dw);
    return MOE_STATUS_OK;
  });
}

moe_status_t moe_glu_fwd_f32(const float* h0, const float* h1, int64_t n, moe_activation_t activation,
                             float clamp_limit, float* act) {
  using namespace moe::detail;
  return guarded("moe_glu_fwd_f32", [&] {
    Checker ck{"moe_glu_fwd_f32", {}};
    if (!(ck.size("n", n) && ck.tensor("h0", h0, {n}) && ck.tensor("h1", h1, {n}) && ck.tensor("act", act, {n}) &&
          check_activation(ck, activation, clamp_limit))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    glu_fwd_all(h0, h1, n, activation, clamp_limit, act);
    return MOE_STATUS_OK;
  });
}

moe_status_t moe_glu_bwd_f32(const float* d_act, const float* h0, const float* h1, int64_t n,
                             moe_activation_t activation, float clamp_limit, float* dh0, float* dh1) {
  using namespace moe::detail;
  return guarded("moe_glu_bwd_f32", [&] {
    Checker ck{"moe_glu_bwd_f32", {}};
    if (!(ck.size("n", n) && ck.tensor("d_act", d_act, {n}) && ck.tensor("h0", h0, {n}) && ck.tensor("h1", h1, {n}) &&
          ck.tensor("dh0", dh0, {n}) && ck.tensor("dh1", dh1, {n}) && check_activation(ck, activation, clamp_limit))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    glu_bwd_all(d_act, h0, h1, n, activation, clamp_limit, dh0, dh1);
    return MOE_STATUS_OK;
  });
}

moe_status_t moe_ffn_down_bwd_f32(const float* d_o_rows, const float* act, const float* h0, const float* h1, int64_t R,
                                  int64_t H, const float* wo, const int32_t* group_sizes, int64_t E, int64_t D,
                                  moe_activation_t activation, float clamp_limit, float* dh0, float* dh1, float* dwo,
                                  float* dbo) {
  return moe::detail::down_bwd_api("moe_ffn_down_bwd_f32", d_o_rows, act, h0, h1, R, H, wo, BElem::F32, group_sizes,
                                   E, D, activation, clamp_limit, dh0, dh1, dwo, dbo);
}

moe_status_t moe_ffn_down_bwd_bf16w(const float* d_o_rows, const float* act, const float* h0, const float* h1,
                                    int64_t R, int64_t H, const uint16_t* wo, const int32_t* group_sizes, int64_t E,
                                    int64_t D, moe_activation_t activation, float clamp_limit, float* dh0, float* dh1,
                                    float* dwo, float* dbo) {
  return moe::detail::down_bwd_api("moe_ffn_down_bwd_bf16w", d_o_rows, act, h0, h1, R, H, wo, BElem::BF16,
                                   group_sizes, E, D, activation, clamp_limit, dh0, dh1, dwo, dbo);
}

moe_status_t moe_ffn_up_bwd_f32(const float* dh0, const float* dh1, int64_t R, int64_t H, const float* x, int64_t T,
                                int64_t D, const int32_t* row_token, const float* wi0, const float* wi1,
                                const int32_t* group_sizes, int64_t E, float* dx_rows, float* dwi0, float* dwi1,
                                float* db0, float* db1) {
  return moe::detail::up_bwd_api("moe_ffn_up_bwd_f32", dh0, dh1, R, H, x, T, D, row_token, wi0, wi1, BElem::F32,
                                 group_sizes, E, dx_rows, dwi0, dwi1, db0, db1);
}

moe_status_t moe_ffn_up_bwd_bf16w(const float* dh0, const float* dh1, int64_t R, int64_t H, const float* x, int64_t T,
                                  int64_t D, const int32_t* row_token, const uint16_t* wi0, const uint16_t* wi1,
                                  const int32_t* group_sizes, int64_t E, float* dx_rows, float* dwi0, float* dwi1,
                                  float* db0, float* db1) {
  return moe::detail::up_bwd_api("moe_ffn_up_bwd_bf16w", dh0, dh1, R, H, x, T, D, row_token, wi0, wi1, BElem::BF16,
                                 group_sizes, E, dx_rows, dwi0, dwi1, db0, db1);
}

}  // extern "C"
