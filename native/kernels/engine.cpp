// The driver of the blocked GEMM engine (baseline code): picks the active ISA's unit, splits a problem (engine.hpp)
// into work items fixed by the shapes and group sizes alone, and runs them on the pool, one thread per item.
#include <algorithm>
#include <vector>

#include "engine.hpp"

namespace moe::detail {
namespace {

// Below this many flops a problem runs on the calling thread (waking workers costs more).
constexpr double kSerialFlops = double(1 << 21);

// Column block of the streaming kernel (per half): whole weight rows (one contiguous stream per matrix) unless that
// leaves fewer than 4 items per thread. Column blocks never change results (each element's chain runs over p only).
int64_t stream_cols(const GemmProblem& P, int64_t stream_rows) {
  int64_t groups = 0;
  for (int64_t g = 0; g < P.groups; ++g) {
    const int64_t rows = P.off[g + 1] - P.off[g];
    groups += rows > 0 && rows <= stream_rows;
  }
  const int64_t want = 4 * int64_t(pool_threads());
  if (groups == 0 || groups >= want) return P.n;
  const int64_t split = std::min((want + groups - 1) / groups, std::max<int64_t>(1, P.n / 256));
  return block_size(P.n, (P.n + split - 1) / split, 16);
}

}  // namespace

int64_t block_size(int64_t len, int64_t max, int64_t align) {
  const int64_t blocks = (len + max - 1) / max;
  const int64_t even = (len + blocks - 1) / blocks;
  return std::min(len, (even + align - 1) / align * align);
}

const IsaUnit& active_isa_unit() {
#if defined(MOE_HAVE_X86_KERNELS)
  if (isa_active() == MOE_ISA_AVX512) return isa_unit_avx512();
  if (isa_active() == MOE_ISA_AVX2) return isa_unit_avx2();
#endif
  return isa_unit_scalar();
}

GemmProblem rows_problem(const int64_t* off, int64_t groups, int64_t k, int64_t n, const float* a, const void* w,
                         BElem be, bool btrans) {
  GemmProblem P;
  P.off = off;
  P.groups = groups;
  P.n = n;
  P.k[0] = k;
  P.a[0] = a;
  P.lda = k;
  P.b[0][0] = w;
  P.belem = be;
  P.btrans = btrans;
  P.ldb = btrans ? k : n;
  P.bgstride = k * n;
  P.epi.ldo = n;
  return P;
}

void run_problem(const GemmProblem& P) {
  if (P.n == 0) return;
  const IsaUnit& isa = active_isa_unit();
  const GemmBlocking bl = isa.blocking(P.mul);
  const int64_t nc_max = std::max<int64_t>(bl.nr, (P.tgmm ? bl.tnc : bl.nc) / P.halves / bl.nr * bl.nr);
  const int64_t nc = block_size(P.n, nc_max, bl.nr);
  const int64_t stream_rows = P.mul == Mul::F32 ? isa.stream_rows : std::min(isa.stream_rows, kPairStreamRows);
  const int64_t ns = P.stream_small ? stream_cols(P, stream_rows) : P.n;
  std::vector<GemmItem> items;
  double flops = 0;
  const int64_t ktot = P.k[0] + P.k[1];
  for (int64_t g = 0; g < P.groups; ++g) {
    const int64_t rows = P.off[g + 1] - P.off[g];
    const int64_t m = P.tgmm ? P.m : rows;
    if (m == 0) continue;
    flops += 2.0 * double(m) * double(P.n) * double(P.halves) * double(P.tgmm ? rows : ktot);
    if (!P.tgmm && P.stream_small && rows <= stream_rows) {
      for (int64_t j0 = 0; j0 < P.n; j0 += ns) items.push_back({g, 0, rows, j0, std::min(ns, P.n - j0), true, bl.kc});
      continue;
    }
    const int64_t mc = block_size(m, P.tgmm ? bl.tmc : bl.mc, bl.mr);
    // a group of a few row tiles takes whole weight rows (its packing then reads them in sequence; item_kc)
    const int64_t ncg = !P.tgmm && !P.btrans && m <= kWideTiles * bl.mr ? P.n : nc;
    for (int64_t i0 = 0; i0 < m; i0 += mc) {
      for (int64_t j0 = 0; j0 < P.n; j0 += ncg) {
        items.push_back({g, i0, std::min(mc, m - i0), j0, std::min(ncg, P.n - j0), false, bl.kc});
      }
    }
  }
  if (items.empty()) return;
  int64_t need = 0;
  for (const GemmItem& it : items) need = std::max(need, isa.scratch_floats(P, it));
  scratch_reserve(need);
  struct Job {
    const IsaUnit* isa;
    const GemmProblem* p;
    const GemmItem* items;
  } job{&isa, &P, items.data()};
  auto run = [](void* ctx, int64_t i, int worker) {
    const Job& j = *static_cast<const Job*>(ctx);
    j.isa->run_item(*j.p, j.items[i], scratch(worker));
  };
  parallel_for(int64_t(items.size()), flops < kSerialFlops ? 1 : pool_threads(), run, &job);
}

}  // namespace moe::detail
