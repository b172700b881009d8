// Routing kernels: top-k along rows and a stable argsort of integer keys (the sort by expert id).
// Top-k runs rows on the pool (AVX-512: k passes of a vector maximum, isa_avx512.cpp); the argsort is
// single-threaded (a small part of a layer forward at the bench shape).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "api_util.hpp"
#include "ffn_stages.hpp"
#include "moe-kernels.h"

namespace {

// jax.lax.top_k order: larger first, NaN before everything, equal values by lower index.
inline bool before(float a, int32_t ia, float b, int32_t ib) {
  const bool an = std::isnan(a), bn = std::isnan(b);
  if (an || bn) return an && bn ? ia < ib : an;
  return a > b || (a == b && ia < ib);
}

void topk_row(const float* x, int64_t n, int64_t k, float* vals, int32_t* ids) {
  int64_t len = 0;  // the best `len` so far, in order, in vals/ids
  for (int64_t j = 0; j < n; j++) {
    const float v = x[j];
    const auto id = int32_t(j);
    if (len == k && !before(v, id, vals[k - 1], ids[k - 1])) continue;
    int64_t p = len < k ? len : k - 1;
    while (p > 0 && before(v, id, vals[p - 1], ids[p - 1])) {
      vals[p] = vals[p - 1];
      ids[p] = ids[p - 1];
      p--;
    }
    vals[p] = v;
    ids[p] = id;
    if (len < k) len++;
  }
}

}  // namespace

extern "C" moe_status_t moe_topk_f32(const float* x, int64_t rows, int64_t n, int64_t k, float* values,
                                     int32_t* indices) {
  using namespace moe::detail;
  if (rows < 0 || n < 0 || k < 0 || k > n) return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_topk_f32: need 0 <= k <= n, rows >= 0");
  if (rows * k > 0 && (x == nullptr || values == nullptr || indices == nullptr)) {
    return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_topk_f32: NULL pointer");
  }
  return guarded("moe_topk_f32", [&] {
    if (k > 0) {
      const int64_t chunk = rows_per_item(n);
#if defined(MOE_HAVE_X86_KERNELS)
      const bool avx512 = isa_active() == MOE_ISA_AVX512;
#else
      const bool avx512 = false;
#endif
      auto body = [&](int64_t item, int) {
        for (int64_t r = item * chunk, r1 = std::min(rows, r + chunk); r < r1; r++) {
#if defined(MOE_HAVE_X86_KERNELS)
          if (avx512 && topk_row_avx512(x + r * n, n, k, values + r * k, indices + r * k)) continue;
#endif
          topk_row(x + r * n, n, k, values + r * k, indices + r * k);
        }
      };
      parallel_items((rows + chunk - 1) / chunk, double(rows) * double(n) < kSerialElems, body);
    }
    return MOE_STATUS_OK;
  });
}

extern "C" moe_status_t moe_argsort_i32(const int32_t* keys, int64_t n, int32_t* out) {
  using namespace moe::detail;
  if (n < 0 || n > INT32_MAX) return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_argsort_i32: n out of range");
  if (n > 0 && (keys == nullptr || out == nullptr)) return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_argsort_i32: NULL pointer");
  return guarded("moe_argsort_i32", [&] {
    if (n == 0) return MOE_STATUS_OK;
    const auto [lo, hi] = std::minmax_element(keys, keys + n);
    const int64_t range = int64_t(*hi) - int64_t(*lo) + 1;
    if (range <= 4 * n + 1024) {
      // counting sort: stable by construction
      std::vector<int64_t> start(size_t(range) + 1, 0);
      for (int64_t i = 0; i < n; i++) start[size_t(int64_t(keys[i]) - *lo) + 1]++;
      for (int64_t b = 0; b < range; b++) start[size_t(b) + 1] += start[size_t(b)];
      for (int64_t i = 0; i < n; i++) out[start[size_t(int64_t(keys[i]) - *lo)]++] = int32_t(i);
    } else {
      for (int64_t i = 0; i < n; i++) out[i] = int32_t(i);
      std::stable_sort(out, out + n, [&](int32_t a, int32_t b) { return keys[a] < keys[b]; });
    }
    return MOE_STATUS_OK;
  });
}
