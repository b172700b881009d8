// Per-stage timings of the fused FFN's fp32 forward and backward at the bench shape (T=4096 by default):
// GFLOP/s of each stage's matmul work. Usage: bench_stages [threads]  (env: T, K, D, H, E, REPS, FWD_ONLY=1; KC, MC,
// NC set the f32 blocking as moe_set_blocking does)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "stages_abi.h"

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
int64_t env(const char* n, int64_t d) { const char* v = std::getenv(n); return v ? std::atoll(v) : d; }
template <class F>
double best(int reps, F f) {
  double b = 1e30;
  for (int i = 0; i < reps; ++i) { const double t0 = now(); f(); b = std::min(b, now() - t0); }
  return b;
}
void fill(std::vector<float>& v, float a, uint32_t s) {
  for (auto& x : v) { s ^= s << 13; s ^= s >> 17; s ^= s << 5; x = (float(s) / 4294967296.0f - 0.5f) * 2 * a; }
}
}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  moe_set_num_threads(threads);
  if (env("KC", 0) != 0 || env("MC", 0) != 0 || env("NC", 0) != 0) {
    if (moe_set_blocking("f32", int(env("KC", 0)), int(env("MC", 0)), int(env("NC", 0))) != MOE_STATUS_OK) {
      std::fprintf(stderr, "%s\n", moe_last_error());
      return 1;
    }
  }
  const int64_t T = env("T", 4096), K = env("K", 8), D = env("D", 1024), H = env("H", 1408), E = env("E", 64);
  const int reps = int(env("REPS", 3));
  const int64_t R = T * K;
  std::vector<int32_t> gs(size_t(E), 0);
  std::vector<int32_t> row_token(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) gs[size_t(r % E)]++;
  { int64_t r = 0; for (int64_t e = 0; e < E; ++e) for (int64_t i = 0; i < gs[size_t(e)]; ++i) row_token[size_t(r++)] = int32_t((i * E + e) / K % T); }
  std::vector<float> x(size_t(T * D)), wi0(size_t(E * D * H)), wi1(wi0.size()), wo(size_t(E * H * D));
  fill(x, 1.7f, 1); fill(wi0, 0.05f, 2); fill(wi1, 0.05f, 3); fill(wo, 0.05f, 4);
  std::vector<float> act(size_t(R * H)), h0(act.size()), h1(act.size()), orow(size_t(R * D)), dorow(size_t(R * D));
  fill(dorow, 1.0f, 5);
  std::vector<float> dh0(act.size()), dh1(act.size()), dxr(size_t(R * D)), dwo(wo.size()), dwi0(wi0.size()), dwi1(wi0.size());
  const double f1 = 2.0 * double(R) * double(D) * double(H);
  auto rep = [&](const char* name, double t, double flops) { std::printf("%-28s %8.1f ms  %6.1f GFLOP/s\n", name, t * 1e3, flops / t / 1e9); };
  rep("up fwd (2 mm + glu)", best(reps, [&] { moe_ffn_up_fwd_f32(x.data(), T, D, row_token.data(), R, wi0.data(), wi1.data(), nullptr, nullptr, gs.data(), E, H, MOE_ACT_SILU, 0, act.data(), h0.data(), h1.data()); }), 2 * f1);
  rep("up fwd, act only (inference)", best(reps, [&] { moe_ffn_up_fwd_f32(x.data(), T, D, row_token.data(), R, wi0.data(), wi1.data(), nullptr, nullptr, gs.data(), E, H, MOE_ACT_SILU, 0, act.data(), nullptr, nullptr); }), 2 * f1);
  rep("down fwd", best(reps, [&] { moe_ffn_down_fwd_f32(act.data(), R, H, wo.data(), nullptr, gs.data(), E, D, orow.data()); }), f1);
  if (env("FWD_ONLY", 0) != 0) return 0;
  const double tdb = best(reps, [&] { moe_ffn_down_bwd_f32(dorow.data(), act.data(), h0.data(), h1.data(), R, H, wo.data(), gs.data(), E, D, MOE_ACT_SILU, 0, dh0.data(), dh1.data(), nullptr, nullptr); });
  rep("down bwd d_act (+glu bwd)", tdb, f1);
  const double tdw = best(reps, [&] { moe_ffn_down_bwd_f32(dorow.data(), act.data(), h0.data(), h1.data(), R, H, wo.data(), gs.data(), E, D, MOE_ACT_SILU, 0, dh0.data(), dh1.data(), dwo.data(), nullptr); });
  rep("  dwo (tgmm) by difference", tdw - tdb, f1);
  const double tub = best(reps, [&] { moe_ffn_up_bwd_f32(dh0.data(), dh1.data(), R, H, x.data(), T, D, row_token.data(), wi0.data(), wi1.data(), gs.data(), E, dxr.data(), nullptr, nullptr, nullptr, nullptr); });
  rep("up bwd dx (2 segments)", tub, 2 * f1);
  const double tuw = best(reps, [&] { moe_ffn_up_bwd_f32(dh0.data(), dh1.data(), R, H, x.data(), T, D, row_token.data(), wi0.data(), wi1.data(), gs.data(), E, dxr.data(), dwi0.data(), dwi1.data(), nullptr, nullptr); });
  rep("  dwi0+dwi1 (tgmm) by diff", tuw - tub, 2 * f1);
  std::printf("fma probe %.0f GFLOP/s\n", moe_probe_fma_peak_f32(0.3) / 1e9);
  return 0;
}
