// Run-time choice of the kernel ISA (compiled for baseline x86-64 or any other target).
#include <atomic>

#include "internal.hpp"

namespace moe::detail {
namespace {

moe_isa_t detect() {
#if defined(MOE_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  // The AVX-512 ISA units are compiled for avx512f,avx512bw,avx512vl,avx512dq,fma: all of them must be there.
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (avx512) return MOE_ISA_AVX512;
  if (avx2) return MOE_ISA_AVX2;
#endif
  return MOE_ISA_SCALAR;
}

const moe_isa_t g_best = detect();
std::atomic<moe_isa_t> g_active{g_best};

}  // namespace

moe_isa_t isa_best() { return g_best; }
moe_isa_t isa_active() { return g_active.load(std::memory_order_relaxed); }
void isa_set(moe_isa_t isa) { g_active.store(isa, std::memory_order_relaxed); }

}  // namespace moe::detail
