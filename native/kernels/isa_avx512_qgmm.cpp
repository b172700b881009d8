// The AVX-512 unit of the grouped matmul over quantized weights (qgmm.hpp): codes decoded in registers into the float
// panel, the 6 x 64 fma tile, and the VNNI packing of int codes (with avx512vnni added to that one function). The code below the target pragma only runs after isa.cpp found AVX-512 F/BW/VL/DQ +
// FMA and made it the active ISA (qgmm.cpp checks isa_active()).
#include <algorithm>
#include <cstdint>

#include "qgmm.hpp"

#if defined(MOE_HAVE_X86_KERNELS)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC 12's _mm512_reduce_max_ps reads its own __Y = __Y
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#endif

// The VNNI packing of int codes prefetches this many k-quads ahead (paired A/B of the bench shape's wi0 GMM with an
// int8 lhs on Zen 5: int8 codes 0.95x the time without, int4 0.92x; 16 quads 1.01-1.02x the time of 8, 4 quads 1.00x).
#ifndef MOE_QG_PACK_PF
#define MOE_QG_PACK_PF 8
#endif

namespace moe::detail {
namespace {

inline __mmask64 mask64(int64_t n) { return n >= 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1; }

// 64 int8 values (bytes of v) as four vectors of 16 floats into d.
inline void store_i8_as_f32(__m512i v, float* d) {
  _mm512_storeu_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_castsi512_si128(v))));
  _mm512_storeu_ps(d + 16, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(v, 1))));
  _mm512_storeu_ps(d + 32, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(v, 2))));
  _mm512_storeu_ps(d + 48, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(v, 3))));
}

// 32 bytes of int4 pairs (low nibble first) as 64 values v + 8 in [0, 16) (v the two's complement nibble), in column
// order.
inline __m512i int4_to_u8(__m256i b) {
  const __m512i w = _mm512_cvtepu8_epi16(b);
  const __m512i lo = _mm512_and_si512(w, _mm512_set1_epi16(0x0f));
  const __m512i hi = _mm512_and_si512(_mm512_slli_epi16(w, 4), _mm512_set1_epi16(0x0f00));
  return _mm512_xor_si512(_mm512_or_si512(lo, hi), _mm512_set1_epi8(8));
}

// The same as sign-extended int8 values.
inline __m512i int4_to_i8(__m256i b) {
  return _mm512_sub_epi8(int4_to_u8(b), _mm512_set1_epi8(8));  // (v ^ 8) - 8: two's complement nibbles
}

// 16 e4m3 codes as floats: the 7 magnitude bits shifted into an fp32's exponent and mantissa, times 2^120 (exact for
// normals and subnormals), the sign bit, NaN for S.1111.111.
inline __m512 e4m3_to_f32(__m128i c) {
  const __m512i v = _mm512_cvtepu8_epi32(c);
  const __m512i mag = _mm512_and_si512(v, _mm512_set1_epi32(0x7f));
  const __m512 f = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(mag, 20)), _mm512_set1_ps(0x1p120f));
  const __m512i sign = _mm512_slli_epi32(_mm512_and_si512(v, _mm512_set1_epi32(0x80)), 24);
  const __m512 s = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(f), sign));
  const __mmask16 nan = _mm512_cmpeq_epi32_mask(mag, _mm512_set1_epi32(0x7f));
  return _mm512_mask_mov_ps(s, nan, _mm512_set1_ps(__builtin_nanf("")));
}

// 8 bytes of e2m1 pairs (low nibble first) as 16 floats.
inline __m512 e2m1_to_f32(__m128i b) {
  const __m128i m = _mm_set1_epi8(0x0f);
  const __m128i nib = _mm_unpacklo_epi8(_mm_and_si128(b, m), _mm_and_si128(_mm_srli_epi16(b, 4), m));
  const __m512 table = _mm512_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f, -1.0f, -1.5f, -2.0f,
                                      -3.0f, -4.0f, -6.0f);
  return _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(nib), table);
}

#include "transpose16.inc"
#include "qg_tile_store.inc"

// r[c] (16 values of column c along p) -> d[p * 64 + c] for p, c < 16 (r is left transposed).
inline void transpose_store(__m512 r[16], float* d) {
  transpose16(r);
  for (int p = 0; p < 16; ++p) _mm512_storeu_ps(d + p * 64, r[p]);
}

template <int R>
void tile_rows(const float* a, int64_t lda, const float* panel, int kc, float* part, int64_t ldc, bool start,
               bool finish, const float* row_scale, const float* col_scale, float* acc) {
  __m512 c[R][4];
  tile_start<R>(c, part, ldc, start);
  for (int p = 0; p < kc; ++p) {
    const float* b = panel + p * 64;
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), b2 = _mm512_loadu_ps(b + 32),
                 b3 = _mm512_loadu_ps(b + 48);
    for (int i = 0; i < R; ++i) {
      const __m512 x = _mm512_set1_ps(a[i * lda + p]);
      c[i][0] = _mm512_fmadd_ps(x, b0, c[i][0]);
      c[i][1] = _mm512_fmadd_ps(x, b1, c[i][1]);
      c[i][2] = _mm512_fmadd_ps(x, b2, c[i][2]);
      c[i][3] = _mm512_fmadd_ps(x, b3, c[i][3]);
    }
  }
  tile_store<R>(c, part, ldc, finish, row_scale, col_scale, acc);
}

// The fused decode and tile of int8 / int4 codes (qgmm.hpp, qg_stream_avx512) for R rows: each row of codes is read
// once, decoded in registers and multiplied into the R x 64 accumulators (R x 128 with Two), p ascending. int4: the
// 16 nibble values by a table lookup (vpermps reads an index's low 4 bits); one panel: even and odd columns in
// separate vectors (c[i][0, 1]: columns 2m and 2m + 1 of the first 32, c[i][2, 3] of the last 32); Two panels: their
// 64 bytes in one load, c[i][h] columns 8 L + h (nibble h of 32-bit lane L), nibbles h and h + 4 looked up from one
// shift of the lanes (vpermps on the low 4 bits, a zero-masked vpermw of kInt4Bf16 on bits 16-19 writing the float's
// high half: 3 shifts per 64 bytes instead of 7; the same values, lab `ab q4s` T=8, codes in tiles, flushed: 0.959x
// the time, 30 rounds over both bandwidth regimes, Zen 4); either interleaved into column order at the finish, part
// holding that layout between chunks. Masked (one panel): the last panel of n (loads stop at n).
template <int R, bool I4, bool Masked, bool Two = false>
void stream_rows(const QgCodes& s, int64_t j0, int64_t p0, int kc, const float* a, int64_t lda, float* part,
                 int64_t ldc, bool start, bool finish, const float* row_scale, const float* col_scale, float* acc) {
  static_assert(!Two || (I4 && !Masked), "two whole panels of int4 codes");
  constexpr int V = Two ? 8 : 4;  // accumulators per row
  const int64_t cols = s.n - j0 < 64 ? s.n - j0 : 64;
  const int64_t ld = codes_ld(s);  // tiled: [p0, p0 + kc) within one tile (qgmm.cpp's chunks)
  const uint8_t* base = codes_at(s, p0, j0);
  const int64_t ahead = prefetch_ahead(s);
  const bool l1 = stream_prefetch_l1();
  // Two: a row of codes in tiles is one cache line where the tile is aligned, and one prefetch covers it (the second
  // cost 1.3-5.5% of the decode shape's wi0 GMM time in three paired runs on Zen 5, caches flushed)
  const bool one_line = s.tiled && reinterpret_cast<uintptr_t>(base) % 64 == 0;
  const __mmask64 keep = mask64(I4 ? (cols + 1) / 2 : cols);
  const __m512 table = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1);
  const __m512i high_table = _mm512_load_si512(kInt4Bf16);
  __m512 c[R][V];
  for (int i = 0; i < R; ++i) {
    for (int v = 0; v < V; ++v) c[i][v] = start ? _mm512_setzero_ps() : _mm512_loadu_ps(part + i * ldc + 16 * v);
  }
  for (int p = 0; p < kc; ++p) {
    const uint8_t* row = base + p * ld;
    qg_prefetch(row + ahead, l1);
    __m512 b[V];
    if constexpr (Two) {
      if (!one_line) qg_prefetch(row + ahead + 63, l1);
      const __m512i w = _mm512_loadu_si512(row);
      for (int h = 0; h < 4; ++h) {
        const __m512i u = h == 0 ? w : _mm512_srli_epi32(w, 4 * h);
        b[h] = _mm512_permutexvar_ps(u, table);
        b[4 + h] = _mm512_castsi512_ps(_mm512_maskz_permutexvar_epi16(__mmask32(0xaaaaaaaau), u, high_table));
      }
    } else if (I4) {
      for (int h = 0; h < 2; ++h) {
        const __m512i u = _mm512_cvtepu8_epi32(Masked ? _mm_maskz_loadu_epi8(__mmask16(keep >> (16 * h)), row + 16 * h)
                                                      : _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 16 * h)));
        b[2 * h] = _mm512_permutexvar_ps(u, table);
        b[2 * h + 1] = _mm512_permutexvar_ps(_mm512_srli_epi32(u, 4), table);
      }
    } else {
      for (int v = 0; v < 4; ++v) {
        b[v] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
            Masked ? _mm_maskz_loadu_epi8(__mmask16(keep >> (16 * v)), row + 16 * v)
                   : _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 16 * v))));
      }
    }
    for (int i = 0; i < R; ++i) {
      const __m512 x = _mm512_set1_ps(a[i * lda + p]);
      for (int v = 0; v < V; ++v) c[i][v] = _mm512_fmadd_ps(x, b[v], c[i][v]);
    }
  }
  if (!finish) {
    for (int i = 0; i < R; ++i) {
      for (int v = 0; v < V; ++v) _mm512_storeu_ps(part + i * ldc + 16 * v, c[i][v]);
    }
    return;
  }
  // one panel of int4: column j of the first 16 of each half from the even vector (even j) or the odd one
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
  // two: column 16 v + m = 8 L + h, lane 2 v + m / 8 of c[i][m % 8], gathered from them stored in t
  const __m512i lane = _mm512_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112, 1, 17, 33, 49, 65, 81, 97, 113);
  for (int i = 0; i < R; ++i) {
    __m512 d[V];
    for (int v = 0; v < V; ++v) d[v] = c[i][v];
    if constexpr (Two) {
      alignas(64) float t[8 * 16];
      for (int h = 0; h < 8; ++h) _mm512_store_ps(t + 16 * h, c[i][h]);
      for (int v = 0; v < 8; ++v) d[v] = _mm512_i32gather_ps(_mm512_add_epi32(lane, _mm512_set1_epi32(2 * v)), t, 4);
    } else if (I4) {
      for (int h = 0; h < 2; ++h) {
        d[2 * h] = _mm512_permutex2var_ps(c[i][2 * h], lo, c[i][2 * h + 1]);
        d[2 * h + 1] = _mm512_permutex2var_ps(c[i][2 * h], hi, c[i][2 * h + 1]);
      }
    }
    const __m512 rs = _mm512_set1_ps(row_scale[i]);
    for (int v = 0; v < V; ++v) {
      const __m512 scl = _mm512_mul_ps(rs, _mm512_loadu_ps(col_scale + 16 * v));
      float* o = acc + i * ldc + 16 * v;
      _mm512_storeu_ps(o, _mm512_fmadd_ps(d[v], scl, _mm512_loadu_ps(o)));
    }
  }
}

template <int R>
void stream_fmt(const QgCodes& s, int64_t j0, int64_t p0, int kc, const float* a, int64_t lda, float* part,
                int64_t ldc, bool start, bool finish, const float* row_scale, const float* col_scale, float* acc,
                int panels) {
  const bool i4 = s.fmt == MOE_WF_INT4, masked = s.n - j0 < 64;
  constexpr bool kTwo = R <= kQgStreamPairRows;  // instantiated only where it can be asked for
  auto f = !i4     ? (masked ? stream_rows<R, false, true> : stream_rows<R, false, false>)
           : masked ? stream_rows<R, true, true>
           : kTwo && panels == 2 ? stream_rows<R, true, false, kTwo>
                                 : stream_rows<R, true, false>;
  f(s, j0, p0, kc, a, lda, part, ldc, start, finish, row_scale, col_scale, acc);
}

// stream_fmt over the panels of [j0, j1) (two at a time where `pairs` and two whole ones remain), offsets of part,
// col_scale and acc following the columns.
template <int R>
void stream_span(const QgCodes& s, int64_t j0, int64_t j1, bool pairs, int64_t p0, int kc, const float* a, int64_t lda,
                 float* part, int64_t ldc, bool start, bool finish, const float* row_scale, const float* col_scale,
                 float* acc) {
  for (int64_t j = j0, np = 1; j < j1; j += np * 64) {
    np = pairs && pair_at(s, j, j1) ? 2 : 1;
    const int64_t o = j - j0;
    stream_fmt<R>(s, j, p0, kc, a, lda, part + o, ldc, start, finish, row_scale, col_scale + o, acc + o, int(np));
  }
}

}  // namespace

void qg_stream_avx512(const QgCodes& s, int64_t j0, int64_t j1, bool pairs, int64_t p0, const float* a, int64_t lda,
                      int rows, int kc, float* part, int64_t ldc, bool start, bool finish, const float* row_scale,
                      const float* col_scale, float* acc) {
  with_rows<6>(rows, [&](auto r) {
    stream_span<decltype(r)::value>(s, j0, j1, pairs, p0, kc, a, lda, part, ldc, start, finish, row_scale, col_scale,
                                    acc);
  });
}

void qg_tile_avx512(const float* a, int64_t lda, int rows, const float* panel, int kc, float* part, int64_t ldc,
                    bool start, bool finish, const float* row_scale, const float* col_scale, float* acc) {
  with_rows<6>(rows, [&](auto r) {
    tile_rows<decltype(r)::value>(a, lda, panel, kc, part, ldc, start, finish, row_scale, col_scale, acc);
  });
}

namespace {
// widen.inc's round_bf16 on 16 lanes: ties to even; a NaN made quiet, its top payload bits kept.
inline __m512 round_bf16_16(__m512 x) {
  const __m512i u = _mm512_castps_si512(x), hi = _mm512_set1_epi32(int(0xffff0000u));
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), odd);
  const __m512i q = _mm512_or_si512(u, _mm512_set1_epi32(0x00400000));
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_mask_mov_epi32(r, nan, q), hi));
}
}  // namespace

void qg_scale_bf16_avx512(const float* p, const float* s, int64_t n, float* out) {
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = n - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - j)) - 1);
    const __m512 v = _mm512_mul_ps(round_bf16_16(_mm512_maskz_loadu_ps(m, p + j)), round_bf16_16(_mm512_maskz_loadu_ps(m, s + j)));
    _mm512_mask_storeu_ps(out + j, m, round_bf16_16(v));
  }
}

void qg_decode_avx512(const QgCodes& s, int64_t j0, int64_t p0, int kc, float* panel) {
  const int64_t cols = s.n - j0 < 64 ? s.n - j0 : 64;
  if (s.fmt == MOE_WF_INT8 || s.fmt == MOE_WF_INT4) {
    const __mmask64 keep = mask64(cols);
    for (int p = 0; p < kc; ++p) {
      const uint8_t* row = codes_at(s, p0 + p, j0);
      __m512i v;
      if (s.fmt == MOE_WF_INT8) {
        v = _mm512_maskz_loadu_epi8(keep, row);
      } else {
        const __m256i b = _mm256_maskz_loadu_epi8(__mmask32(mask64((cols + 1) / 2)), row);
        v = _mm512_maskz_mov_epi8(keep, int4_to_i8(b));
      }
      store_i8_as_f32(v, panel + p * 64);
    }
    return;
  }
  // [n, k] formats: 16 columns x 16 rows of k at a time, transposed into the panel
  const bool fp8 = s.fmt == MOE_WF_FP8_E4M3;
  const int64_t ld = fp8 ? s.k : s.k / 2;
  for (int jq = 0; jq < 64; jq += 16) {
    for (int pq = 0; pq < kc; pq += 16) {
      const int cnt = kc - pq < 16 ? kc - pq : 16;
      __m512 r[16];
      for (int c = 0; c < 16; ++c) {
        if (jq + c >= cols) {
          r[c] = _mm512_setzero_ps();
        } else if (fp8) {
          r[c] = e4m3_to_f32(_mm_maskz_loadu_epi8(__mmask16((1u << cnt) - 1u), s.c + (j0 + jq + c) * ld + p0 + pq));
        } else {  // k, p0 and pq are multiples of 16 here (mxfp4: k % 32 == 0, chunks of whole blocks)
          r[c] = e2m1_to_f32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s.c + (j0 + jq + c) * ld + (p0 + pq) / 2)));
        }
      }
      transpose_store(r, panel + pq * 64 + jq);
    }
  }
}


namespace {

// The abs-max rule on 8 doubles (int8.hpp's aqt_value, then clamp and round half to even; qwix rounds first): x / div,
// +-Qb where |x| is the slice's abs-max mx, within [lo, hi].
struct AbsMaxRule {
  __m512d q, lo, hi;
  bool qwix;
  __m512d operator()(__m512d xd, __m512d vmx, __m512d vdiv) const {
    const __m512d sign = _mm512_castsi512_pd(_mm512_set1_epi64(int64_t(0x8000000000000000ull)));
    __m512d v = _mm512_div_pd(xd, vdiv);
    const __mmask8 at_max = _mm512_cmp_pd_mask(_mm512_andnot_pd(sign, xd), vmx, _CMP_EQ_OQ);
    v = _mm512_mask_mov_pd(v, at_max, _mm512_or_pd(q, _mm512_and_pd(sign, xd)));
    if (!qwix) v = _mm512_min_pd(hi, _mm512_max_pd(lo, v));
    v = _mm512_roundscale_pd(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return qwix ? _mm512_min_pd(hi, _mm512_max_pd(lo, v)) : v;
  }
};

}  // namespace

// (int8.hpp) The rule of quantize_f32_run in 8 doubles at a time: the same division, clamp and rounding.
void quantize_run_avx512(const float* x, int64_t rows, int64_t ld, int64_t n, const double* mx, const double* div,
                         bool shared, double Qb, double lo, double hi, bool qwix, int32_t* q) {
  const AbsMaxRule rule{_mm512_set1_pd(Qb), _mm512_set1_pd(lo), _mm512_set1_pd(hi), qwix};
  for (int64_t c = 0; c < rows; ++c, x += ld, q += ld) {
    for (int64_t j = 0; j < n; j += 8) {
      const __mmask8 m = n - j >= 8 ? __mmask8(0xff) : __mmask8((1u << (n - j)) - 1u);
      const __m512d xd = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + j));
      const __m512d vmx = shared ? _mm512_set1_pd(mx[0]) : _mm512_maskz_loadu_pd(m, mx + j);
      const __m512d vdiv = shared ? _mm512_set1_pd(div[0]) : _mm512_mask_loadu_pd(_mm512_set1_pd(1.0), m, div + j);
      const __mmask8 live = _mm512_cmp_pd_mask(vmx, _mm512_setzero_pd(), _CMP_NEQ_OQ);
      _mm256_mask_storeu_epi32(q + j, m, _mm512_maskz_cvtpd_epi32(live, rule(xd, vmx, vdiv)));
    }
  }
}

// (int8.hpp) max |x| of a run: NaN and infinities flagged (a NaN drops out of the max, as in the scalar loop).
float absmax_run_avx512(const float* x, int64_t n, int* finite) {
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff)), big = _mm512_set1_ps(3.4028234663852886e38f);
  __m512 vmax = _mm512_setzero_ps();
  __mmask16 ok = 0xffff;
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = n - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - j)) - 1u);
    const __m512 a = _mm512_and_ps(_mm512_maskz_loadu_ps(m, x + j), abs_mask);
    ok &= _mm512_cmp_ps_mask(a, big, _CMP_LE_OQ) | __mmask16(~m);
    vmax = _mm512_max_ps(a, vmax);
  }
  if (ok != 0xffff) *finite = 0;
  return _mm512_reduce_max_ps(vmax);
}

// (qgmm.hpp) The scalar rule in 8 doubles at a time: the same divisions, clamp and round half to even.
bool qg_quantize_row_avx512(const float* x, int64_t k, int64_t kp, int bits, uint8_t* a8, float* scale) {
  int finite = 1;
  const float amax = absmax_run_avx512(x, k, &finite);
  if (finite == 0) return false;
  const double Qb = double((1 << (bits - 1))) - 0.5, hi = Qb - 0.5, mx = double(amax), div = mx / Qb;
  *scale = amax == 0.0f ? 1.0f : float(div);
  const __m512d vdiv = _mm512_set1_pd(div), vmx = _mm512_set1_pd(mx);
  const AbsMaxRule rule{_mm512_set1_pd(Qb), _mm512_set1_pd(-hi), _mm512_set1_pd(hi), false};
  auto half = [&](__m256 xf) { return _mm512_cvtpd_epi32(rule(_mm512_cvtps_pd(xf), vmx, vdiv)); };
  for (int64_t p = 0; p < k; p += 16) {
    const int64_t n = k - p < 16 ? k - p : 16;
    const __mmask16 m = n == 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1u);
    __m512i q = _mm512_setzero_si512();
    if (amax != 0.0f) {
      const __m512 xf = _mm512_maskz_loadu_ps(m, x + p);
      q = _mm512_inserti64x4(_mm512_castsi256_si512(half(_mm512_castps512_ps256(xf))),
                             half(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xf), 1))), 1);
    }
    _mm_mask_storeu_epi8(a8 + p, m, _mm512_cvtepi32_epi8(_mm512_add_epi32(q, _mm512_set1_epi32(128))));
  }
  for (int64_t p = k; p < kp; ++p) a8[p] = 128;
  return true;
}

#define MOE_QG_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512vnni")))

namespace {

// Bytes of rows a..d (4 consecutive rows of k, 64 columns each) as 4 vectors of dwords of 4 k-values: out[v] holds
// columns 16v..16v+15. The unpacks put the dwords of columns 16L + {0-3, 4-7, 8-11, 12-15} of each 128-bit lane L
// in q0..q3; a 4 x 4 transpose of the lanes puts columns 16v..16v+15 in out[v].
inline void interleave_quads(__m512i a, __m512i b, __m512i c, __m512i d, __m512i out[4]) {
  const __m512i ab_lo = _mm512_unpacklo_epi8(a, b), ab_hi = _mm512_unpackhi_epi8(a, b);
  const __m512i cd_lo = _mm512_unpacklo_epi8(c, d), cd_hi = _mm512_unpackhi_epi8(c, d);
  const __m512i q0 = _mm512_unpacklo_epi16(ab_lo, cd_lo), q1 = _mm512_unpackhi_epi16(ab_lo, cd_lo);
  const __m512i q2 = _mm512_unpacklo_epi16(ab_hi, cd_hi), q3 = _mm512_unpackhi_epi16(ab_hi, cd_hi);
  const __m512i t0 = _mm512_shuffle_i32x4(q0, q1, 0x44), t1 = _mm512_shuffle_i32x4(q2, q3, 0x44);
  const __m512i t2 = _mm512_shuffle_i32x4(q0, q1, 0xEE), t3 = _mm512_shuffle_i32x4(q2, q3, 0xEE);
  out[0] = _mm512_shuffle_i32x4(t0, t1, 0x88);
  out[1] = _mm512_shuffle_i32x4(t0, t1, 0xDD);
  out[2] = _mm512_shuffle_i32x4(t2, t3, 0x88);
  out[3] = _mm512_shuffle_i32x4(t2, t3, 0xDD);
}

// The codes at r (a row of columns [j0, j0 + cols), cols <= 64) as bytes, zero past cols: int8 as they are, int4
// sign-extended (U false) or as v + 8 (U true).
template <bool U>
inline __m512i code_bytes(const uint8_t* r, bool i8, int64_t cols, __mmask64 keep) {
  if (i8) return _mm512_maskz_loadu_epi8(keep, r);
  const __m256i b = _mm256_maskz_loadu_epi8(__mmask32(mask64((cols + 1) / 2)), r);
  return _mm512_maskz_mov_epi8(keep, U ? int4_to_u8(b) : int4_to_i8(b));
}

// The VNNI streams' int32 sums: acc[i][v] from t[i * ldt + 16 v] (zero where start), and back (every loop unrolled:
// otherwise GCC kept the accumulators on the stack).
template <int R, int V>
inline void int_acc_start(__m512i (&acc)[R][V], const int32_t* t, int64_t ldt, bool start) {
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) acc[i][v] = start ? _mm512_setzero_si512() : _mm512_loadu_si512(t + i * ldt + 16 * v);
  }
}
template <int R, int V>
inline void int_acc_store(const __m512i (&acc)[R][V], int32_t* t, int64_t ldt) {
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) _mm512_storeu_si512(t + i * ldt + 16 * v, acc[i][v]);
  }
}

// acc[i][v] += the codes' bytes b[v] times k-quad q of row i of the packed lhs a (stored + 128: a - 128 as int8).
template <int R, int V>
MOE_QG_VNNI inline void dpbusd_rows(__m512i (&acc)[R][V], const __m512i (&b)[V], const uint8_t* a, int64_t kp, int64_t q) {
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) {
    int32_t quad;
    __builtin_memcpy(&quad, a + i * kp + 4 * q, 4);
    const __m512i x = _mm512_xor_si512(_mm512_set1_epi32(quad), _mm512_set1_epi32(int32_t(0x80808080u)));
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) acc[i][v] = _mm512_dpbusd_epi32(acc[i][v], b[v], x);
  }
}

template <int R, bool L1>
MOE_QG_VNNI void stream_i8_rows(const QgCodes& s, int64_t j0, int64_t p0, int64_t kq, const uint8_t* a, int64_t kp,
                                int32_t* t, int64_t ldt, bool start) {
  const int64_t ahead = prefetch_ahead(s), ld = codes_ld(s);
  const uint8_t* base = codes_at(s, p0, j0);  // tiled: [p0, p0 + 4 kq) within one tile (run_int_stream's chunks)
  const int64_t cols = s.n - j0 < 64 ? s.n - j0 : 64;
  const int64_t valid = std::min<int64_t>(4 * kq, s.k - p0);  // rows of codes; past them the lhs is 0
  const __mmask64 keep = mask64(cols);
  const bool i8 = s.fmt == MOE_WF_INT8;
  // int8 codes + 128 (xor of the sign bit); int4 codes as v + 8
  const __m512i flip = _mm512_set1_epi8(i8 ? char(0x80) : 0);
  auto row = [&](int64_t p) {
    if (p >= valid) return _mm512_setzero_si512();
    const uint8_t* r = base + p * ld;
    qg_prefetch_at<L1>(r + ahead);
    return _mm512_xor_si512(code_bytes<true>(r, i8, cols, keep), flip);
  };
  __m512i acc[R][4];
  int_acc_start<R, 4>(acc, t, ldt, start);
  for (int64_t q = 0; q < kq; ++q) {
    __m512i b[4];
    interleave_quads(row(4 * q), row(4 * q + 1), row(4 * q + 2), row(4 * q + 3), b);
    dpbusd_rows<R, 4>(acc, b, a, kp, q);
  }
  int_acc_store<R, 4>(acc, t, ldt);
}

// Two whole panels of int4 codes (128 columns: row p's 64 bytes, byte m = columns 2m and 2m + 1) for R rows, the
// same sums as stream_i8_rows. Four rows' bytes are unpacked into dwords of their four k-values still holding both
// nibbles (q[s], dword 4L + i = byte 16L + 4s + i of each row), then split into the even and odd column's codes + 8
// (one vpternlogd each: (x ^ 8) & 15 per byte, the odd after a shift), so acc[i][2s + e] lane 4L + i is column
// 32L + 8s + 2i + e. t holds that layout between calls; `finish` stores it in column order.
template <int R, bool L1>
MOE_QG_VNNI void stream_i4_pairs(const QgCodes& s, int64_t j0, int64_t p0, int64_t kq, const uint8_t* a, int64_t kp,
                                 int32_t* t, int64_t ldt, bool start, bool finish) {
  const int64_t ahead = prefetch_ahead(s), ld = codes_ld(s);
  const uint8_t* base = codes_at(s, p0, j0);  // tiled: [p0, p0 + 4 kq) within one tile (run_int_stream's chunks)
  const bool one_line = s.tiled && reinterpret_cast<uintptr_t>(base) % 64 == 0;
  const int64_t valid = std::min<int64_t>(4 * kq, s.k - p0);  // rows of codes; past them the lhs is 0
  auto row = [&](int64_t p) {
    const uint8_t* r = base + p * ld;
    qg_prefetch_at<L1>(r + ahead);
    if (!one_line) qg_prefetch_at<L1>(r + ahead + 63);
    return _mm512_loadu_si512(r);
  };
  __m512i acc[R][8];
  int_acc_start<R, 8>(acc, t, ldt, start);
  const __m512i eight = _mm512_set1_epi8(8), low = _mm512_set1_epi8(15);
  for (int64_t q = 0; q < kq; ++q) {
    __m512i r0, r1, r2, r3;
    if (4 * q + 4 <= valid) {
      r0 = row(4 * q), r1 = row(4 * q + 1), r2 = row(4 * q + 2), r3 = row(4 * q + 3);
    } else {
      const __m512i z = _mm512_setzero_si512();
      r0 = 4 * q < valid ? row(4 * q) : z, r1 = 4 * q + 1 < valid ? row(4 * q + 1) : z;
      r2 = 4 * q + 2 < valid ? row(4 * q + 2) : z, r3 = z;
    }
    const __m512i lo01 = _mm512_unpacklo_epi8(r0, r1), hi01 = _mm512_unpackhi_epi8(r0, r1);
    const __m512i lo23 = _mm512_unpacklo_epi8(r2, r3), hi23 = _mm512_unpackhi_epi8(r2, r3);
    const __m512i quads[4] = {_mm512_unpacklo_epi16(lo01, lo23), _mm512_unpackhi_epi16(lo01, lo23),
                              _mm512_unpacklo_epi16(hi01, hi23), _mm512_unpackhi_epi16(hi01, hi23)};
    __m512i b[8];
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) {
      b[2 * h] = _mm512_ternarylogic_epi32(quads[h], eight, low, 0x28);  // (x ^ 8) & 15
      b[2 * h + 1] = _mm512_ternarylogic_epi32(_mm512_srli_epi32(quads[h], 4), eight, low, 0x28);
    }
    dpbusd_rows<R, 8>(acc, b, a, kp, q);
  }
  if (!finish) return int_acc_store<R, 8>(acc, t, ldt);
#pragma GCC unroll 2
  for (int i = 0; i < R; ++i) {
    int32_t* o = t + i * ldt;
    // X[s] / Y[s] 128-bit lane L: columns 32L + 8s + 0..3 / 4..7; output vector 2L + h = lanes L of X[2h], Y[2h],
    // X[2h + 1], Y[2h + 1]
    __m512i x[4], y[4];
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) {
      x[h] = _mm512_unpacklo_epi32(acc[i][2 * h], acc[i][2 * h + 1]);
      y[h] = _mm512_unpackhi_epi32(acc[i][2 * h], acc[i][2 * h + 1]);
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      // [X L, Y L, X L+1, Y L+1] for L = 0 / 2 of X[2h + u], Y[2h + u]
      __m512i z[2][2];
#pragma GCC unroll 2
      for (int u = 0; u < 2; ++u) {
        const __m512i lo = _mm512_shuffle_i32x4(x[2 * h + u], y[2 * h + u], 0x44);  // X0 X1 Y0 Y1
        const __m512i hi = _mm512_shuffle_i32x4(x[2 * h + u], y[2 * h + u], 0xEE);  // X2 X3 Y2 Y3
        z[u][0] = _mm512_shuffle_i32x4(lo, lo, 0xD8);                                // X0 Y0 X1 Y1
        z[u][1] = _mm512_shuffle_i32x4(hi, hi, 0xD8);                                // X2 Y2 X3 Y3
      }
#pragma GCC unroll 2
      for (int g = 0; g < 2; ++g) {
        _mm512_storeu_si512(o + 16 * (4 * g + h), _mm512_shuffle_i32x4(z[0][g], z[1][g], 0x44));      // L = 2g
        _mm512_storeu_si512(o + 16 * (4 * g + 2 + h), _mm512_shuffle_i32x4(z[0][g], z[1][g], 0xEE));  // L = 2g + 1
      }
    }
  }
}

}  // namespace

// (qgmm.hpp) AVX512-VNNI on top of the unit's features: only called where i8_vnni_usable().
MOE_QG_VNNI void qg_stream_i8_vnni(const QgCodes& s, int64_t j0, int64_t p0, int64_t kq, const uint8_t* a, int64_t kp,
                                   int rows, int32_t* t, int64_t ldt, bool start, bool pair, bool finish) {
  const bool l1 = stream_prefetch_l1();
  if (pair) {
    return with_rows<2>(rows, [&](auto r) {
      constexpr int R = decltype(r)::value;
      (l1 ? stream_i4_pairs<R, true> : stream_i4_pairs<R, false>)(s, j0, p0, kq, a, kp, t, ldt, start, finish);
    });
  }
  with_rows<4>(rows, [&](auto r) {
    constexpr int R = decltype(r)::value;
    (l1 ? stream_i8_rows<R, true> : stream_i8_rows<R, false>)(s, j0, p0, kq, a, kp, t, ldt, start);
  });
}

MOE_QG_VNNI void qg_pack_i8_vnni(const QgCodes& s, int64_t j0, int64_t kq, int8_t* panel, int32_t* colsum) {
  const int64_t cols = s.n - j0 < 64 ? s.n - j0 : 64;
  const __mmask64 keep = mask64(cols);
  auto row = [&](int64_t p) {
    return p >= s.k ? _mm512_setzero_si512() : code_bytes<false>(codes_at(s, p, j0), s.fmt == MOE_WF_INT8, cols, keep);
  };
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i sum[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
  for (int64_t q = 0; q < kq; ++q) {
    for (int t = 0; t < 4 && MOE_QG_PACK_PF > 0; ++t) {  // the panel's rows are ld bytes apart: prefetched
      const int64_t p = 4 * (q + MOE_QG_PACK_PF) + t;
      if (p < s.k) _mm_prefetch(reinterpret_cast<const char*>(codes_at(s, p, j0)), _MM_HINT_T0);
    }
    __m512i out[4];
    interleave_quads(row(4 * q), row(4 * q + 1), row(4 * q + 2), row(4 * q + 3), out);
    int8_t* d8 = panel + q * 256;
    for (int v = 0; v < 4; ++v) {
      _mm512_storeu_si512(d8 + 64 * v, out[v]);
      sum[v] = _mm512_dpbusd_epi32(sum[v], ones, out[v]);
    }
  }
  for (int v = 0; v < 4; ++v) _mm512_storeu_si512(colsum + 16 * v, sum[v]);
}

}  // namespace moe::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

#else  // not x86-64: never called (i8_vnni_usable() is false)

namespace moe::detail {
void qg_pack_i8_vnni(const QgCodes&, int64_t, int64_t, int8_t*, int32_t*) {}
void qg_stream_i8_vnni(const QgCodes&, int64_t, int64_t, int64_t, const uint8_t*, int64_t, int, int32_t*, int64_t, bool, bool,
                       bool) {}
}  // namespace moe::detail

#endif
