// Movement of 4-byte elements (float32 or int32 bits): a strided copy that serves transpose, broadcast_to and slice
// (the reference backend's stridedCopy in gather form), and iota. Copies only, so any split of the work gives the
// same result; work items of whole rows on the thread pool.
#include <cstdint>
#include <cstring>
#include <vector>

#include "api_util.hpp"
#include "internal.hpp"
#include "moe-kernels.h"

namespace {

constexpr int64_t kWork = int64_t(1) << 16;  // elements per work item (about)
constexpr int64_t kTile = 32;                // transposes: tiles of kTile x kTile

// Drops size-1 axes and merges an axis into the next when it steps over it exactly (so a broadcast is a run of
// stride 0 and a plain copy one contiguous axis).
void coalesce(std::vector<int64_t>& shape, std::vector<int64_t>& st) {
  std::vector<int64_t> sh2, st2;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!sh2.empty() && st2.back() == shape[d] * st[d]) {
      sh2.back() *= shape[d];
      st2.back() = st[d];
    } else {
      sh2.push_back(shape[d]);
      st2.push_back(st[d]);
    }
  }
  if (sh2.empty()) {
    sh2.push_back(1);
    st2.push_back(0);
  }
  shape.swap(sh2);
  st.swap(st2);
}

struct Rows {
  const uint32_t* src;
  uint32_t* dst;
  std::vector<int64_t> shape, st;  // coalesced; the last axis is the row
  int64_t cols;

  // source offset of row r (the axes before the last)
  int64_t base(int64_t r, int64_t offset) const {
    int64_t o = offset;
    for (size_t d = shape.size() - 1; d-- > 0;) {
      o += (r % shape[d]) * st[d];
      r /= shape[d];
    }
    return o;
  }
};

}  // namespace

extern "C" moe_status_t moe_copy_strided_b32(const void* src, int64_t src_len, void* dst, int ndim, const int64_t* shape,
                                             const int64_t* strides, int64_t offset) {
  using namespace moe::detail;
  Checker ck{"moe_copy_strided_b32", {}};
  if (!(ck.require(ndim >= 0 && ndim <= 16, "ndim = " + std::to_string(ndim) + " outside [0, 16]") &&
        ck.require(ndim == 0 || (shape != nullptr && strides != nullptr), "shape or strides NULL") && ck.size("src_len", src_len) &&
        ck.size("offset", offset))) {
    return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
  }
  std::vector<int64_t> sh(shape, shape + ndim), st(strides, strides + ndim);
  int64_t total = 1, last = offset;
  for (int d = 0; d < ndim; ++d) {
    if (!(ck.size("shape", sh[size_t(d)]) && ck.size("stride", st[size_t(d)]))) return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    if (__builtin_mul_overflow(total, sh[size_t(d)], &total) || total > (int64_t(1) << 60)) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_copy_strided_b32: dst is too large");
    }
    if (sh[size_t(d)] > 0) last += (sh[size_t(d)] - 1) * st[size_t(d)];
  }
  if (total == 0) return MOE_STATUS_OK;
  if (!(ck.require(last < src_len, "reads past src (" + std::to_string(last) + " >= " + std::to_string(src_len) + ")") &&
        ck.tensor("src", src, {src_len}) && ck.tensor("dst", dst, {total}))) {
    return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
  }
  return guarded("moe_copy_strided_b32", [&] {
    coalesce(sh, st);
    Rows w{static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), sh, st, sh.back()};
    const int64_t rows = total / w.cols, s = w.st.back(), cols = w.cols;
    if (s <= 1 || w.shape.size() == 1) {
      // contiguous rows, broadcast rows (stride 0) or one strided axis
      auto pass = [&](int64_t a, int64_t b) {
        for (int64_t r = a; r < b; ++r) {
          const uint32_t* in = w.src + w.base(r, offset);
          uint32_t* o = w.dst + r * cols;
          if (s == 1) std::memcpy(o, in, size_t(cols) * 4);
          else if (s == 0) std::fill(o, o + cols, in[0]);
          else for (int64_t j = 0; j < cols; ++j) o[j] = in[j * s];
        }
      };
      parallel_chunks(rows, std::max<int64_t>(1, kWork / cols), pass);
      return MOE_STATUS_OK;
    }
    // a transpose: blocks of kTile rows, copied in kTile x kTile tiles
    auto pass = [&](int64_t a, int64_t b) {
      int64_t base[kTile];
      for (int64_t blk = a; blk < b; ++blk) {
        const int64_t r0 = blk * kTile, nr = std::min(kTile, rows - r0);
        for (int64_t i = 0; i < nr; ++i) base[i] = w.base(r0 + i, offset);
        for (int64_t j0 = 0; j0 < cols; j0 += kTile) {
          const int64_t j1 = std::min(cols, j0 + kTile);
          for (int64_t i = 0; i < nr; ++i) {
            uint32_t* o = w.dst + (r0 + i) * cols;
            const uint32_t* in = w.src + base[i];
            for (int64_t j = j0; j < j1; ++j) o[j] = in[j * s];
          }
        }
      }
    };
    const int64_t blocks = (rows + kTile - 1) / kTile;
    parallel_chunks(blocks, std::max<int64_t>(1, kWork / (kTile * cols)), pass);
    return MOE_STATUS_OK;
  });
}

extern "C" moe_status_t moe_iota_i32(int64_t outer, int64_t n, int64_t inner, int32_t* out) {
  using namespace moe::detail;
  Checker ck{"moe_iota_i32", {}};
  if (!(check_sizes(ck, {{"outer", outer}, {"n", n}, {"inner", inner}}) && ck.tensor("out", out, {outer, n, inner}) &&
        ck.require(n <= int64_t(INT32_MAX) + 1, "n exceeds the int32 range"))) {
    return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
  }
  return guarded("moe_iota_i32", [&] {
    auto pass = [&](int64_t a, int64_t b) {
      for (int64_t p = a; p < b; ++p) {
        int32_t* o = out + p * n * inner;
        for (int64_t i = 0; i < n; ++i) std::fill(o + i * inner, o + (i + 1) * inner, int32_t(i));
      }
    };
    if (n * inner > 0) parallel_chunks(outer, std::max<int64_t>(1, kWork / (n * inner)), pass);
    return MOE_STATUS_OK;
  });
}
