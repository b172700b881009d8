// fp32 -> bf16 bit patterns for the bf16 weights that TypeScript holds as float32 values, and fp32 values rounded to
// bf16 in float32 storage (a cast to bfloat16): elementwise integer formulas (no vcvtneps2bf16, which flushes
// denormals), split over the thread pool in fixed chunks.
#include <cstdint>
#include <cstring>

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

}  // namespace

extern "C" moe_status_t moe_f32_to_bf16_bits(const float* src, int64_t n, uint16_t* dst) {
  using namespace moe::detail;
  if (n < 0) return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_f32_to_bf16_bits: n < 0");
  if (n > 0 && (src == nullptr || dst == nullptr)) return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_f32_to_bf16_bits: NULL pointer");
  return guarded("moe_f32_to_bf16_bits", [&] {
    auto convert = [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) dst[i] = bf16_bits(src[i]);
    };
    parallel_chunks(n, kChunk, convert);
    return MOE_STATUS_OK;
  });
}

extern "C" moe_status_t moe_round_bf16_f32(const float* src, int64_t n, float* dst) {
  using namespace moe::detail;
  if (n < 0) return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_round_bf16_f32: n < 0");
  if (n > 0 && (src == nullptr || dst == nullptr)) return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_round_bf16_f32: NULL pointer");
  return guarded("moe_round_bf16_f32", [&] {
    auto round = [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        uint32_t u;
        std::memcpy(&u, src + i, sizeof u);
        const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
        const uint32_t r = nan ? u : (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
        std::memcpy(dst + i, &r, sizeof r);
      }
    };
    parallel_chunks(n, kChunk, round);
    return MOE_STATUS_OK;
  });
}
