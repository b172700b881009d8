// The integer kernels of the quantized matmuls (baseline code): abs-max quantization (prims/quantize.ts's contract,
// in double as the reference computes it) and grouped int8 products accumulated in int32 (operands held as int32
// whose values fit in int8). The products run on the VNNI unit where i8_vnni_usable(), else on plain loops over the
// same packed operands; integer sums are exact, so every ISA and thread count gives the same bits.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "api_util.hpp"
#include "int8.hpp"
#include "workspace.hpp"

#if defined(MOE_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace moe::detail {

bool i8_vnni_usable() {
#if defined(MOE_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
  static const bool cpu = [] {
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && ((c >> 11) & 1u) != 0;  // AVX512_VNNI
  }();
  return cpu && isa_active() == MOE_ISA_AVX512;
#else
  return false;
#endif
}

namespace {

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

template <class F>
void parallel_items(int64_t n, F& f) {
  parallel_for(
      n, n > 1 ? pool_threads() : 1, [](void* ctx, int64_t i, int) { (*static_cast<F*>(ctx))(i); }, &f);
}

struct Packed {
  int64_t kp, kq, panels;
  uint8_t* a;       // rows x kp
  int8_t* b;        // groups x panels x (kq * 256)
  int32_t* colsum;  // groups x panels x 64
};

// A rows as uint8 (+128, zero padded as 128) and each group's B in 64-column panels with their column sums.
Packed pack(const int32_t* lhs, const int32_t* rhs, int64_t m, int64_t k, int64_t n, int64_t groups, bool trans) {
  Packed P;
  P.kp = round_up(std::max<int64_t>(k, 1), 4);
  P.kq = P.kp / 4;
  P.panels = (n + kI8PanelCols - 1) / kI8PanelCols;
  const int64_t panel_bytes = P.kq * kI8PanelCols * 4;
  P.a = static_cast<uint8_t*>(workspace().get(6, std::max<int64_t>(1, m * P.kp)));
  P.b = static_cast<int8_t*>(workspace().get(7, std::max<int64_t>(1, groups * P.panels * panel_bytes)));
  P.colsum = workspace().i32(8, groups * P.panels * kI8PanelCols);
  i8_pack_rows(lhs, m, k, P.kp, P.a);
  // one 4-byte quad per (k quad, column): B(p..p+3, j) in bytes, read along B's rows (or along its columns when
  // transposed), so that the reads run contiguously
  auto panels = [&](int64_t item) {
    const int64_t g = item / P.panels, j0 = (item % P.panels) * kI8PanelCols, cols = std::min(kI8PanelCols, n - j0);
    uint32_t* d = reinterpret_cast<uint32_t*>(P.b + item * panel_bytes);
    int32_t* cs = P.colsum + item * kI8PanelCols;
    const int32_t* w = rhs + g * k * n;
    std::fill(cs, cs + kI8PanelCols, 0);
    std::fill(d, d + P.kq * kI8PanelCols, 0u);
    if (trans) {
      for (int64_t j = 0; j < cols; ++j) {
        const int32_t* col = w + (j0 + j) * k;
        int32_t sum = 0;
        for (int64_t p = 0; p < k; ++p) {
          d[(p / 4) * kI8PanelCols + j] |= uint32_t(uint8_t(int8_t(col[p]))) << (8 * (p % 4));
          sum += col[p];
        }
        cs[j] = sum;
      }
      return;
    }
    for (int64_t p = 0; p < k; ++p) {
      const int32_t* row = w + p * n + j0;
      uint32_t* dq = d + (p / 4) * kI8PanelCols;
      const int shift = int(8 * (p % 4));
      for (int64_t j = 0; j < cols; ++j) {
        dq[j] |= uint32_t(uint8_t(int8_t(row[j]))) << shift;
        cs[j] += row[j];
      }
    }
  };
  parallel_items(groups * P.panels, panels);
  return P;
}

}  // namespace

void i8_pack_rows(const int32_t* lhs, int64_t m, int64_t k, int64_t kp, uint8_t* dst) {
  const int64_t per = rows_per_item(k);
  auto rows = [&](int64_t c) {
    for (int64_t r = c * per, e = std::min(m, r + per); r < e; ++r) {
      uint8_t* d = dst + r * kp;
      for (int64_t p = 0; p < k; ++p) d[p] = uint8_t(lhs[r * k + p] + 128);
      for (int64_t p = k; p < kp; ++p) d[p] = 128;
    }
  };
  parallel_items((m + per - 1) / per, rows);
}

void i8_tile_scalar(const uint8_t* a, int64_t kp, int rows, const int8_t* panel, int64_t kq, int32_t* c, int64_t ldc,
                    int cols) {
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < cols; ++j) {
      int32_t s = 0;
      for (int64_t q = 0; q < kq; ++q) {
        const int8_t* b = panel + (q * kI8PanelCols + j) * 4;
        const uint8_t* x = a + i * kp + 4 * q;
        for (int t = 0; t < 4; ++t) s += (int32_t(x[t]) - 128) * int32_t(b[t]);
      }
      c[i * ldc + j] = s;
    }
  }
}

namespace {

// One element of moe_quantize_f32 in the scalar loop: q from x0, its slice's abs-max mx and divisor, and the noise u.
int32_t quantize_one(double x0, double mx, double div, double u, double Qb, double lo, double hi, bool qwix) {
  if (mx == 0) return 0;
  const double v = aqt_value(x0, mx, Qb, div);
  return int32_t(qwix ? std::min(hi, std::max(lo, round_even(v + u))) : round_even(std::min(hi, std::max(lo, v)) + u));
}

// The index of the first non-finite element of rows [r0, r1) of x (rows of n), or -1.
int64_t first_non_finite(const float* x, int64_t r0, int64_t r1, int64_t n) {
  for (int64_t i = r0 * n; i < r1 * n; ++i) {
    if (!std::isfinite(x[i])) return i;
  }
  return -1;
}

// *first_bad = the smallest of the items' first non-finite indices (-1 each where none).
void earliest(const std::vector<int64_t>& bad, int64_t* first_bad) {
  for (int64_t b : bad) {
    if (b >= 0 && (*first_bad < 0 || b < *first_bad)) *first_bad = b;
  }
}

// Slices along C with Q > 1 columns (a weight's columns, per expert or shared by all): each column's abs-max over
// chunks of whole rows, then the rows quantized in chunks against their columns' scales, so that both passes
// stream the rows in order and every thread has work even for one slice.
void quantize_columns(const float* x, const float* noise, int64_t P, int64_t C, int64_t Q, double Qb, double lo,
                      double hi, bool qwix, int32_t* q, float* scales, int64_t* first_bad) {
  const int64_t split = std::min<int64_t>(std::max<int64_t>(C, 1), std::max<int64_t>(1, (2 * pool_threads() + P - 1) / P));
  const int64_t span = (C + split - 1) / split;
  std::vector<float> part(size_t(P * split * Q), 0.0f);
  std::vector<int64_t> bad(size_t(P * split), -1);
  auto amax = [&](int64_t item) {
    const int64_t p = item / split, c0 = std::min(C, (item % split) * span), c1 = std::min(C, c0 + span);
    float* m = part.data() + item * Q;
    int finite = 1;
    for (int64_t c = c0; c < c1; ++c) {
      const float* row = x + (p * C + c) * Q;
      for (int64_t j = 0; j < Q; ++j) {
        const float a = std::fabs(row[j]);
        finite &= a <= std::numeric_limits<float>::max();
        m[j] = a > m[j] ? a : m[j];
      }
    }
    if (finite == 0) bad[size_t(item)] = first_non_finite(x, p * C + c0, p * C + c1, Q);
  };
  parallel_items(P * split, amax);
  earliest(bad, first_bad);
  if (*first_bad >= 0) return;
  std::vector<double> mx(size_t(P * Q)), dv(size_t(P * Q));
  for (int64_t p = 0; p < P; ++p) {
    for (int64_t j = 0; j < Q; ++j) {
      float m = 0.0f;
      for (int64_t t = 0; t < split; ++t) m = std::max(m, part[size_t((p * split + t) * Q + j)]);
      const size_t i = size_t(p * Q + j);
      mx[i] = double(m);
      dv[i] = mx[i] / Qb;
      scales[i] = m == 0 ? 1.0f : float(dv[i]);
    }
  }
  const int64_t per = rows_per_item(Q), chunks = (C + per - 1) / per;
  [[maybe_unused]] const bool avx512 = isa_active() == MOE_ISA_AVX512;
  auto rows = [&](int64_t item) {
    const int64_t p = item / chunks, c0 = (item % chunks) * per, c1 = std::min(C, c0 + per);
    const double *m = mx.data() + p * Q, *d = dv.data() + p * Q;
    const int64_t base = (p * C + c0) * Q;
#if defined(MOE_HAVE_X86_KERNELS)
    if (noise == nullptr && avx512) {
      quantize_run_avx512(x + base, c1 - c0, Q, Q, m, d, false, Qb, lo, hi, qwix, q + base);
      return;
    }
#endif
    for (int64_t i = 0; i < (c1 - c0) * Q; ++i) {
      const int64_t j = i % Q;
      const double u = noise == nullptr ? 0.0 : double(noise[base + i]);
      q[base + i] = quantize_one(double(x[base + i]), m[j], d[j], u, Qb, lo, hi, qwix);
    }
  };
  parallel_items(P * chunks, rows);
}

}  // namespace

moe_status_t quantize_f32_run(const float* x, const float* noise, int64_t P, int64_t C, int64_t Q, int bits, int qwix,
                              int32_t* q, float* scales, int64_t* first_bad) {
  {
    Checker ck{"moe_quantize_f32", {}};
    if (!(ck.size("P", P) && ck.size("C", C) && ck.size("Q", Q) && ck.require(bits >= 2 && bits <= 8, "bits in [2, 8]") &&
          ck.tensor("x", x, {P, C, Q}) && ck.tensor("q", q, {P, C, Q}) && ck.tensor("scales", scales, {P, Q}) &&
          ck.require(first_bad != nullptr, "first_bad is NULL"))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    *first_bad = -1;
    const double Qb = std::ldexp(1.0, bits - 1) - 0.5;
    const double lo = qwix != 0 ? -(Qb + 0.5) : -(Qb - 0.5), hi = Qb - 0.5;
    if (Q > 1) {
      quantize_columns(x, noise, P, C, Q, Qb, lo, hi, qwix != 0, q, scales, first_bad);
      return MOE_STATUS_OK;
    }
    // Q = 1: each slice is one run of C elements (a token's row), by runs of 64 KiB: a thread reading one 4 KiB
    // row after another's left the prefetchers to start over on every row
    std::vector<int64_t> bad(size_t(std::max<int64_t>(1, P)), -1);
    [[maybe_unused]] const bool avx512 = isa_active() == MOE_ISA_AVX512;
    auto body = [&](int64_t p) {
      const float* row = x + p * C;
      int finite = 1;
      float amax = 0.0f;
#if defined(MOE_HAVE_X86_KERNELS)
      if (avx512) amax = absmax_run_avx512(row, C, &finite);
#endif
      for (int64_t c = 0; c < C && !avx512; ++c) {
        const float a = std::fabs(row[c]);
        finite &= a <= std::numeric_limits<float>::max();
        amax = a > amax ? a : amax;
      }
      if (finite == 0) {
        bad[size_t(p)] = first_non_finite(x, p, p + 1, C);
        return;
      }
      const double mx = double(amax), div = mx / Qb;
      scales[p] = amax == 0 ? 1.0f : float(div);
#if defined(MOE_HAVE_X86_KERNELS)
      if (noise == nullptr && avx512) {
        quantize_run_avx512(row, 1, C, C, &mx, &div, true, Qb, lo, hi, qwix != 0, q + p * C);
        return;
      }
#endif
      for (int64_t c = 0; c < C; ++c) {
        const double u = noise == nullptr ? 0.0 : double(noise[p * C + c]);
        q[p * C + c] = quantize_one(double(row[c]), mx, div, u, Qb, lo, hi, qwix != 0);
      }
    };
    const int64_t per = rows_per_item(C);
    auto run = [&](int64_t c) {
      for (int64_t p = c * per, e = std::min(P, p + per); p < e; ++p) body(p);
    };
    parallel_items((P + per - 1) / per, run);
    earliest(bad, first_bad);
    return MOE_STATUS_OK;
  }
}

bool i32_fits_i8(const int32_t* x, int64_t n) {
  if (x == nullptr || n < 0) return false;
  constexpr int64_t kChunk = int64_t(1) << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<uint8_t> ok(size_t(chunks), 1);
  auto body = [&](int64_t c) {
    int32_t lo = 0, hi = 0;
    for (int64_t i = c * kChunk, i1 = std::min(n, i + kChunk); i < i1; ++i) {
      lo = std::min(lo, x[i]);
      hi = std::max(hi, x[i]);
    }
    ok[size_t(c)] = lo >= -128 && hi <= 127 ? 1 : 0;
  };
  parallel_items(chunks, body);
  return std::find(ok.begin(), ok.end(), uint8_t(0)) == ok.end();
}

}  // namespace moe::detail

using moe::detail::Checker;
using moe::detail::fail;
using moe::detail::guarded;

extern "C" {

int moe_i32_fits_i8(const int32_t* x, int64_t n) {
  bool fits = false;
  const moe_status_t st = guarded("moe_i32_fits_i8", [&] {
    fits = moe::detail::i32_fits_i8(x, n);
    return MOE_STATUS_OK;
  });
  return st == MOE_STATUS_OK && fits ? 1 : 0;
}

moe_status_t moe_gmm_i8(const int32_t* lhs, const int32_t* rhs, const int32_t* group_sizes, int64_t m, int64_t k,
                        int64_t n, int64_t num_groups, int transpose_rhs, int32_t* out) {
  using namespace moe::detail;
  return guarded("moe_gmm_i8", [&] {
    Checker ck{"moe_gmm_i8", {}};
    std::vector<int64_t> off;
    if (!(gmm_operands(ck, lhs, rhs, group_sizes, m, k, n, num_groups, out, off) &&
          ck.require(k <= std::numeric_limits<int32_t>::max() / (128 * 128), "k too large for exact int32 sums"))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    std::fill(out, out + m * n, 0);
    if (m == 0 || n == 0) return MOE_STATUS_OK;
    const Packed P = pack(lhs, rhs, m, k, n, num_groups, transpose_rhs != 0);
    const bool vnni = i8_vnni_usable();
    const int64_t panel_bytes = P.kq * kI8PanelCols * 4;
    // items: (group, 4-row tile, panel), row tiles of a group in order
    struct Item {
      int64_t g, r, pn;
    };
    std::vector<Item> items;
    for (int64_t g = 0; g < num_groups; ++g) {
      for (int64_t r = off[size_t(g)]; r < off[size_t(g) + 1]; r += kI8TileRows) {
        for (int64_t pn = 0; pn < P.panels; ++pn) items.push_back({g, r, pn});
      }
    }
    auto tile = [&](int64_t i) {
      const Item& it = items[size_t(i)];
      const int rows = int(std::min<int64_t>(kI8TileRows, off[size_t(it.g) + 1] - it.r));
      const int cols = int(std::min<int64_t>(kI8PanelCols, n - it.pn * kI8PanelCols));
      const int64_t panel = it.g * P.panels + it.pn;
      const uint8_t* a = P.a + it.r * P.kp;
      int32_t* c = out + it.r * n + it.pn * kI8PanelCols;
      if (vnni) {
        i8_tile_vnni(a, P.kp, rows, P.b + panel * panel_bytes, P.kq, P.colsum + panel * kI8PanelCols, c, n, cols);
      } else {
        i8_tile_scalar(a, P.kp, rows, P.b + panel * panel_bytes, P.kq, c, n, cols);
      }
    };
    parallel_items(int64_t(items.size()), tile);
    return MOE_STATUS_OK;
  });
}

moe_status_t moe_quantize_f32(const float* x, const float* noise, int64_t P, int64_t C, int64_t Q, int bits,
                              int qwix, int32_t* q, float* scales, int64_t* first_bad) {
  return moe::detail::guarded("moe_quantize_f32",
                              [&] { return moe::detail::quantize_f32_run(x, noise, P, C, Q, bits, qwix, q, scales, first_bad); });
}

}  // extern "C"
