// The fused FFN over experts held quantized (moe_ffn_fwd_quantized): the served layer's gather -> quantized GMMs ->
// bias, GLU -> quantized GMM -> bias -> combine in one call, every intermediate in the workspace (no [R, H] array is
// made per call, so repeated forwards fault no fresh pages). The GMMs are moe_quantized_gmm's, the per-row activation
// quantization moe_quantize_f32's (so the same bits as those calls composed), the GLU and combine the fused FFN's passes
// (a bfloat16 layer's rounding points: bf16_acts.cpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "api_util.hpp"
#include "ffn_stages.hpp"
#include "int8.hpp"
#include "qgmm.hpp"
#include "workspace.hpp"

namespace moe::detail {
namespace {

#include "widen.inc"

// rows[r, :] = rows[r, :] + bias[g, :] for the rows r of each group g (one fp32 add, as the composition's).
void add_group_bias(const std::vector<int64_t>& off, const float* bias, int64_t n, float* rows) {
  if (bias == nullptr) return;
  auto body = [&](int64_t g, int) {
    const float* b = bias + g * n;
    for (int64_t r = off[size_t(g)]; r < off[size_t(g) + 1]; ++r) {
      float* row = rows + r * n;
      for (int64_t j = 0; j < n; ++j) row[j] = row[j] + b[j];
    }
  };
  parallel_items(int64_t(off.size()) - 1, double(off.back() * n) < kSerialElems, body);
}

// A GMM input of the served FFN: float rows, or rows quantized per row (lhs_bits > 0) as int8.hpp's packed bytes
// (int8 / int4 codes: the integer tiles read them as they are) or as int32 values (fp8 / mxfp4 codes).
struct Lhs {
  moe_weight_format_t fmt;  // as stored (tiled or not)
  int bits;
  void* q;  // [R, kp] bytes, or [R, k] int32
  float* scales;
  int64_t kp;
  bool packed() const { return code_format(fmt) == MOE_WF_INT8 || code_format(fmt) == MOE_WF_INT4; }
};

// The error for routed row r, whose k values at `row` include one that is not finite.
moe_status_t not_finite(const float* row, int64_t r, int64_t k) {
  int64_t p = 0;
  while (p < k && std::isfinite(row[p])) ++p;
  return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_ffn_fwd_quantized: element " + std::to_string(p) + " of routed row " +
                                               std::to_string(r) +
                                               " of an expert matmul's input is not finite (abs-max scales need finite values)");
}

// The error for the first row r of rows [R, k] with ok[r] == 0 (a row the quantizer refused), else OK.
moe_status_t rows_finite(const std::vector<uint8_t>& ok, const float* rows, int64_t k) {
  for (size_t r = 0; r < ok.size(); ++r) {
    if (ok[r] == 0) return not_finite(rows + int64_t(r) * k, int64_t(r), k);
  }
  return MOE_STATUS_OK;
}

// L.q, L.scales = rows [R, k] quantized per row (moe_quantize_f32's AQT rule), when L.bits > 0.
moe_status_t quantize_rows(Lhs& L, const float* rows, int64_t R, int64_t k) {
  if (L.bits == 0) return MOE_STATUS_OK;
  if (!L.packed()) {
    int64_t bad = -1;
    const moe_status_t st = quantize_f32_run(rows, nullptr, R, k, 1, L.bits, 0, static_cast<int32_t*>(L.q), L.scales, &bad);
    return st != MOE_STATUS_OK || bad < 0 ? st : not_finite(rows + bad / k * k, bad / k, k);
  }
  L.kp = i8_kp(k);
  std::vector<uint8_t> ok(size_t(R), 1);
  auto body = [&](int64_t r, int) {
    ok[size_t(r)] = qg_quantize_row(rows + r * k, k, L.kp, L.bits, static_cast<uint8_t*>(L.q) + r * L.kp, L.scales + r);
  };
  parallel_items(R, double(R * k) < kSerialElems, body);
  return rows_finite(ok, rows, k);
}

// The int8 x int8 path's input: x's T token rows quantized once (a token's K routed copies are the same row, so the
// same bits) into the workspace, then each routed row's codes and scale copied from its token's.
moe_status_t quantize_gather_tokens(Lhs& L, Workspace& ws, const float* x, int64_t T, int64_t D, const int32_t* row_token,
                                    int64_t R) {
  L.kp = i8_kp(D);
  auto* xq = static_cast<uint8_t*>(ws.get(6, std::max<int64_t>(1, T * L.kp)));
  float* xs = ws.f32(7, T);
  std::vector<uint8_t> ok(size_t(T), 1);
  auto quant = [&](int64_t t, int) { ok[size_t(t)] = qg_quantize_row(x + t * D, D, L.kp, L.bits, xq + t * L.kp, xs + t); };
  parallel_items(T, double(T * D) < kSerialElems, quant);
  for (int64_t r = 0; r < R; ++r) {  // the first routed row of a token that is not finite, as quantize_rows names it
    if (ok[size_t(row_token[r])] == 0) return not_finite(x + int64_t(row_token[r]) * D, r, D);
  }
  auto* q = static_cast<uint8_t*>(L.q);
  const int64_t chunk = std::max<int64_t>(1, 65536 / L.kp);
  auto copy = [&](int64_t item, int) {
    for (int64_t r = item * chunk, r1 = std::min(R, r + chunk); r < r1; ++r) {
      std::memcpy(q + r * L.kp, xq + int64_t(row_token[r]) * L.kp, size_t(L.kp));
      L.scales[r] = xs[row_token[r]];
    }
  };
  parallel_items((R + chunk - 1) / chunk, double(R * L.kp) < 4 * kSerialElems, copy);
  return MOE_STATUS_OK;
}

// The integer rows' GLU pair: both products, the GLU and act's rows quantized per work item (act [R, H] the only float
// rows stored); L then describes the quantized act (its codes and scales in workspace slots 9 and 8: L's own are read
// until the last item is done).
moe_status_t glu_pair_int(Lhs& L, Workspace& ws, const std::vector<int64_t>& off, int64_t D, int64_t H,
                          const void* wi0_codes, const void* wi0_scales, const void* wi1_codes, const void* wi1_scales,
                          const float* b0, const float* b1, moe_activation_t activation, float limit, float* act) {
  const int64_t R = off.back();
  std::vector<uint8_t> ok(size_t(R), 1);
  const int64_t kp = i8_kp(H);
  const GluQuant quant{L.bits, kp, static_cast<uint8_t*>(ws.get(9, std::max<int64_t>(1, R * kp))), ws.f32(8, R), ok.data()};
  quantized_gmm_packed_glu(L.fmt, static_cast<const uint8_t*>(L.q), L.kp, L.scales, wi0_codes, wi0_scales, wi1_codes,
                           wi1_scales, b0, b1, activation, limit, off, R, D, H, act, quant);
  L.q = quant.a8;
  L.scales = quant.scales;
  L.kp = kp;
  return rows_finite(ok, act, H);
}

// One quantized GMM of the rows [R, k] (float, or L's quantized rows) into out [R, n]; bf16: a bfloat16 layer's
// weight-only product (quantized_gmm_run's bf16_layer).
moe_status_t qgmm(const Lhs& L, bool bf16, const float* rows, const void* codes, const void* scales, const int32_t* gs,
                  const std::vector<int64_t>& off, int64_t R, int64_t k, int64_t n, float* out) {
  const int64_t E = int64_t(off.size()) - 1;
  if (L.bits == 0) return quantized_gmm_run(L.fmt, rows, 0, nullptr, codes, scales, gs, R, k, n, E, out, bf16);
  if (!L.packed()) return quantized_gmm_run(L.fmt, L.q, 1, L.scales, codes, scales, gs, R, k, n, E, out);
  quantized_gmm_packed(L.fmt, static_cast<const uint8_t*>(L.q), L.kp, L.scales, codes, scales, off, R, k, n, out);
  return MOE_STATUS_OK;
}

}  // namespace
}  // namespace moe::detail

extern "C" moe_status_t moe_ffn_fwd_quantized(moe_weight_format_t format, int lhs_bits, int bf16_layer, const float* x, int64_t T,
                                              int64_t D, const int32_t* order, int64_t K, const float* w,
                                              const void* wi0_codes, const void* wi0_scales, const void* wi1_codes,
                                              const void* wi1_scales, const void* wo_codes, const void* wo_scales,
                                              const float* b0, const float* b1, const float* bo,
                                              const int32_t* group_sizes, int64_t E, int64_t H,
                                              moe_activation_t activation, float clamp_limit, float* y) {
  using namespace moe::detail;
  constexpr const char* kWhere = "moe_ffn_fwd_quantized";
  return guarded(kWhere, [&]() -> moe_status_t {
    Checker ck{kWhere, {}};
    int64_t R = 0;
    std::vector<int64_t> off;
    if (!(check_sizes(ck, {{"T", T}, {"D", D}, {"K", K}, {"E", E}, {"H", H}}) &&
          ck.require(format >= MOE_WF_INT8 && format <= MOE_WF_INT4_TILES, "unknown format " + std::to_string(int(format))) &&
          ck.require(lhs_bits == 0 || (lhs_bits >= 2 && lhs_bits <= 8),
                     "lhs_bits must be 0 (float rows) or in [2, 8]; got " + std::to_string(lhs_bits)) &&
          ck.require(!__builtin_mul_overflow(T, K, &R), "T * K overflows") && check_index_range(ck, R) &&
          ck.tensor("x", x, {T, D}) && ck.tensor("order", order, {R}) && ck.tensor("wi0_codes", wi0_codes, {E, D, H}) &&
          ck.tensor("wi1_codes", wi1_codes, {E, D, H}) && ck.tensor("wo_codes", wo_codes, {E, H, D}) &&
          ck.tensor("wi0_scales", wi0_scales, {E, H}) && ck.tensor("wi1_scales", wi1_scales, {E, H}) &&
          ck.tensor("wo_scales", wo_scales, {E, D}) && ck.tensor("group_sizes", group_sizes, {E}) &&
          ck.tensor("y", y, {T, D}) && check_activation(ck, activation, clamp_limit) &&
          group_offsets(ck, group_sizes, E, R, off) &&
          ck.require(off.back() == R, "every routed row must be in a group: sum(group_sizes) = " +
                                          std::to_string(off.back()) + ", T * K = " + std::to_string(R)))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    const bool bf16 = bf16_layer != 0;
    if (bf16 && lhs_bits == 0 && code_format(format) != MOE_WF_INT8 && code_format(format) != MOE_WF_INT4) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, std::string(kWhere) +
                                                   ": a bfloat16 layer's weight-only form takes int8 or int4 codes only");
    }
    Workspace& ws = workspace();
    int32_t* maps = ws.i32(3, 2 * R);
    int32_t *row_token = maps, *inv = maps + R;
    if (!derive_maps(ck, order, R, K, row_token, inv)) return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    const int64_t W = std::max(D, H);
    float* rows = ws.f32(1, R * D);  // x's rows, then the expert outputs
    float* act = ws.f32(0, R * H);
    const int64_t Wp = (W + 3) / 4 * 4;
    Lhs L{format, lhs_bits, nullptr, nullptr, 0};
    if (lhs_bits != 0) {
      L.q = L.packed() ? ws.get(5, std::max<int64_t>(1, R * Wp)) : static_cast<void*>(ws.i32(5, R * W));
      L.scales = ws.f32(4, R);
    }
    // int8 / int4 codes with quantized rows, float layer: the integer tiles' packed rows made straight from x and the GLU
    const bool int_rows = !bf16 && lhs_bits != 0 && L.packed();
    moe_status_t st = MOE_STATUS_OK;
    if (int_rows) {
      st = quantize_gather_tokens(L, ws, x, T, D, row_token, R);
    } else if (bf16 && lhs_bits == 0) {  // x as the layer's cast leaves it: each token rounded once, then gathered
      float* xr = ws.f32(5, T * D);
      round_bf16(x, T * D, xr);
      gather_rows(xr, row_token, R, D, D, rows);
    } else {
      gather_rows(x, row_token, R, D, D, rows);
      if (bf16) round_bf16(rows, R * D, rows);
      st = quantize_rows(L, rows, R, D);
    }
    if (st != MOE_STATUS_OK) return st;
    const Dims d{T, D, R, E, H, off};
    if (int_rows) {
      st = glu_pair_int(L, ws, off, D, H, wi0_codes, wi0_scales, wi1_codes, wi1_scales, b0, b1, activation, clamp_limit,
                        act);
    } else if (lhs_bits == 0) {  // float rows: the GLU pair in one pass, its products never stored
      quantized_gmm_float_glu(format, rows, wi0_codes, wi0_scales, wi1_codes, wi1_scales, b0, b1, activation,
                              clamp_limit, off, D, H, act, bf16);
    } else {
      float* h0 = ws.f32(2, 2 * R * H);  // the two products
      float* h1 = h0 + R * H;
      st = qgmm(L, bf16, rows, wi0_codes, wi0_scales, group_sizes, off, R, D, H, h0);
      if (st == MOE_STATUS_OK) st = qgmm(L, bf16, rows, wi1_codes, wi1_scales, group_sizes, off, R, D, H, h1);
      if (st != MOE_STATUS_OK) return st;
      if (bf16) {  // h0, h1 rounded, + rounded biases, rounded, every op of the GLU rounded
        glu_fwd_bf16(d, h0, h1, b0, b1, activation, clamp_limit, act);
      } else {
        add_group_bias(off, b0, H, h0);
        add_group_bias(off, b1, H, h1);
        glu_fwd_all(h0, h1, R * H, activation, clamp_limit, act);
      }
      st = quantize_rows(L, act, R, H);
    }
    if (st == MOE_STATUS_OK) st = qgmm(L, bf16, act, wo_codes, wo_scales, group_sizes, off, R, H, D, rows);
    if (st != MOE_STATUS_OK) return st;
    if (bf16 && (lhs_bits != 0 || bo != nullptr)) {  // float rows: the products came rounded (quantized_gmm_run's bf16_layer)
      round_rows_bf16(d, rows, bo);
    } else if (!bf16) {
      add_group_bias(off, bo, D, rows);
    }
    combine_fwd(rows, D, inv, w, T, K, y);
    return MOE_STATUS_OK;
  });
}
