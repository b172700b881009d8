// AMX ISA unit of the GEMM engine: bf16 weights multiplied on the AMX tile unit (tdpbf16ps), activations rounded to
// bf16 as they are packed, fp32 accumulation in the tiles. Runs only when cpu_features.cpp found AMX-BF16 usable
// (CPUID, XCR0 and the Linux arch_prctl permission for tile data).
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <utility>

#include "engine.hpp"

#if defined(MOE_HAVE_X86_KERNELS)
#include <immintrin.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512bf16,amx-tile,amx-bf16"))), \
                             apply_to = function)
#else
#pragma GCC push_options
// GCC 12 flags _mm512_undefined_ps() (self-initialized) inside min/max/scalef/roundscale: a known false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512bf16,amx-tile,amx-bf16")
#endif

namespace moe::detail {
namespace {

#include "isa_avx512_math.inc"
#include "engine_block.inc"

// Palette 1, every tile 16 rows x 64 bytes: C 16x16 fp32, A 16 rows x 32 bf16, B 16 pair rows x 16 columns.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

const TileConfig& tile_config() {
  static const TileConfig cfg = [] {
    TileConfig c;
    for (int t = 0; t < 8; ++t) {
      c.colsb[t] = 64;
      c.rows[t] = 16;
    }
    return c;
  }();
  return cfg;
}

// C[32 x 32] (+)= A * B over kcp (a multiple of 32): A bf16 rows (row stride lda elements, rows past mr zero),
// B pair panel [kcp/2][32][2]. Tiles: C 0..3 (rows 0-15 / 16-31 x columns 0-15 / 16-31), A 4, 5, B 6, 7.
// With mr <= 16 only the upper half is computed.
void ukr_amx(int mr, int64_t kcp, const uint16_t* a, int64_t lda, const void* bv, float* c, int64_t ldc, bool acc) {
  const auto* b = static_cast<const uint16_t*>(bv);
  const int64_t ldcb = ldc * 4, ldab = lda * 2;
  const bool two = mr > 16;
  if (acc) {
    _tile_loadd(0, c, ldcb);
    _tile_loadd(1, c + 16, ldcb);
    if (two) {
      _tile_loadd(2, c + 16 * ldc, ldcb);
      _tile_loadd(3, c + 16 * ldc + 16, ldcb);
    }
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  if (two) {
    for (int64_t kk = 0; kk < kcp; kk += 32) {
      _tile_loadd(4, a + kk, ldab);
      _tile_loadd(5, a + 16 * lda + kk, ldab);
      _tile_loadd(6, b + kk * 32, 128);
      _tile_loadd(7, b + kk * 32 + 32, 128);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  } else {
    for (int64_t kk = 0; kk < kcp; kk += 32) {
      _tile_loadd(4, a + kk, ldab);
      _tile_loadd(6, b + kk * 32, 128);
      _tile_loadd(7, b + kk * 32 + 32, 128);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
    }
  }
  _tile_stored(0, c, ldcb);
  _tile_stored(1, c + 16, ldcb);
  if (two) {
    _tile_stored(2, c + 16 * ldc, ldcb);
    _tile_stored(3, c + 16 * ldc + 16, ldcb);
  }
}

struct TrAmx : PairPanels {
  static constexpr int MR = 32, NR = 32, KG = 32;
  using AT = uint16_t;
  static constexpr bool kPairs = true, kPadRows = true;
  static void ukr(int mr, int64_t kcp, const uint16_t* a, int64_t lda, const void* b, float* c, int64_t ldc, bool acc) {
    ukr_amx(mr, kcp, a, lda, b, c, ldc, acc);
  }
  static void cvt_row(const float* src, int64_t n, int64_t npad, uint16_t* dst) { to_bf16_padded_avx512bf16(src, n, npad, dst); }
  static void begin() { _tile_loadconfig(&tile_config()); }
  static void end() { _tile_release(); }
};

}  // namespace

GemmBlocking amx_blocking() { return blocking_for(MOE_ISA_AVX512, Mul::AMX, {TrAmx::MR, TrAmx::NR, TrAmx::KG, 2, 2}); }
int64_t amx_scratch(const GemmProblem& p, const GemmItem& it) { return scratch_floats_t<TrAmx>(p, it); }
void amx_run(const GemmProblem& p, const GemmItem& it, float* scratch) { run_packed<TrAmx>(p, it, scratch); }

// tdpbf16ps throughput: 4 independent 16x16 accumulators per thread, 16 * 16 * 32 * 2 flop per instruction.
double probe_amx(double seconds) {
  alignas(64) static const uint16_t ones[16 * 32] = {0x3f80};
  _tile_loadconfig(&tile_config());
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, ones, 64);
  _tile_loadd(5, ones, 64);
  _tile_loadd(6, ones, 64);
  _tile_loadd(7, ones, 64);
  const auto t0 = std::chrono::steady_clock::now();
  int64_t iters = 0;
  for (;;) {
    for (int rep = 0; rep < 1024; ++rep) {
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    iters += 1024;
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() >= seconds) break;
  }
  _tile_release();
  return double(iters) * 4.0 * 16.0 * 16.0 * 32.0 * 2.0;
}

}  // namespace moe::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

// Baseline code: ask Linux for the tile-data state (process wide); other systems have no such step.
bool moe::detail::amx_enable() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

#endif  // MOE_HAVE_X86_KERNELS
