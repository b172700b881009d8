// CPU features beyond isa.cpp's: for the bf16 path policy, AVX512_BF16, usable AMX-BF16 and whether vdpbf16ps
// outruns fp32 fma; for the engine's blocking, the L2 size (baseline code).
#include <cstdint>
#include <cstdio>
#include <cstring>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#include "engine.hpp"

#if defined(MOE_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace moe::detail {
namespace {

#if defined(MOE_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

bool detect_avx512_bf16() {
  if (isa_best() != MOE_ISA_AVX512) return false;
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return (a >> 5) & 1u;
}

bool detect_amx_bf16() {
  if (!detect_avx512_bf16()) return false;
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool amx_bf16 = (d >> 22) & 1u, amx_tile = (d >> 24) & 1u;
  if (!amx_bf16 || !amx_tile) return false;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1u)) return false;  // OSXSAVE
  const uint64_t xcr0 = xgetbv0();
  if (((xcr0 >> 17) & 3u) != 3u) return false;  // XTILECFG, XTILEDATA
  return amx_enable();
}

// AMD cores (Zen 4, Zen 5) run vdpbf16ps at twice the fp32 fma rate; Intel cores (Cooper Lake to Granite Rapids) at
// half of it, where widening the weights to fp32 is faster (bench/RESULTS.md has the measurements).
bool detect_fast_dpbf16() {
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return false;
  char vendor[13] = {};
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  return std::strcmp(vendor, "AuthenticAMD") == 0 || std::strcmp(vendor, "HygonGenuine") == 0;
}
#else
bool detect_avx512_bf16() { return false; }
bool detect_amx_bf16() { return false; }
bool detect_fast_dpbf16() { return false; }
#endif

}  // namespace

bool cpu_has_avx512_bf16() {
  static const bool v = detect_avx512_bf16();
  return v;
}

bool cpu_has_amx_bf16() {
  static const bool v = detect_amx_bf16();
  return v;
}

bool cpu_has_fast_dpbf16() {
  static const bool v = detect_fast_dpbf16();
  return v;
}

// The L2 data cache of one core: sysconf, else sysfs, else 1 MiB (Ice Lake 1.25 MiB, Sapphire Rapids and later 2 MiB,
// Zen 4 and 5 1 MiB).
int64_t cache_l2_bytes() {
  static const int64_t v = [] {
#if defined(_SC_LEVEL2_CACHE_SIZE)
    const long s = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (s >= (64 << 10)) return int64_t(s);
#endif
    if (FILE* f = std::fopen("/sys/devices/system/cpu/cpu0/cache/index2/size", "r")) {
      long kib = 0;
      const int got = std::fscanf(f, "%ldK", &kib);
      std::fclose(f);
      if (got == 1 && kib >= 64) return int64_t(kib) << 10;
    }
    return int64_t(1) << 20;
  }();
  return v;
}

}  // namespace moe::detail

extern "C" {

int moe_cpu_has_avx512_bf16(void) { return moe::detail::cpu_has_avx512_bf16() ? 1 : 0; }
int moe_cpu_has_amx_bf16(void) { return moe::detail::cpu_has_amx_bf16() ? 1 : 0; }

}  // extern "C"
