// The bf16 path policy: which multiply kind bf16 weights get (widen, dpbf16, amx), from the CPU, the environment and
// moe_set_bf16_path (baseline code).
#include <atomic>
#include <string>

#include "api_util.hpp"
#include "engine.hpp"

namespace moe::detail {
namespace {

// AMX where the CPU and OS allow it; vdpbf16ps where it outruns fp32 fma; else bf16 weights widened to fp32 (which
// also keeps the activations in fp32).
moe_bf16_path_t best_bf16_path() {
  if (cpu_has_amx_bf16()) return MOE_BF16_AMX;
  if (cpu_has_avx512_bf16() && cpu_has_fast_dpbf16()) return MOE_BF16_DPBF16;
  return MOE_BF16_WIDEN;
}

bool bf16_path_available(moe_bf16_path_t p) {
  switch (p) {
    case MOE_BF16_WIDEN: return true;
    case MOE_BF16_DPBF16: return cpu_has_avx512_bf16();
    case MOE_BF16_AMX: return cpu_has_amx_bf16();
  }
  return false;
}

std::atomic<int>& bf16_path_setting() {
  static std::atomic<int> p{int(best_bf16_path())};
  return p;
}

}  // namespace

// The path used now: the setting, or WIDEN when the active ISA is below AVX-512.
moe_bf16_path_t effective_bf16_path() {
  if (isa_active() != MOE_ISA_AVX512) return MOE_BF16_WIDEN;
  return moe_bf16_path_t(bf16_path_setting().load(std::memory_order_relaxed));
}

Mul mul_for(BElem e) {
  if (e == BElem::F32) return Mul::F32;
  switch (effective_bf16_path()) {
    case MOE_BF16_DPBF16: return Mul::DPBF16;
    case MOE_BF16_AMX: return Mul::AMX;
    case MOE_BF16_WIDEN: break;
  }
  return Mul::F32;
}

}  // namespace moe::detail

extern "C" {

const char* moe_bf16_path_name(moe_bf16_path_t path) {
  switch (path) {
    case MOE_BF16_WIDEN: return "widen";
    case MOE_BF16_DPBF16: return "dpbf16";
    case MOE_BF16_AMX: return "amx";
  }
  return "unknown";
}

moe_bf16_path_t moe_bf16_path(void) { return moe::detail::effective_bf16_path(); }

moe_status_t moe_set_bf16_path(moe_bf16_path_t path) {
  return moe::detail::guarded("moe_set_bf16_path", [&] {
    if (!moe::detail::bf16_path_available(path) ||
        (path != MOE_BF16_WIDEN && moe::detail::isa_active() != MOE_ISA_AVX512)) {
      return moe::detail::fail(MOE_STATUS_UNSUPPORTED, std::string("moe_set_bf16_path: ") + moe_bf16_path_name(path) +
                                                           " is not available on this CPU / ISA");
    }
    moe::detail::bf16_path_setting().store(int(path), std::memory_order_relaxed);
    return MOE_STATUS_OK;
  });
}

}  // extern "C"
