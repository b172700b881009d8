// The C ABI of the fused FFN (moe_ffn_fwd / moe_ffn_bwd, fp32 and bf16 weights, and the forward of a bf16 layer): argument checks, the index maps and
// the order of the stages (ffn_stages.hpp), with the intermediates in the workspace.
#include <cstdint>
#include <string>

#include "api_util.hpp"
#include "ffn_stages.hpp"
#include "workspace.hpp"

namespace moe::detail {
namespace {

// Common checks of the one-shot calls; fills d and the index maps (workspace slot 3: row_token then inv).
bool oneshot_setup(Checker& ck, Dims& d, const float* x, int64_t T, int64_t D, const int32_t* order, int64_t K,
                   const void* wi0, const void* wi1, const void* wo, const int32_t* gs, int64_t E, int64_t H,
                   moe_activation_t act, float limit, int32_t*& row_token, int32_t*& inv) {
  if (!(check_sizes(ck, {{"T", T}, {"D", D}, {"K", K}, {"E", E}, {"H", H}}))) return false;
  int64_t R = 0;
  if (!ck.require(!__builtin_mul_overflow(T, K, &R), "T * K overflows")) return false;
  d = Dims{T, D, R, E, H, {}};
  if (!(check_index_range(ck, R) && ck.tensor("x", x, {T, D}) && ck.tensor("order", order, {R}) &&
        ck.tensor("wi0", wi0, {E, D, H}) && ck.tensor("wi1", wi1, {E, D, H}) && ck.tensor("wo", wo, {E, H, D}) &&
        ck.tensor("group_sizes", gs, {E}) && check_activation(ck, act, limit) && group_offsets(ck, gs, E, R, d.off))) {
    return false;
  }
  int32_t* maps = workspace().i32(3, 2 * R);
  row_token = maps;
  inv = maps + R;
  return derive_maps(ck, order, R, K, row_token, inv);
}

moe_status_t fwd_api(const char* where, const float* x, int64_t T, int64_t D, const int32_t* order, int64_t K,
                     const float* w, const void* wi0, const void* wi1, const void* wo, BElem be, const float* b0,
                     const float* b1, const float* bo, const int32_t* gs, int64_t E, int64_t H, moe_activation_t act,
                     float limit, bool bf16_layer, float* y, float* res_act, float* res_h0, float* res_h1, float* res_o) {
  return guarded(where, [&] {
    Checker ck{where, {}};
    Dims d;
    int32_t *row_token = nullptr, *inv = nullptr;
    if (!(oneshot_setup(ck, d, x, T, D, order, K, wi0, wi1, wo, gs, E, H, act, limit, row_token, inv) &&
          ck.tensor("y", y, {T, D}))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    const int64_t R = d.R;
    float* act_buf = res_act != nullptr ? res_act : workspace().f32(0, R * H);
    const bool gathered = !bf16_layer && mul_for(be) == Mul::F32 && R > E * active_isa_unit().stream_rows;
    const int64_t ldg = padded_row_stride(D);  // the gathered rows' (below)
    float* o_buf = res_o != nullptr ? res_o : workspace().f32(1, R * (gathered ? ldg : D));
    if (bf16_layer) {
      float* h = (res_h0 == nullptr || res_h1 == nullptr) ? workspace().f32(2, 2 * R * H) : nullptr;
      float* h0 = res_h0 != nullptr ? res_h0 : h;
      float* h1 = res_h1 != nullptr ? res_h1 : h + R * H;
      float* xr = workspace().f32(5, T * D);  // x as the composition's cast to bf16 leaves it
      round_bf16(x, T * D, xr);
      up_fwd_store(d, xr, row_token, wi0, wi1, be, h0, h1);
      glu_fwd_bf16(d, h0, h1, b0, b1, act, limit, act_buf);
      zero_rows(act_buf, d.off.back(), R, H);
      down_fwd(d, act_buf, wo, be, nullptr, o_buf);
      round_rows_bf16(d, o_buf, bo);
    } else if (gathered) {
      // groups mostly above the streamed size: x's rows gathered once, padded_row_stride(D) apart (into o_buf until the
      // down projection writes it, unless o_buf is the caller's), so that the packed path's row tiles read them in place
      // rather than copying them for every block of columns (bench shape 0.985-0.997x the time, paired; at T=64, all
      // streamed, it cost 1.01x)
      float* xg = res_o != nullptr ? workspace().f32(1, R * ldg) : o_buf;  // slot 1: the backward's d_o
      gather_rows(x, row_token, R, D, ldg, xg);
      up_fwd(d, xg, nullptr, wi0, wi1, be, b0, b1, act, limit, act_buf, res_h0, res_h1, ldg);
      down_fwd(d, act_buf, wo, be, bo, o_buf);
    } else {
      up_fwd(d, x, row_token, wi0, wi1, be, b0, b1, act, limit, act_buf, res_h0, res_h1);
      down_fwd(d, act_buf, wo, be, bo, o_buf);
    }
    combine_fwd(o_buf, D, inv, w, T, K, y);
    return MOE_STATUS_OK;
  });
}

moe_status_t bwd_api(const char* where, const float* dy, const float* x, int64_t T, int64_t D, const int32_t* order,
                     int64_t K, const float* w, const void* wi0, const void* wi1, const void* wo, BElem be,
                     const int32_t* gs, int64_t E, int64_t H, moe_activation_t act, float limit, const float* res_act,
                     const float* res_h0, const float* res_h1, const float* res_o, float* dx, float* dw, float* dwi0,
                     float* dwi1, float* dwo, float* db0, float* db1, float* dbo) {
  return guarded(where, [&] {
    Checker ck{where, {}};
    Dims d;
    int32_t *row_token = nullptr, *inv = nullptr;
    if (!(oneshot_setup(ck, d, x, T, D, order, K, wi0, wi1, wo, gs, E, H, act, limit, row_token, inv) &&
          ck.tensor("dy", dy, {T, D}) && ck.tensor("res_act", res_act, {d.R, H}) &&
          ck.tensor("res_h0", res_h0, {d.R, H}) && ck.tensor("res_h1", res_h1, {d.R, H}) &&
          ck.tensor("res_o_rows", res_o, {d.R, D}) && ck.tensor("dx", dx, {T, D}))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    const int64_t R = d.R;
    const int64_t ldo = padded_row_stride(D);
    float* d_o = workspace().f32(1, R * ldo);
    float* dh0 = workspace().f32(0, R * H);
    float* dh1 = workspace().f32(2, R * H);
    combine_bwd(dy, res_o, D, inv, w, T, K, d_o, ldo, dw);
    down_bwd(d, d_o, ldo, res_act, res_h0, res_h1, wo, be, act, limit, dh0, dh1, dwo, dbo);
    float* dx_rows = d_o;  // d_o is dead once down_bwd is done
    up_bwd(d, dh0, dh1, x, row_token, wi0, wi1, be, dx_rows, dwi0, dwi1, db0, db1);
    combine_fwd(dx_rows, D, inv, nullptr, T, K, dx);
    return MOE_STATUS_OK;
  });
}

}  // namespace
}  // namespace moe::detail

using moe::detail::BElem;

extern "C" {

moe_status_t moe_ffn_fwd_f32(const float* x, int64_t T, int64_t D, const int32_t* order, int64_t K, const float* w,
                             const float* wi0, const float* wi1, const float* wo, const float* b0, const float* b1,
                             const float* bo, const int32_t* group_sizes, int64_t E, int64_t H,
                             moe_activation_t activation, float clamp_limit, float* y, float* res_act, float* res_h0,
                             float* res_h1, float* res_o_rows) {
  return moe::detail::fwd_api("moe_ffn_fwd_f32", x, T, D, order, K, w, wi0, wi1, wo, BElem::F32, b0, b1, bo,
                              group_sizes, E, H, activation, clamp_limit, false, y, res_act, res_h0, res_h1, res_o_rows);
}

moe_status_t moe_ffn_fwd_bf16w(const float* x, int64_t T, int64_t D, const int32_t* order, int64_t K, const float* w,
                               const uint16_t* wi0, const uint16_t* wi1, const uint16_t* wo, const float* b0,
                               const float* b1, const float* bo, const int32_t* group_sizes, int64_t E, int64_t H,
                               moe_activation_t activation, float clamp_limit, float* y, float* res_act, float* res_h0,
                               float* res_h1, float* res_o_rows) {
  return moe::detail::fwd_api("moe_ffn_fwd_bf16w", x, T, D, order, K, w, wi0, wi1, wo, BElem::BF16, b0, b1, bo,
                              group_sizes, E, H, activation, clamp_limit, false, y, res_act, res_h0, res_h1, res_o_rows);
}

moe_status_t moe_ffn_fwd_bf16(const float* x, int64_t T, int64_t D, const int32_t* order, int64_t K, const float* w,
                              const uint16_t* wi0, const uint16_t* wi1, const uint16_t* wo, const float* b0,
                              const float* b1, const float* bo, const int32_t* group_sizes, int64_t E, int64_t H,
                              moe_activation_t activation, float clamp_limit, float* y, float* res_act, float* res_h0,
                              float* res_h1, float* res_o_rows) {
  return moe::detail::fwd_api("moe_ffn_fwd_bf16", x, T, D, order, K, w, wi0, wi1, wo, BElem::BF16, b0, b1, bo,
                              group_sizes, E, H, activation, clamp_limit, true, y, res_act, res_h0, res_h1, res_o_rows);
}

moe_status_t moe_ffn_fwd_bf16_f32w(const float* x, int64_t T, int64_t D, const int32_t* order, int64_t K, const float* w,
                              const float* wi0, const float* wi1, const float* wo, const float* b0,
                              const float* b1, const float* bo, const int32_t* group_sizes, int64_t E, int64_t H,
                              moe_activation_t activation, float clamp_limit, float* y, float* res_act, float* res_h0,
                              float* res_h1, float* res_o_rows) {
  return moe::detail::fwd_api("moe_ffn_fwd_bf16_f32w", x, T, D, order, K, w, wi0, wi1, wo, BElem::F32R, b0, b1, bo,
                              group_sizes, E, H, activation, clamp_limit, true, y, res_act, res_h0, res_h1, res_o_rows);
}

moe_status_t moe_ffn_bwd_f32(const float* dy, const float* x, int64_t T, int64_t D, const int32_t* order, int64_t K,
                             const float* w, const float* wi0, const float* wi1, const float* wo,
                             const int32_t* group_sizes, int64_t E, int64_t H, moe_activation_t activation,
                             float clamp_limit, const float* res_act, const float* res_h0, const float* res_h1,
                             const float* res_o_rows, float* dx, float* dw, float* dwi0, float* dwi1, float* dwo,
                             float* db0, float* db1, float* dbo) {
  return moe::detail::bwd_api("moe_ffn_bwd_f32", dy, x, T, D, order, K, w, wi0, wi1, wo, BElem::F32, group_sizes, E,
                              H, activation, clamp_limit, res_act, res_h0, res_h1, res_o_rows, dx, dw, dwi0, dwi1, dwo,
                              db0, db1, dbo);
}

moe_status_t moe_ffn_bwd_bf16w(const float* dy, const float* x, int64_t T, int64_t D, const int32_t* order, int64_t K,
                               const float* w, const uint16_t* wi0, const uint16_t* wi1, const uint16_t* wo,
                               const int32_t* group_sizes, int64_t E, int64_t H, moe_activation_t activation,
                               float clamp_limit, const float* res_act, const float* res_h0, const float* res_h1,
                               const float* res_o_rows, float* dx, float* dw, float* dwi0, float* dwi1, float* dwo,
                               float* db0, float* db1, float* dbo) {
  return moe::detail::bwd_api("moe_ffn_bwd_bf16w", dy, x, T, D, order, K, w, wi0, wi1, wo, BElem::BF16, group_sizes,
                              E, H, activation, clamp_limit, res_act, res_h0, res_h1, res_o_rows, dx, dw, dwi0, dwi1,
                              dwo, db0, db1, dbo);
}

}  // extern "C"
