// The peak probes that the bench measures against (moe_probe_*): fp32 fma, vdpbf16ps and AMX throughput on every
// pool thread, and read bandwidth. No kernel uses them. The register loops of the vector ISAs live in their units
// (they need those units' target options); the portable loop is here.
#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <vector>

#include "api_util.hpp"
#include "engine.hpp"
#include "int8.hpp"
#include "workspace.hpp"

namespace moe::detail {
namespace {

// Portable fp32 multiply-add loop (24 x 16 independent lanes): flops done in `seconds`.
double probe_fma_portable(double seconds) {
  float acc[24][16];
  for (int i = 0; i < 24; ++i) {
    for (int l = 0; l < 16; ++l) acc[i][l] = float(i + l);
  }
  volatile float xv = 0.999999f, yv = 1e-7f;
  const float x = xv, y = yv;
  const auto t0 = std::chrono::steady_clock::now();
  int64_t iters = 0;
  for (;;) {
    for (int rep = 0; rep < 1024; ++rep) {
      for (int i = 0; i < 24; ++i) {
        for (int l = 0; l < 16; ++l) acc[i][l] = acc[i][l] * x + y;
      }
    }
    iters += 1024;
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() >= seconds) break;
  }
  float s = 0;
  for (int i = 0; i < 24; ++i) {
    for (int l = 0; l < 16; ++l) s += acc[i][l];
  }
  volatile float sink = s;
  (void)sink;
  return double(iters) * 24.0 * 16.0 * 2.0;
}

// Runs the probe on all threads of the pool for about `seconds` (16 short items per thread, scheduled dynamically so
// a late-waking worker cannot serialize the run); returns total flop / wall time in GFLOP/s.
constexpr int kProbeItemsPerThread = 16;

double run_probe(double seconds, double (*probe)(double)) {
  seconds = std::min(10.0, std::max(0.01, seconds));
  std::lock_guard<std::mutex> lk(call_mutex());
  const int p = pool_threads();
  const int64_t n = int64_t(p) * kProbeItemsPerThread;
  std::vector<double> flops(size_t(n), 0.0);
  struct Ctx {
    double seconds;
    double (*probe)(double);
    double* flops;
  } ctx{seconds / kProbeItemsPerThread, probe, flops.data()};
  const auto t0 = std::chrono::steady_clock::now();
  parallel_for(
      n, p,
      [](void* c, int64_t i, int) {
        auto* x = static_cast<Ctx*>(c);
        x->flops[i] = x->probe(x->seconds);
      },
      &ctx);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double total = 0;
  for (double f : flops) total += f;
  return wall > 0 ? total / wall / 1e9 : -1.0;
}

}  // namespace
}  // namespace moe::detail

extern "C" {

double moe_probe_fma_peak_f32(double seconds) {
#if defined(MOE_HAVE_X86_KERNELS)
  if (moe::detail::isa_active() == MOE_ISA_AVX512) return moe::detail::run_probe(seconds, &moe::detail::probe_fma_avx512);
  if (moe::detail::isa_active() == MOE_ISA_AVX2) return moe::detail::run_probe(seconds, &moe::detail::probe_fma_avx2);
#endif
  return moe::detail::run_probe(seconds, &moe::detail::probe_fma_portable);
}

double moe_probe_bf16_peak(double seconds) {
#if defined(MOE_HAVE_X86_KERNELS)
  if (moe::detail::cpu_has_avx512_bf16()) return moe::detail::run_probe(seconds, &moe::detail::probe_dpbf16);
#endif
  (void)seconds;
  return 0.0;
}

double moe_probe_int8_peak(double seconds) {
  if (moe::detail::i8_vnni_usable()) return moe::detail::run_probe(seconds, &moe::detail::probe_vnni);
  (void)seconds;
  return 0.0;
}

double moe_probe_amx_peak(double seconds) {
#if defined(MOE_HAVE_X86_KERNELS)
  if (moe::detail::cpu_has_amx_bf16()) return moe::detail::run_probe(seconds, &moe::detail::probe_amx);
#endif
  (void)seconds;
  return 0.0;
}

double moe_probe_read_bandwidth_of(const float* data, int64_t n) {
  using namespace moe::detail;
  if (data == nullptr || n < (int64_t(1) << 18)) return -1.0;  // at least 1 MiB
  try {
    std::lock_guard<std::mutex> lk(call_mutex());
    const int p = pool_threads();
    const int64_t items = int64_t(p) * kProbeItemsPerThread;
    const int64_t per = ((n + items - 1) / items + 15) / 16 * 16;
    std::vector<float> sums(size_t(items), 0.0f);
    struct Ctx {
      const float* f;
      int64_t n, per;
      float* sums;
    } ctx{data, n, per, sums.data()};
    auto fn = [](void* c, int64_t i, int) {
      auto* x = static_cast<Ctx*>(c);
      const int64_t b = std::min(x->n, i * x->per), e = std::min(x->n, b + x->per);
      float acc[32] = {};
      int64_t j = b;
      for (; j + 32 <= e; j += 32) {
        for (int l = 0; l < 32; ++l) acc[l] += x->f[j + l];
      }
      for (; j < e; ++j) acc[0] += x->f[j];
      float s = 0;
      for (float a : acc) s += a;
      x->sums[i] = s;
    };
    double best = 0;
    for (int pass = 0; pass < 5; ++pass) {
      const auto t0 = std::chrono::steady_clock::now();
      parallel_for(items, p, fn, &ctx);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (s > 0) best = std::max(best, double(n) * 4.0 / s / 1e9);
    }
    return best;
  } catch (...) {
    return -1.0;
  }
}

double moe_probe_read_bandwidth(int64_t bytes) {
  using namespace moe::detail;
  try {
    bytes = std::max<int64_t>(bytes, int64_t(1) << 20) / 64 * 64;
    std::unique_ptr<void, AlignedFree> buf(::operator new(size_t(bytes), kAlign));
    auto* f = static_cast<float*>(buf.get());
    moe_advise_fresh_output(f, bytes);  // huge pages, as moekit's large arrays get: the best reading of the machine
    struct Fill {
      float* f;
      int64_t n, per;
    } fill{f, bytes / 4, (bytes / 4 + 63) / 64};
    {  // written on the pool (its page faults on every thread), so that the pages are the buffer's own, not the zero page
      std::lock_guard<std::mutex> lk(call_mutex());
      parallel_for(64, pool_threads(), [](void* c, int64_t i, int) {
        auto* x = static_cast<Fill*>(c);
        const int64_t b = std::min(x->n, i * x->per), e = std::min(x->n, b + x->per);
        std::fill(x->f + b, x->f + e, 1.0f);
      }, &fill);
    }
    return moe_probe_read_bandwidth_of(f, bytes / 4);
  } catch (...) {
    return -1.0;
  }
}

}  // extern "C"
