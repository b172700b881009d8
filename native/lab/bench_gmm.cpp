// gmm throughput at the expert up-projection shape (default: m = T*K = 32768 rows, k = 1024, n = 1408,
// 64 equal groups). Usage: bench_gmm [op] [threads...]   op: fwd | fwd_t | tgmm | all (default fwd)
// Prints the best and median GFLOP/s of several repetitions per thread count.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "moe-kernels.h"

namespace {

double seconds(const std::chrono::steady_clock::time_point& t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t m = std::getenv("M") ? std::atoll(std::getenv("M")) : 32768;
  const int64_t k = std::getenv("K") ? std::atoll(std::getenv("K")) : 1024;
  const int64_t n = std::getenv("N") ? std::atoll(std::getenv("N")) : 1408;
  const int64_t G = std::getenv("G") ? std::atoll(std::getenv("G")) : 64;
  const int reps = std::getenv("REPS") ? std::atoi(std::getenv("REPS")) : 5;
  std::string op = argc > 1 ? argv[1] : "fwd";
  std::vector<int> threads;
  for (int i = 2; i < argc; ++i) threads.push_back(std::atoi(argv[i]));
  if (threads.empty()) threads = {1, moe_default_num_threads()};

  std::vector<float> lhs(size_t(m * k)), rhs(size_t(G * k * n)), dout(size_t(m * n)), out(size_t(std::max(m * std::max(n, k), G * k * n)));
  for (size_t i = 0; i < lhs.size(); ++i) lhs[i] = float(int(i % 13) - 6) * 0.01f;
  for (size_t i = 0; i < rhs.size(); ++i) rhs[i] = float(int(i % 7) - 3) * 0.01f;
  for (size_t i = 0; i < dout.size(); ++i) dout[i] = float(int(i % 5) - 2) * 0.01f;
  std::vector<int32_t> gs(size_t(G), int32_t(m / G));
  gs.back() += int32_t(m - (m / G) * G);

  const double flops = 2.0 * double(m) * double(k) * double(n);
  std::printf("isa %s, m=%lld k=%lld n=%lld G=%lld, %.1f GFLOP per call\n", moe_isa_name(moe_isa_active()),
              (long long)m, (long long)k, (long long)n, (long long)G, flops / 1e9);
  const std::vector<std::string> ops = op == "all" ? std::vector<std::string>{"fwd", "fwd_t", "tgmm"}
                                                   : std::vector<std::string>{op};
  for (const std::string& o : ops) {
    for (int t : threads) {
      moe_set_num_threads(t);
      std::vector<double> rates;
      for (int r = 0; r <= reps; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        moe_status_t st = MOE_STATUS_OK;
        if (o == "fwd") st = moe_gmm_fwd_f32(lhs.data(), rhs.data(), gs.data(), m, k, n, G, 0, out.data());
        if (o == "fwd_t") st = moe_gmm_fwd_f32(lhs.data(), rhs.data(), gs.data(), m, k, n, G, 1, out.data());
        if (o == "tgmm") st = moe_gmm_bwd_rhs_f32(lhs.data(), dout.data(), gs.data(), m, k, n, G, out.data());
        const double s = seconds(t0);
        if (st != MOE_STATUS_OK) {
          std::printf("%s failed: %s\n", o.c_str(), moe_last_error());
          return 1;
        }
        if (r > 0) rates.push_back(flops / s / 1e9);  // the first call warms up pages and the pool
      }
      std::sort(rates.begin(), rates.end());
      std::printf("%-8s threads=%d  best %.1f  median %.1f GFLOP/s\n", o.c_str(), t, rates.back(),
                  rates[rates.size() / 2]);
    }
  }
  return 0;
}
