// The VNNI unit of the integer kernels: a 4 x 64 int32 tile of uint8 x int8 products with vpdpbusd. The code below
// the target pragma only runs after i8_vnni_usable() (int8.cpp) found AVX512-VNNI with the AVX-512 ISA active.
#include <chrono>
#include <cstdint>
#include <cstring>

#include "int8.hpp"

#if defined(MOE_HAVE_X86_KERNELS)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vnni"))), apply_to = function)
#else
#pragma GCC push_options
// GCC 12 flags _mm512_undefined_epi32() (self-initialized) inside the shift intrinsics: a known false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vnni")
#endif

namespace moe::detail {

namespace {

// The tile for a fixed row count R: accumulators in registers (a run-time row count left them on the stack). Scaled:
// floats into out (i8_tile_vnni_scaled), else the int32 sums into c; ld: the row stride of either.
template <int R, bool Scaled>
void tile_rows(const uint8_t* a, int64_t kp, const int8_t* panel, int64_t kq, const int32_t* colsum, int32_t* c,
               float* out, int64_t ld, int cols, const float* row_scale, const float* col_scale) {
  __m512i acc[R][4];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) acc[i][v] = _mm512_setzero_si512();
  }
  for (int64_t q = 0; q < kq; ++q) {
    const int8_t* b = panel + q * kI8PanelCols * 4;
    const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64), b2 = _mm512_loadu_si512(b + 128),
                  b3 = _mm512_loadu_si512(b + 192);
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      int32_t quad;
      __builtin_memcpy(&quad, a + i * kp + 4 * q, 4);
      const __m512i av = _mm512_set1_epi32(quad);
      acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], av, b0);
      acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], av, b1);
      acc[i][2] = _mm512_dpbusd_epi32(acc[i][2], av, b2);
      acc[i][3] = _mm512_dpbusd_epi32(acc[i][3], av, b3);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) {
      const int j = 16 * v;
      if (j >= cols) break;
      const __mmask16 m = cols - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (cols - j)) - 1u);
      const __m512i corr = _mm512_slli_epi32(_mm512_loadu_si512(colsum + j), 7);  // 128 * colsum
      const __m512i sum = _mm512_sub_epi32(acc[i][v], corr);
      if (Scaled) {
        const __m512 scl = _mm512_mul_ps(_mm512_set1_ps(row_scale[i]), _mm512_maskz_loadu_ps(m, col_scale + j));
        const __m512 y = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(sum), scl), _mm512_setzero_ps());
        _mm512_mask_storeu_ps(out + i * ld + j, m, y);
      } else {
        _mm512_mask_storeu_epi32(c + i * ld + j, m, sum);
      }
    }
  }
}

template <bool Scaled>
void tile(const uint8_t* a, int64_t kp, int rows, const int8_t* panel, int64_t kq, const int32_t* colsum, int32_t* c,
          float* out, int64_t ld, int cols, const float* row_scale, const float* col_scale) {
  switch (rows) {
    case 1: return tile_rows<1, Scaled>(a, kp, panel, kq, colsum, c, out, ld, cols, row_scale, col_scale);
    case 2: return tile_rows<2, Scaled>(a, kp, panel, kq, colsum, c, out, ld, cols, row_scale, col_scale);
    case 3: return tile_rows<3, Scaled>(a, kp, panel, kq, colsum, c, out, ld, cols, row_scale, col_scale);
    default: return tile_rows<4, Scaled>(a, kp, panel, kq, colsum, c, out, ld, cols, row_scale, col_scale);
  }
}

}  // namespace

void i8_tile_vnni(const uint8_t* a, int64_t kp, int rows, const int8_t* panel, int64_t kq, const int32_t* colsum,
                  int32_t* c, int64_t ldc, int cols) {
  tile<false>(a, kp, rows, panel, kq, colsum, c, nullptr, ldc, cols, nullptr, nullptr);
}

void i8_tile_vnni_scaled(const uint8_t* a, int64_t kp, int rows, const int8_t* panel, int64_t kq, const int32_t* colsum,
                         const float* row_scale, const float* col_scale, float* out, int64_t ldo, int cols) {
  tile<true>(a, kp, rows, panel, kq, colsum, nullptr, out, ldo, cols, row_scale, col_scale);
}

namespace {
#include "probe.inc"
}  // namespace

double probe_vnni(double seconds) {
  __m512i acc[24];
  for (auto& a : acc) a = _mm512_setzero_si512();
  __m512i x = _mm512_set1_epi32(0x01010101);
  const int64_t steps = probe_steps(seconds, acc, [&](__m512i(&a)[24]) {
    // in place by asm: with the intrinsic GCC copied each accumulator in and out of a scratch register and spilled
    // them, and the probe read half the vpdpbusd rate
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i) {
      __m512i t = a[i];
      __asm__("vpdpbusd %1, %1, %0" : "+v"(t) : "v"(x));
      a[i] = t;
    }
    __asm__ volatile("" : "+v"(x));
  });
  return double(steps) * 24.0 * 128.0;  // 64 multiply-adds per instruction
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
void i8_tile_vnni(const uint8_t*, int64_t, int, const int8_t*, int64_t, const int32_t*, int32_t*, int64_t, int) {}
void i8_tile_vnni_scaled(const uint8_t*, int64_t, int, const int8_t*, int64_t, const int32_t*, const float*,
                         const float*, float*, int64_t, int) {}
double probe_vnni(double) { return 0.0; }
}  // namespace moe::detail

#endif
