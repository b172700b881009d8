// The memory-bound passes of the fused FFN: combine (the weighted sum of each token's rows) and its backward, row sums
// per group (bias gradients) and the elementwise GLU. Each output element has one writer and a fixed order.
#include <algorithm>
#include <cstring>

#include "ffn_stages.hpp"
#include "internal.hpp"

namespace moe::detail {
namespace {

// <a, b> over n: 16 lane sums (j mod 16), then a fixed pairwise reduction.
float dot(const float* __restrict a, const float* __restrict b, int64_t n) {
  float lanes[16] = {};
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    for (int l = 0; l < 16; ++l) lanes[l] = lanes[l] + a[j + l] * b[j + l];
  }
  for (int l = 0; j + l < n; ++l) lanes[l] = lanes[l] + a[j + l] * b[j + l];
  for (int width = 8; width > 0; width /= 2) {
    for (int l = 0; l < width; ++l) lanes[l] = lanes[l] + lanes[l + width];
  }
  return lanes[0];
}

}  // namespace

void gather_rows(const float* x, const int32_t* row_token, int64_t R, int64_t D, int64_t ld, float* rows) {
  const int64_t chunk = rows_per_item(D);
  auto body = [&](int64_t item, int) {
    const int64_t r1 = std::min(R, (item + 1) * chunk);
    for (int64_t r = item * chunk; r < r1; ++r) {
      std::memcpy(rows + r * ld, x + int64_t(row_token[r]) * D, size_t(D) * sizeof(float));
    }
  };
  parallel_items((R + chunk - 1) / chunk, double(R * D) < kSerialElems, body);
}

// y[t] = sum_k w[t, k] * rows[inv[t * K + k]] (w NULL: 1), ascending k, mul then add.
void combine_fwd(const float* rows, int64_t D, const int32_t* inv, const float* w, int64_t T, int64_t K, float* y) {
  if (T == 0 || D == 0) return;
  const int64_t chunk = rows_per_item(D);
#if defined(MOE_HAVE_X86_KERNELS)
  // AVX-512: one pass over y per token, its K rows read side by side (this file's SSE2 loop read the gathered rows at
  // about 25 GB/s on Zen 5, 512-bit loads at 38; the combine's share of the served int8 layer's samples 3.95% -> 1.80%)
  constexpr int64_t kRowsMax = 64;
  const bool avx512 = w != nullptr && K >= 1 && K <= kRowsMax && isa_active() == MOE_ISA_AVX512;
#else
  const bool avx512 = false;
#endif
  auto body = [&](int64_t item, int) {
    const int64_t t1 = std::min(T, (item + 1) * chunk);
    for (int64_t t = item * chunk; t < t1; ++t) {
      float* __restrict yt = y + t * D;
#if defined(MOE_HAVE_X86_KERNELS)
      if (avx512) {
        const float* src[kRowsMax];
        for (int64_t k = 0; k < K; ++k) src[k] = rows + int64_t(inv[t * K + k]) * D;
        combine_row_avx512(src, w + t * K, K, D, yt);
        continue;
      }
#endif
      if (K == 0) {
        std::memset(yt, 0, size_t(D) * sizeof(float));
        continue;
      }
      for (int64_t k = 0; k < K; ++k) {
        const float* __restrict src = rows + int64_t(inv[t * K + k]) * D;
        if (w == nullptr) {
          if (k == 0) {
            std::memcpy(yt, src, size_t(D) * sizeof(float));
          } else {
            for (int64_t j = 0; j < D; ++j) yt[j] = yt[j] + src[j];
          }
        } else {
          const float wk = w[t * K + k];
          if (k == 0) {
            for (int64_t j = 0; j < D; ++j) yt[j] = wk * src[j];
          } else {
            for (int64_t j = 0; j < D; ++j) yt[j] = yt[j] + wk * src[j];
          }
        }
      }
    }
  };
  parallel_items((T + chunk - 1) / chunk, double(T) * double(K) * double(D) < kSerialElems, body);
}

void combine_bwd(const float* dy, const float* rows, int64_t D, const int32_t* inv, const float* w, int64_t T,
                 int64_t K, float* d_rows, int64_t ld, float* dw) {
  if (T == 0 || K == 0) return;
  const int64_t chunk = rows_per_item(D);
  auto body = [&](int64_t item, int) {
    const int64_t t1 = std::min(T, (item + 1) * chunk);
    for (int64_t t = item * chunk; t < t1; ++t) {
      const float* __restrict g = dy + t * D;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t r = inv[t * K + k];
        float* __restrict d = d_rows + r * ld;
        if (w == nullptr) {
          std::memcpy(d, g, size_t(D) * sizeof(float));
        } else {
          const float wk = w[t * K + k];
          for (int64_t j = 0; j < D; ++j) d[j] = wk * g[j];
        }
        if (dw != nullptr) dw[t * K + k] = dot(rows + r * D, g, D);
      }
    }
  };
  parallel_items((T + chunk - 1) / chunk, double(T) * double(K) * double(D) < kSerialElems, body);
}

void group_row_sums(const float* src, int64_t n, int64_t ld, const std::vector<int64_t>& off, float* out) {
  const int64_t G = int64_t(off.size()) - 1;
  if (G <= 0 || n == 0) return;
  constexpr int64_t kCols = 256;
  const int64_t nblk = (n + kCols - 1) / kCols;
  auto body = [&](int64_t item, int) {
    const int64_t g = item / nblk, j0 = (item % nblk) * kCols, j1 = std::min(n, j0 + kCols);
    float* __restrict o = out + g * n;
    for (int64_t j = j0; j < j1; ++j) o[j] = 0.0f;
    for (int64_t r = off[size_t(g)]; r < off[size_t(g) + 1]; ++r) {
      const float* __restrict s = src + r * ld;
      for (int64_t j = j0; j < j1; ++j) o[j] = o[j] + s[j];
    }
  };
  parallel_items(G * nblk, double(off.back()) * double(n) < kSerialElems, body);
}

// Elementwise GLU over n values in blocks of 4096.
void glu_fwd_all(const float* h0, const float* h1, int64_t n, moe_activation_t act, float limit, float* out) {
  constexpr int64_t kBlk = 4096;
  const IsaUnit& isa = active_isa_unit();
  auto body = [&](int64_t item, int) {
    const int64_t j0 = item * kBlk, len = std::min(kBlk, n - j0);
    isa.glu_fwd(h0 + j0, h1 + j0, len, nullptr, nullptr, act, limit, out + j0, nullptr, nullptr);
  };
  parallel_items((n + kBlk - 1) / kBlk, double(n) < kSerialElems, body);
}

void glu_bwd_all(const float* d, const float* h0, const float* h1, int64_t n, moe_activation_t act, float limit,
                 float* dh0, float* dh1) {
  constexpr int64_t kBlk = 4096;
  const IsaUnit& isa = active_isa_unit();
  auto body = [&](int64_t item, int) {
    const int64_t j0 = item * kBlk, len = std::min(kBlk, n - j0);
    isa.glu_bwd(d + j0, h0 + j0, h1 + j0, len, act, limit, dh0 + j0, dh1 + j0);
  };
  parallel_items((n + kBlk - 1) / kBlk, double(n) < kSerialElems, body);
}

}  // namespace moe::detail
