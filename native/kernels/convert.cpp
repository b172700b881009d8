// fp32 -> bf16 bit patterns for the bf16 weights that TypeScript holds as float32 values, and fp32 values rounded to
// bf16 in float32 storage (a cast to bfloat16): elementwise integer formulas (no vcvtneps2bf16, which flushes
// denormals), split over the thread pool in fixed chunks.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "api_util.hpp"
#include "internal.hpp"
#include "moe-kernels.h"

namespace {

#include "widen.inc"

// The bit pattern of widen.inc's round_bf16 (nearest even; NaN keeps its sign and top payload bits, made quiet).
inline uint16_t bf16_bits(float f) {
  const float r = round_bf16(f);
  uint32_t u;
  std::memcpy(&u, &r, sizeof u);
  return uint16_t(u >> 16);
}

constexpr int64_t kChunk = int64_t(1) << 18;

// fn's argument checks (n >= 0; no NULL pointer when n > 0), then dst[i] = f(src[i]) over the pool in fixed chunks.
template <class D, class F>
moe_status_t each_element(const char* fn, const float* src, int64_t n, D* dst, F f) {
  using namespace moe::detail;
  if (n < 0) return fail(MOE_STATUS_INVALID_ARGUMENT, std::string(fn) + ": n < 0");
  if (n > 0 && (src == nullptr || dst == nullptr)) return fail(MOE_STATUS_INVALID_ARGUMENT, std::string(fn) + ": NULL pointer");
  return guarded(fn, [&] {
    auto pass = [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) dst[i] = f(src[i]);
    };
    parallel_chunks(n, kChunk, pass);
    return MOE_STATUS_OK;
  });
}

}  // namespace

extern "C" moe_status_t moe_f32_to_bf16_bits(const float* src, int64_t n, uint16_t* dst) {
  return each_element("moe_f32_to_bf16_bits", src, n, dst, bf16_bits);
}

// round_bf16 with a NaN left as it is (the TypeScript dispatcher's roundBf16InPlace)
extern "C" moe_status_t moe_round_bf16_f32(const float* src, int64_t n, float* dst) {
  return each_element("moe_round_bf16_f32", src, n, dst, [](float f) { return std::isnan(f) ? f : round_bf16(f); });
}
