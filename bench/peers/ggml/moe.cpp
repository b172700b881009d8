// ggml peer for `npm run bench`: the MoE layer as llama.cpp builds it (build_moe_ffn: softmax router, top-k, weights
// renormalised, ggml_mul_mat_id for the gate, up and down experts, SwiGLU, weighted sum over the k), run by ggml's
// CPU backend with Q8_0 or Q4_0 expert weights. Prints one JSON line.
//
//   moe T D H E K q8_0|q4_0 threads runs     time it (one warm-up compute, then the median of `runs`)
//   moe --check                              tiny shapes against a plain loop; exits 1 on a mismatch
//
// Built by setup.sh beside this file against the ggml that node-llama-cpp ships in npm (prebuilt CPU backends, one per
// x86 level, of which ggml_backend_load_all_from_path loads the best this CPU runs). As llama.cpp does by default,
// the expert weights go in the CPU_REPACK buffer where the CPU backend supports the op from it (Q4_0 on AVX2: its 8x8
// interleaved layout), else in the plain CPU buffer (Q8_0 on x86). ggml quantizes the activations to Q8_0 blocks for
// the dot products, so this is int8 x int8 (Q8_0) or int4 x int8 (Q4_0) arithmetic with a scale per 32 values.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <unistd.h>
#include <string>
#include <vector>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"

namespace {

struct Shape {
  int64_t T, D, H, E, K;
};

[[noreturn]] void fail(const std::string& why) {
  std::printf("{\"peer\":\"ggml\",\"skipped\":\"%s\"}\n", why.c_str());
  std::exit(1);
}

// One expert matrix set [E, rows, cols] (ggml: ne0 = cols, the contraction; ne1 = rows; ne2 = E) quantized from
// uniform floats in +-1/sqrt(cols), and its dequantized values for the check.
struct Experts {
  std::vector<uint8_t> codes;
  std::vector<float> deq;  // filled only when asked
};

Experts make_experts(ggml_type type, int64_t E, int64_t rows, int64_t cols, std::mt19937& rng, bool keep) {
  const size_t row_bytes = ggml_row_size(type, cols);
  Experts x;
  x.codes.resize(size_t(E * rows) * row_bytes);
  std::uniform_real_distribution<float> u(-1.0f / std::sqrt(float(cols)), 1.0f / std::sqrt(float(cols)));
  std::vector<float> w(size_t(rows * cols));
  for (int64_t e = 0; e < E; ++e) {
    for (float& v : w) v = u(rng);
    ggml_quantize_chunk(type, w.data(), x.codes.data() + size_t(e * rows) * row_bytes, 0, rows, cols, nullptr);
  }
  if (keep) {
    x.deq.resize(size_t(E * rows * cols));
    const auto* tr = ggml_get_type_traits(type);
    for (int64_t r = 0; r < E * rows; ++r) tr->to_float(x.codes.data() + size_t(r) * row_bytes, x.deq.data() + r * cols, cols);
  }
  return x;
}

ggml_backend_buffer_type_t find_buft(ggml_backend_dev_t dev, const char* name) {
  auto get = reinterpret_cast<ggml_backend_dev_get_extra_bufts_t>(
      ggml_backend_reg_get_proc_address(ggml_backend_dev_backend_reg(dev), "ggml_backend_dev_get_extra_bufts"));
  if (get == nullptr) return nullptr;
  for (ggml_backend_buffer_type_t* b = get(dev); b != nullptr && *b != nullptr; ++b) {
    if (std::strcmp(ggml_backend_buft_name(*b), name) == 0) return *b;
  }
  return nullptr;
}

struct Layer {
  Shape s{};
  ggml_type type = GGML_TYPE_F32;
  ggml_backend_t backend = nullptr;
  ggml_context* wctx = nullptr;
  ggml_context* rctx = nullptr;
  ggml_context* gctx = nullptr;
  ggml_backend_buffer_t wbuf = nullptr, rbuf = nullptr;
  ggml_gallocr_t galloc = nullptr;
  ggml_tensor *gate = nullptr, *up = nullptr, *down = nullptr, *router = nullptr;
  ggml_tensor *x = nullptr, *out = nullptr, *selected = nullptr;
  ggml_cgraph* graph = nullptr;
  std::string buffer;  // where the expert weights live
  std::vector<float> router_w, xs;
  Experts g, u, d;
};

// Whether the CPU backend runs mul_mat_id with `w` (allocated in its buffer) as the experts: llama.cpp's test for a
// weight's buffer type (weight_buft_supported).
bool supports_id(ggml_backend_dev_t dev, ggml_tensor* w, const Shape& s) {
  ggml_init_params p = {8 * ggml_tensor_overhead(), nullptr, true};
  ggml_context* c = ggml_init(p);
  ggml_tensor* b = ggml_new_tensor_3d(c, GGML_TYPE_F32, w->ne[0], s.K, s.T);
  ggml_tensor* ids = ggml_new_tensor_2d(c, GGML_TYPE_I32, s.K, s.T);
  const bool ok = ggml_backend_dev_supports_op(dev, ggml_mul_mat_id(c, w, b, ids));
  ggml_free(c);
  return ok;
}

void build(Layer& L, bool keep, int threads) {
  const Shape& s = L.s;
  ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
  if (dev == nullptr) fail("no ggml CPU backend loaded");
  L.backend = ggml_backend_dev_init(dev, nullptr);
  auto set_threads = reinterpret_cast<ggml_backend_set_n_threads_t>(
      ggml_backend_reg_get_proc_address(ggml_backend_dev_backend_reg(dev), "ggml_backend_set_n_threads"));
  if (set_threads == nullptr) fail("the ggml CPU backend has no ggml_backend_set_n_threads");
  set_threads(L.backend, threads);

  std::mt19937 rng(1234);
  L.g = make_experts(L.type, s.E, s.H, s.D, rng, keep);
  L.u = make_experts(L.type, s.E, s.H, s.D, rng, keep);
  L.d = make_experts(L.type, s.E, s.D, s.H, rng, keep);
  std::normal_distribution<float> n01(0.0f, 1.0f);
  L.router_w.resize(size_t(s.E * s.D));
  for (float& v : L.router_w) v = n01(rng) / std::sqrt(float(s.D));
  L.xs.resize(size_t(s.T * s.D));
  for (float& v : L.xs) v = n01(rng);

  ggml_init_params wp = {4 * ggml_tensor_overhead(), nullptr, true};
  L.wctx = ggml_init(wp);
  L.gate = ggml_new_tensor_3d(L.wctx, L.type, s.D, s.H, s.E);
  L.up = ggml_new_tensor_3d(L.wctx, L.type, s.D, s.H, s.E);
  L.down = ggml_new_tensor_3d(L.wctx, L.type, s.H, s.D, s.E);
  ggml_backend_buffer_type_t repack = find_buft(dev, "CPU_REPACK");
  if (repack != nullptr) {
    L.wbuf = ggml_backend_alloc_ctx_tensors_from_buft(L.wctx, repack);
    if (L.wbuf != nullptr && (!supports_id(dev, L.gate, s) || !supports_id(dev, L.down, s))) {
      ggml_backend_buffer_free(L.wbuf);
      L.wbuf = nullptr;
      for (ggml_tensor* t : {L.gate, L.up, L.down}) t->buffer = nullptr, t->data = nullptr, t->extra = nullptr;
    }
  }
  if (L.wbuf == nullptr) L.wbuf = ggml_backend_alloc_ctx_tensors(L.wctx, L.backend);
  if (L.wbuf == nullptr) fail("could not allocate the expert weights");
  L.buffer = ggml_backend_buffer_name(L.wbuf);
  ggml_backend_tensor_set(L.gate, L.g.codes.data(), 0, L.g.codes.size());
  ggml_backend_tensor_set(L.up, L.u.codes.data(), 0, L.u.codes.size());
  ggml_backend_tensor_set(L.down, L.d.codes.data(), 0, L.d.codes.size());
  if (!keep) L.g.codes = {}, L.u.codes = {}, L.d.codes = {};

  ggml_init_params rp = {ggml_tensor_overhead(), nullptr, true};
  L.rctx = ggml_init(rp);
  L.router = ggml_new_tensor_2d(L.rctx, GGML_TYPE_F32, s.D, s.E);
  L.rbuf = ggml_backend_alloc_ctx_tensors(L.rctx, L.backend);
  ggml_backend_tensor_set(L.router, L.router_w.data(), 0, L.router_w.size() * sizeof(float));

  // the graph, as llama.cpp's build_moe_ffn (softmax gating, weights normalised, SwiGLU, no shared expert)
  const size_t nodes = 64 + 4 * size_t(s.K);
  ggml_init_params gp = {nodes * ggml_tensor_overhead() + ggml_graph_overhead_custom(nodes, false), nullptr, true};
  L.gctx = ggml_init(gp);
  ggml_context* c = L.gctx;
  L.x = ggml_new_tensor_2d(c, GGML_TYPE_F32, s.D, s.T);
  ggml_set_input(L.x);
  ggml_tensor* probs = ggml_soft_max(c, ggml_mul_mat(c, L.router, L.x));                // [E, T]
  L.selected = ggml_argsort_top_k(c, probs, int(s.K));                                  // [K, T]
  ggml_tensor* w = ggml_get_rows(c, ggml_reshape_3d(c, probs, 1, s.E, s.T), L.selected);  // [1, K, T]
  ggml_tensor* w2 = ggml_reshape_2d(c, w, s.K, s.T);
  w = ggml_reshape_3d(c, ggml_div(c, w2, ggml_sum_rows(c, w2)), 1, s.K, s.T);
  ggml_tensor* cur = ggml_reshape_3d(c, L.x, s.D, 1, s.T);
  ggml_tensor* up = ggml_mul_mat_id(c, L.up, cur, L.selected);      // [H, K, T]
  ggml_tensor* gate = ggml_mul_mat_id(c, L.gate, cur, L.selected);  // [H, K, T]
  ggml_tensor* par = ggml_swiglu_split(c, gate, up);
  ggml_tensor* experts = ggml_mul(c, ggml_mul_mat_id(c, L.down, par, L.selected), w);  // [D, K, T]
  ggml_tensor* y = nullptr;
  for (int64_t k = 0; k < s.K; ++k) {
    ggml_tensor* v = ggml_view_2d(c, experts, s.D, s.T, experts->nb[2], size_t(k) * experts->nb[1]);
    y = y == nullptr ? v : ggml_add(c, y, v);
  }
  L.out = y;
  ggml_set_output(L.out);
  ggml_set_output(L.selected->view_src);
  L.graph = ggml_new_graph_custom(c, nodes, false);
  ggml_build_forward_expand(L.graph, L.out);
  L.galloc = ggml_gallocr_new(ggml_backend_get_default_buffer_type(L.backend));
  if (!ggml_gallocr_alloc_graph(L.galloc, L.graph)) fail("could not allocate the graph");
  ggml_backend_tensor_set(L.x, L.xs.data(), 0, L.xs.size() * sizeof(float));
}

void release(Layer& L) {
  ggml_gallocr_free(L.galloc);
  ggml_free(L.gctx);
  ggml_backend_buffer_free(L.rbuf);
  ggml_free(L.rctx);
  ggml_backend_buffer_free(L.wbuf);
  ggml_free(L.wctx);
  ggml_backend_free(L.backend);
}

// The CPU backend's build features that this CPU has (the variant ggml_backend_load_all_from_path picked).
std::string features(ggml_backend_dev_t dev) {
  ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
  auto get = reinterpret_cast<ggml_backend_get_features_t>(ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features"));
  std::string out;
  for (ggml_backend_feature* f = get != nullptr ? get(reg) : nullptr; f != nullptr && f->name != nullptr; ++f) {
    if (std::strcmp(f->value, "1") == 0) out += (out.empty() ? "" : " ") + std::string(f->name);
  }
  return out;
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// The plain loop on the dequantized weights (double sums, float activations): the relative error of ggml's output
// against it (its Q8_0 activations make it about 1e-2), and whether the chosen experts agree.
bool check(const Shape& s, ggml_type type) {
  Layer L;
  L.s = s, L.type = type;
  build(L, true, 2);
  if (ggml_backend_graph_compute(L.backend, L.graph) != GGML_STATUS_SUCCESS) fail("compute failed");
  std::vector<float> y(size_t(s.D * s.T));
  // the top k is a view of the first k of each token's E sorted indices
  std::vector<int32_t> sel(size_t(s.E * s.T));
  ggml_backend_tensor_get(L.out, y.data(), 0, y.size() * sizeof(float));
  ggml_backend_tensor_get(L.selected->view_src, sel.data(), 0, sel.size() * sizeof(int32_t));
  double num = 0, den = 0;
  bool same = true;
  for (int64_t t = 0; t < s.T; ++t) {
    const float* x = L.xs.data() + t * s.D;
    std::vector<double> logit(size_t(s.E));
    for (int64_t e = 0; e < s.E; ++e) {
      double a = 0;
      for (int64_t p = 0; p < s.D; ++p) a += double(x[p]) * L.router_w[size_t(e * s.D + p)];
      logit[size_t(e)] = a;
    }
    std::vector<int64_t> order(size_t(s.E));
    for (int64_t e = 0; e < s.E; ++e) order[size_t(e)] = e;
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return logit[size_t(a)] > logit[size_t(b)]; });
    double z = 0;
    for (int64_t k = 0; k < s.K; ++k) z += std::exp(logit[size_t(order[size_t(k)])] - logit[size_t(order[0])]);
    std::vector<double> ref(size_t(s.D), 0.0), h(size_t(s.H));
    for (int64_t k = 0; k < s.K; ++k) {
      const int64_t e = order[size_t(k)];
      bool found = false;
      for (int64_t j = 0; j < s.K; ++j) found = found || sel[size_t(t * s.E + j)] == e;
      same = same && found;
      const double wk = std::exp(logit[size_t(e)] - logit[size_t(order[0])]) / z;
      for (int64_t j = 0; j < s.H; ++j) {
        double gs = 0, us = 0;
        const float* gr = L.g.deq.data() + (e * s.H + j) * s.D;
        const float* ur = L.u.deq.data() + (e * s.H + j) * s.D;
        for (int64_t p = 0; p < s.D; ++p) gs += double(x[p]) * gr[p], us += double(x[p]) * ur[p];
        h[size_t(j)] = gs / (1 + std::exp(-gs)) * us;
      }
      for (int64_t i = 0; i < s.D; ++i) {
        double a = 0;
        const float* dr = L.d.deq.data() + (e * s.D + i) * s.H;
        for (int64_t j = 0; j < s.H; ++j) a += h[size_t(j)] * dr[j];
        ref[size_t(i)] += wk * a;
      }
    }
    for (int64_t i = 0; i < s.D; ++i) {
      const double dlt = y[size_t(t * s.D + i)] - ref[size_t(i)];
      num += dlt * dlt;
      den += ref[size_t(i)] * ref[size_t(i)];
    }
  }
  const double rel = std::sqrt(num / den);
  const bool ok = same && rel < 2e-2;
  std::fprintf(stderr, "check %s (%s): experts %s, relative error %.2e -> %s\n", ggml_type_name(type), L.buffer.c_str(),
               same ? "agree" : "DIFFER", rel, ok ? "ok" : "MISMATCH");
  release(L);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  // the CPU backends in lib/ beside this program (setup.sh puts them there)
  std::string dir(4096, '\0');
  const ssize_t n = readlink("/proc/self/exe", dir.data(), dir.size() - 1);
  dir.resize(n > 0 ? size_t(n) : 0);
  dir = dir.substr(0, dir.rfind('/') + 1) + "lib";
  ggml_backend_load_all_from_path(dir.c_str());
  if (argc == 2 && std::strcmp(argv[1], "--check") == 0) {
    bool ok = true;
    for (ggml_type t : {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0}) ok = check({7, 64, 96, 8, 2}, t) && ok;
    return ok ? 0 : 1;
  }
  if (argc != 9) {
    std::fprintf(stderr, "usage: moe T D H E K q8_0|q4_0 threads runs | moe --check\n");
    return 2;
  }
  const Shape s = {std::atoll(argv[1]), std::atoll(argv[2]), std::atoll(argv[3]), std::atoll(argv[4]), std::atoll(argv[5])};
  const std::string mode = argv[6];
  const int threads = std::atoi(argv[7]), runs = std::atoi(argv[8]);
  if (mode != "q8_0" && mode != "q4_0") fail("mode is q8_0 or q4_0");
  if (s.D % 32 != 0 || s.H % 32 != 0) fail("D and H must be multiples of 32 (ggml's block)");
  Layer L;
  L.s = s, L.type = mode == "q8_0" ? GGML_TYPE_Q8_0 : GGML_TYPE_Q4_0;
  build(L, false, threads);
  if (ggml_backend_graph_compute(L.backend, L.graph) != GGML_STATUS_SUCCESS) fail("compute failed");
  std::vector<double> times;
  for (int r = 0; r < runs; ++r) {
    const double t0 = now();
    ggml_backend_graph_compute(L.backend, L.graph);
    times.push_back(now() - t0);
  }
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  const size_t m = sorted.size() / 2;
  const double median = sorted.size() % 2 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
  std::printf("{\"peer\":\"ggml\",\"median_s\":%.9g,\"runs\":%d,\"runs_s\":[", median, runs);
  for (size_t i = 0; i < times.size(); ++i) std::printf("%s%.9g", i ? "," : "", times[i]);
  std::printf("],\"weights\":\"%s in %s\",\"features\":\"%s\"}\n", ggml_type_name(L.type), L.buffer.c_str(),
              features(ggml_backend_get_device(L.backend)).c_str());
  release(L);
  return 0;
}
