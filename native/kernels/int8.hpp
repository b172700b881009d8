// Internal interface of the integer kernels (int8.cpp, baseline code) and their VNNI unit (isa_avx512vnni.cpp).
// Packed operands: A rows as uint8 (a + 128) over kp = round_up(k, 4) bytes; B in panels of 64 columns, each k-quad
// q of a panel 64 dwords of 4 int8 (B(4q + t, j0 + j) at byte (q * 64 + j) * 4 + t), zero past k and n.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "internal.hpp"

namespace moe::detail {

constexpr int64_t kI8PanelCols = 64;
constexpr int kI8TileRows = 4;

// kp: the bytes of a packed A row of k values (at least one k-quad).
inline int64_t i8_kp(int64_t k) { return (std::max<int64_t>(k, 1) + 3) / 4 * 4; }

// c[i * ldc + j] = sum_p (a[i * kp + p] - 128) * B(p, j) for i < rows <= kI8TileRows, j < cols <= 64, over the kq
// k-quads of one panel; colsum[j] = sum_p B(p, j) of the panel's columns (the correction of the +128).
void i8_tile_vnni(const uint8_t* a, int64_t kp, int rows, const int8_t* panel, int64_t kq, const int32_t* colsum,
                  int32_t* c, int64_t ldc, int cols);

// The same product scaled into floats: out[i * ldo + j] = fl(fl(c) * fl(row_scale[i] * col_scale[j])) + 0 (-0 becomes
// +0), c as above.
void i8_tile_vnni_scaled(const uint8_t* a, int64_t kp, int rows, const int8_t* panel, int64_t kq, const int32_t* colsum,
                         const float* row_scale, const float* col_scale, float* out, int64_t ldo, int cols);

// The same with plain loops (no colsum needed).
void i8_tile_scalar(const uint8_t* a, int64_t kp, int rows, const int8_t* panel, int64_t kq, int32_t* c, int64_t ldc,
                    int cols);

// Whether every x[i], i < n, is in [-128, 127], on the pool (moe_i32_fits_i8 without the call lock).
bool i32_fits_i8(const int32_t* x, int64_t n);

// A rows [m, k] (int8-range int32) as uint8 (+128) rows of kp >= k bytes, padded with 128 (on the pool).
void i8_pack_rows(const int32_t* lhs, int64_t m, int64_t k, int64_t kp, uint8_t* dst);

// vpdpbusd throughput on the calling thread for `seconds`: the int8 operations done (a multiply-add = 2).
double probe_vnni(double seconds);

// Whether the VNNI unit may run: AVX512-VNNI on the CPU and the AVX-512 ISA active (cpu_features.cpp).
bool i8_vnni_usable();

// The abs-max rule's value of x in a slice of abs-max mx > 0 with bound Qb: x / divisor, divisor = mx / Qb, the abs-max
// element landing on exactly +-Qb (moe_quantize_f32 and the served FFN's row quantizer).
inline double aqt_value(double x, double mx, double Qb, double divisor) {
  return std::fabs(x) == mx ? std::copysign(Qb, x) : x / divisor;
}

// Round half to even, for |v| < 2^51 (the values rounded here lie within a unit of +-2^(bits-1)): adding and taking
// away 1.5 * 2^52 rounds v to an integer in the default rounding mode, as nearbyint does, without its libm call.
inline double round_even(double v) {
  constexpr double kMagic = 6755399441055744.0;  // 1.5 * 2^52
  return (v + kMagic) - kMagic;
}

// Runs of n elements of moe_quantize_f32 without noise, `rows` of them ld apart: q[c ld + j] from x[c ld + j], the
// abs-max mx[j] and divisor div[j] = mx[j] / Qb of its slice (mx[0] and div[0] for every j when `shared`: a run along
// the reduced axis), q = 0 where mx is 0, within [lo, hi] (aqt clamps then rounds, qwix rounds then clamps). The scalar
// loop's bits, 8 doubles at a time (AVX-512 unit; only where that ISA is active).
#if defined(MOE_HAVE_X86_KERNELS)
void quantize_run_avx512(const float* x, int64_t rows, int64_t ld, int64_t n, const double* mx, const double* div,
                         bool shared, double Qb, double lo, double hi, bool qwix, int32_t* q);
// max |x[j]| over j < n, and *finite = 0 if one is not finite (else unchanged).
float absmax_run_avx512(const float* x, int64_t n, int* finite);
#endif

// moe_quantize_f32 without the call lock (for the calls that compose it: ffn_quant.cpp).
moe_status_t quantize_f32_run(const float* x, const float* noise, int64_t P, int64_t C, int64_t Q, int bits, int qwix,
                              int32_t* q, float* scales, int64_t* first_bad);

}  // namespace moe::detail
