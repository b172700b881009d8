// Elementwise float32 arithmetic of two same-shape arrays (add, sub, mul, div), on the thread pool in fixed chunks:
// one IEEE operation per element, so the results equal the reference backend's bit for bit (a NaN may carry
// another payload).
#include <cstdint>

#include "api_util.hpp"
#include "internal.hpp"
#include "moe-kernels.h"

namespace {

constexpr int64_t kChunk = int64_t(1) << 16;

template <class Op>
void run(const float* a, const float* b, float* out, int64_t n, Op op) {
  auto pass = [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) out[i] = op(a[i], b[i]);
  };
  moe::detail::parallel_chunks(n, kChunk, pass);
}

}  // namespace

extern "C" moe_status_t moe_binary_f32(moe_binary_op_t op, const float* a, const float* b, float* out, int64_t n) {
  using namespace moe::detail;
  if (n < 0) return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_binary_f32: n < 0");
  if (n > 0 && (a == nullptr || b == nullptr || out == nullptr)) return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_binary_f32: NULL pointer");
  if (op < MOE_BINARY_ADD || op > MOE_BINARY_DIV) return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_binary_f32: unknown op");
  return guarded("moe_binary_f32", [&] {
    switch (op) {
      case MOE_BINARY_ADD: run(a, b, out, n, [](float x, float y) { return x + y; }); break;
      case MOE_BINARY_SUB: run(a, b, out, n, [](float x, float y) { return x - y; }); break;
      case MOE_BINARY_MUL: run(a, b, out, n, [](float x, float y) { return x * y; }); break;
      case MOE_BINARY_DIV: run(a, b, out, n, [](float x, float y) { return x / y; }); break;
    }
    return MOE_STATUS_OK;
  });
}
