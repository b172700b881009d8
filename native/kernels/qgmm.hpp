// Internal interface of the quantized grouped matmul (qgmm.cpp, baseline code) and of its ISA code: the AVX-512
// decode and tile and the VNNI packing of int codes (isa_avx512_qgmm.cpp). Plain structs and
// declarations only (see internal.hpp).
//
// Float path: a work item (group, a span of 64-column panels, up to 128 rows; small groups take wide spans, so that
// each chunk of k reads whole rows of [k, n] codes) decodes at most kQgKc rows of k of one panel at a time into a float
// panel, panel[p * 64 + j] = code(p0 + p, j0 + j) (0 past n), and multiplies it into the rows' partial sums of the
// current scale block; a block's last chunk folds its partial sums into the accumulators.
// Small groups of int8 / int4 codes (AVX-512) stream instead: each row of codes is decoded in registers straight into
// the tile's accumulators (qg_stream_avx512), read once per tile of rows.
// Integer path (int8 / int4 codes, lhs in int8 range): the codes of the whole k are packed as int8.hpp's B panel
// (k-quads of 64 columns) with their column sums and multiplied by the int8.hpp tiles; small groups (VNNI) stream
// spans of panels chunk by chunk of k instead, the codes interleaved in registers (qg_stream_i8_vnni). A GLU pair (the
// served FFN's wi0 and wi1 over the same rows, float or integer) runs both products per work item with the GLU as their
// epilogue; on the integer path the last item of a block of rows quantizes those rows while they are in the cache.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "internal.hpp"
#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif

namespace moe::detail {

constexpr int kQgCols = 64;  // panel width (= kI8PanelCols)
constexpr int kQgKc = 64;    // rows of k decoded per chunk (a multiple of 32: an mxfp4 block never straddles chunks)
constexpr int kQgTile = 6;   // rows of the float tile

// One group's codes: group g's first byte, the logical k and n; fmt int8 / int4 / fp8 / mxfp4 (tiled: the int
// codes in MOE_WF_INT8_TILES / MOE_WF_INT4_TILES's tiles).
struct QgCodes {
  moe_weight_format_t fmt;
  const uint8_t* c;
  int64_t k, n;
  bool tiled = false;
};

// The tiled int formats (moe-kernels.h) as their codes' format and layout.
inline moe_weight_format_t code_format(moe_weight_format_t f) {
  return f == MOE_WF_INT8_TILES ? MOE_WF_INT8 : f == MOE_WF_INT4_TILES ? MOE_WF_INT4 : f;
}
inline bool tiled_format(moe_weight_format_t f) { return f == MOE_WF_INT8_TILES || f == MOE_WF_INT4_TILES; }

constexpr int64_t kQgTileK = 64;  // rows of k per tile of the tiled layout (64 bytes each)
// Columns of a tile's row.
inline int64_t tile_cols(const QgCodes& s) { return s.fmt == MOE_WF_INT4 ? 128 : 64; }
// Bytes of one group's tiles.
inline int64_t tiled_group_bytes(bool int4, int64_t k, int64_t n) {
  const int64_t c = int4 ? 128 : 64;
  return (k + kQgTileK - 1) / kQgTileK * ((n + c - 1) / c) * kQgTileK * 64;
}
// The byte holding code (p, j) of int8 / int4 codes (j / 2's for int4) in either layout. Where j is a multiple of 64
// (of 128 for int4's 64 bytes), the row's codes of the next 64 columns (bytes) follow it; in tiles, those of row p + 1
// are 64 bytes further while p + 1 stays in p's tile of kQgTileK rows.
inline const uint8_t* codes_at(const QgCodes& s, int64_t p, int64_t j) {
  const bool i4 = s.fmt == MOE_WF_INT4;
  if (!s.tiled) return s.c + p * (i4 ? (s.n + 1) / 2 : s.n) + (i4 ? j / 2 : j);
  const int64_t c = tile_cols(s), across = (s.n + c - 1) / c, in = j % c;
  return s.c + ((p / kQgTileK) * across + j / c) * (kQgTileK * 64) + (p % kQgTileK) * 64 + (i4 ? in / 2 : in);
}
// Bytes from row p to row p + 1 of the same columns, for rows within one tile where tiled.
inline int64_t codes_ld(const QgCodes& s) { return s.tiled ? 64 : s.fmt == MOE_WF_INT4 ? (s.n + 1) / 2 : s.n; }
// Whether a pass of two int4 panels may start at column j (whole panels up to j1; tiled: within one tile).
inline bool pair_at(const QgCodes& s, int64_t j, int64_t j1) { return j + 128 <= j1 && (!s.tiled || j % 128 == 0); }

// The float tile: for i < rows <= kQgTile, j < 64, with s = (start ? 0 : part[i * ldc + j]) + the fma chain over
// p < kc of a[i * lda + p] * panel[p * 64 + j] (ascending p):
//   finish: acc[i * ldc + j] = fma(s, fl(row_scale[i] * col_scale[j]), acc[i * ldc + j])
//   else:   part[i * ldc + j] = s
using QgTileFn = void (*)(const float* a, int64_t lda, int rows, const float* panel, int kc, float* part, int64_t ldc,
                          bool start, bool finish, const float* row_scale, const float* col_scale, float* acc);
// The decode: panel rows p < kc (rows up to the next multiple of 16 may be written too) of columns [j0, j0 + 64).
using QgDecodeFn = void (*)(const QgCodes& s, int64_t j0, int64_t p0, int kc, float* panel);

// Streamed int4 groups of at most this many rows take two panels per pass: one 64-byte load, twice the independent fma
// chains (paired A/B at the decode shape's wi0 on Zen 5, caches flushed: 0.91-0.93x the time in the faster bandwidth
// regime, unchanged in the slower; int8 codes unchanged either way, so they keep one panel).
#ifndef MOE_QG_PAIR_ROWS
#define MOE_QG_PAIR_ROWS 2
#endif
constexpr int kQgStreamPairRows = MOE_QG_PAIR_ROWS;

// The streaming kernels prefetch the codes this many rows ahead (the next chunk of k, qgmm.cpp), into the cache level
// stream_prefetch_l1 picks (qg_prefetch). On Zen 5, into the L1, 16 rows ahead instead of 32 took 1.5-2x the time; on
// Zen 4, into the L2, 64 rows 1.02x.
#ifndef MOE_QG_PF
#define MOE_QG_PF 32
#endif
// Codes in tiles are read in address order: prefetched this many bytes ahead (paired A/B of the decode shape's wi0 on
// Zen 5, caches flushed, in the VM's faster bandwidth regime: 8 KiB 0.93x the time of 2 KiB for int8 and int4 codes;
// the slower regime unchanged; 16 KiB 1.00-1.02x of 8 KiB).
#ifndef MOE_QG_PF_TILED
#define MOE_QG_PF_TILED 8192
#endif
// Bytes from a row of codes to the one the streams prefetch with it: the next chunk's row in rows, 8 KiB further in
// address order in tiles.
inline int64_t prefetch_ahead(const QgCodes& s) { return s.tiled ? MOE_QG_PF_TILED : MOE_QG_PF * codes_ld(s); }

#if defined(MOE_HAVE_X86_KERNELS)
// The streams' prefetch of the line at p: into the L1 where L1 / l1 (stream_prefetch_l1), else into the L2.
template <bool L1>
inline void qg_prefetch_at(const uint8_t* p) {
  _mm_prefetch(reinterpret_cast<const char*>(p), L1 ? _MM_HINT_T0 : _MM_HINT_T1);
}
inline void qg_prefetch(const uint8_t* p, bool l1) { l1 ? qg_prefetch_at<true>(p) : qg_prefetch_at<false>(p); }
// bf16 bits of the int4 value in an index's low 4 bits (bit 4 ignored: the table twice), 0..7 then -8..-1: for these
// small integers also the high half of their fp32 bits (the low half is zero). A vpermw table.
alignas(64) constexpr uint16_t kInt4Bf16[32] = {
    0x0000, 0x3f80, 0x4000, 0x4040, 0x4080, 0x40a0, 0x40c0, 0x40e0, 0xc100, 0xc0e0, 0xc0c0,
    0xc0a0, 0xc080, 0xc040, 0xc000, 0xbf80, 0x0000, 0x3f80, 0x4000, 0x4040, 0x4080, 0x40a0,
    0x40c0, 0x40e0, 0xc100, 0xc0e0, 0xc0c0, 0xc0a0, 0xc080, 0xc040, 0xc000, 0xbf80};
// f(std::integral_constant<int, r>()) with r = rows, or N where rows >= N: a kernel's rows as a template argument.
template <int N, class F>
inline void with_rows(int rows, F&& f) {
  if constexpr (N > 1) {
    if (rows < N) return with_rows<N - 1>(rows, std::forward<F>(f));
  }
  f(std::integral_constant<int, N>());
}
void qg_tile_avx512(const float* a, int64_t lda, int rows, const float* panel, int kc, float* part, int64_t ldc,
                    bool start, bool finish, const float* row_scale, const float* col_scale, float* acc);
void qg_decode_avx512(const QgCodes& s, int64_t j0, int64_t p0, int kc, float* panel);
// A bfloat16 layer's scaling (Problem::bf16_out): out[j] = bf16(bf16(p[j]) * bf16(s[j])) for j < n (widen.inc's
// rounding; the product of two bf16 values exact in fp32, or rounded once where it leaves the range).
void qg_scale_bf16_avx512(const float* p, const float* s, int64_t n, float* out);
// The streaming path of small groups (int8 / int4 codes), over the 64-column panels of [j0, j1) in one call per
// chunk of k: the tile above with panel[p * 64 + j] = code(p0 + p, j0 + j) decoded in registers as each row of codes
// is read (no panel; the same chain), rows <= kQgTile. part holds an internal layout between a block's chunks (only
// this function reads it). pairs (int4, rows <= kQgStreamPairRows): two whole panels a pass, their 64 bytes of codes
// in one load.
void qg_stream_avx512(const QgCodes& s, int64_t j0, int64_t j1, bool pairs, int64_t p0, const float* a, int64_t lda,
                      int rows, int kc, float* part, int64_t ldc, bool start, bool finish, const float* row_scale,
                      const float* col_scale, float* acc);
// The same for int4 codes and rows of bf16 values (isa_avx512bf16_qgmm.cpp; AVX512_BF16, kc <= 64): pairs of rows of
// k by vdpbf16ps, the products exact and summed in another order than the fp32 chain's (p + 1 then p into each
// accumulator); a last partial panel of n by qg_stream_avx512.
void qg_stream_dpbf16(const QgCodes& s, int64_t j0, int64_t j1, bool pairs, int64_t p0, const float* a, int64_t lda,
                      int rows, int kc, float* part, int64_t ldc, bool start, bool finish, const float* row_scale,
                      const float* col_scale, float* acc);
// Larger groups of rows of bf16 values (AVX512_BF16), as pairs of rows of k: qg_pair_rows_dpbf16 writes rows [rows, k]
// of a as out[i * ldo + q] = the bf16 pair (a[i, 2q], a[i, 2q + 1]) (zero past k, up to the next multiple of 32
// pairs); qg_pair_panel_dpbf16 a decoded panel of codes (bf16-exact values: int8 / int4) as out[q * 64 + j] =
// (panel[2q, j], panel[2q + 1, j]); qg_tile_dpbf16 the float tile above over kq such pairs (a: lda pairs per row), each
// pair added by vdpbf16ps (the products exact but for bf16 denormals, which vdpbf16ps reads as zero; p + 1 then p into
// the sum).
void qg_pair_rows_dpbf16(const float* a, int64_t lda, int64_t rows, int64_t k, uint32_t* out, int64_t ldo);
void qg_pair_panel_dpbf16(const float* panel, int kc, uint32_t* out);
// For int4 codes, the panel's pairs straight from the codes: out[q * 64 + j] = (code(p0 + 2q, j0 + j), code(p0 + 2q + 1,
// j0 + j)) as bf16 (zero past n and past kc), the same words as qg_decode_avx512 then qg_pair_panel_dpbf16.
void qg_decode_pairs_int4(const QgCodes& s, int64_t j0, int64_t p0, int kc, uint32_t* out);
void qg_tile_dpbf16(const uint32_t* a, int64_t lda, int rows, const uint32_t* panel, int kq, float* part, int64_t ldc,
                    bool start, bool finish, const float* row_scale, const float* col_scale, float* acc);
#endif

// One row of x [k] quantized for the integer path by moe_quantize_f32's AQT rule (a scale per row, no noise):
// a8[p] = q(p) + 128 for p < k, 128 (a zero) up to kp, and *scale; returns false, writing nothing, if a value is not
// finite. qg_quantize_row takes the AVX-512 unit where it is active (the same bits).
bool qg_quantize_row(const float* x, int64_t k, int64_t kp, int bits, uint8_t* a8, float* scale);
#if defined(MOE_HAVE_X86_KERNELS)
bool qg_quantize_row_avx512(const float* x, int64_t k, int64_t kp, int bits, uint8_t* a8, float* scale);
#endif

// int8 / int4 codes of columns [j0, j0 + 64) over the whole k as an int8.hpp B panel of kq k-quads (zero past k and
// n), colsum[j] = the column's sum of codes. Runs only where i8_vnni_usable().
void qg_pack_i8_vnni(const QgCodes& s, int64_t j0, int64_t kq, int8_t* panel, int32_t* colsum);

// The streaming integer path of small groups (int8 / int4 codes, AVX512-VNNI): for i < rows <= 4, j < 64, adds to
// t[i * ldt + j] (from 0 if start) sum over p in [p0, p0 + 4 kq) of (a[i * kp + p - p0] - 128) * (code(p, j0 + j) + B),
// wrapping mod 2^32, with B = 128 (int8) or 8 (int4) and a the int8.hpp packed rows from column p0 (a is 128 past k,
// a product of 0). The caller subtracts B * sum_p (a - 128). Runs only where i8_vnni_usable(). pair (int4, rows <=
// kQgStreamPairRows, pair_at(j0)): j < 128, two whole panels a pass; t holds an internal layout between the calls of
// one sum (only this function reads it) until the one with `finish`.
void qg_stream_i8_vnni(const QgCodes& s, int64_t j0, int64_t p0, int64_t kq, const uint8_t* a, int64_t kp, int rows,
                       int32_t* t, int64_t ldt, bool start, bool pair = false, bool finish = true);

// moe_quantized_gmm without the call lock (for the calls that compose it: ffn_quant.cpp).
// bf16_layer: a bfloat16 layer's weight-only product, as QuantizedGmm in bf16 rounds it (float rows of bf16 values,
// int8 / int4 codes): out = bf16(bf16(P) * bf16(s)) with P the unscaled product and s the column's scale; small
// groups of int4 codes may stream through qg_stream_dpbf16.
moe_status_t quantized_gmm_run(moe_weight_format_t format, const void* lhs, int lhs_int, const float* lhs_scales,
                               const void* codes, const void* scales, const int32_t* group_sizes, int64_t m, int64_t k,
                               int64_t n, int64_t num_groups, float* out, bool bf16_layer = false);
// The integer path from rows already packed (int8.hpp's layout, kp a multiple of 4, in int8 range) with their scales;
// int8 / int4 codes; off: the groups' row offsets (checked by the caller).
void quantized_gmm_packed(moe_weight_format_t format, const uint8_t* a8, int64_t kp, const float* lhs_scales,
                          const void* codes, const void* scales, const std::vector<int64_t>& off, int64_t m, int64_t k,
                          int64_t n, float* out);
// Where quantized_gmm_packed_glu quantizes its output rows (qg_quantize_row: a8 [m, kp], scales [m]); ok[r] = 0 where
// row r was not finite (nothing written for it).
struct GluQuant {
  int bits;
  int64_t kp;
  uint8_t* a8;
  float* scales;
  uint8_t* ok;
};
// The same for a GLU pair sharing its rows (wi0 and wi1 of the served FFN): out = glu(rows @ wi0 + b0, rows @ wi1 + b1)
// row by row (IsaUnit::glu_fwd), the products never stored, then out's rows quantized into quant: the same bits as the
// two products, add_group_bias, glu_fwd_all and qg_quantize_row per row.
void quantized_gmm_packed_glu(moe_weight_format_t format, const uint8_t* a8, int64_t kp, const float* lhs_scales,
                              const void* codes0, const void* scales0, const void* codes1, const void* scales1,
                              const float* b0, const float* b1, moe_activation_t act, float limit,
                              const std::vector<int64_t>& off, int64_t m, int64_t k, int64_t n, float* out,
                              const GluQuant& quant);

// The same GLU pair over float rows a [m, k] (the served weight-only FFN): out = glu(a @ wi0 + b0, a @ wi1 + b1), the
// bits of two moe_quantized_gmm calls, add_group_bias and glu_fwd_all, each item's products kept in its scratch. Rows
// past off.back() are not written. bf16_layer: both products as quantized_gmm_run's bf16_layer, then glu_row_bf16.
void quantized_gmm_float_glu(moe_weight_format_t format, const float* a, const void* codes0, const void* scales0,
                             const void* codes1, const void* scales1, const float* b0, const float* b1,
                             moe_activation_t act, float limit, const std::vector<int64_t>& off, int64_t k, int64_t n,
                             float* out, bool bf16_layer = false);

}  // namespace moe::detail
