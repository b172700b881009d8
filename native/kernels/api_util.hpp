// Helpers of the baseline C ABI units (api.cpp, gemm.cpp, ffn_api.cpp, ...): error reporting, the call mutex that
// serializes kernels, and argument checks.
#pragma once

#include <cstdint>
#include <cstring>
#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <mutex>
#include <new>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "moe-kernels.h"

namespace moe::detail {

// The calling thread's context's mutex (thread_pool.cpp): its pool, scratch and workspace serve one call at a time.
std::mutex& call_mutex();
// The calling thread's last error message (api.cpp).
std::string& last_error();

inline moe_status_t fail(moe_status_t status, const std::string& msg) {
  last_error() = msg;
  return status;
}

template <class F>
moe_status_t guarded(const char* where, F&& body) {
  last_error().clear();
  try {
    std::lock_guard<std::mutex> lk(call_mutex());
    return body();
  } catch (const std::bad_alloc&) {
    return fail(MOE_STATUS_OUT_OF_MEMORY, std::string(where) + ": out of memory");
  } catch (const std::system_error& e) {
    return fail(MOE_STATUS_OUT_OF_MEMORY, std::string(where) + ": " + e.what());
  } catch (const std::exception& e) {
    return fail(MOE_STATUS_INTERNAL, std::string(where) + ": " + e.what());
  } catch (...) {
    return fail(MOE_STATUS_INTERNAL, std::string(where) + ": unknown error");
  }
}

// Checks sizes and pointers; the first failure is kept in `error`.
struct Checker {
  const char* where;
  std::string error;

  bool size(const char* name, int64_t v) {
    if (!error.empty()) return false;
    if (v < 0) error = std::string(where) + ": " + name + " = " + std::to_string(v) + " is negative";
    return error.empty();
  }

  // count = product of dims; the tensor must be non-NULL when count > 0.
  bool tensor(const char* name, const void* p, std::initializer_list<int64_t> dims) {
    if (!error.empty()) return false;
    int64_t count = 1;
    for (int64_t d : dims) {
      if (__builtin_mul_overflow(count, d, &count) || count > (int64_t(1) << 60)) {
        error = std::string(where) + ": " + name + " is too large";
        return false;
      }
    }
    if (count > 0 && p == nullptr) error = std::string(where) + ": " + name + " is NULL";
    return error.empty();
  }

  bool require(bool ok, const std::string& msg) {
    if (!error.empty()) return false;
    if (!ok) error = std::string(where) + ": " + msg;
    return ok;
  }
};

// Group row offsets (num_groups + 1 entries); checks sizes >= 0 and sum <= rows.
inline bool group_offsets(Checker& ck, const int32_t* sizes, int64_t num_groups, int64_t rows, std::vector<int64_t>& off) {
  if (!ck.error.empty()) return false;
  off.assign(size_t(num_groups) + 1, 0);
  for (int64_t g = 0; g < num_groups; ++g) {
    if (sizes[g] < 0) {
      ck.error = std::string(ck.where) + ": group_sizes[" + std::to_string(g) + "] = " + std::to_string(sizes[g]) +
                 " is negative";
      return false;
    }
    off[size_t(g) + 1] = off[size_t(g)] + sizes[g];
  }
  if (off.back() > rows) {
    ck.error = std::string(ck.where) + ": sum(group_sizes) = " + std::to_string(off.back()) + " exceeds m = " +
               std::to_string(rows);
    return false;
  }
  return true;
}

// The operands of a grouped matmul (gmm: lhs [m, k], rhs [num_groups, k, n], out [m, n]) and its group offsets.
inline bool gmm_operands(Checker& ck, const void* lhs, const void* rhs, const int32_t* group_sizes, int64_t m, int64_t k,
                         int64_t n, int64_t num_groups, const void* out, std::vector<int64_t>& off) {
  return ck.size("m", m) && ck.size("k", k) && ck.size("n", n) && ck.size("num_groups", num_groups) &&
         ck.tensor("lhs", lhs, {m, k}) && ck.tensor("rhs", rhs, {num_groups, k, n}) &&
         ck.tensor("group_sizes", group_sizes, {num_groups}) && ck.tensor("out", out, {m, n}) &&
         group_offsets(ck, group_sizes, num_groups, m, off);
}

// Checks shared by the FFN entry points.
inline bool check_activation(Checker& ck, moe_activation_t act, float limit) {
  return ck.require(act >= MOE_ACT_LINEAR && act <= MOE_ACT_RELU, "unknown activation " + std::to_string(int(act))) &&
         ck.require(limit >= 0.0f && std::isfinite(limit), "clamp_limit must be finite and >= 0");
}

// row_token[r] = order[r] / K and inv[order[r]] = r, checking that order is a permutation of [0, R).
inline bool derive_maps(Checker& ck, const int32_t* order, int64_t R, int64_t K, int32_t* row_token, int32_t* inv) {
  if (!ck.error.empty()) return false;
  std::fill(inv, inv + R, -1);
  for (int64_t r = 0; r < R; ++r) {
    const int64_t c = order[r];
    if (c < 0 || c >= R || inv[c] != -1) {
      return ck.require(false, "order is not a permutation of [0, T*K): order[" + std::to_string(r) + "] = " +
                                   std::to_string(c));
    }
    inv[c] = int32_t(r);
    row_token[r] = int32_t(c / K);
  }
  return true;
}

inline bool check_sizes(Checker& ck, std::initializer_list<std::pair<const char*, int64_t>> sizes) {
  for (const auto& s : sizes) {
    if (!ck.size(s.first, s.second)) return false;
  }
  return true;
}

inline bool check_index_range(Checker& ck, int64_t R) {
  return ck.require(R <= int64_t(INT32_MAX), "R = " + std::to_string(R) + " exceeds the int32 index range");
}

inline void zero_rows(float* out, int64_t from, int64_t to, int64_t width) {
  if (out != nullptr && to > from && width > 0) {
    std::memset(out + from * width, 0, size_t((to - from) * width) * sizeof(float));
  }
}

}  // namespace moe::detail
