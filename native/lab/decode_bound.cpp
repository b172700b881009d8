// The instruction bound of the weight-only decode streams (isa_avx512_qgmm.cpp's stream_rows, float activations):
// each stream's instruction mix per 64 bytes of codes for R routed rows, run from registers only (no loads, no
// dependences but the accumulators'), timed against 8 independent FMAs per iteration, which count as 8 cycles (one
// 512-bit FMA a cycle). A stream that runs near this figure is bound by its instructions, not by memory: with 2 cores,
// 64 B per this many cycles per core is the most it can stream. The integer rows are a candidate, not a kernel of the
// library: int4 codes laid out as VNNI quads (nibble pairs of two columns) times float32 activations cut into three
// signed 8-bit limbs, vpdpbusd per limb (AVX512-VNNI). Beside each stream's bound: the library's moe_quantized_gmm on
// one thread, R rows of one group against codes in tiles that stay in the L2 (k = 384, n = 1408), in the same cycles.
// Build and run: native/test/run.sh decode_bound
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "moe-kernels.h"

namespace {

constexpr long kIters = 40000000;

#define CLOBBERS                                                                                                     \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", \
      "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23"
#define TIME(body)                                                                              \
  [] {                                                                                          \
    const auto t0 = std::chrono::steady_clock::now();                                           \
    for (long i = 0; i < kIters; ++i) asm volatile(body ::: CLOBBERS);                          \
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();        \
  }()

// accumulator r += zmm30 * zmm31 (FMA) or += u8 zmm a times s8 zmm b in quads (vpdpbusd)
#define F(r) "vfmadd231ps %%zmm30, %%zmm31, %%zmm" #r "\n"
#define DP(r, a, b) "vpdpbusd %%zmm" #b ", %%zmm" #a ", %%zmm" #r "\n"
#define F4(a, b, c, d) F(a) F(b) F(c) F(d)
// 4, 8 and 12 FMAs into distinct accumulators (16: ROWS3 and four of them again)
#define ROWS1 F4(0, 1, 2, 3)
#define ROWS2 F4(0, 1, 2, 3) F4(4, 5, 6, 7)
#define ROWS3 F4(0, 1, 2, 3) F4(4, 5, 6, 7) F4(8, 9, 22, 23)
// int8 codes: four sign extensions (vpmovsxbd) and four conversions (vcvtdq2ps) into zmm14..17
#define INT8_DECODE                                                                                       \
  "vpmovsxbd %%xmm29, %%zmm10\n vpmovsxbd %%xmm29, %%zmm11\n vpmovsxbd %%xmm29, %%zmm12\n"                \
  "vpmovsxbd %%xmm29, %%zmm13\n vcvtdq2ps %%zmm10, %%zmm14\n vcvtdq2ps %%zmm11, %%zmm15\n"                \
  "vcvtdq2ps %%zmm12, %%zmm16\n vcvtdq2ps %%zmm13, %%zmm17\n"
// int4 codes, two panels a pass: three shifts, four vpermps and four vpermw lookups
#define INT4_DECODE                                                                                       \
  "vpsrld $4, %%zmm29, %%zmm10\n vpsrld $8, %%zmm29, %%zmm11\n vpsrld $12, %%zmm29, %%zmm12\n"            \
  "vpermps %%zmm28, %%zmm29, %%zmm14\n vpermps %%zmm28, %%zmm10, %%zmm15\n"                               \
  "vpermps %%zmm28, %%zmm11, %%zmm16\n vpermps %%zmm28, %%zmm12, %%zmm17\n"                               \
  "vpermw %%zmm27, %%zmm29, %%zmm18\n vpermw %%zmm27, %%zmm10, %%zmm19\n"                                 \
  "vpermw %%zmm27, %%zmm11, %%zmm20\n vpermw %%zmm27, %%zmm12, %%zmm21\n"
// nibble quads: the low and the high nibbles of 64 bytes as unsigned bytes (an and, a shift, an and)
#define NIBBLES "vpandd %%zmm26, %%zmm29, %%zmm14\n vpsrld $4, %%zmm29, %%zmm15\n vpandd %%zmm26, %%zmm15, %%zmm15\n"
#define LIMBS_ROW0 DP(0, 14, 27) DP(1, 15, 27) DP(2, 14, 28) DP(3, 15, 28) DP(4, 14, 25) DP(5, 15, 25)
#define LIMBS_ROW1 DP(6, 14, 24) DP(7, 15, 24) DP(8, 14, 23) DP(9, 15, 23) DP(22, 14, 21) DP(23, 15, 21)

struct Mix {
  const char* name;
  double (*run)();
  bool vnni;
  moe_weight_format_t format;  // the library's stream of these codes, at `rows` rows (0: none)
  int rows;
};

// Seconds per 64 bytes of codes of moe_quantized_gmm on one thread, the codes in the L2 (best of a few timed loops).
double library_per_line(moe_weight_format_t format, int rows) {
  const int64_t k = 384, n = 1408;
  const bool int4 = format == MOE_WF_INT4_TILES;
  const size_t bytes = size_t(k * (int4 ? n / 2 : n));
  std::vector<uint8_t> codes(bytes);
  for (size_t i = 0; i < bytes; ++i) codes[i] = uint8_t((i * 2654435761u) >> 13);
  std::vector<float> scales(size_t(n), 0.01f), a(size_t(rows * k)), out(size_t(rows * n));
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(int(i % 17) - 8) * 0.125f;
  const int32_t group[1] = {rows};
  auto call = [&] {
    return moe_quantized_gmm(format, a.data(), 0, nullptr, codes.data(), scales.data(), group, rows, k, n, 1,
                             out.data());
  };
  if (call() != MOE_STATUS_OK) return 0.0;
  const int calls = 400;
  double best = 1e30;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int c = 0; c < calls; ++c) call();
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / calls;
    best = t < best ? t : best;
  }
  return best / (double(bytes) / 64.0);
}

}  // namespace

int main() {
  if (!__builtin_cpu_supports("avx512bw")) {
    std::printf("decode_bound: no AVX-512 here; the streams it times are the AVX-512 ones\n");
    return 0;
  }
  const bool vnni = __builtin_cpu_supports("avx512vnni");
  asm volatile(
      "vpxord %%zmm21, %%zmm21, %%zmm21\n vpxord %%zmm23, %%zmm23, %%zmm23\n vpxord %%zmm24, %%zmm24, %%zmm24\n"
      "vpxord %%zmm25, %%zmm25, %%zmm25\n vpxord %%zmm26, %%zmm26, %%zmm26\n vpxord %%zmm27, %%zmm27, %%zmm27\n"
      "vpxord %%zmm28, %%zmm28, %%zmm28\n vpxord %%zmm29, %%zmm29, %%zmm29\n vpxord %%zmm30, %%zmm30, %%zmm30\n"
      "vpxord %%zmm31, %%zmm31, %%zmm31\n" ::
          : "xmm21", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31");
  constexpr moe_weight_format_t i8 = MOE_WF_INT8_TILES, i4 = MOE_WF_INT4_TILES;
  const Mix mixes[] = {
      {"int8 codes, R=1 (4 FMA)", [] { return TIME(INT8_DECODE ROWS1); }, false, i8, 1},
      {"int8 codes, R=2 (8 FMA)", [] { return TIME(INT8_DECODE ROWS2); }, false, i8, 2},
      {"int8 codes, R=3 (12 FMA)", [] { return TIME(INT8_DECODE ROWS3); }, false, i8, 3},
      {"int4 codes, R=1 (8 FMA)", [] { return TIME(INT4_DECODE ROWS2); }, false, i4, 1},
      {"int4 codes, R=2 (16 FMA)", [] { return TIME(INT4_DECODE ROWS3 F4(0, 1, 2, 3)); }, false, i4, 2},
      {"int4 VNNI quads, 3 limbs, R=1 (candidate)", [] { return TIME(NIBBLES LIMBS_ROW0); }, true, i8, 0},
      {"int4 VNNI quads, 3 limbs, R=2 (candidate)", [] { return TIME(NIBBLES LIMBS_ROW0 LIMBS_ROW1); }, true, i8, 0},
  };

  double fma8 = 1e30;
  for (int k = 0; k < 3; ++k) {  // the best of three: the VM's clock settles
    const double t = TIME(ROWS2);
    fma8 = t < fma8 ? t : fma8;
  }
  moe_set_num_threads(1);
  const double cycle = fma8 / 8.0 / double(kIters);
  std::printf("cycles per 64 B of codes (8 independent FMAs = 8 cycles: %.2f GHz): from registers | the library's\n"
              "stream, one thread, codes in the L2\n", 1e-9 / cycle);
  for (const Mix& m : mixes) {
    if (m.vnni && !vnni) {
      std::printf("  %-44s      - (no AVX512-VNNI)\n", m.name);
      continue;
    }
    double t = 1e30;
    for (int k = 0; k < 3; ++k) {
      const double r = m.run();
      t = r < t ? r : t;
    }
    std::printf("  %-44s %6.2f", m.name, 8.0 * t / fma8);
    const double line = m.rows > 0 ? library_per_line(m.format, m.rows) : 0.0;
    if (m.rows > 0) std::printf(" | %6.2f (%.2fx)", line / cycle, line / cycle / (8.0 * t / fma8));
    std::printf("\n");
  }
  return 0;
}
