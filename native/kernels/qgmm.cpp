// The grouped matmul over quantized weights (moe_quantized_gmm, baseline code): argument checks, the work items, the
// scale blocks, and the portable decode and tiles; the AVX-512 decode, tile and VNNI packing of int codes are
// isa_avx512_qgmm.cpp's (qgmm.hpp describes both paths).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "api_util.hpp"
#include "int8.hpp"
#include "qgmm.hpp"
#include "workspace.hpp"

namespace moe::detail {
namespace {

constexpr int64_t kQgBlockRows = 128;  // rows of one work item
// rows of one work item of the integer tiles: the panel of codes is packed once per item (1024 rather than 128: the
// int8 GMM at the bench shape 0.90x the time, paired A/B on Zen 4)
#ifndef MOE_QG_INT_ROWS
#define MOE_QG_INT_ROWS 1024
#endif
constexpr int64_t kQgIntRows = MOE_QG_INT_ROWS;
constexpr int64_t kQgSpan = 8192;      // rows x columns of one float work item (its partial sums and accumulators)
// Streaming (qgmm.hpp): groups of at most this many rows (int8 / int4 codes, AVX-512), and the rows of k per chunk:
// short chunks, so that a span reads a band of whole rows of codes at a time (the kernels prefetch the next chunk's
// rows into the L1; longer chunks, 64 or 256, read int8 codes at half the speed at the decode shape); a tile's second
// pass over a chunk of one panel reads it from L1.
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
      return float(int8_t(s.c[p * s.n + j]));
    case MOE_WF_INT4:
      return float(nibble_i4(s.c[p * ((s.n + 1) / 2) + (j >> 1)], j & 1));
    case MOE_WF_FP8_E4M3:
      return tables().e4m3[s.c[j * s.k + p]];
    case MOE_WF_MXFP4:
      return tables().e2m1[(s.c[j * (s.k / 2) + (p >> 1)] >> ((p & 1) * 4)) & 0xf];
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
};

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
};

// The scales of block b of columns [j0, j0 + 64) (0 past n).
void block_scales(const Problem& P, int64_t g, int64_t b, int64_t j0, float* s) {
  const int64_t cols = std::min<int64_t>(kQgCols, P.n - j0);
  for (int64_t j = 0; j < kQgCols; ++j) {
    const int64_t col = j0 + j;
    if (j >= cols) {
      s[j] = 0.0f;
    } else if (P.codes.fmt == MOE_WF_FP8_E4M3) {
      s[j] = P.scales[(g * ((P.n + 127) / 128) + (col >> 7)) * ((P.k + 127) / 128) + b];
    } else if (P.codes.fmt == MOE_WF_MXFP4) {
      const int e = P.e8m0[(g * P.n + col) * (P.k / 32) + b];
      s[j] = e == 255 ? std::numeric_limits<float>::quiet_NaN() : std::ldexp(1.0f, e - 127);
    } else {
      s[j] = P.scales[g * P.n + col];
    }
  }
}

void run_float_item(const Problem& P, const Item& it, float* scratch) {
  const int64_t W = it.cols;                        // row stride of part and acc
  float* panel = scratch;                           // kQgKc x 64
  float* part = panel + kQgKc * kQgCols;            // rows x W
  float* acc = part + kQgSpan;                      // rows x W
  float* col_scale = acc + kQgSpan;                 // W
  float ones[kQgTile] = {1, 1, 1, 1, 1, 1};
  std::fill(acc, acc + it.rows * W, 0.0f);
  const QgCodes s{P.codes.fmt, P.codes.c + it.g * P.group_bytes, P.k, P.n};
#if defined(MOE_HAVE_X86_KERNELS)
  const QgTileFn tile = P.avx512 ? qg_tile_avx512 : qg_tile_scalar;
  const QgDecodeFn decode = P.avx512 ? qg_decode_avx512 : qg_decode_scalar;
  const bool stream = P.avx512 && it.rows <= kQgStreamRows && (s.fmt == MOE_WF_INT8 || s.fmt == MOE_WF_INT4);
#else
  const QgTileFn tile = qg_tile_scalar;
  const QgDecodeFn decode = qg_decode_scalar;
  const bool stream = false;
#endif
  const int64_t j1 = std::min(P.n, it.j0 + W), step = stream ? kQgStreamKc : kQgKc;
  for (int64_t pb = 0; pb < P.k; pb += P.bk) {
    const int64_t pe = std::min(P.k, pb + P.bk);
    for (int64_t j = it.j0; j < j1; j += kQgCols) block_scales(P, it.g, pb / P.bk, j, col_scale + (j - it.j0));
    for (int64_t pc = pb; pc < pe; pc += step) {
      const int kc = int(std::min<int64_t>(step, pe - pc));
      // the chunk's rows of codes, panel by panel (streamed int4: two whole panels at a time for the fewest rows)
      for (int64_t j = it.j0, np = 1; j < j1; j += np * kQgCols) {
        np = stream && s.fmt == MOE_WF_INT4 && it.rows <= kQgStreamPairRows && j + 2 * kQgCols <= j1 ? 2 : 1;
        if (!stream) decode(s, j, pc, kc, panel);
        for (int64_t i = 0; i < it.rows; i += kQgTile) {
          const int rows = int(std::min<int64_t>(kQgTile, it.rows - i));
          const int64_t r = it.r0 + i, c = i * W + (j - it.j0);
          const float* rs = P.lhs_scales != nullptr ? P.lhs_scales + r : ones;
#if defined(MOE_HAVE_X86_KERNELS)
          if (stream) {
            qg_stream_avx512(s, j, pc, P.a + r * P.k + pc, P.k, rows, kc, part + c, W, pc == pb, pc + kc == pe, rs,
                             col_scale + (j - it.j0), acc + c, int(np));
            continue;
          }
#endif
          tile(P.a + r * P.k + pc, P.k, rows, panel, kc, part + c, W, pc == pb, pc + kc == pe, rs,
               col_scale + (j - it.j0), acc + c);
        }
      }
    }
  }
  for (int64_t i = 0; i < it.rows; ++i) {
    std::memcpy(P.out + (it.r0 + i) * P.n + it.j0, acc + i * W, size_t(j1 - it.j0) * sizeof(float));
  }
}

// A small group on VNNI (qg_stream_i8_vnni): a span of panels, chunk by chunk of k, into int32 sums t (rows x W),
// then the same epilogue as run_int_item with the codes' bias taken out.
void run_int_stream(const Problem& P, const Item& it, float* scratch) {
  const int64_t W = it.cols, kq = P.kp / 4, kqc = kQgStreamKc / 4;
  auto* t = reinterpret_cast<int32_t*>(scratch);  // rows x W
  float* col_scale = scratch + kQgSpan;           // W
  const QgCodes s{P.codes.fmt, P.codes.c + it.g * P.group_bytes, P.k, P.n};
  const int64_t j1 = std::min(P.n, it.j0 + W);
  for (int64_t q0 = 0; q0 < kq; q0 += kqc) {
    for (int64_t j = it.j0; j < j1; j += kQgCols) {
      for (int64_t i = 0; i < it.rows; i += kI8TileRows) {
        const int rows = int(std::min<int64_t>(kI8TileRows, it.rows - i));
        qg_stream_i8_vnni(s, j, 4 * q0, std::min(kqc, kq - q0), P.a8 + (it.r0 + i) * P.kp + 4 * q0, P.kp, rows,
                          t + i * W + (j - it.j0), W, q0 == 0);
      }
    }
  }
  for (int64_t j = it.j0; j < j1; j += kQgCols) block_scales(P, it.g, 0, j, col_scale + (j - it.j0));
  const uint32_t bias = P.codes.fmt == MOE_WF_INT8 ? 128u : 8u;
  for (int64_t i = 0; i < it.rows; ++i) {
    const uint8_t* a = P.a8 + (it.r0 + i) * P.kp;
    uint32_t sum = 0;  // sum of the row's values (mod 2^32 like the sums)
    for (int64_t p = 0; p < P.kp; ++p) sum += uint32_t(int32_t(a[p]) - 128);
    const float sl = P.lhs_scales[it.r0 + i];
    float* o = P.out + (it.r0 + i) * P.n + it.j0;
    for (int64_t j = 0; j < j1 - it.j0; ++j) {
      const int32_t v = int32_t(uint32_t(t[i * W + j]) - bias * sum);
      o[j] = float(v) * (sl * col_scale[j]) + 0.0f;  // as run_int_item
    }
  }
}

void run_int_item(const Problem& P, const Item& it, float* scratch) {
  const int64_t kq = P.kp / 4;
  auto* panel = reinterpret_cast<int8_t*>(scratch);                      // kq x 256 bytes
  auto* colsum = reinterpret_cast<int32_t*>(scratch + kq * kQgCols);     // 64
  int32_t* tile = colsum + kQgCols;                                       // kI8TileRows x 64
  float* col_scale = reinterpret_cast<float*>(tile + kI8TileRows * kQgCols);  // 64
  const QgCodes s{P.codes.fmt, P.codes.c + it.g * P.group_bytes, P.k, P.n};
  if (P.vnni) {
    qg_pack_i8_vnni(s, it.j0, kq, panel, colsum);
  } else {
    qg_pack_i8_scalar(s, it.j0, kq, panel, colsum);
  }
  block_scales(P, it.g, 0, it.j0, col_scale);
  const int cols = int(std::min<int64_t>(kQgCols, P.n - it.j0));
  for (int64_t i = 0; i < it.rows; i += kI8TileRows) {
    const int rows = int(std::min<int64_t>(kI8TileRows, it.rows - i));
    const uint8_t* a = P.a8 + (it.r0 + i) * P.kp;
    if (P.vnni) {
      i8_tile_vnni_scaled(a, P.kp, rows, panel, kq, colsum, P.lhs_scales + it.r0 + i, col_scale,
                          P.out + (it.r0 + i) * P.n + it.j0, P.n, cols);
      continue;
    }
    i8_tile_scalar(a, P.kp, rows, panel, kq, tile, kQgCols, kQgCols);
    for (int r = 0; r < rows; ++r) {
      const float sl = P.lhs_scales[it.r0 + i + r];
      float* o = P.out + (it.r0 + i + r) * P.n + it.j0;
      for (int j = 0; j < cols; ++j) o[j] = float(tile[r * kQgCols + j]) * (sl * col_scale[j]) + 0.0f;  // one rounding; -0 becomes +0 as the float64 sum
    }
  }
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
Problem make_problem(moe_weight_format_t format, const void* codes, const void* scales, int64_t k, int64_t n, float* out) {
  Problem P;
  P.codes = {format, static_cast<const uint8_t*>(codes), k, n};
  const CodeDims cd = code_dims(format, k, n);
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

// The work items (float path: spans of panels as wide as kQgSpan allows for the item's rows, split evenly over the
// columns) and their run on the pool.
void execute(Problem& P, const std::vector<int64_t>& off) {
  const int64_t panels = (P.n + kQgCols - 1) / kQgCols;
  for (int64_t g = 0; g + 1 < int64_t(off.size()); ++g) {
    const int64_t block = P.integer && off[size_t(g) + 1] - off[size_t(g)] > kQgStreamRowsInt ? kQgIntRows : kQgBlockRows;
    for (int64_t r = off[size_t(g)]; r < off[size_t(g) + 1]; r += block) {
      const int64_t rows = std::min(block, off[size_t(g) + 1] - r);
      const bool wide = !P.integer || (P.vnni && rows <= kQgStreamRowsInt);  // spans of panels
      const int64_t span_max = wide ? std::max<int64_t>(1, kQgSpan / (rows * kQgCols)) : 1;
      const int64_t spans = (panels + span_max - 1) / span_max, span = (panels + spans - 1) / spans;
      for (int64_t q = 0; q < panels; q += span) {
        P.items.push_back({g, q * kQgCols, r, rows, std::min(span, panels - q) * kQgCols});
      }
    }
  }
  scratch_reserve(P.integer ? std::max<int64_t>(P.kp / 4 * kQgCols + kQgCols + kI8TileRows * kQgCols + kQgCols, 2 * kQgSpan)
                            : kQgKc * kQgCols + 3 * kQgSpan);
  auto body = [](void* ctx, int64_t i, int worker) {
    const Problem& Q = *static_cast<const Problem*>(ctx);
    const Item& it = Q.items[size_t(i)];
    if (Q.integer && Q.vnni && it.rows <= kQgStreamRowsInt) {
      run_int_stream(Q, it, scratch(worker));
    } else if (Q.integer) {
      run_int_item(Q, it, scratch(worker));
    } else {
      run_float_item(Q, it, scratch(worker));
    }
  };
  const int64_t items = int64_t(P.items.size());
  parallel_for(items, items > 1 ? pool_threads() : 1, body, &P);
}

}  // namespace
}  // namespace moe::detail

namespace moe::detail {

moe_status_t quantized_gmm_run(moe_weight_format_t format, const void* lhs, int lhs_int, const float* lhs_scales,
                               const void* codes, const void* scales, const int32_t* group_sizes, int64_t m, int64_t k,
                               int64_t n, int64_t num_groups, float* out) {
  {
    Checker ck{"moe_quantized_gmm", {}};
    std::vector<int64_t> off;
    const bool known = format >= MOE_WF_INT8 && format <= MOE_WF_MXFP4;
    const int64_t G = num_groups, nb = (n + 127) / 128, kb = (k + 127) / 128;
    const CodeDims cd = code_dims(format, k, n);
    if (!(ck.require(known, "unknown format " + std::to_string(int(format))) && ck.size("m", m) && ck.size("k", k) &&
          ck.size("n", n) && ck.size("num_groups", G) &&
          ck.require(format != MOE_WF_MXFP4 || k % 32 == 0, "mxfp4 needs k a multiple of 32") &&
          ck.tensor("lhs", lhs, {m, k}) && ck.tensor("codes", codes, {G, cd.h, cd.w}) &&
          ck.tensor("scales", scales,
                    {G, format == MOE_WF_FP8_E4M3 ? nb * kb : format == MOE_WF_MXFP4 ? n * (k / 32) : n}) &&
          ck.require(lhs_int == 0 || lhs_scales != nullptr || m == 0, "an int lhs needs lhs_scales") &&
          ck.require(lhs_int != 0 || lhs_scales == nullptr, "a float lhs takes no lhs_scales") &&
          ck.tensor("group_sizes", group_sizes, {G}) && ck.tensor("out", out, {m, n}) &&
          group_offsets(ck, group_sizes, G, m, off) &&
          ck.require(k <= std::numeric_limits<int32_t>::max() / (128 * 128), "k too large for exact int32 sums") &&
          ck.require(lhs_int == 0 || m * k == 0 || moe_i32_fits_i8(static_cast<const int32_t*>(lhs), m * k) == 1,
                     "an int lhs must hold values in [-128, 127]"))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    zero_rows(out, off.back(), m, n);
    if (off.back() == 0 || n == 0) return MOE_STATUS_OK;
    Problem P = make_problem(format, codes, scales, k, n, out);
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
    }
    execute(P, off);
    return MOE_STATUS_OK;
  }
}

void quantized_gmm_packed(moe_weight_format_t format, const uint8_t* a8, int64_t kp, const float* lhs_scales,
                          const void* codes, const void* scales, const std::vector<int64_t>& off, int64_t m, int64_t k,
                          int64_t n, float* out) {
  zero_rows(out, off.back(), m, n);
  if (off.back() == 0 || n == 0) return;
  Problem P = make_problem(format, codes, scales, k, n, out);
  P.lhs_scales = lhs_scales;
  P.integer = true;
  P.vnni = i8_vnni_usable();
  P.a8 = a8;
  P.kp = kp;
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
