// Internal interface of the fused FFN's stages (baseline code): each stage as engine problems (ffn_stages.cpp) and the
// memory-bound passes between them (ffn_passes.cpp). Arguments are checked by the callers.
#pragma once

#include <cstdint>
#include <vector>

#include "engine.hpp"

namespace moe::detail {

// Below this many elements a memory-bound pass runs on the calling thread.
constexpr double kSerialElems = double(1 << 16);

// f(item, worker) for item in [0, n_items) on the pool (on the calling thread when `serial`).
template <class F>
void parallel_items(int64_t n_items, bool serial, F& f) {
  parallel_for(
      n_items, serial ? 1 : pool_threads(), [](void* ctx, int64_t i, int w) { (*static_cast<F*>(ctx))(i, w); }, &f);
}

#ifndef MOE_ROW_PAD
#define MOE_ROW_PAD 16
#endif
// The row stride of our own buffers of rows of n floats that the packed path reads in place as its A operand: n, plus
// MOE_ROW_PAD floats where n floats are a multiple of 4 KiB, so that the 12 rows of a register tile do not all fall in
// one set of the L1 (8 ways on Zen 4: paired A/B there, bench shape, same bits, the forward took 0.926x the time of
// unpadded rows).
inline int64_t padded_row_stride(int64_t n) { return rows_4k_apart(n) ? n + MOE_ROW_PAD : n; }

struct Dims {
  int64_t T, D, R, E, H;
  std::vector<int64_t> off;  // E + 1 group offsets
};

// The stages (moe-kernels.h's spec; rows past sum(group_sizes) get zeros). dwo, dwi0, dwi1 and the bias gradients
// are skipped when NULL.
void up_fwd(const Dims& d, const float* x, const int32_t* row_token, const void* wi0, const void* wi1, BElem be,
            const float* b0, const float* b1, moe_activation_t act, float limit, float* act_out, float* h0,
            float* h1, int64_t ldx = 0);  // ldx: x's row stride when row_token is NULL and the multiply fp32 (0: D)
// The up projection alone: h0, h1 = the products, unrounded and without bias (a bf16 layer's; see bf16_acts.cpp).
void up_fwd_store(const Dims& d, const float* x, const int32_t* row_token, const void* wi0, const void* wi1, BElem be,
                  float* h0, float* h1);
void down_fwd(const Dims& d, const float* act, const void* wo, BElem be, const float* bo, float* o_rows);
// d_o: rows ldo floats apart.
void down_bwd(const Dims& d, const float* d_o, int64_t ldo, const float* act, const float* h0, const float* h1,
              const void* wo, BElem be, moe_activation_t a, float limit, float* dh0, float* dh1, float* dwo, float* dbo);
void up_bwd(const Dims& d, const float* dh0, const float* dh1, const float* x, const int32_t* row_token,
            const void* wi0, const void* wi1, BElem be, float* dx_rows, float* dwi0, float* dwi1, float* db0,
            float* db1);

// The passes.
// rows[r * ld + i] = x[row_token[r] * D + i] for r < R, i < D.
void gather_rows(const float* x, const int32_t* row_token, int64_t R, int64_t D, int64_t ld, float* rows);
// y[t] = sum_k w[t, k] * rows[inv[t * K + k]] (w NULL: 1), ascending k, mul then add.
void combine_fwd(const float* rows, int64_t D, const int32_t* inv, const float* w, int64_t T, int64_t K, float* y);
// d_rows[inv[t * K + k]] (rows ld floats apart) = w[t, k] * dy[t]; dw[t, k] = <rows[inv[t * K + k]], dy[t]> (when
// dw != NULL).
void combine_bwd(const float* dy, const float* rows, int64_t D, const int32_t* inv, const float* w, int64_t T,
                 int64_t K, float* d_rows, int64_t ld, float* dw);
// out[g, j] = sum over the rows r of group g (ascending) of src[r * ld + j], j < n; items: (group, 256-column block).
void group_row_sums(const float* src, int64_t n, int64_t ld, const std::vector<int64_t>& off, float* out);
// Elementwise GLU over n values in blocks of 4096.
void glu_fwd_all(const float* h0, const float* h1, int64_t n, moe_activation_t act, float limit, float* out);
void glu_bwd_all(const float* d, const float* h0, const float* h1, int64_t n, moe_activation_t act, float limit,
                 float* dh0, float* dh1);

// A bf16 layer's rounding points (bf16_acts.cpp): dst = src rounded to bf16 (n values); over the grouped rows: h0, h1 rounded, + their rounded biases
// (NULL: none), rounded, then out = the GLU with every op rounded; o rounded, + its rounded bias, rounded.
void round_bf16(const float* src, int64_t n, float* dst);
void glu_fwd_bf16(const Dims& d, float* h0, float* h1, const float* b0, const float* b1, moe_activation_t act,
                  float limit, float* out);
// The same for one row of n values (b0, b1: the row's biases or NULL).
void glu_row_bf16(float* h0, float* h1, int64_t n, const float* b0, const float* b1, moe_activation_t act, float limit,
                  float* out);
void round_rows_bf16(const Dims& d, float* o, const float* bias);

}  // namespace moe::detail
