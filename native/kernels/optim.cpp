// Optimizer updates (AdamW, SGD) over float32 parameters, in place, on the thread pool in fixed chunks. Every
// element takes the same float operations in the same order as the TypeScript spec (src/optim/optimizers.ts), with
// contraction into fused multiply-adds turned off, so both give the same bits.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include <cmath>
#include <cstdint>

#include "api_util.hpp"
#include "engine.hpp"
#include "internal.hpp"
#include "moe-kernels.h"

namespace {

constexpr int64_t kChunk = int64_t(1) << 16;

}  // namespace

extern "C" moe_status_t moe_adamw_f32(float* p, const float* g, float* m, float* v, int64_t n, const moe_adamw_t* h) {
  using namespace moe::detail;
  if (n < 0 || h == nullptr) return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_adamw_f32: n < 0 or NULL hyperparameters");
  if (n > 0 && (p == nullptr || g == nullptr || m == nullptr || v == nullptr)) {
    return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_adamw_f32: NULL pointer");
  }
  return guarded("moe_adamw_f32", [&] {
    const moe_adamw_t c = *h;
    auto f = [&](int64_t b, int64_t e) {
#if defined(MOE_HAVE_X86_KERNELS)
      if (isa_active() == MOE_ISA_AVX512) return adamw_avx512(p + b, g + b, m + b, v + b, e - b, c);
#endif
      for (int64_t i = b; i < e; ++i) {
        const float gi = g[i];
        const float mi = c.b1 * m[i] + c.one_minus_b1 * gi;
        const float vi = c.b2 * v[i] + c.one_minus_b2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        const float u = (mi / c.bias_correction1) / (std::sqrt(vi / c.bias_correction2) + c.eps) + c.weight_decay * p[i];
        p[i] = p[i] - c.learning_rate * u;
      }
    };
    parallel_chunks(n, kChunk, f);
    return MOE_STATUS_OK;
  });
}

extern "C" moe_status_t moe_sgd_f32(float* p, const float* g, float* trace, int64_t n, float learning_rate,
                                    float momentum) {
  using namespace moe::detail;
  if (n < 0) return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_sgd_f32: n < 0");
  if (n > 0 && (p == nullptr || g == nullptr)) return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_sgd_f32: NULL pointer");
  return guarded("moe_sgd_f32", [&] {
    auto f = [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float d = g[i];
        if (trace != nullptr) {
          d = momentum * trace[i] + d;
          trace[i] = d;
        }
        p[i] = p[i] - learning_rate * d;
      }
    };
    parallel_chunks(n, kChunk, f);
    return MOE_STATUS_OK;
  });
}
