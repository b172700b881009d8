// Indexing kernels: gather of rows, scatter-add of rows (float64 chains over the updates in order, as the reference
// backend's scatterAdd forms them, so its results bit for bit) and bincount.
#include <cstdint>
#include <cstring>
#include <vector>

#include "api_util.hpp"
#include "internal.hpp"
#include "moe-kernels.h"
#include "workspace.hpp"

namespace {

constexpr int64_t kWork = int64_t(1) << 16;  // elements per work item (about)

// The first position whose index is outside [0, rows), or -1.
int64_t first_bad(const int32_t* idx, int64_t n, int64_t rows) {
  for (int64_t i = 0; i < n; ++i) {
    if (idx[i] < 0 || idx[i] >= rows) return i;
  }
  return -1;
}

}  // namespace

extern "C" moe_status_t moe_gather_b32(const void* x, int64_t rows, int64_t inner, const int32_t* idx, int64_t n, void* out,
                                       int64_t* bad) {
  using namespace moe::detail;
  Checker ck{"moe_gather_b32", {}};
  if (!(check_sizes(ck, {{"rows", rows}, {"inner", inner}, {"n", n}}) && ck.tensor("x", x, {rows, inner}) &&
        ck.tensor("idx", idx, {n}) && ck.tensor("out", out, {n, inner}) && ck.require(bad != nullptr, "bad is NULL"))) {
    return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
  }
  return guarded("moe_gather_b32", [&] {
    *bad = first_bad(idx, n, rows);
    if (*bad >= 0 || inner == 0) return MOE_STATUS_OK;
    const auto* src = static_cast<const uint32_t*>(x);
    auto* dst = static_cast<uint32_t*>(out);
    auto pass = [&](int64_t s, int64_t e) {
      if (inner == 1) {
        for (int64_t i = s; i < e; ++i) dst[i] = src[idx[i]];
        return;
      }
      for (int64_t i = s; i < e; ++i) std::memcpy(dst + i * inner, src + int64_t(idx[i]) * inner, size_t(inner) * 4);
    };
    parallel_chunks(n, std::max<int64_t>(1, kWork / inner), pass);
    return MOE_STATUS_OK;
  });
}

extern "C" moe_status_t moe_scatter_add_f32(const float* u, const int32_t* idx, int64_t n, int64_t inner, int64_t num_rows,
                                            float* out, int64_t* bad) {
  using namespace moe::detail;
  Checker ck{"moe_scatter_add_f32", {}};
  if (!(check_sizes(ck, {{"n", n}, {"inner", inner}, {"num_rows", num_rows}}) && ck.tensor("u", u, {n, inner}) &&
        ck.tensor("idx", idx, {n}) && ck.tensor("out", out, {num_rows, inner}) && ck.require(bad != nullptr, "bad is NULL") &&
        ck.require(n <= INT32_MAX, "n exceeds the int32 range"))) {
    return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
  }
  return guarded("moe_scatter_add_f32", [&] {
    *bad = first_bad(idx, n, num_rows);
    if (*bad >= 0 || num_rows * inner == 0) return MOE_STATUS_OK;
    // the updates of each row, in ascending order (a stable counting sort), in the workspace: T x E rows (the
    // routing's backward) would map and fault two fresh megabytes a call
    int32_t* start = workspace().i32(3, num_rows + 1 + n);
    int32_t* order = start + num_rows + 1;
    std::fill(start, start + num_rows + 1, 0);
    for (int64_t i = 0; i < n; ++i) start[idx[i] + 1]++;
    for (int64_t r = 0; r < num_rows; ++r) start[r + 1] += start[r];
    for (int64_t i = 0; i < n; ++i) order[start[idx[i]]++] = int32_t(i);  // start[r] becomes the end of row r
    auto first = [&](int64_t r) { return r == 0 ? 0 : start[r - 1]; };
    auto pass = [&](int64_t s, int64_t e) {
      std::vector<double> acc(static_cast<size_t>(inner));
      for (int64_t r = s; r < e; ++r) {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t k = first(r); k < start[r]; ++k) {
          const float* row = u + int64_t(order[k]) * inner;
          for (int64_t j = 0; j < inner; ++j) acc[size_t(j)] += double(row[j]);
        }
        for (int64_t j = 0; j < inner; ++j) out[r * inner + j] = float(acc[size_t(j)]);
      }
    };
    parallel_chunks(num_rows, std::max<int64_t>(1, kWork / inner), pass);
    return MOE_STATUS_OK;
  });
}

extern "C" moe_status_t moe_bincount_i32(const int32_t* x, int64_t n, int64_t length, int32_t* out) {
  using namespace moe::detail;
  Checker ck{"moe_bincount_i32", {}};
  if (!(check_sizes(ck, {{"n", n}, {"length", length}}) && ck.tensor("x", x, {n}) && ck.tensor("out", out, {length}))) {
    return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
  }
  return guarded("moe_bincount_i32", [&] {
    std::fill(out, out + length, 0);
    for (int64_t i = 0; i < n; ++i) {
      if (x[i] >= 0 && x[i] < length) out[x[i]]++;
    }
    return MOE_STATUS_OK;
  });
}
