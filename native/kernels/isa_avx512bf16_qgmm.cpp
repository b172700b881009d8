// The streaming path of small groups of int4 codes (qgmm.hpp) for rows of bf16 values (a bfloat16 layer's
// weight-only products) on AVX512_BF16: two rows of k at a time, each code pair (p, p + 1) of a column looked up as a
// bf16 pair (vpermw) and multiplied into the accumulators with vdpbf16ps. Every product x * c is exact in fp32 (x a
// bf16 value, c an integer in [-8, 8)); vdpbf16ps adds the two of a pair into the accumulator one after the other,
// each sum rounded, so the chain differs from the fp32 kernel's only in its order. Half the vector operations of the
// fp32 decode per code: each table lookup, shift and product covers 32 codes rather than 16. Paired A/B on
// Zen 4 (lab `ab q4b`: a bfloat16 layer's served FFN, T=8, codes in tiles, caches flushed, the VM's slower bandwidth
// regime): 0.815x the time of the fp32 decode (80 rounds), the codes read at 71-74% of the read probe against 58-62%.
#include <cstdint>

#include "internal.hpp"
#include "qgmm.hpp"

#if defined(MOE_HAVE_X86_KERNELS)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512bf16"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512bf16")
#endif

namespace moe::detail {
namespace {

#include "qg_tile_store.inc"

// The int4 values' bf16 table (kInt4Bf16). A constant: built by a loop on every call, it took 12% of the stream's
// samples at the decode shape (lab `ab q4b`, T=8, codes in tiles, caches flushed: the constant 0.978x the time, 30
// rounds, Zen 4). Built from nibbles by bit operations instead (0x4300 | (n ^ 8), 128 + n + 8 in bf16, the 136 times
// the row's sum taken off at the end): the same time in DRAM and with the codes in the L3, and the cancellation cost
// precision, so the lookup stays.
inline __m512i nibble_table() { return _mm512_load_si512(kInt4Bf16); }

// x[0, kc) (bf16 values, kc <= 64) as bf16 pairs (x[2q], x[2q + 1]) in 32-bit words: 32 words, zero past kc.
inline void row_pairs(const float* x, int kc, uint32_t* out) {
  for (int q = 0; q < 64; q += 32) {
    const int left = kc - q;  // values of these 32 in the chunk
    const uint32_t m = left >= 32 ? ~0u : left > 0 ? (1u << left) - 1 : 0u;
    const __m512 lo = _mm512_maskz_loadu_ps(__mmask16(m), x + q);
    const __m512 hi = _mm512_maskz_loadu_ps(__mmask16(m >> 16), x + q + 16);
    _mm512_storeu_si512(out + q / 2, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
  }
}

// Rows p (a) and p + 1 (b) of codes, 32-bit lanes of eight nibbles (columns 8 L + h of lane L), interleaved by 16-bit
// words within each 128-bit lane (lo: the lane's low 64 bits, hi: its high 64 bits): 32-bit lane d of 128-bit lane l
// of lo holds in its low and high word the nibbles of rows p and p + 1 of columns 32 l + 4 d + h (h < 4, at bits
// 4 h of each word); of hi, columns 32 l + 16 + 4 d + h.
inline void pair_words(__m512i a, __m512i b, __m512i& lo, __m512i& hi) {
  lo = _mm512_unpacklo_epi16(a, b);
  hi = _mm512_unpackhi_epi16(a, b);
}
inline void pair_words(__m256i a, __m256i b, __m256i& lo, __m256i& hi) {
  lo = _mm256_unpacklo_epi16(a, b);
  hi = _mm256_unpackhi_epi16(a, b);
}

// stream_pairs's finish: column c = 16 v + m of its accumulators' layout (l = c / 32, r = c % 32: r / 16 picks lo or
// hi, d = r % 16 / 4, h = r % 4) is lane idx[v][m] of them stored in a row, one table per layout (built per call, its
// loop took 3% of the bfloat16 layer's int4 decode samples).
template <bool Two>
struct FinishLanes {
  static constexpr int V = Two ? 8 : 4;
  int32_t idx[V][16];
  constexpr FinishLanes() : idx() {
    for (int c = 0; c < 16 * V; ++c) {
      const int l = c / 32, hi = c % 32 / 16, d = c % 16 / 4, h = c % 4;
      idx[c / 16][c % 16] = Two ? 16 * (4 * hi + h) + 4 * l + d : 16 * h + 8 * hi + 4 * l + d;
    }
  }
};

// R rows against one panel (Two: two panels) of int4 codes, rows [p0, p0 + kc) of k (kc <= 64), as qg_stream_avx512
// does with its fp32 chain. Accumulators c[i][v]: Two, v = h (pair_words's lo) or 4 + h (its hi), in 32-bit lane
// 4 l + d; one panel, v = h, lo in lane 4 l + d, hi in lane 8 + 4 l + d. part holds that layout between chunks.
template <int R, bool Two>
void stream_pairs(const QgCodes& s, int64_t j0, int64_t p0, int kc, const float* a, int64_t lda, float* part,
                  int64_t ldc, bool start, bool finish, const float* row_scale, const float* col_scale, float* acc) {
  constexpr int V = Two ? 8 : 4;
  const int64_t ld = codes_ld(s);
  const uint8_t* base = codes_at(s, p0, j0);
  const int64_t ahead = prefetch_ahead(s);
  const bool l1 = stream_prefetch_l1();
  const bool one_line = !Two || (s.tiled && reinterpret_cast<uintptr_t>(base) % 64 == 0);
  const __m512i table = nibble_table();
  // the rows' values of [p0, p0 + kc) as bf16 pairs (x[2q], x[2q + 1]) in 32-bit words, zero past kc
  alignas(64) uint32_t xp[R][32];
  for (int i = 0; i < R; ++i) row_pairs(a + i * lda, kc, xp[i]);
  __m512 c[R][V];
  for (int i = 0; i < R; ++i) {
    for (int v = 0; v < V; ++v) c[i][v] = start ? _mm512_setzero_ps() : _mm512_loadu_ps(part + i * ldc + 16 * v);
  }
  for (int p = 0; p < kc; p += 2) {
    const uint8_t* ra = base + p * ld;
    const bool has_b = p + 1 < kc;
    qg_prefetch(ra + ahead, l1);
    if (has_b) qg_prefetch(ra + ld + ahead, l1);
    if (!one_line) {
      qg_prefetch(ra + ahead + 63, l1);
      if (has_b) qg_prefetch(ra + ld + ahead + 63, l1);
    }
    __m512i w[V];
    if constexpr (Two) {
      const __m512i ca = _mm512_loadu_si512(ra), cb = has_b ? _mm512_loadu_si512(ra + ld) : _mm512_setzero_si512();
      __m512i lo, hi;
      pair_words(ca, cb, lo, hi);
      for (int h = 0; h < 4; ++h) {
        w[h] = _mm512_permutexvar_epi16(h == 0 ? lo : _mm512_srli_epi32(lo, 4 * h), table);
        w[4 + h] = _mm512_permutexvar_epi16(h == 0 ? hi : _mm512_srli_epi32(hi, 4 * h), table);
      }
    } else {
      const __m256i ca = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ra));
      const __m256i cb = has_b ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ra + ld)) : _mm256_setzero_si256();
      __m256i lo, hi;
      pair_words(ca, cb, lo, hi);
      const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
      for (int h = 0; h < 4; ++h) w[h] = _mm512_permutexvar_epi16(h == 0 ? both : _mm512_srli_epi32(both, 4 * h), table);
    }
    for (int i = 0; i < R; ++i) {
      const __m512bh x = (__m512bh)_mm512_set1_epi32(int(xp[i][p / 2]));
      for (int v = 0; v < V; ++v) c[i][v] = _mm512_dpbf16_ps(c[i][v], x, (__m512bh)w[v]);
    }
  }
  if (!finish) {
    for (int i = 0; i < R; ++i) {
      for (int v = 0; v < V; ++v) _mm512_storeu_ps(part + i * ldc + 16 * v, c[i][v]);
    }
    return;
  }
  static constexpr FinishLanes<Two> kLanes{};
  for (int i = 0; i < R; ++i) {
    alignas(64) float t[V * 16];
    for (int h = 0; h < V; ++h) _mm512_store_ps(t + 16 * h, c[i][h]);
    const __m512 rs = _mm512_set1_ps(row_scale[i]);
    for (int v = 0; v < V; ++v) {
      const __m512 d = _mm512_i32gather_ps(_mm512_loadu_si512(kLanes.idx[v]), t, 4);
      const __m512 scl = _mm512_mul_ps(rs, _mm512_loadu_ps(col_scale + 16 * v));
      float* o = acc + i * ldc + 16 * v;
      _mm512_storeu_ps(o, _mm512_fmadd_ps(d, scl, _mm512_loadu_ps(o)));
    }
  }
}

template <int R>
void span_pairs(const QgCodes& s, int64_t j0, int64_t j1, bool pairs, int64_t p0, const float* a, int64_t lda, int rows,
                int kc, float* part, int64_t ldc, bool start, bool finish, const float* row_scale,
                const float* col_scale, float* acc) {
  for (int64_t j = j0, np = 1; j < j1; j += np * 64) {
    np = R <= 2 && pairs && pair_at(s, j, j1) ? 2 : 1;  // the caller's pairs: rows <= kQgStreamPairRows
    const int64_t o = j - j0;
    if (s.n - j < 64) {  // the last panel of n, partial: the fp32 kernel (its loads stop at n)
      qg_stream_avx512(s, j, j1, false, p0, a, lda, rows, kc, part + o, ldc, start, finish, row_scale, col_scale + o,
                       acc + o);
    } else if constexpr (R <= 2) {  // two panels a pass for the fewest rows, as the fp32 kernel
      (np == 2 ? stream_pairs<R, true> : stream_pairs<R, false>)(s, j, p0, kc, a, lda, part + o, ldc, start, finish,
                                                                 row_scale, col_scale + o, acc + o);
    } else {
      stream_pairs<R, false>(s, j, p0, kc, a, lda, part + o, ldc, start, finish, row_scale, col_scale + o, acc + o);
    }
  }
}

// The tile of qg_tile_dpbf16 for R rows: 64 columns, a pair of rows of k per vdpbf16ps.
template <int R>
void tile_pairs(const uint32_t* a, int64_t lda, const uint32_t* panel, int kq, float* part, int64_t ldc, bool start,
                bool finish, const float* row_scale, const float* col_scale, float* acc) {
  __m512 c[R][4];
  tile_start<R>(c, part, ldc, start);
  for (int q = 0; q < kq; ++q) {
    const uint32_t* b = panel + q * 64;
    __m512bh w[4];
    for (int v = 0; v < 4; ++v) w[v] = (__m512bh)_mm512_loadu_si512(b + 16 * v);
    for (int i = 0; i < R; ++i) {
      const __m512bh x = (__m512bh)_mm512_set1_epi32(int(a[i * lda + q]));
      for (int v = 0; v < 4; ++v) c[i][v] = _mm512_dpbf16_ps(c[i][v], x, w[v]);
    }
  }
  tile_store<R>(c, part, ldc, finish, row_scale, col_scale, acc);
}

}  // namespace

void qg_pair_rows_dpbf16(const float* a, int64_t lda, int64_t rows, int64_t k, uint32_t* out, int64_t ldo) {
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t c = 0; c < k; c += 64) row_pairs(a + i * lda + c, int(k - c < 64 ? k - c : 64), out + i * ldo + c / 2);
  }
}

void qg_pair_panel_dpbf16(const float* panel, int kc, uint32_t* out) {
  for (int p = 0; p < kc; p += 2) {
    for (int v = 0; v < 4; ++v) {
      const __m512i lo = _mm512_srli_epi32(_mm512_castps_si512(_mm512_loadu_ps(panel + p * 64 + 16 * v)), 16);
      const __m512i hi = p + 1 < kc ? _mm512_castps_si512(_mm512_loadu_ps(panel + (p + 1) * 64 + 16 * v)) : lo;
      _mm512_storeu_si512(out + p / 2 * 64 + 16 * v, _mm512_mask_blend_epi16(p + 1 < kc ? 0xAAAAAAAAu : 0u, lo, hi));
    }
  }
}

void qg_decode_pairs_int4(const QgCodes& s, int64_t j0, int64_t p0, int kc, uint32_t* out) {
  const int64_t cols = s.n - j0 < 64 ? s.n - j0 : 64;
  const __mmask32 bytes = __mmask32((uint64_t(1) << ((cols + 1) / 2)) - 1u);
  const __m512i table = nibble_table();
  // output word 2i of vector v: row p's byte of column 16 v + i (wp's word 8 v + i / 2), word 2i + 1 row p + 1's (wq's);
  // columns 2m + 1 take their byte's high nibble
  alignas(64) uint16_t from[4][32], shift[32];
  for (int v = 0; v < 4; ++v) {
    for (int w = 0; w < 32; ++w) from[v][w] = uint16_t((w & 1) * 32 + 8 * v + w / 4);
  }
  for (int w = 0; w < 32; ++w) shift[w] = uint16_t(w / 2 % 2 * 4);
  const __m512i sh = _mm512_load_si512(shift);
  for (int p = 0; p < kc; p += 2) {
    const __m512i wp = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(bytes, codes_at(s, p0 + p, j0)));
    const __m512i wq = p + 1 < kc ? _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(bytes, codes_at(s, p0 + p + 1, j0)))
                                  : _mm512_setzero_si512();
    for (int v = 0; v < 4; ++v) {
      const __m512i ix = _mm512_srlv_epi16(_mm512_permutex2var_epi16(wp, _mm512_load_si512(from[v]), wq), sh);
      const __mmask16 in = __mmask16(cols - 16 * v >= 16 ? 0xffff : cols > 16 * v ? (1u << (cols - 16 * v)) - 1u : 0u);
      const __m512i pair = _mm512_maskz_mov_epi32(in, _mm512_permutexvar_epi16(ix, table));
      _mm512_storeu_si512(out + p / 2 * 64 + 16 * v, pair);  // past kc: wq's zeros are code 0, whose value is 0
    }
  }
}

void qg_tile_dpbf16(const uint32_t* a, int64_t lda, int rows, const uint32_t* panel, int kq, float* part, int64_t ldc,
                    bool start, bool finish, const float* row_scale, const float* col_scale, float* acc) {
  with_rows<6>(rows, [&](auto r) {
    tile_pairs<decltype(r)::value>(a, lda, panel, kq, part, ldc, start, finish, row_scale, col_scale, acc);
  });
}

void qg_stream_dpbf16(const QgCodes& s, int64_t j0, int64_t j1, bool pairs, int64_t p0, const float* a, int64_t lda,
                      int rows, int kc, float* part, int64_t ldc, bool start, bool finish, const float* row_scale,
                      const float* col_scale, float* acc) {
  with_rows<6>(rows, [&](auto r) {
    span_pairs<decltype(r)::value>(s, j0, j1, pairs, p0, a, lda, rows, kc, part, ldc, start, finish, row_scale,
                                   col_scale, acc);
  });
}

}  // namespace moe::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

#endif
