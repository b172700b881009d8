/* The fused FFN's stages one by one, with argument checks: a C ABI for the native tests and the lab only (the addon
 * calls the one-shot moe_ffn_fwd / moe_ffn_bwd of moe-kernels.h, which run these stages in order). Defined in
 * stages_abi.cpp, which only native/test/run.sh builds. Legend, GLU and numerics as in moe-kernels.h; row_token [R]
 * (each in [0, T)) and inv [T*K] (a permutation of [0, T*K) with T*K == R) are the maps moe_ffn_fwd derives from
 * its sort order. */
#ifndef MOE_STAGES_ABI_H
#define MOE_STAGES_ABI_H

#include "moe-kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Fused kernels, one stage each ------------------------------------------------------------------
 * Shapes: x [T, D]; row_token [R] (each in [0, T)); group_sizes [E] (sum <= R); wi0, wi1 [E, D, H];
 * wo [E, H, D]; b0, b1 [E, H], bo [E, D] (NULL: no bias); inv [T*K] (a permutation of [0, T*K) with
 * T*K == R); w [T, K] (NULL: ones). `_bf16w` variants take the weights as bf16 bits, everything else fp32. */

/* Up projection with the gather and the GLU fused: act [R, H] = glu(x_rows @ wi0[e] + b0[e], x_rows @ wi1[e] +
 * b1[e]); h0_out / h1_out [R, H] (the pre-activation values, for the backward) are written when non-NULL.
 * clamp_limit: 0, or L > 0 for the GPT-OSS form. */
moe_status_t moe_ffn_up_fwd_f32(const float* x, int64_t T, int64_t D, const int32_t* row_token, int64_t R,
                                        const float* wi0, const float* wi1, const float* b0, const float* b1,
                                        const int32_t* group_sizes, int64_t E, int64_t H, moe_activation_t activation,
                                        float clamp_limit, float* act, float* h0_out, float* h1_out);
moe_status_t moe_ffn_up_fwd_bf16w(const float* x, int64_t T, int64_t D, const int32_t* row_token, int64_t R,
                                          const uint16_t* wi0, const uint16_t* wi1, const float* b0, const float* b1,
                                          const int32_t* group_sizes, int64_t E, int64_t H,
                                          moe_activation_t activation, float clamp_limit, float* act, float* h0_out,
                                          float* h1_out);

/* Down projection: o_rows [R, D] = act @ wo[e] + bo[e]. */
moe_status_t moe_ffn_down_fwd_f32(const float* act, int64_t R, int64_t H, const float* wo, const float* bo,
                                          const int32_t* group_sizes, int64_t E, int64_t D, float* o_rows);
moe_status_t moe_ffn_down_fwd_bf16w(const float* act, int64_t R, int64_t H, const uint16_t* wo,
                                            const float* bo, const int32_t* group_sizes, int64_t E, int64_t D,
                                            float* o_rows);

/* Weighted combine: y [T, D], y[t] = sum_{k=0..K-1} w[t, k] * rows[inv[t*K + k]] (w NULL: weight 1), the sum
 * in ascending k starting from the k = 0 term. With w = NULL this is also the scatter of the backward
 * (dx[t] = sum_k dx_rows[inv[t*K + k]]). */
moe_status_t moe_combine_fwd_f32(const float* rows, int64_t R, int64_t D, const int32_t* inv,
                                         const float* w, int64_t T, int64_t K, float* y);

/* Gradient of the combine: d_rows [R, D], d_rows[inv[t*K + k]] = w[t, k] * dy[t] (w NULL: dy[t]); and, when
 * dw is non-NULL, dw [T, K], dw[t, k] = <rows[inv[t*K + k]], dy[t]> (sum over D ascending). */
moe_status_t moe_combine_bwd_f32(const float* dy, const float* rows, int64_t R, int64_t D,
                                         const int32_t* inv, const float* w, int64_t T, int64_t K, float* d_rows,
                                         float* dw);

/* The GLU alone, elementwise over n values: act = glu(h0, h1); and its gradient dh0, dh1 given d_act. */
moe_status_t moe_glu_fwd_f32(const float* h0, const float* h1, int64_t n, moe_activation_t activation,
                                     float clamp_limit, float* act);
moe_status_t moe_glu_bwd_f32(const float* d_act, const float* h0, const float* h1, int64_t n,
                                     moe_activation_t activation, float clamp_limit, float* dh0, float* dh1);

/* Backward of the down projection with the GLU backward fused into its epilogue:
 *   d_act = d_o_rows @ wo[e]^T (never stored), (dh0, dh1) [R, H] = glu'(h0, h1) * d_act;
 *   dwo [E, H, D], dwo[e] = act_e^T @ d_o_rows_e;  dbo [E, D] = per-group row sums of d_o_rows (each when
 *   non-NULL: a NULL weight gradient skips its matmul).
 * act, h0, h1 [R, H] are the forward's. */
moe_status_t moe_ffn_down_bwd_f32(const float* d_o_rows, const float* act, const float* h0, const float* h1,
                                          int64_t R, int64_t H, const float* wo, const int32_t* group_sizes,
                                          int64_t E, int64_t D, moe_activation_t activation, float clamp_limit,
                                          float* dh0, float* dh1, float* dwo, float* dbo);
moe_status_t moe_ffn_down_bwd_bf16w(const float* d_o_rows, const float* act, const float* h0,
                                            const float* h1, int64_t R, int64_t H, const uint16_t* wo,
                                            const int32_t* group_sizes, int64_t E, int64_t D,
                                            moe_activation_t activation, float clamp_limit, float* dh0, float* dh1,
                                            float* dwo, float* dbo);

/* Backward of the up projection:
 *   dx_rows [R, D] = dh0 @ wi0[e]^T + dh1 @ wi1[e]^T (one chain: the dh0 terms, then the dh1 terms);
 *   dwi0, dwi1 [E, D, H], dwi0[e] = x_rows_e^T @ dh0_e (x rows gathered by row_token as they are packed);
 *   db0, db1 [E, H] per-group row sums of dh0, dh1 (each output when non-NULL).
 * dx [T, D] is then moe_combine_fwd_f32(dx_rows, inv, NULL). */
moe_status_t moe_ffn_up_bwd_f32(const float* dh0, const float* dh1, int64_t R, int64_t H, const float* x,
                                        int64_t T, int64_t D, const int32_t* row_token, const float* wi0,
                                        const float* wi1, const int32_t* group_sizes, int64_t E, float* dx_rows,
                                        float* dwi0, float* dwi1, float* db0, float* db1);
moe_status_t moe_ffn_up_bwd_bf16w(const float* dh0, const float* dh1, int64_t R, int64_t H, const float* x,
                                          int64_t T, int64_t D, const int32_t* row_token, const uint16_t* wi0,
                                          const uint16_t* wi1, const int32_t* group_sizes, int64_t E, float* dx_rows,
                                          float* dwi0, float* dwi1, float* db0, float* db1);

#ifdef __cplusplus
}
#endif

#endif /* MOE_STAGES_ABI_H */
