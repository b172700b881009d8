// The grouped matmul over quantized weights (moe_quantized_gmm, baseline code): argument checks, the work items, the
// scale blocks, and the portable decode and tiles; the AVX-512 decode, tile and VNNI packing of int codes are
// isa_avx512_qgmm.cpp's (qgmm.hpp describes both paths).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "api_util.hpp"
#include "engine.hpp"
#include "ffn_stages.hpp"
#include "int8.hpp"
#include "qgmm.hpp"
#include "workspace.hpp"

namespace moe::detail {
namespace {

#include "widen.inc"

constexpr int64_t kQgBlockRows = 128;  // rows of one work item
// int4 codes on the VNNI stream: two panels a pass (run_int_stream); 0 for one, as int8 codes
#ifndef MOE_QG_I4_PAIRS
#define MOE_QG_I4_PAIRS 1
#endif
// rows of one work item of the integer tiles: the panel of codes is packed once per item (1024 rather than 128: the
// int8 GMM at the bench shape 0.90x the time, paired A/B on Zen 4)
#ifndef MOE_QG_INT_ROWS
#define MOE_QG_INT_ROWS 1024
#endif
constexpr int64_t kQgIntRows = MOE_QG_INT_ROWS;
constexpr int64_t kQgSpan = 8192;      // rows x columns of one float work item (its partial sums and accumulators)
// Scratch floats of run_float_item: the decoded panel (kQgKc x 64), part and acc (kQgSpan each), the column scales,
// and the panel's bf16 pairs (Problem::dpbf16).
constexpr int64_t kQgFloatScratch = kQgKc * kQgCols + 3 * kQgSpan + kQgKc / 2 * kQgCols;
// Streaming (qgmm.hpp): groups of at most this many rows (int8 / int4 codes, AVX-512), and the rows of k per chunk:
// short chunks, so that a span reads a band of whole rows of codes at a time (the kernels prefetch the next chunk's
// rows into the L1; longer chunks, 64 or 256, read int8 codes at half the speed at the decode shape); a tile's second
// pass over a chunk of one panel reads it from L1. Codes in tiles stream a tile (kQgTileK rows) per chunk: one
// sequential read of 4 KiB (tiles of 64 rows rather than 32: the decode-shape GMM 0.99x the time for int8, 0.93-0.96x
// for int4, paired on Zen 5: half the calls per byte).
constexpr int64_t kQgStreamRows = 12;     // float lhs: two tiles of 6
constexpr int64_t kQgStreamRowsInt = 8;   // int lhs: two tiles of 4 (VNNI)
#ifndef MOE_QG_STREAM_KC
#define MOE_QG_STREAM_KC 32
#endif
constexpr int kQgStreamKc = MOE_QG_STREAM_KC;

// float8_e4m3fn and e2m1 values (prims/quantized-gmm.ts: e4m3Value, FP4_VALUES with the sign bit 8).
struct Tables {
  float e4m3[256];
  float e2m1[16];
  Tables() {
    for (int c = 0; c < 256; ++c) {
      const int e = (c >> 3) & 15, m = c & 7;
      const float v = e == 15 && m == 7 ? std::numeric_limits<float>::quiet_NaN()
                      : e == 0         ? std::ldexp(float(m), -9)
                                       : std::ldexp(float(8 + m), e - 10);
      e4m3[c] = (c & 128) != 0 ? -v : v;
    }
    const float fp4[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    for (int c = 0; c < 16; ++c) e2m1[c] = c >= 8 ? -fp4[c - 8] : fp4[c];
  }
};
const Tables& tables() {
  static const Tables t;
  return t;
}

inline int nibble_i4(uint8_t byte, int64_t odd) {
  const int v = (byte >> (odd * 4)) & 0xf;
  return v >= 8 ? v - 16 : v;
}

// The code of (p, j) decoded; j < n.
inline float code_at(const QgCodes& s, int64_t p, int64_t j) {
  switch (s.fmt) {
    case MOE_WF_INT8:
      return float(int8_t(*codes_at(s, p, j)));
    case MOE_WF_INT4:
      return float(nibble_i4(*codes_at(s, p, j), j & 1));
    case MOE_WF_FP8_E4M3:
      return tables().e4m3[s.c[j * s.k + p]];
    case MOE_WF_MXFP4:
      return tables().e2m1[(s.c[j * (s.k / 2) + (p >> 1)] >> ((p & 1) * 4)) & 0xf];
    case MOE_WF_INT8_TILES:
    case MOE_WF_INT4_TILES:
      break;  // never: QgCodes holds the codes' format (code_format)
  }
  return 0.0f;
}

void qg_decode_scalar(const QgCodes& s, int64_t j0, int64_t p0, int kc, float* panel) {
  const int cols = int(std::min<int64_t>(kQgCols, s.n - j0));
  for (int p = 0; p < kc; ++p) {
    float* d = panel + p * kQgCols;
    for (int j = 0; j < cols; ++j) d[j] = code_at(s, p0 + p, j0 + j);
    for (int j = cols; j < kQgCols; ++j) d[j] = 0.0f;
  }
}

void qg_tile_scalar(const float* a, int64_t lda, int rows, const float* panel, int kc, float* part, int64_t ldc,
                    bool start, bool finish, const float* row_scale, const float* col_scale, float* acc) {
  for (int i = 0; i < rows; ++i) {
    float s[kQgCols];
    for (int j = 0; j < kQgCols; ++j) s[j] = start ? 0.0f : part[i * ldc + j];
    for (int p = 0; p < kc; ++p) {
      const float x = a[i * lda + p];
      const float* b = panel + p * kQgCols;
      for (int j = 0; j < kQgCols; ++j) s[j] += x * b[j];
    }
    for (int j = 0; j < kQgCols; ++j) {
      if (finish) {
        acc[i * ldc + j] = s[j] * (row_scale[i] * col_scale[j]) + acc[i * ldc + j];  // fused or not: the compiler's choice
      } else {
        part[i * ldc + j] = s[j];
      }
    }
  }
}

// The int8 / int4 codes of a panel as int8.hpp's B panel, with plain loops.
void qg_pack_i8_scalar(const QgCodes& s, int64_t j0, int64_t kq, int8_t* panel, int32_t* colsum) {
  const int64_t cols = std::min<int64_t>(kQgCols, s.n - j0);
  for (int64_t j = 0; j < kQgCols; ++j) {
    int32_t sum = 0;
    for (int64_t p = 0; p < 4 * kq; ++p) {
      const int v = j < cols && p < s.k ? int(code_at(s, p, j0 + j)) : 0;
      panel[((p / 4) * kQgCols + j) * 4 + p % 4] = int8_t(v);
      sum += v;
    }
    colsum[j] = sum;
  }
}

struct Item {
  int64_t g, j0, r0, rows, cols;  // cols: a multiple of 64 (the float path's span) or 64 (the int path)
  int64_t blk;                    // the items of the same rows share it (their spans of columns make those rows)
};

struct Glu;

struct Problem {
  QgCodes codes;  // c: group 0
  int64_t group_bytes, k, n, bk;
  const float* a = nullptr;       // float path: lhs rows (lda = k)
  const uint8_t* a8 = nullptr;    // int path: packed rows (int8.hpp)
  int64_t kp = 0;
  const float* lhs_scales = nullptr;
  const float* scales = nullptr;  // int8 / int4 / fp8
  const uint8_t* e8m0 = nullptr;  // mxfp4
  float* out = nullptr;
  std::vector<Item> items;
  bool integer = false, avx512 = false, vnni = false;
  // float path: rows of bf16 values, int8 / int4 codes, AVX512_BF16: vdpbf16ps (int4 streams: qg_stream_dpbf16;
  // groups of more rows: qg_tile_dpbf16 on a_pairs, a's rows as bf16 pairs, lda_pairs apart)
  bool dpbf16 = false;
  const uint32_t* a_pairs = nullptr;
  int64_t lda_pairs = 0;
  bool bf16_out = false;  // a bfloat16 layer's product (quantized_gmm_run's bf16_layer): unscaled, then scaled in bf16
  Glu* glu = nullptr;  // integer path: the second product of a GLU pair and its epilogue
  // Group g's codes (codes, with c at its first byte).
  QgCodes group(int64_t g) const {
    QgCodes s = codes;
    s.c += g * group_bytes;
    return s;
  }
};

struct Glu {
  const Problem* P1;  // wi1's codes and scales (the problem's own: wi0's)
  const float *b0, *b1;  // [groups, n] or null
  moe_activation_t act;
  float limit;
  float* out;  // [m, n]
  const GluQuant* quant;
  std::unique_ptr<std::atomic<int64_t>[]> left;  // per item block: its items not yet run
};

// Row r of out [., n] quantized as GluQuant says.
void quantize_out_row(const GluQuant& q, const float* out, int64_t n, int64_t r) {
  q.ok[r] = qg_quantize_row(out + r * n, n, q.kp, q.bits, q.a8 + r * q.kp, q.scales + r) ? 1 : 0;
}

// The scales of block b of columns [j0, j0 + 64) (0 past n).
void block_scales(const Problem& P, int64_t g, int64_t b, int64_t j0, float* s) {
  const int64_t cols = std::min<int64_t>(kQgCols, P.n - j0);
  if (P.bf16_out) {  // the unscaled product
    std::fill(s, s + cols, 1.0f);
    std::fill(s + cols, s + kQgCols, 0.0f);
    return;
  }
  if (P.codes.fmt == MOE_WF_INT8 || P.codes.fmt == MOE_WF_INT4) {  // one scale per column: a copy (1.4% of a decode step)
    std::memcpy(s, P.scales + g * P.n + j0, size_t(cols) * sizeof(float));
    std::fill(s + cols, s + kQgCols, 0.0f);
    return;
  }
  for (int64_t j = 0; j < kQgCols; ++j) {
    const int64_t col = j0 + j;
    if (j >= cols) {
      s[j] = 0.0f;
    } else if (P.codes.fmt == MOE_WF_FP8_E4M3) {
      s[j] = P.scales[(g * ((P.n + 127) / 128) + (col >> 7)) * ((P.k + 127) / 128) + b];
    } else {  // mxfp4
      const int e = P.e8m0[(g * P.n + col) * (P.k / 32) + b];
      s[j] = e == 255 ? std::numeric_limits<float>::quiet_NaN() : std::ldexp(1.0f, e - 127);
    }
  }
}

// Where an item's float products go: row i, column j of the item at o[i * ld + j].
struct Dst {
  float* o;
  int64_t ld;
};

// An item of the float path with C's codes and scales (P's own, or its GLU pair's) into d.
void run_float_item(const Problem& P, const Problem& C, const Item& it, float* scratch, Dst d) {
  const int64_t W = it.cols;                        // row stride of part and acc
  float* panel = scratch;                           // kQgKc x 64
  float* part = panel + kQgKc * kQgCols;            // rows x W
  float* acc = part + kQgSpan;                      // rows x W
  float* col_scale = acc + kQgSpan;                 // W
  auto* panel_pairs = reinterpret_cast<uint32_t*>(col_scale + kQgSpan);  // kQgKc / 2 x 64
  float ones[kQgTile] = {1, 1, 1, 1, 1, 1};
  std::fill(acc, acc + it.rows * W, 0.0f);
  const QgCodes s = C.group(it.g);
#if defined(MOE_HAVE_X86_KERNELS)
  const QgTileFn tile = P.avx512 ? qg_tile_avx512 : qg_tile_scalar;
  const QgDecodeFn decode = P.avx512 ? qg_decode_avx512 : qg_decode_scalar;
  const bool stream = P.avx512 && it.rows <= kQgStreamRows && (s.fmt == MOE_WF_INT8 || s.fmt == MOE_WF_INT4);
  const auto stream_fn = P.dpbf16 && s.fmt == MOE_WF_INT4 ? qg_stream_dpbf16 : qg_stream_avx512;
  const bool dp_tile = P.dpbf16 && !stream;
#else
  const QgTileFn tile = qg_tile_scalar;
  const QgDecodeFn decode = qg_decode_scalar;
  const bool stream = false;
#endif
  const int64_t j1 = std::min(P.n, it.j0 + W), step = !stream ? kQgKc : s.tiled ? kQgTileK : kQgStreamKc;
  const bool pairs = stream && s.fmt == MOE_WF_INT4 && it.rows <= kQgStreamPairRows;  // two whole panels a pass
  for (int64_t pb = 0; pb < P.k; pb += P.bk) {
    const int64_t pe = std::min(P.k, pb + P.bk);
    for (int64_t j = it.j0; j < j1; j += kQgCols) block_scales(C, it.g, pb / P.bk, j, col_scale + (j - it.j0));
    for (int64_t pc = pb; pc < pe; pc += step) {
      const int kc = int(std::min<int64_t>(step, pe - pc));
#if defined(MOE_HAVE_X86_KERNELS)
      if (stream && it.rows <= kQgTile) {  // one tile of rows: every panel in one call
        const float* rs = P.lhs_scales != nullptr ? P.lhs_scales + it.r0 : ones;
        stream_fn(s, it.j0, j1, pairs, pc, P.a + it.r0 * P.k + pc, P.k, int(it.rows), kc, part, W, pc == pb,
                  pc + kc == pe, rs, col_scale, acc);
        continue;
      }
#endif
      // the chunk's rows of codes, panel by panel (streamed int4: two whole panels at a time for the fewest rows)
      for (int64_t j = it.j0, np = 1; j < j1; j += np * kQgCols) {
        np = pairs && pair_at(s, j, j1) ? 2 : 1;
#if defined(MOE_HAVE_X86_KERNELS)
        if (dp_tile && s.fmt == MOE_WF_INT4) {
          qg_decode_pairs_int4(s, j, pc, kc, panel_pairs);
        } else if (!stream) {
          decode(s, j, pc, kc, panel);
          if (dp_tile) qg_pair_panel_dpbf16(panel, kc, panel_pairs);
        }
#else
        if (!stream) decode(s, j, pc, kc, panel);
#endif
        for (int64_t i = 0; i < it.rows; i += kQgTile) {
          const int rows = int(std::min<int64_t>(kQgTile, it.rows - i));
          const int64_t r = it.r0 + i, c = i * W + (j - it.j0);
          const float* rs = P.lhs_scales != nullptr ? P.lhs_scales + r : ones;
#if defined(MOE_HAVE_X86_KERNELS)
          if (dp_tile) {
            qg_tile_dpbf16(P.a_pairs + r * P.lda_pairs + pc / 2, P.lda_pairs, rows, panel_pairs, (kc + 1) / 2, part + c, W,
                           pc == pb, pc + kc == pe, rs, col_scale + (j - it.j0), acc + c);
            continue;
          }
          if (stream) {
            stream_fn(s, j, std::min(j1, j + np * kQgCols), np == 2, pc, P.a + r * P.k + pc, P.k, rows, kc, part + c,
                      W, pc == pb, pc + kc == pe, rs, col_scale + (j - it.j0), acc + c);
            continue;
          }
#endif
          tile(P.a + r * P.k + pc, P.k, rows, panel, kc, part + c, W, pc == pb, pc + kc == pe, rs,
               col_scale + (j - it.j0), acc + c);
        }
      }
    }
  }
  if (!C.bf16_out) {
    for (int64_t i = 0; i < it.rows; ++i) std::memcpy(d.o + i * d.ld, acc + i * W, size_t(j1 - it.j0) * sizeof(float));
    return;
  }
  const float* cs = C.scales + it.g * P.n + it.j0;  // QuantizedGmm in bf16: bf16(bf16(P) * bf16(s))
  for (int64_t i = 0; i < it.rows; ++i) {
#if defined(MOE_HAVE_X86_KERNELS)
    if (P.avx512) {
      qg_scale_bf16_avx512(acc + i * W, cs, j1 - it.j0, d.o + i * d.ld);
      continue;
    }
#endif
    for (int64_t j = 0; j < j1 - it.j0; ++j) {
      d.o[i * d.ld + j] = round_bf16(float(double(round_bf16(acc[i * W + j])) * double(round_bf16(cs[j]))));
    }
  }
}

// A small group on VNNI (qg_stream_i8_vnni): a span of panels, chunk by chunk of k, into int32 sums t (rows x W),
// then the same epilogue as run_int_item with the codes' bias taken out. C: the codes and scales (P or P's GLU pair).
void run_int_stream(const Problem& P, const Problem& C, const Item& it, float* scratch, Dst d) {
  const int64_t W = it.cols, kq = P.kp / 4, kqc = (C.codes.tiled ? kQgTileK : kQgStreamKc) / 4;
  auto* t = reinterpret_cast<int32_t*>(scratch);  // rows x W
  float* col_scale = scratch + kQgSpan;           // W
  const QgCodes s = C.group(it.g);
  const int64_t j1 = std::min(P.n, it.j0 + W);
  // int4 codes: two panels a pass (qg_stream_i8_vnni's pair), in rows of at most kQgStreamPairRows (the second
  // reading the codes from the L1)
  const bool pairs = s.fmt == MOE_WF_INT4 && MOE_QG_I4_PAIRS;
  for (int64_t q0 = 0; q0 < kq; q0 += kqc) {
    for (int64_t j = it.j0, np = 1; j < j1; j += np * kQgCols) {
      np = pairs && pair_at(s, j, j1) ? 2 : 1;
      const int64_t step = np == 2 ? kQgStreamPairRows : kI8TileRows;
      for (int64_t i = 0; i < it.rows; i += step) {
        const int rows = int(std::min<int64_t>(step, it.rows - i));
        qg_stream_i8_vnni(s, j, 4 * q0, std::min(kqc, kq - q0), P.a8 + (it.r0 + i) * P.kp + 4 * q0, P.kp, rows,
                          t + i * W + (j - it.j0), W, q0 == 0, np == 2, q0 + kqc >= kq);
      }
    }
  }
  for (int64_t j = it.j0; j < j1; j += kQgCols) block_scales(C, it.g, 0, j, col_scale + (j - it.j0));
  const uint32_t bias = P.codes.fmt == MOE_WF_INT8 ? 128u : 8u;
  for (int64_t i = 0; i < it.rows; ++i) {
    const uint8_t* a = P.a8 + (it.r0 + i) * P.kp;
    uint32_t sum = 0;  // sum of the row's values (mod 2^32 like the sums)
    for (int64_t p = 0; p < P.kp; ++p) sum += uint32_t(int32_t(a[p]) - 128);
    const float sl = P.lhs_scales[it.r0 + i];
    float* o = d.o + i * d.ld;
    for (int64_t j = 0; j < j1 - it.j0; ++j) {
      const int32_t v = int32_t(uint32_t(t[i * W + j]) - bias * sum);
      o[j] = float(v) * (sl * col_scale[j]) + 0.0f;  // as run_int_item
    }
  }
}

// One panel of C's codes packed (int8.hpp's B layout) with its column sums and scales, for the integer tiles.
struct IntPanel {
  int8_t* panel;
  int32_t* colsum;
  float* col_scale;
};

// Carves an IntPanel for kq k-quads out of scratch; returns the floats it took.
int64_t int_panel_at(float* scratch, int64_t kq, IntPanel& p) {
  p.panel = reinterpret_cast<int8_t*>(scratch);                   // kq x 256 bytes
  p.colsum = reinterpret_cast<int32_t*>(scratch + kq * kQgCols);  // 64
  p.col_scale = scratch + kq * kQgCols + kQgCols;                 // 64
  return kq * kQgCols + 2 * kQgCols;
}

void pack_int_panel(const Problem& P, const Problem& C, const Item& it, const IntPanel& p) {
  const QgCodes s = C.group(it.g);
  if (P.vnni) {
    qg_pack_i8_vnni(s, it.j0, P.kp / 4, p.panel, p.colsum);
  } else {
    qg_pack_i8_scalar(s, it.j0, P.kp / 4, p.panel, p.colsum);
  }
  block_scales(C, it.g, 0, it.j0, p.col_scale);
}

// Rows [i, i + rows) of the item (rows <= kI8TileRows) against a packed panel, as floats into d (row 0 = item row i).
void int_tile(const Problem& P, const Item& it, const IntPanel& p, int64_t i, int rows, int cols, int32_t* tile, Dst d) {
  const int64_t kq = P.kp / 4;
  const uint8_t* a = P.a8 + (it.r0 + i) * P.kp;
  if (P.vnni) {
    i8_tile_vnni_scaled(a, P.kp, rows, p.panel, kq, p.colsum, P.lhs_scales + it.r0 + i, p.col_scale, d.o, d.ld, cols);
    return;
  }
  i8_tile_scalar(a, P.kp, rows, p.panel, kq, tile, kQgCols, kQgCols);
  for (int r = 0; r < rows; ++r) {
    const float sl = P.lhs_scales[it.r0 + i + r];
    float* o = d.o + r * d.ld;
    for (int j = 0; j < cols; ++j) o[j] = float(tile[r * kQgCols + j]) * (sl * p.col_scale[j]) + 0.0f;  // one rounding; -0 becomes +0 as the float64 sum
  }
}

void run_int_item(const Problem& P, const Item& it, float* scratch) {
  IntPanel p;
  auto* tile = reinterpret_cast<int32_t*>(scratch + int_panel_at(scratch, P.kp / 4, p));  // kI8TileRows x 64
  pack_int_panel(P, P, it, p);
  const int cols = int(std::min<int64_t>(kQgCols, P.n - it.j0));
  for (int64_t i = 0; i < it.rows; i += kI8TileRows) {
    const int rows = int(std::min<int64_t>(kI8TileRows, it.rows - i));
    int_tile(P, it, p, i, rows, cols, tile, {P.out + (it.r0 + i) * P.n + it.j0, P.n});
  }
}

// Rows [i, i + rows) of the item's part of glu.out = glu(h0 + b0, h1 + b1) (IsaUnit::glu_fwd), h0 and h1 holding
// those rows' products (row r at r * ld): the bits of add_group_bias then glu_fwd_all; a bfloat16 layer's
// (P.bf16_out), glu_row_bf16's, which rounds h0 and h1 in place.
void glu_item_rows(const Problem& P, const Item& it, float* h0, float* h1, int64_t ld, int64_t i, int64_t rows) {
  const Glu& G = *P.glu;
  const IsaUnit& isa = active_isa_unit();
  const int64_t cols = std::min(P.n, it.j0 + it.cols) - it.j0;
  const float* b0 = G.b0 == nullptr ? nullptr : G.b0 + it.g * P.n + it.j0;
  const float* b1 = G.b1 == nullptr ? nullptr : G.b1 + it.g * P.n + it.j0;
  for (int64_t r = 0; r < rows; ++r) {
    float* o = G.out + (it.r0 + i + r) * P.n + it.j0;
    if (P.bf16_out) {
      glu_row_bf16(h0 + r * ld, h1 + r * ld, cols, b0, b1, G.act, G.limit, o);
    } else {
      isa.glu_fwd(h0 + r * ld, h1 + r * ld, cols, b0, b1, G.act, G.limit, o, nullptr, nullptr);
    }
  }
}

// The GLU pair's large groups: both panels packed, then tile by tile both products and their GLU (glu_item_rows).
void run_int_glu_tiles(const Problem& P, const Item& it, int cols, float* scratch) {
  IntPanel p0, p1;
  float* rest = scratch + int_panel_at(scratch, P.kp / 4, p0);
  rest += int_panel_at(rest, P.kp / 4, p1);
  float *h0 = rest, *h1 = h0 + kI8TileRows * kQgCols;  // kI8TileRows x 64 each
  auto* tile = reinterpret_cast<int32_t*>(h1 + kI8TileRows * kQgCols);
  pack_int_panel(P, P, it, p0);
  pack_int_panel(P, *P.glu->P1, it, p1);
  for (int64_t i = 0; i < it.rows; i += kI8TileRows) {
    const int rows = int(std::min<int64_t>(kI8TileRows, it.rows - i));
    int_tile(P, it, p0, i, rows, cols, tile, {h0, kQgCols});
    int_tile(P, it, p1, i, rows, cols, tile, {h1, kQgCols});
    glu_item_rows(P, it, h0, h1, kQgCols, i, rows);
  }
}

// The float rows' GLU pair: both products of the item into scratch (never stored in full), then their GLU.
void run_float_glu(const Problem& P, const Item& it, float* scratch) {
  const int64_t cols = std::min(P.n, it.j0 + it.cols) - it.j0;
  float* h0 = scratch + kQgFloatScratch;  // past run_float_item's scratch; rows x cols
  float* h1 = h0 + kQgSpan;
  run_float_item(P, P, it, scratch, {h0, cols});
  run_float_item(P, *P.glu->P1, it, scratch, {h1, cols});
  glu_item_rows(P, it, h0, h1, cols, 0, it.rows);
}

// The GLU pair (P.glu): both products of the item's rows, then act = glu(h0 + b0, h1 + b1) row by row into glu.out;
// the last item of a block of rows quantizes them (GluQuant) while they are in the cache.
void run_int_glu(const Problem& P, const Item& it, float* scratch) {
  const Glu& G = *P.glu;
  const int64_t cols = std::min(P.n, it.j0 + it.cols) - it.j0;
  if (P.vnni && it.rows <= kQgStreamRowsInt) {
    float *h0 = scratch + 2 * kQgSpan, *h1 = h0 + kQgSpan;  // rows x cols each
    run_int_stream(P, P, it, scratch, {h0, cols});
    run_int_stream(P, *G.P1, it, scratch, {h1, cols});
    glu_item_rows(P, it, h0, h1, cols, 0, it.rows);
  } else {
    run_int_glu_tiles(P, it, int(cols), scratch);
  }
  // release: this item's part of the rows written; acquire: the other items'
  if (G.left[size_t(it.blk)].fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  for (int64_t r = it.r0; r < it.r0 + it.rows; ++r) quantize_out_row(*G.quant, G.out, P.n, r);
}

// qg_quantize_row on plain loops: moe_quantize_f32's rule (int8.hpp), packed.
bool qg_quantize_row_scalar(const float* x, int64_t k, int64_t kp, int bits, uint8_t* a8, float* scale) {
  float amax = 0.0f;
  for (int64_t p = 0; p < k; ++p) {
    if (!std::isfinite(x[p])) return false;
    amax = std::max(amax, std::fabs(x[p]));
  }
  const double Qb = std::ldexp(1.0, bits - 1) - 0.5, hi = Qb - 0.5, lo = -hi, mx = double(amax), divisor = mx / Qb;
  *scale = amax == 0.0f ? 1.0f : float(divisor);
  for (int64_t p = 0; p < k; ++p) {
    const double v = amax == 0.0f ? 0.0 : aqt_value(x[p], mx, Qb, divisor);
    a8[p] = uint8_t(int32_t(round_even(std::min(hi, std::max(lo, v)))) + 128);
  }
  std::fill(a8 + k, a8 + kp, uint8_t(128));
  return true;
}

// Rows and columns of one group's codes ([k, n] or [k, ceil(n/2)] for int codes, [n, k] or [n, k/2] for fp8 / mxfp4).
struct CodeDims {
  int64_t h, w;
};
CodeDims code_dims(moe_weight_format_t format, int64_t k, int64_t n) {
  switch (format) {
    case MOE_WF_INT8_TILES:
    case MOE_WF_INT4_TILES:
      return {1, tiled_group_bytes(format == MOE_WF_INT4_TILES, k, n)};
    case MOE_WF_INT8:
      return {k, n};
    case MOE_WF_INT4:
      return {k, (n + 1) / 2};
    case MOE_WF_FP8_E4M3:
      return {n, k};
    default:
      return {n, k / 2};
  }
}

// The problem's codes, scales and output (the lhs is the caller's to set).
Problem make_problem(moe_weight_format_t stored, const void* codes, const void* scales, int64_t k, int64_t n, float* out) {
  Problem P;
  const moe_weight_format_t format = code_format(stored);
  P.codes = {format, static_cast<const uint8_t*>(codes), k, n, tiled_format(stored)};
  const CodeDims cd = code_dims(stored, k, n);
  P.group_bytes = cd.h * cd.w;
  P.k = k;
  P.n = n;
  P.bk = format == MOE_WF_FP8_E4M3 ? 128 : format == MOE_WF_MXFP4 ? 32 : std::max<int64_t>(k, 1);
  P.scales = format == MOE_WF_MXFP4 ? nullptr : static_cast<const float*>(scales);
  P.e8m0 = format == MOE_WF_MXFP4 ? static_cast<const uint8_t*>(scales) : nullptr;
  P.out = out;
  P.avx512 = isa_active() == MOE_ISA_AVX512;
  return P;
}

#if defined(MOE_HAVE_X86_KERNELS)
// P.a_pairs: P's rows as bf16 pairs in workspace slot 4, once per product, where a group takes the pair tile (more rows
// than stream; every item of its columns reads them).
void pair_rows(Problem& P, const std::vector<int64_t>& off) {
  bool tiles = false;
  for (size_t g = 0; g + 1 < off.size(); ++g) tiles = tiles || off[g + 1] - off[g] > kQgStreamRows;
  if (!tiles) return;
  const int64_t R = off.back(), ld = (P.k + 63) / 64 * 32, chunk = 64;
  auto* pairs = static_cast<uint32_t*>(workspace().get(4, std::max<int64_t>(1, R * ld) * 4));
  auto body = [&](int64_t item, int) {
    const int64_t r = item * chunk;
    qg_pair_rows_dpbf16(P.a + r * P.k, P.k, std::min(chunk, R - r), P.k, pairs + r * ld, ld);
  };
  parallel_items((R + chunk - 1) / chunk, double(R * P.k) < kSerialElems, body);
  P.a_pairs = pairs;
  P.lda_pairs = ld;
}
#endif

// A bfloat16 layer's weight-only product over P's float rows (quantized_gmm_run's bf16_layer).
void mark_bf16_layer(Problem& P) {
  P.bf16_out = true;
  P.dpbf16 = P.avx512 && cpu_has_avx512_bf16();
}

// The work items (float path: spans of panels as wide as kQgSpan allows for the item's rows, split evenly over the
// columns) and their run on the pool.
void execute(Problem& P, const std::vector<int64_t>& off) {
#if defined(MOE_HAVE_X86_KERNELS)
  if (P.dpbf16) pair_rows(P, off);
#endif
  const int64_t panels = (P.n + kQgCols - 1) / kQgCols;
  int64_t blk = 0;
  for (int64_t g = 0; g + 1 < int64_t(off.size()); ++g) {
    const int64_t block = P.integer && off[size_t(g) + 1] - off[size_t(g)] > kQgStreamRowsInt ? kQgIntRows : kQgBlockRows;
    for (int64_t r = off[size_t(g)]; r < off[size_t(g) + 1]; r += block, ++blk) {
      const int64_t rows = std::min(block, off[size_t(g) + 1] - r);
      const bool wide = !P.integer || (P.vnni && rows <= kQgStreamRowsInt);  // spans of panels
      const int64_t span_max = wide ? std::max<int64_t>(1, kQgSpan / (rows * kQgCols)) : 1;
      const int64_t spans = (panels + span_max - 1) / span_max, span = (panels + spans - 1) / spans;
      for (int64_t q = 0; q < panels; q += span) {
        P.items.push_back({g, q * kQgCols, r, rows, std::min(span, panels - q) * kQgCols, blk});
      }
    }
  }
  if (P.glu != nullptr) {
    P.glu->left.reset(new std::atomic<int64_t>[size_t(blk)]);
    for (int64_t b = 0; b < blk; ++b) P.glu->left[size_t(b)].store(0, std::memory_order_relaxed);
    for (const Item& it : P.items) P.glu->left[size_t(it.blk)].fetch_add(1, std::memory_order_relaxed);
  }
  const int64_t panel = P.kp / 4 * kQgCols + 2 * kQgCols, tile = kI8TileRows * kQgCols;
  const int64_t float_glu = kQgFloatScratch + 2 * kQgSpan;  // and run_float_glu's two products
  scratch_reserve(P.glu != nullptr ? (P.integer ? std::max(2 * panel + 3 * tile, 4 * kQgSpan) : float_glu)
                  : P.integer      ? std::max(panel + tile, 2 * kQgSpan)
                                   : kQgFloatScratch);
  auto body = [](void* ctx, int64_t i, int worker) {
    const Problem& Q = *static_cast<const Problem*>(ctx);
    const Item& it = Q.items[size_t(i)];
    if (Q.glu != nullptr && !Q.integer) {
      run_float_glu(Q, it, scratch(worker));
    } else if (Q.glu != nullptr) {
      run_int_glu(Q, it, scratch(worker));
    } else if (Q.integer && Q.vnni && it.rows <= kQgStreamRowsInt) {
      run_int_stream(Q, Q, it, scratch(worker), {Q.out + it.r0 * Q.n + it.j0, Q.n});
    } else if (Q.integer) {
      run_int_item(Q, it, scratch(worker));
    } else {
      run_float_item(Q, Q, it, scratch(worker), {Q.out + it.r0 * Q.n + it.j0, Q.n});
    }
  };
  const int64_t items = int64_t(P.items.size());
  parallel_for(items, items > 1 ? pool_threads() : 1, body, &P);
}

}  // namespace
}  // namespace moe::detail

namespace moe::detail {

moe_status_t quantized_gmm_run(moe_weight_format_t stored, const void* lhs, int lhs_int, const float* lhs_scales,
                               const void* codes, const void* scales, const int32_t* group_sizes, int64_t m, int64_t k,
                               int64_t n, int64_t num_groups, float* out, bool bf16_layer) {
  {
    Checker ck{"moe_quantized_gmm", {}};
    std::vector<int64_t> off;
    const bool known = stored >= MOE_WF_INT8 && stored <= MOE_WF_INT4_TILES;
    const moe_weight_format_t format = code_format(stored);
    const int64_t G = num_groups, nb = (n + 127) / 128, kb = (k + 127) / 128;
    const CodeDims cd = code_dims(stored, k, n);
    if (!(ck.require(known, "unknown format " + std::to_string(int(stored))) && ck.size("m", m) && ck.size("k", k) &&
          ck.size("n", n) && ck.size("num_groups", G) &&
          ck.require(format != MOE_WF_MXFP4 || k % 32 == 0, "mxfp4 needs k a multiple of 32") &&
          ck.tensor("lhs", lhs, {m, k}) && ck.tensor("codes", codes, {G, cd.h, cd.w}) &&
          ck.tensor("scales", scales,
                    {G, format == MOE_WF_FP8_E4M3 ? nb * kb : format == MOE_WF_MXFP4 ? n * (k / 32) : n}) &&
          ck.require(lhs_int == 0 || lhs_scales != nullptr || m == 0, "an int lhs needs lhs_scales") &&
          ck.require(!bf16_layer || (lhs_int == 0 && (format == MOE_WF_INT8 || format == MOE_WF_INT4)),
                     "a bfloat16 layer's product takes float rows and int8 or int4 codes") &&
          ck.require(lhs_int != 0 || lhs_scales == nullptr, "a float lhs takes no lhs_scales") &&
          ck.tensor("group_sizes", group_sizes, {G}) && ck.tensor("out", out, {m, n}) &&
          group_offsets(ck, group_sizes, G, m, off) &&
          ck.require(k <= std::numeric_limits<int32_t>::max() / (128 * 128), "k too large for exact int32 sums") &&
          ck.require(lhs_int == 0 || m * k == 0 || i32_fits_i8(static_cast<const int32_t*>(lhs), m * k),
                     "an int lhs must hold values in [-128, 127]"))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    zero_rows(out, off.back(), m, n);
    if (off.back() == 0 || n == 0) return MOE_STATUS_OK;
    Problem P = make_problem(stored, codes, scales, k, n, out);
    P.lhs_scales = lhs_int != 0 ? lhs_scales : nullptr;
    P.integer = lhs_int != 0 && (format == MOE_WF_INT8 || format == MOE_WF_INT4);
    P.vnni = P.integer && i8_vnni_usable();
    const int32_t* li = static_cast<const int32_t*>(lhs);
    if (P.integer) {
      P.kp = i8_kp(k);
      auto* a8 = static_cast<uint8_t*>(workspace().get(6, std::max<int64_t>(1, off.back() * P.kp)));
      i8_pack_rows(li, off.back(), k, P.kp, a8);
      P.a8 = a8;
    } else if (lhs_int != 0) {  // fp8 / mxfp4 codes with int8-range rows: the rows as floats (exact)
      float* a = workspace().f32(9, off.back() * k);
      for (int64_t i = 0; i < off.back() * k; ++i) a[i] = float(li[i]);
      P.a = a;
    } else {
      P.a = static_cast<const float*>(lhs);
      if (bf16_layer) mark_bf16_layer(P);
    }
    execute(P, off);
    return MOE_STATUS_OK;
  }
}

namespace {
Problem packed_problem(moe_weight_format_t format, const uint8_t* a8, int64_t kp, const float* lhs_scales,
                       const void* codes, const void* scales, int64_t k, int64_t n, float* out) {
  Problem P = make_problem(format, codes, scales, k, n, out);
  P.lhs_scales = lhs_scales;
  P.integer = true;
  P.vnni = i8_vnni_usable();
  P.a8 = a8;
  P.kp = kp;
  return P;
}
}  // namespace

void quantized_gmm_packed(moe_weight_format_t format, const uint8_t* a8, int64_t kp, const float* lhs_scales,
                          const void* codes, const void* scales, const std::vector<int64_t>& off, int64_t m, int64_t k,
                          int64_t n, float* out) {
  zero_rows(out, off.back(), m, n);
  if (off.back() == 0 || n == 0) return;
  Problem P = packed_problem(format, a8, kp, lhs_scales, codes, scales, k, n, out);
  execute(P, off);
}

void quantized_gmm_packed_glu(moe_weight_format_t format, const uint8_t* a8, int64_t kp, const float* lhs_scales,
                              const void* codes0, const void* scales0, const void* codes1, const void* scales1,
                              const float* b0, const float* b1, moe_activation_t act, float limit,
                              const std::vector<int64_t>& off, int64_t m, int64_t k, int64_t n, float* out,
                              const GluQuant& quant) {
  zero_rows(out, off.back(), m, n);
  if (off.back() == 0 || n == 0) {
    for (int64_t r = 0; r < off.back(); ++r) quantize_out_row(quant, out, n, r);
    return;
  }
  Problem P = packed_problem(format, a8, kp, lhs_scales, codes0, scales0, k, n, out);
  const Problem P1 = packed_problem(format, a8, kp, lhs_scales, codes1, scales1, k, n, out);
  Glu G{&P1, b0, b1, act, limit, out, &quant, nullptr};
  P.glu = &G;
  execute(P, off);
}

void quantized_gmm_float_glu(moe_weight_format_t format, const float* a, const void* codes0, const void* scales0,
                             const void* codes1, const void* scales1, const float* b0, const float* b1,
                             moe_activation_t act, float limit, const std::vector<int64_t>& off, int64_t k, int64_t n,
                             float* out, bool bf16_layer) {
  if (off.back() == 0 || n == 0) return;
  Problem P = make_problem(format, codes0, scales0, k, n, out);
  Problem P1 = make_problem(format, codes1, scales1, k, n, out);
  P.a = a;
  if (bf16_layer) {
    mark_bf16_layer(P);
    mark_bf16_layer(P1);
  }
  Glu G{&P1, b0, b1, act, limit, out, nullptr, nullptr};
  P.glu = &G;
  execute(P, off);
}

bool qg_quantize_row(const float* x, int64_t k, int64_t kp, int bits, uint8_t* a8, float* scale) {
#if defined(MOE_HAVE_X86_KERNELS)
  if (isa_active() == MOE_ISA_AVX512) return qg_quantize_row_avx512(x, k, kp, bits, a8, scale);
#endif
  return qg_quantize_row_scalar(x, k, kp, bits, a8, scale);
}

}  // namespace moe::detail

extern "C" moe_status_t moe_quantized_gmm(moe_weight_format_t format, const void* lhs, int lhs_int,
                                          const float* lhs_scales, const void* codes, const void* scales,
                                          const int32_t* group_sizes, int64_t m, int64_t k, int64_t n,
                                          int64_t num_groups, float* out) {
  return moe::detail::guarded("moe_quantized_gmm", [&] {
    return moe::detail::quantized_gmm_run(format, lhs, lhs_int, lhs_scales, codes, scales, group_sizes, m, k, n,
                                          num_groups, out);
  });
}
