// The AVX-512 unit of the grouped matmul over quantized weights (qgmm.hpp): codes decoded in registers into the float
// panel, the 6 x 64 fma tile, and the VNNI packing of int codes (with avx512vnni added to that one function). The code below the target pragma only runs after isa.cpp found AVX-512 F/BW/VL/DQ +
// FMA and made it the active ISA (qgmm.cpp checks isa_active()).
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
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
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

// 32 bytes of int4 pairs (low nibble first) as 64 sign-extended int8 values in column order.
inline __m512i int4_to_i8(__m256i b) {
  const __m512i w = _mm512_cvtepu8_epi16(b);
  const __m512i lo = _mm512_and_si512(w, _mm512_set1_epi16(0x0f));
  const __m512i hi = _mm512_and_si512(_mm512_slli_epi16(w, 4), _mm512_set1_epi16(0x0f00));
  const __m512i x = _mm512_xor_si512(_mm512_or_si512(lo, hi), _mm512_set1_epi8(8));
  return _mm512_sub_epi8(x, _mm512_set1_epi8(8));  // (v ^ 8) - 8: two's complement nibbles
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

// r[c] (16 values of column c along p) -> d[p * 64 + c] for p, c < 16: a 16 x 16 transpose in registers.
inline void transpose_store(__m512 r[16], float* d) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // u[i + q]: columns i..i+3 of element 4L + q of each lane L
    u[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int q = 0; q < 4; ++q) {
    const __m512 x0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x44), x1 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x44);
    const __m512 x2 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xEE), x3 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xEE);
    _mm512_storeu_ps(d + q * 64, _mm512_shuffle_f32x4(x0, x1, 0x88));
    _mm512_storeu_ps(d + (4 + q) * 64, _mm512_shuffle_f32x4(x0, x1, 0xDD));
    _mm512_storeu_ps(d + (8 + q) * 64, _mm512_shuffle_f32x4(x2, x3, 0x88));
    _mm512_storeu_ps(d + (12 + q) * 64, _mm512_shuffle_f32x4(x2, x3, 0xDD));
  }
}

template <int R>
void tile_rows(const float* a, int64_t lda, const float* panel, int kc, float* part, int64_t ldc, bool start,
               bool finish, const float* row_scale, const float* col_scale, float* acc) {
  __m512 c[R][4];
  for (int i = 0; i < R; ++i) {
    for (int v = 0; v < 4; ++v) c[i][v] = start ? _mm512_setzero_ps() : _mm512_loadu_ps(part + i * ldc + 16 * v);
  }
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
  for (int i = 0; i < R; ++i) {
    const __m512 rs = _mm512_set1_ps(row_scale[i]);
    for (int v = 0; v < 4; ++v) {
      if (finish) {
        const __m512 scl = _mm512_mul_ps(rs, _mm512_loadu_ps(col_scale + 16 * v));
        float* o = acc + i * ldc + 16 * v;
        _mm512_storeu_ps(o, _mm512_fmadd_ps(c[i][v], scl, _mm512_loadu_ps(o)));
      } else {
        _mm512_storeu_ps(part + i * ldc + 16 * v, c[i][v]);
      }
    }
  }
}

}  // namespace

void qg_tile_avx512(const float* a, int64_t lda, int rows, const float* panel, int kc, float* part, int64_t ldc,
                    bool start, bool finish, const float* row_scale, const float* col_scale, float* acc) {
  switch (rows) {
    case 1: return tile_rows<1>(a, lda, panel, kc, part, ldc, start, finish, row_scale, col_scale, acc);
    case 2: return tile_rows<2>(a, lda, panel, kc, part, ldc, start, finish, row_scale, col_scale, acc);
    case 3: return tile_rows<3>(a, lda, panel, kc, part, ldc, start, finish, row_scale, col_scale, acc);
    case 4: return tile_rows<4>(a, lda, panel, kc, part, ldc, start, finish, row_scale, col_scale, acc);
    case 5: return tile_rows<5>(a, lda, panel, kc, part, ldc, start, finish, row_scale, col_scale, acc);
    default: return tile_rows<6>(a, lda, panel, kc, part, ldc, start, finish, row_scale, col_scale, acc);
  }
}

void qg_decode_avx512(const QgCodes& s, int64_t j0, int64_t p0, int kc, float* panel) {
  const int64_t cols = s.n - j0 < 64 ? s.n - j0 : 64;
  if (s.fmt == MOE_WF_INT8 || s.fmt == MOE_WF_INT4) {
    const int64_t ld = s.fmt == MOE_WF_INT8 ? s.n : (s.n + 1) / 2;
    const __mmask64 keep = mask64(cols);
    for (int p = 0; p < kc; ++p) {
      const uint8_t* row = s.c + (p0 + p) * ld;
      __m512i v;
      if (s.fmt == MOE_WF_INT8) {
        v = _mm512_maskz_loadu_epi8(keep, row + j0);
      } else {
        const __m256i b = _mm256_maskz_loadu_epi8(__mmask32(mask64((cols + 1) / 2)), row + j0 / 2);
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


// (qgmm.hpp) AVX512-VNNI on top of the unit's features: only called where i8_vnni_usable().
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512vnni"))) void qg_pack_i8_vnni(
    const QgCodes& s, int64_t j0, int64_t kq, int8_t* panel, int32_t* colsum) {
  const int64_t cols = s.n - j0 < 64 ? s.n - j0 : 64;
  const __mmask64 keep = mask64(cols);
  const int64_t ld = s.fmt == MOE_WF_INT8 ? s.n : (s.n + 1) / 2;
  auto row = [&](int64_t p) {
    if (p >= s.k) return _mm512_setzero_si512();
    const uint8_t* r = s.c + p * ld;
    if (s.fmt == MOE_WF_INT8) return _mm512_maskz_loadu_epi8(keep, r + j0);
    return _mm512_maskz_mov_epi8(keep, int4_to_i8(_mm256_maskz_loadu_epi8(__mmask32(mask64((cols + 1) / 2)), r + j0 / 2)));
  };
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i sum[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
  for (int64_t q = 0; q < kq; ++q) {
    const __m512i a = row(4 * q), b = row(4 * q + 1), c = row(4 * q + 2), d = row(4 * q + 3);
    // bytes of rows a..d interleaved per column: q0..q3 hold the dwords of columns 16L + {0-3, 4-7, 8-11, 12-15} of
    // each 128-bit lane L; a 4 x 4 transpose of the lanes puts columns 16v..16v+15 in out[v]
    const __m512i ab_lo = _mm512_unpacklo_epi8(a, b), ab_hi = _mm512_unpackhi_epi8(a, b);
    const __m512i cd_lo = _mm512_unpacklo_epi8(c, d), cd_hi = _mm512_unpackhi_epi8(c, d);
    const __m512i q0 = _mm512_unpacklo_epi16(ab_lo, cd_lo), q1 = _mm512_unpackhi_epi16(ab_lo, cd_lo);
    const __m512i q2 = _mm512_unpacklo_epi16(ab_hi, cd_hi), q3 = _mm512_unpackhi_epi16(ab_hi, cd_hi);
    const __m512i t0 = _mm512_shuffle_i32x4(q0, q1, 0x44), t1 = _mm512_shuffle_i32x4(q2, q3, 0x44);
    const __m512i t2 = _mm512_shuffle_i32x4(q0, q1, 0xEE), t3 = _mm512_shuffle_i32x4(q2, q3, 0xEE);
    const __m512i out[4] = {_mm512_shuffle_i32x4(t0, t1, 0x88), _mm512_shuffle_i32x4(t0, t1, 0xDD),
                            _mm512_shuffle_i32x4(t2, t3, 0x88), _mm512_shuffle_i32x4(t2, t3, 0xDD)};
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
}  // namespace moe::detail

#endif
