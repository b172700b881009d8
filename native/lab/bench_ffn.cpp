// The fused MoE FFN at a MaxText-sized layer: T = 4096 tokens, K = 8, D = 1024, H = 1408, E = 64 (equal-ish random
// routing), silu GLU. Reports, per weight type (fp32, bf16 on each path the CPU has) and thread count:
//   - the one-shot forward in GFLOP/s of useful work (T K 6 D H flop) and as a fraction of the probe peak
//     (fp32 fma probe for fp32 / bf16-widen, vdpbf16ps probe for dpbf16, AMX probe for amx);
//   - the forward + backward time over the forward time;
//   - decode (T = 8): GB/s of expert weights streamed (distinct experts x 3 D H x bytes) vs the read-bandwidth probe.
// Usage: bench_ffn [threads...]   (env: T, K, D, H, E, REPS, SKIP_BWD=1, ONLY=f32|widen|dpbf16|amx)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "moe-kernels.h"

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

int64_t env(const char* name, int64_t def) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::atoll(v) : def;
}

uint16_t bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

struct Routing {
  std::vector<int32_t> order, gs;
  std::vector<float> w;
  int64_t distinct = 0;
};

// Each token picks K distinct experts uniformly at random; rows sorted by expert.
Routing route(int64_t T, int64_t K, int64_t E, uint64_t seed) {
  Routing r;
  std::vector<int32_t> ex(size_t(T * K));
  uint64_t s = seed;
  auto next = [&s](uint64_t n) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return (s >> 33) % n;
  };
  std::vector<int32_t> pool(static_cast<size_t>(E));
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t e = 0; e < E; ++e) pool[size_t(e)] = int32_t(e);
    for (int64_t k = 0; k < K; ++k) {
      std::swap(pool[size_t(k)], pool[size_t(k + int64_t(next(uint64_t(E - k))))]);
      ex[size_t(t * K + k)] = pool[size_t(k)];
    }
  }
  r.order.resize(ex.size());
  for (size_t i = 0; i < ex.size(); ++i) r.order[i] = int32_t(i);
  std::stable_sort(r.order.begin(), r.order.end(), [&](int32_t a, int32_t b) { return ex[size_t(a)] < ex[size_t(b)]; });
  r.gs.assign(size_t(E), 0);
  for (int32_t e : ex) r.gs[size_t(e)]++;
  for (int32_t g : r.gs) r.distinct += g > 0;
  r.w.resize(ex.size());
  for (auto& v : r.w) v = 1.0f / float(K);
  return r;
}

struct Weights {
  std::vector<float> wi0, wi1, wo;
  std::vector<uint16_t> wi0b, wi1b, wob;
};

template <class F>
double best_of(int reps, F&& f) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const double t0 = now();
    if (f() != MOE_STATUS_OK) {
      std::printf("failed: %s\n", moe_last_error());
      std::exit(1);
    }
    best = std::min(best, now() - t0);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t T = env("T", 4096), K = env("K", 8), D = env("D", 1024), H = env("H", 1408), E = env("E", 64);
  const int reps = int(env("REPS", 3));
  const bool skip_bwd = env("SKIP_BWD", 0) != 0;
  const char* only = std::getenv("ONLY");
  std::vector<int> threads;
  for (int i = 1; i < argc; ++i) threads.push_back(std::atoi(argv[i]));
  if (threads.empty()) threads = {1, moe_default_num_threads()};
  const moe_activation_t act = MOE_ACT_SILU;

  Weights W;
  const size_t nw = size_t(E * D * H);
  W.wi0.resize(nw);
  W.wi1.resize(nw);
  W.wo.resize(nw);
  for (size_t i = 0; i < nw; ++i) {
    W.wi0[i] = float(int(i % 13) - 6) * 0.003f;
    W.wi1[i] = float(int(i % 11) - 5) * 0.003f;
    W.wo[i] = float(int(i % 7) - 3) * 0.003f;
  }
  W.wi0b.resize(nw);
  W.wi1b.resize(nw);
  W.wob.resize(nw);
  for (size_t i = 0; i < nw; ++i) {
    W.wi0b[i] = bf16(W.wi0[i]);
    W.wi1b[i] = bf16(W.wi1[i]);
    W.wob[i] = bf16(W.wo[i]);
  }
  std::vector<float> x(size_t(T * D));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 17) - 8) * 0.05f;
  const Routing rt = route(T, K, E, 42);
  const int64_t R = T * K;
  std::vector<float> y(size_t(T * D)), dy(size_t(T * D), 0.01f);
  std::vector<float> ract(size_t(R * H)), rh0(size_t(R * H)), rh1(size_t(R * H)), ro(size_t(R * D));
  std::vector<float> dx(static_cast<size_t>(T * D)), dw(static_cast<size_t>(R)), dwi0(nw), dwi1(nw), dwo(nw);

  const double useful = double(T) * double(K) * 6.0 * double(D) * double(H);
  std::printf("fused MoE FFN: T=%lld K=%lld D=%lld H=%lld E=%lld (silu), %.1f GFLOP useful per forward\n",
              (long long)T, (long long)K, (long long)D, (long long)H, (long long)E, useful / 1e9);
  std::printf("cpu: avx512_bf16 %d, amx %d, default bf16 path %s\n", moe_cpu_has_avx512_bf16(), moe_cpu_has_amx_bf16(),
              moe_bf16_path_name(moe_bf16_path()));

  struct Kind {
    const char* name;
    bool bf16;
    moe_bf16_path_t path;
  };
  std::vector<Kind> kinds = {{"f32", false, MOE_BF16_WIDEN}, {"widen", true, MOE_BF16_WIDEN}};
  if (moe_cpu_has_avx512_bf16()) kinds.push_back({"dpbf16", true, MOE_BF16_DPBF16});
  if (moe_cpu_has_amx_bf16()) kinds.push_back({"amx", true, MOE_BF16_AMX});

  for (int th : threads) {
    moe_set_num_threads(th);
    const double fma = moe_probe_fma_peak_f32(0.3), dp = moe_probe_bf16_peak(0.3), amx = moe_probe_amx_peak(0.3);
    const double bw = moe_probe_read_bandwidth(int64_t(1) << 30);
    std::printf("\n== %d thread(s): probes fma %.1f GFLOP/s, vdpbf16ps %.1f GFLOP/s, amx %.1f GFLOP/s, read %.1f GB/s\n",
                th, fma, dp, amx, bw);
    for (const Kind& k : kinds) {
      if (only != nullptr && std::strcmp(only, k.name) != 0) continue;
      if (k.bf16) moe_set_bf16_path(k.path);
      const double peak = !k.bf16 || k.path == MOE_BF16_WIDEN ? fma : k.path == MOE_BF16_DPBF16 ? dp : amx;
      auto fwd = [&](bool train) {
        float* a = train ? ract.data() : nullptr;
        float* h0 = train ? rh0.data() : nullptr;
        float* h1 = train ? rh1.data() : nullptr;
        float* o = train ? ro.data() : nullptr;
        return k.bf16 ? moe_ffn_fwd_bf16w(x.data(), T, D, rt.order.data(), K, rt.w.data(), W.wi0b.data(), W.wi1b.data(),
                                          W.wob.data(), nullptr, nullptr, nullptr, rt.gs.data(), E, H, act, 0.0f, y.data(),
                                          a, h0, h1, o)
                      : moe_ffn_fwd_f32(x.data(), T, D, rt.order.data(), K, rt.w.data(), W.wi0.data(), W.wi1.data(),
                                        W.wo.data(), nullptr, nullptr, nullptr, rt.gs.data(), E, H, act, 0.0f, y.data(), a,
                                        h0, h1, o);
      };
      const double tf = best_of(reps, [&] { return fwd(false); });
      std::printf("%-7s forward      %8.1f ms  %7.1f GFLOP/s  %5.1f%% of %s peak\n", k.name, tf * 1e3, useful / tf / 1e9,
                  100.0 * useful / tf / 1e9 / peak, !k.bf16 || k.path == MOE_BF16_WIDEN ? "fma" : k.name);
      if (!skip_bwd) {
        const double ttr = best_of(reps, [&] { return fwd(true); });
        const double tb = best_of(reps, [&] {
          return k.bf16 ? moe_ffn_bwd_bf16w(dy.data(), x.data(), T, D, rt.order.data(), K, rt.w.data(), W.wi0b.data(),
                                            W.wi1b.data(), W.wob.data(), rt.gs.data(), E, H, act, 0.0f, ract.data(),
                                            rh0.data(), rh1.data(), ro.data(), dx.data(), dw.data(), dwi0.data(),
                                            dwi1.data(), dwo.data(), nullptr, nullptr, nullptr)
                        : moe_ffn_bwd_f32(dy.data(), x.data(), T, D, rt.order.data(), K, rt.w.data(), W.wi0.data(),
                                          W.wi1.data(), W.wo.data(), rt.gs.data(), E, H, act, 0.0f, ract.data(), rh0.data(),
                                          rh1.data(), ro.data(), dx.data(), dw.data(), dwi0.data(), dwi1.data(), dwo.data(),
                                          nullptr, nullptr, nullptr);
        });
        std::printf("%-7s train fwd    %8.1f ms; backward %8.1f ms (%.1f GFLOP/s of 2x useful); (fwd+bwd)/fwd = %.2f\n",
                    k.name, ttr * 1e3, tb * 1e3, 2 * useful / tb / 1e9, (ttr + tb) / ttr);
      }
      // decode: T = 8 tokens, a fresh routing per repetition (so the last call's experts are not all in cache);
      // mean over the repetitions after one warm-up
      const int64_t Td = 8;
      std::vector<float> yd(size_t(Td * D));
      double secs = 0, bytes = 0, experts = 0;
      const int nd = std::max(reps, 5);
      for (int rep = -1; rep < nd; ++rep) {
        const Routing rd = route(Td, K, E, uint64_t(1000 + rep));
        const double t0 = now();
        const moe_status_t st =
            k.bf16 ? moe_ffn_fwd_bf16w(x.data(), Td, D, rd.order.data(), K, rd.w.data(), W.wi0b.data(), W.wi1b.data(),
                                       W.wob.data(), nullptr, nullptr, nullptr, rd.gs.data(), E, H, act, 0.0f, yd.data(),
                                       nullptr, nullptr, nullptr, nullptr)
                   : moe_ffn_fwd_f32(x.data(), Td, D, rd.order.data(), K, rd.w.data(), W.wi0.data(), W.wi1.data(),
                                     W.wo.data(), nullptr, nullptr, nullptr, rd.gs.data(), E, H, act, 0.0f, yd.data(),
                                     nullptr, nullptr, nullptr, nullptr);
        const double dt = now() - t0;
        if (st != MOE_STATUS_OK) {
          std::printf("decode failed: %s\n", moe_last_error());
          return 1;
        }
        if (rep < 0) continue;
        secs += dt;
        bytes += double(rd.distinct) * 3.0 * double(D) * double(H) * (k.bf16 ? 2.0 : 4.0);
        experts += double(rd.distinct);
      }
      std::printf("%-7s decode T=%lld %6.2f ms  %.1f experts, %.0f MB of weights: %.1f GB/s (%.0f%% of read probe)\n",
                  k.name, (long long)Td, secs / nd * 1e3, experts / nd, bytes / nd / 1e6, bytes / secs / 1e9,
                  100.0 * bytes / secs / 1e9 / bw);
    }
  }
  moe_set_num_threads(0);
  return 0;
}
