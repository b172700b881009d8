// Portable fp32 GEMM kernels (any CPU). Each C element is a multiply-then-add chain in p order.
#include <cstdint>
#include <cstring>

#include "internal.hpp"

namespace moe::detail {
namespace {

#include "gemm_block.inc"

template <int MR>
void ukr_scalar(int64_t kc, const float* __restrict a, int64_t lda, const float* __restrict b, float* __restrict c,
                int64_t ldc, bool accumulate, int nr) {
  constexpr int NR = 8;
  float acc[MR][NR];
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) acc[i][j] = accumulate && j < nr ? c[i * ldc + j] : 0.0f;
  }
  for (int64_t p = 0; p < kc; ++p) {
    for (int i = 0; i < MR; ++i) {
      const float av = lda == 0 ? a[i] : a[i * lda];
      for (int j = 0; j < NR; ++j) acc[i][j] += av * b[j];
    }
    a += lda == 0 ? MR : 1;
    b += NR;
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < nr; ++j) c[i * ldc + j] = acc[i][j];
  }
}

struct Scalar {
  static constexpr int MR = 4, NR = 8, KC = 256;
  static UkrFn ukr(int mr) {
    switch (mr) {
      case 1: return &ukr_scalar<1>;
      case 2: return &ukr_scalar<2>;
      case 3: return &ukr_scalar<3>;
      default: return &ukr_scalar<4>;
    }
  }
};

const GemmKernel kScalar = {MOE_ISA_SCALAR, Scalar::MR, Scalar::NR, Scalar::KC, 128, 256, &gemm_block<Scalar>};

}  // namespace

const GemmKernel& gemm_kernel_scalar() { return kScalar; }

}  // namespace moe::detail
