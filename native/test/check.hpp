// What the standalone native tests share: the failure counter, EXPECT, and a small deterministic Rng.
#pragma once

#include <cstdint>
#include <cstdio>

namespace moe_test {

inline int g_failures = 0;
inline int g_checks = 0;

struct Rng {
  uint64_t s;
  float next() {  // uniform in [-1, 1)
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return float(int32_t(s >> 32)) * (1.0f / 2147483648.0f);
  }
  uint32_t below(uint32_t n) {  // uniform in [0, n)
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return uint32_t((s >> 33) % n);
  }
};

}  // namespace moe_test

// Counts a check; prints the first 60 failures with their place and a printf-style message.
#define EXPECT(cond, ...)                                \
  do {                                                   \
    ++moe_test::g_checks;                                \
    if (!(cond)) {                                       \
      ++moe_test::g_failures;                            \
      if (moe_test::g_failures < 60) {                   \
        std::printf("FAIL %s:%d: ", __FILE__, __LINE__); \
        std::printf(__VA_ARGS__);                        \
        std::printf("\n");                               \
      }                                                  \
    }                                                    \
  } while (0)
