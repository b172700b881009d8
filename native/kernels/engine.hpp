// Internal interface of the blocked GEMM engine that serves gmm, tgmm, bmm and the fused FFN: the problem descriptor
// that the baseline units build (gemm.cpp, ffn_stages.cpp) and engine.cpp splits into work items, and the interface
// of the ISA units (isa_scalar.cpp, isa_avx2.cpp, isa_avx512.cpp with isa_avx512bf16.cpp and isa_amx.cpp) that run
// one item. Plain structs and declarations only (see internal.hpp).
#pragma once

#include <cstdint>

#include "internal.hpp"

namespace moe::detail {

// Weights' element type: fp32, bf16 bits, or fp32 read rounded to bf16 (F32R: a bfloat16 layer's fp32 weights;
// rows mode with row-major weights only).
enum class BElem : int { F32 = 0, BF16 = 1, F32R = 2 };

// How a work item multiplies: fp32 fma, bf16 pairs (vdpbf16ps) or AMX tiles. bf16-widen is Mul::F32 with
// bf16 B (widened while packing).
enum class Mul : int { F32 = 0, DPBF16 = 1, AMX = 2 };

enum class EpiKind : int { Store, GluFwd, GluBwd };

// The epilogue of a work item: what happens to its finished C block (cbuf) of mb x nb per half.
//   Store   out[h][orow * ldo + j] = C_h + bias[h][g * n + j] (bias optional)
//   GluFwd  h0 = C_0 + bias[0], h1 = C_1 + bias[1]; out[0] = act = glu(h0, h1); h_out[0|1] = h0|h1 (optional)
//   GluBwd  (C_0 = d_act) out[0] = dh0, out[1] = dh1 from h_in[0] = h0, h_in[1] = h1 (row r, same ld)
// orow: the row r (rows mode) or g * m + i (tgmm mode).
struct GemmEpilogue {
  EpiKind kind = EpiKind::Store;
  float* out[2] = {nullptr, nullptr};
  int64_t ldo = 0;
  const float* bias[2] = {nullptr, nullptr};
  float* h_out[2] = {nullptr, nullptr};
  const float* h_in[2] = {nullptr, nullptr};
  moe_activation_t act = MOE_ACT_LINEAR;
  float limit = 0.0f;
};

// A grouped GEMM with a fused operand gather, up to two B matrices side by side (halves, sharing A) and up
// to two contraction segments, in one of two modes:
//   rows (tgmm == false): for group g with rows [off[g], off[g + 1]), C_g[i, j] over i < m_g, j < n:
//       A(i, p) = a[s][arow(off[g] + i) * lda + p'],  B_h(p, j) = W(p', j) of b[h][s] + g * bgstride,
//       where p runs over segment 0 (p' = p < k[0]) then segment 1 (p' = p - k[0] < k[1]);
//       W(p, j) = w[p * ldb + j], or w[j * ldb + p] when btrans.
//   tgmm: C_g[i, j] over i < m, j < n, contraction over the group's rows p:
//       A(i, p) = a[0][arow(off[g] + p) * lda + i],  B_h(p, j) = b[h][0][(off[g] + p) * ldb + j] (fp32).
// arow(r) = arow[r], or r when arow is NULL.
struct GemmProblem {
  bool tgmm = false;
  const int64_t* off = nullptr;  // groups + 1 row offsets
  int64_t groups = 0;
  int64_t m = 0;  // tgmm: rows of each C_g
  int64_t n = 0;  // columns per half
  int halves = 1;
  int64_t k[2] = {0, 0};  // rows mode: contraction segment lengths
  const float* a[2] = {nullptr, nullptr};
  // bf16 copy of a[0] (same layout, round to nearest even as the packing would), used by the bf16-pair multiply kinds
  // instead of converting each tile (rows mode, one segment); NULL: convert while packing.
  const uint16_t* a16 = nullptr;
  int64_t lda = 0;
  const int32_t* arow = nullptr;
  const void* b[2][2] = {{nullptr, nullptr}, {nullptr, nullptr}};  // [half][segment]
  BElem belem = BElem::F32;
  bool btrans = false;
  int64_t ldb = 0;
  int64_t bgstride = 0;
  GemmEpilogue epi;
  Mul mul = Mul::F32;
  bool stream_small = false;  // rows mode, row-major weights, one segment: small groups stream their weights
};

// One work item: rows [i0, i0 + mb) and columns [j0, j0 + nb) (of every half) of group g's C, contraction blocks of
// at most kc (the blocking's). `stream`: the weight-streaming kernel (mb <= the unit's stream_rows, whole group).
struct GemmItem {
  int64_t g, i0, mb, j0, nb;
  bool stream;
  int64_t kc;
};

#ifndef MOE_STREAM_ROWS
#define MOE_STREAM_ROWS 4
#endif
constexpr int64_t kStreamRows = MOE_STREAM_ROWS;
// Groups of at most this many rows stream the weights through the AVX-512 unit's blocked kernel with the fp32
// multiply, and at most kPairStreamRows with the bf16-pair kinds (whose packed path rounds A to bf16 and runs twice
// the fp32 rate: at T=256 of the bench shape, groups of about 32 rows, streaming them took 1.39x the time). 192 rather
// than 48 since the fp32 streaming kernel's chunks of 12 rows: paired A/B on Zen 5, same bits, fp32 weights at T=512
// (groups of about 64 rows) 0.795x the time, T=1024 0.942x, T=1536 1.004x, T=2048 1.004x; every group streamed at
// T=1536 0.986x, T=2048 1.031x, the bench shape (T=4096) 1.039x; bf16 weights widened to fp32 at T=512 0.884x, T=1024
// 0.993x.
#ifndef MOE_BLK_STREAM_ROWS
#define MOE_BLK_STREAM_ROWS 192
#endif
constexpr int64_t kBlkStreamRows = MOE_BLK_STREAM_ROWS;
#ifndef MOE_PAIR_STREAM_ROWS
#define MOE_PAIR_STREAM_ROWS 16
#endif
constexpr int64_t kPairStreamRows = MOE_PAIR_STREAM_ROWS;
// Groups of at most this many row tiles take whole weight rows (engine.cpp, engine_block.inc's item_kc): at T=256 of
// the bench shape (groups of about 32 rows) 3 and 5 ran 0.94x the time of 1 in paired A/B on Zen 4.
#ifndef MOE_WIDE_TILES
#define MOE_WIDE_TILES 4
#endif
constexpr int64_t kWideTiles = MOE_WIDE_TILES;

// Whether rows `floats` floats apart are a multiple of 4 KiB apart: a register tile's 12 such rows fall in one set of
// an 8-way L1 (ffn_stages.hpp pads our own buffers off such strides; engine_block.inc copies a caller's).
inline bool rows_4k_apart(int64_t floats) { return floats > 0 && (floats * 4) % 4096 == 0; }

// Blocking of one multiply kind: mr x nr register (or tile) block, kc contraction block, mc x nc item.
struct GemmBlocking {
  int mr, nr, kc, mc, nc, kg;  // kg: contraction granularity of packed operands (zero padded)
  int tmc, tnc;                // mc, nc of tgmm items (their packed A block is mc x kc, not mr x kc)
};

// What the blocking model needs of a multiply kind: its register tile, contraction granularity and the bytes of a
// packed A and B element.
struct TileShape {
  int mr, nr, kg, a_bytes, b_bytes;
};

// The caches of one core, in bytes (cpu_features.cpp).
struct CacheSizes {
  int64_t l1d, l2, l3;
};
CacheSizes cache_sizes();
// The processor's brand string, "" where unknown (cpu_features.cpp).
const char* cpu_brand();

// Block sizes of tile shape t from caches c (blocking.cpp states the model).
GemmBlocking blocking_model(const CacheSizes& c, const TileShape& t);
// The blocking an ISA unit uses for one multiply kind: the model's for this machine's caches, with the values that
// moe_set_blocking set for that ISA and kind in their place (blocking.cpp).
GemmBlocking blocking_for(moe_isa_t isa, Mul mul, const TileShape& t);

// One ISA unit (isa_<isa>.cpp: engine_block.inc compiled for that ISA with its register tiles): its blocking per
// multiply kind, and the functions that size and run one work item.
struct IsaUnit {
  moe_isa_t isa;
  GemmBlocking (*blocking)(Mul mul);
  // Scratch floats (64-byte aligned) one item needs.
  int64_t (*scratch_floats)(const GemmProblem& p, const GemmItem& it);
  void (*run_item)(const GemmProblem& p, const GemmItem& it, float* scratch);
  // Elementwise GLU over n values (the epilogue's row functions).
  void (*glu_fwd)(const float* h0, const float* h1, int64_t n, const float* b0, const float* b1,
                  moe_activation_t act, float limit, float* out, float* h0_out, float* h1_out);
  void (*glu_bwd)(const float* d_act, const float* h0, const float* h1, int64_t n, moe_activation_t act,
                  float limit, float* dh0, float* dh1);
  // A bf16 layer's GLU over one row (bf16_acts.cpp's rounding points; h0, h1 rounded and biased in place); NULL, or
  // false for an activation it leaves to bf16_acts.cpp's generic pass.
  bool (*glu_fwd_bf16)(float* h0, float* h1, int64_t n, const float* b0, const float* b1, moe_activation_t act,
                       float limit, float* out);
  // One batch entry of a thin fp32 matmul, out[m x n] = a[m x k] @ b[k x n] (engine_block.inc's bmm_thin).
  void (*bmm_thin)(const float* a, const float* b, int64_t m, int64_t k, int64_t n, float* out);
  // The most rows of a group that the streaming kernel takes with the fp32 multiply (GemmProblem::stream_small).
  int64_t stream_rows;
};

const IsaUnit& isa_unit_scalar();
// The unit of the active ISA (engine.cpp).
const IsaUnit& active_isa_unit();
// Rows mode, one half, one segment, fp32 multiply, Store with ldo = n (out and bias unset): C_g = A_g @ W_g over the
// rows of group g (off: groups + 1 offsets), A rows contiguous (lda = k), W_g = w + g * k * n stored [k, n], or
// [n, k] read transposed (btrans) (engine.cpp).
GemmProblem rows_problem(const int64_t* off, int64_t groups, int64_t k, int64_t n, const float* a, const void* w,
                         BElem be, bool btrans);
// Runs every work item of P on the pool with the active unit (engine.cpp).
void run_problem(const GemmProblem& P);
// Splits `len` into ceil(len / max) blocks of equal size rounded up to `align` (the last one shorter).
int64_t block_size(int64_t len, int64_t max, int64_t align);
#if defined(MOE_HAVE_X86_KERNELS)
const IsaUnit& isa_unit_avx2();
const IsaUnit& isa_unit_avx512();
// Probes (isa_avx512.cpp, isa_avx512bf16.cpp, isa_amx.cpp): `seconds` of register-only work on the calling thread;
// return the flops done.
double probe_fma_avx512(double seconds);
// out[i] = exp(x[i]) (sigmoid: 1 / (1 + exp(-x)), as e / (1 + e) below 0) for i < n, each in double and rounded once
// to float32, over 8 lanes (isa_avx512.cpp). Lanes whose x is not finite or whose exp leaves double's normal range
// are left to `scalar`, which gets their index.
void unary_f64_avx512(const float* x, float* out, int64_t n, bool sigmoid, void (*scalar)(const float*, float*, int64_t));
// y = sum over k < K (K >= 1) of w[k] * src[k], ascending k, a product then a sum per element as combine_fwd
// (isa_avx512.cpp).
void combine_row_avx512(const float* const* src, const float* w, int64_t K, int64_t D, float* y);
// moe_adamw_f32's update of elements [0, n) over 16 lanes: the same IEEE operations per element in the same order,
// no product contracted into an fma (isa_avx512.cpp).
void adamw_avx512(float* p, const float* g, float* m, float* v, int64_t n, const moe_adamw_t& c);
// top_k of one row as routing.cpp's topk_row (larger first, equal values by lower index) for n <= 512 without NaN;
// false otherwise, having written nothing (isa_avx512.cpp).
bool topk_row_avx512(const float* x, int64_t n, int64_t k, float* vals, int32_t* ids);
// Weight rows per block of the AVX-512 unit's blocked stream (isa_avx512.cpp, run_stream_blk_t) for a group of `rows`
// rows whose weight rows are row_bytes apart.
int64_t stream_block_rows_avx512(int64_t rows, int64_t row_bytes);
double probe_fma_avx2(double seconds);  // isa_avx2.cpp
double probe_dpbf16(double seconds);
double probe_amx(double seconds);
// Enables AMX tile data for this process (Linux arch_prctl); true when AMX can be used.
bool amx_enable();
// fp32 -> bf16 (round to nearest even with vcvtne2ps2bf16, exactly as the bf16 packing; isa_avx512bf16.cpp).
void to_bf16_avx512bf16(const float* src, int64_t n, uint16_t* dst);
// The same into n <= npad slots, zero padded (the AMX unit's A packing).
void to_bf16_padded_avx512bf16(const float* src, int64_t n, int64_t npad, uint16_t* dst);
#endif

// CPU features beyond isa.cpp's (cpu_features.cpp). fast_dpbf16: vdpbf16ps outruns fp32 fma (AMD cores).
bool cpu_has_avx512_bf16();
bool cpu_has_amx_bf16();
bool cpu_has_fast_dpbf16();
// Bytes of one core's L2 data cache (cache_sizes().l2).
int64_t cache_l2_bytes();

// The bf16 path in use now, and the multiply kind it gives weights of element type e (bf16_path.cpp).
moe_bf16_path_t effective_bf16_path();
Mul mul_for(BElem e);

}  // namespace moe::detail
