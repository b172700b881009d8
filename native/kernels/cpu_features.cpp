// CPU features beyond isa.cpp's: for the bf16 path policy, AVX512_BF16, usable AMX-BF16 and whether vdpbf16ps
// outruns fp32 fma; for the engine's blocking, the cache sizes and the brand string (baseline code).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

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

namespace {

// Bytes of cache `level` (1: data, 2, 3) of cpu0: sysconf, else sysfs, else 0.
int64_t read_cache(int level) {
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE) && defined(_SC_LEVEL3_CACHE_SIZE)
  const long s = sysconf(level == 1 ? _SC_LEVEL1_DCACHE_SIZE : level == 2 ? _SC_LEVEL2_CACHE_SIZE : _SC_LEVEL3_CACHE_SIZE);
  if (s >= (4 << 10)) return int64_t(s);
#endif
  for (int index = 0; index < 8; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    char type[32] = {};
    long lvl = 0, kib = 0;
    FILE* f = std::fopen((dir + "level").c_str(), "r");
    if (f == nullptr) break;
    const bool got_level = std::fscanf(f, "%ld", &lvl) == 1;
    std::fclose(f);
    if (!got_level || lvl != level) continue;
    if ((f = std::fopen((dir + "type").c_str(), "r")) != nullptr) {
      const bool got_type = std::fscanf(f, "%31s", type) == 1;
      std::fclose(f);
      if (!got_type || std::strcmp(type, "Instruction") == 0) continue;
    }
    if ((f = std::fopen((dir + "size").c_str(), "r")) != nullptr) {
      const bool got_size = std::fscanf(f, "%ldK", &kib) == 1;
      std::fclose(f);
      if (got_size && kib >= 4) return int64_t(kib) << 10;
    }
  }
  return 0;
}

}  // namespace

// The caches of one core: sysconf, else sysfs, else 32 KiB / 1 MiB / 0 (L1 32-48 KiB and L2 1-2 MiB on the machines
// the project has run on: Ice Lake, Sapphire and Emerald Rapids, Zen 4 and 5).
CacheSizes cache_sizes() {
  static const CacheSizes v = [] {
    CacheSizes c{read_cache(1), read_cache(2), read_cache(3)};
    if (c.l1d == 0) c.l1d = int64_t(32) << 10;
    if (c.l2 == 0) c.l2 = int64_t(1) << 20;
    return c;
  }();
  return v;
}

int64_t cache_l2_bytes() { return cache_sizes().l2; }

// The processor's brand string (cpuid 0x80000002-4), trimmed; "" where cpuid has none.
const char* cpu_brand() {
  static const std::string v = [] {
    std::string s;
#if defined(MOE_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
    unsigned r[4];
    if (__get_cpuid(0x80000000u, &r[0], &r[1], &r[2], &r[3]) && r[0] >= 0x80000004u) {
      char text[49] = {};
      for (unsigned leaf = 0; leaf < 3; ++leaf) {
        __get_cpuid(0x80000002u + leaf, &r[0], &r[1], &r[2], &r[3]);
        std::memcpy(text + 16 * leaf, r, 16);
      }
      s = text;
    }
#endif
    const size_t b = s.find_first_not_of(' '), e = s.find_last_not_of(' ');
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  }();
  return v.c_str();
}

}  // namespace moe::detail

extern "C" {

int moe_cpu_has_avx512_bf16(void) { return moe::detail::cpu_has_avx512_bf16() ? 1 : 0; }
int moe_cpu_has_amx_bf16(void) { return moe::detail::cpu_has_amx_bf16() ? 1 : 0; }

}  // extern "C"
