// Splits a grouped GEMM into work items and runs them on the pool with the active ISA's kernel.
#include <algorithm>
#include <vector>

#include "internal.hpp"

namespace moe::detail {
namespace {

const GemmKernel& active_kernel() {
#if defined(MOE_HAVE_X86_KERNELS)
  switch (isa_active()) {
    case MOE_ISA_AVX512: return gemm_kernel_avx512();
    case MOE_ISA_AVX2: return gemm_kernel_avx2();
    default: break;
  }
#endif
  return gemm_kernel_scalar();
}

struct Item {
  int64_t g, i0, mb, j0, nb;
};

struct Job {
  const GemmKernel* kern;
  const GemmGroup* groups;
  const Item* items;
  int64_t n;
};

void run_item(void* ctx, int64_t item, int worker) {
  const Job& job = *static_cast<const Job*>(ctx);
  const Item& it = job.items[item];
  job.kern->block(job.groups[it.g], job.n, it.i0, it.mb, it.j0, it.nb, scratch(worker));
}

// Below this many flops a problem runs on the calling thread (waking workers costs more).
constexpr double kSerialFlops = double(1 << 21);

}  // namespace

void grouped_gemm(const GemmGroup* groups, int64_t num_groups, int64_t n) {
  if (n == 0) return;
  const GemmKernel& kern = active_kernel();
  // The split depends on the shapes only: blocks of at most mc x nc, evened out and rounded to the tile.
  const int64_t nblocks = ceil_div(n, kern.nc);
  const int64_t nc = std::min(n, round_up(ceil_div(n, nblocks), kern.nr));
  std::vector<Item> items;
  double flops = 0;
  for (int64_t g = 0; g < num_groups; ++g) {
    const int64_t m = groups[g].m;
    if (m == 0) continue;
    flops += 2.0 * double(m) * double(n) * double(groups[g].k);
    const int64_t mblocks = ceil_div(m, kern.mc);
    const int64_t mc = std::min(m, round_up(ceil_div(m, mblocks), kern.mr));
    for (int64_t i0 = 0; i0 < m; i0 += mc) {
      for (int64_t j0 = 0; j0 < n; j0 += nc) items.push_back({g, i0, std::min(mc, m - i0), j0, std::min(nc, n - j0)});
    }
  }
  if (items.empty()) return;
  scratch_reserve(scratch_floats(kern, nc));
  Job job{&kern, groups, items.data(), n};
  parallel_for(int64_t(items.size()), flops < kSerialFlops ? 1 : pool_threads(), &run_item, &job);
}

}  // namespace moe::detail
