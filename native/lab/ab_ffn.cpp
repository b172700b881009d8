// Paired A/B of two builds of the kernels (shared objects made with different macros or from different sources), call
// by call: each round runs the bench-shape call once with each build, in alternating order, and the verdict is the
// median of the per-round time ratios B/A, so the VM's drift (tens of percent within minutes) cancels. The last call
// of each build is compared bit for bit. Build and run through
// native/test/run.sh ab "FLAGS A" "FLAGS B" [mode] [rounds]   (env: T, default 4096; AB_K and AB_E, top-k and experts,
// default 8 and 64 (AB_E=1 AB_K=1 keeps one expert's weights in the L3); THREADS,
// default 2; AB_PROBE=1, a read probe before each round and the verdict split at its median (AB_SPLIT=<GB/s>: there
// instead); AB_FLUSH=1, caches flushed before every call; AB_TILED=1, the quantized modes' codes in tiles, with
// AB_A_ROWS=1 build A reading the same bytes as rows; AB_LHS_BITS=8, the served modes in int8 serve mode (integer
// products); AB_TRAIN=1, mode f32 stores the backward's residuals too, as a training step's forward does), or
// run ab_ffn A.so B.so. One invocation's verdict can be off by several percent for identical builds (A/A on Zen 4,
// T=8 f32: 1.048 over 300 rounds, 0.881-1.182 one-thread): below ~10%, swap the builds between invocations.
// The weights sit in huge pages, as the library's large arrays do.
// Modes: f32 | dpbf16 | amx | widen (the fused forward; the last three with bf16 weights), bwd (the fp32 backward with
// every weight gradient, residuals from one forward of build A), gmm | gmm_t (transposed rhs) | tgmm at m = T*K, k = D,
// n = H, and bmm (E batches of T*K/E rows) with the same operands; q8f | q8i | q4f | q4i: moe_quantized_gmm with int8 /
// int4 codes of wi0 and a float / int8-range lhs at the same shape, reporting the codes' bytes of the experts hit per
// second beside the read probe (read before and after); q8s | q4s | q8b | q4b: moe_ffn_fwd_quantized (the served
// FFN, weight-only) with int8 / int4 codes of all three weights, a float32 (s) or bfloat16 (b) layer.
#include <dlfcn.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "moe-kernels.h"

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Build {
  decltype(&moe_ffn_fwd_f32) f32 = nullptr;
  decltype(&moe_ffn_fwd_bf16w) bf16 = nullptr;
  decltype(&moe_ffn_bwd_f32) bwd = nullptr;
  decltype(&moe_set_bf16_path) set_path = nullptr;
  decltype(&moe_set_num_threads) set_threads = nullptr;
  decltype(&moe_gmm_fwd_f32) gmm = nullptr;
  decltype(&moe_gmm_bwd_rhs_f32) tgmm = nullptr;
  decltype(&moe_bmm_f32) bmm = nullptr;
  decltype(&moe_quantized_gmm) qgmm = nullptr;
  decltype(&moe_ffn_fwd_quantized) qffn = nullptr;
  decltype(&moe_probe_read_bandwidth) read_probe = nullptr;
  decltype(&moe_set_blocking) set_blocking = nullptr;
  explicit Build(const char* path) {
    void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      std::fprintf(stderr, "%s\n", dlerror());
      std::exit(2);
    }
    f32 = reinterpret_cast<decltype(f32)>(dlsym(h, "moe_ffn_fwd_f32"));
    bf16 = reinterpret_cast<decltype(bf16)>(dlsym(h, "moe_ffn_fwd_bf16w"));
    bwd = reinterpret_cast<decltype(bwd)>(dlsym(h, "moe_ffn_bwd_f32"));
    set_path = reinterpret_cast<decltype(set_path)>(dlsym(h, "moe_set_bf16_path"));
    set_threads = reinterpret_cast<decltype(set_threads)>(dlsym(h, "moe_set_num_threads"));
    gmm = reinterpret_cast<decltype(gmm)>(dlsym(h, "moe_gmm_fwd_f32"));
    tgmm = reinterpret_cast<decltype(tgmm)>(dlsym(h, "moe_gmm_bwd_rhs_f32"));
    bmm = reinterpret_cast<decltype(bmm)>(dlsym(h, "moe_bmm_f32"));
    qgmm = reinterpret_cast<decltype(qgmm)>(dlsym(h, "moe_quantized_gmm"));
    qffn = reinterpret_cast<decltype(qffn)>(dlsym(h, "moe_ffn_fwd_quantized"));
    read_probe = reinterpret_cast<decltype(read_probe)>(dlsym(h, "moe_probe_read_bandwidth"));
    set_blocking = reinterpret_cast<decltype(set_blocking)>(dlsym(h, "moe_set_blocking"));
  }
};

uint16_t to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// A zeroed array in 2 MiB mappings advised for huge pages before the first touch, as moekit's large arrays are
// (core/dtype.ts's allocate): weights that decode streams, read through 4 KiB pages, would time the TLB as well.
template <class V>
class Mapped {
 public:
  Mapped() = default;
  explicit Mapped(size_t n) { resize(n); }
  Mapped(const Mapped&) = delete;
  Mapped& operator=(const Mapped&) = delete;
  ~Mapped() { release(); }
  void resize(size_t n) {
    release();
    n_ = n;
    bytes_ = (n * sizeof(V) + (size_t(2) << 20) - 1) / (size_t(2) << 20) * (size_t(2) << 20);
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "out of memory\n");
      std::exit(2);
    }
    madvise(p, bytes_, MADV_HUGEPAGE);
    p_ = static_cast<V*>(p);
  }
  V* data() { return p_; }
  const V* data() const { return p_; }
  size_t size() const { return n_; }
  V& operator[](size_t i) { return p_[i]; }

 private:
  void release() {
    if (p_ != nullptr) munmap(p_, bytes_);
    p_ = nullptr;
  }
  V* p_ = nullptr;
  size_t n_ = 0, bytes_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: ab_ffn A.so B.so [f32|dpbf16|amx|bwd] [rounds]\n");
    return 2;
  }
  Build A(argv[1]), B(argv[2]);
  const char* mode = argc > 3 ? argv[3] : "f32";
  const int rounds = argc > 4 ? std::atoi(argv[4]) : 12;
  const bool backward = std::strcmp(mode, "bwd") == 0;
  // AB_TRAIN=1 (mode f32): the residuals (act, h0, h1, o) at 64-byte aligned addresses, as the library's pooled arrays
  const bool train = !backward && std::getenv("AB_TRAIN") != nullptr && std::atoi(std::getenv("AB_TRAIN")) != 0;
  const std::string op = mode;
  const bool quant = op.size() == 3 && op[0] == 'q';
  const bool plain = op == "gmm" || op == "gmm_t" || op == "tgmm" || op == "bmm" || quant;
  const bool bf16 = (op == "dpbf16" || op == "amx" || op == "widen");
  // AB_BLOCK_A / AB_BLOCK_B = "kc,mc,nc": that build's f32 blocking (moe_set_blocking; 0 keeps the model's value)
  for (const auto& [v, build] : {std::pair<const char*, Build*>{"AB_BLOCK_A", &A}, {"AB_BLOCK_B", &B}}) {
    const char* e = std::getenv(v);
    int kc = 0, mc = 0, nc = 0;
    if (e == nullptr) continue;
    if (std::sscanf(e, "%d,%d,%d", &kc, &mc, &nc) != 3 || build->set_blocking("f32", kc, mc, nc) != MOE_STATUS_OK) {
      std::fprintf(stderr, "%s=%s: want kc,mc,nc valid for moe_set_blocking\n", v, e);
      return 2;
    }
  }
  for (Build* b : {&A, &B}) {
    b->set_threads(std::getenv("THREADS") != nullptr ? std::atoi(std::getenv("THREADS")) : 2);
    const moe_bf16_path_t path = op == "amx" ? MOE_BF16_AMX : op == "widen" ? MOE_BF16_WIDEN : MOE_BF16_DPBF16;
    if (bf16 && b->set_path(path) != MOE_STATUS_OK) {
      std::fprintf(stderr, "bf16 path %s is not available here\n", mode);
      return 2;
    }
  }
  const char* te = std::getenv("T");
  const char *ke = std::getenv("AB_K"), *ee = std::getenv("AB_E");
  const int64_t T = te != nullptr ? std::atoll(te) : 4096, K = ke != nullptr ? std::atoll(ke) : 8, D = 1024, H = 1408,
                E = ee != nullptr ? std::atoll(ee) : 64, R = T * K;
  if (T < 1 || K < 1 || E < K) {
    std::fprintf(stderr, "need T >= 1 and 1 <= AB_K <= AB_E (T=%lld, AB_K=%lld, AB_E=%lld)\n", (long long)T,
                 (long long)K, (long long)E);
    return 2;
  }
  // each token picks K distinct experts (fixed LCG); rows sorted by expert
  std::vector<int32_t> ex(static_cast<size_t>(R)), order(static_cast<size_t>(R)), gs(static_cast<size_t>(E), 0);
  uint64_t s = 7;
  for (int64_t t = 0; t < T; ++t) {
    std::vector<int32_t> pool(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e) pool[size_t(e)] = int32_t(e);
    for (int64_t k = 0; k < K; ++k) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      std::swap(pool[size_t(k)], pool[size_t(k + int64_t((s >> 33) % uint64_t(E - k)))]);
      ex[size_t(t * K + k)] = pool[size_t(k)];
    }
  }
  for (int64_t i = 0; i < R; ++i) order[size_t(i)] = int32_t(i);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return ex[size_t(a)] < ex[size_t(b)]; });
  for (int32_t e : ex) gs[size_t(e)]++;
  const size_t nw = size_t(E * D * H);
  std::vector<float> w(static_cast<size_t>(R), 1.0f / float(K)), x(static_cast<size_t>(T * D)), y(x.size());
  Mapped<float> wi0(nw), wi1(nw), wo(nw);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 17) - 8) * 0.1f;
  for (size_t i = 0; i < nw; ++i) {
    wi0[i] = float(int(i % 13) - 6) * 0.003f;
    wi1[i] = float(int(i % 11) - 5) * 0.003f;
    wo[i] = float(int(i % 7) - 3) * 0.003f;
  }
  Mapped<uint16_t> b0(nw), b1(nw), bo(nw);
  for (size_t i = 0; i < nw; ++i) {
    b0[i] = to_bf16(wi0[i]);
    b1[i] = to_bf16(wi1[i]);
    bo[i] = to_bf16(wo[i]);
  }
  // plain matmuls: lhs = x rows gathered by order (R x D), rhs = wi0 (E x D x H), grad_out (R x H)
  std::vector<float> lhs, dout, out;
  if (plain) {
    lhs.resize(size_t(R * D));
    for (int64_t r = 0; r < R; ++r) std::memcpy(&lhs[size_t(r * D)], &x[size_t(order[size_t(r)] / K * D)], size_t(D) * 4);
    dout.resize(size_t(R * H));
    for (size_t i = 0; i < dout.size(); ++i) dout[i] = float(int(i % 5) - 2) * 0.01f;
    out.resize(std::max(size_t(R * H), nw));
  }
  // quantized: codes of wi0 as they come (arbitrary bytes are valid int8 / int4 codes), scales, an int8-range lhs
  // AB_TILED=1: the codes in tiles (MOE_WF_INT8_TILES / MOE_WF_INT4_TILES; D and H are multiples of 32 and 128 here)
  const bool tiled = std::getenv("AB_TILED") != nullptr && std::atoi(std::getenv("AB_TILED")) != 0;
  const moe_weight_format_t qf = quant && op[1] == '4' ? (tiled ? MOE_WF_INT4_TILES : MOE_WF_INT4)
                                                        : (tiled ? MOE_WF_INT8_TILES : MOE_WF_INT8);
  const bool q8 = qf == MOE_WF_INT8 || qf == MOE_WF_INT8_TILES;
  // AB_A_ROWS=1 (with AB_TILED=1): build A reads the same bytes as codes in rows, so that one run pairs the layouts
  const bool a_rows = tiled && std::getenv("AB_A_ROWS") != nullptr && std::atoi(std::getenv("AB_A_ROWS")) != 0;
  const moe_weight_format_t qfa = a_rows ? (q8 ? MOE_WF_INT8 : MOE_WF_INT4) : qf;
  const bool qint = quant && op[2] == 'i';
  const bool served = quant && (op[2] == 's' || op[2] == 'b');
  // AB_LHS_BITS=8 (served modes): int8 serve mode, each GMM's input rows quantized per row and multiplied as integers
  const int lhs_bits = std::getenv("AB_LHS_BITS") != nullptr ? std::atoi(std::getenv("AB_LHS_BITS")) : 0;
  Mapped<uint8_t> codes, codes1, codes_o;
  std::vector<float> qscale, lscale;
  std::vector<int32_t> lhs_i;
  if (quant) {
    codes.resize(q8 ? nw : size_t(E * D * ((H + 1) / 2)));
    for (size_t i = 0; i < codes.size(); ++i) codes[i] = uint8_t((i * 2654435761u) >> 13);
    if (served) {  // wi1 and wo (the same size as wi0's codes in either layout at this shape)
      codes1.resize(codes.size());
      codes_o.resize(codes.size());
      for (size_t i = 0; i < codes.size(); ++i) {
        codes1[i] = uint8_t((i * 2246822519u) >> 13);
        codes_o[i] = uint8_t((i * 3266489917u) >> 13);
      }
    }
    qscale.assign(size_t(E * std::max(H, D)), 0.01f);
    lscale.assign(size_t(R), 0.02f);
    lhs_i.resize(size_t(R * D));
    for (size_t i = 0; i < lhs_i.size(); ++i) lhs_i[i] = int32_t(i % 251) - 125;
  }
  std::vector<float> ra, r0, r1, ro, dy, dx, dwi0, dwi1, dwo;
  auto al = [](std::vector<float>& v) { return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t(63)); };
  if (train) {
    for (auto* v : {&ra, &r0, &r1}) v->resize(size_t(R * H + 16));
    ro.resize(size_t(R * D + 16));
  }
  if (backward) {
    for (auto* v : {&ra, &r0, &r1}) v->resize(size_t(R * H));
    ro.resize(size_t(R * D));
    dy.resize(x.size(), 0.01f);
    dx.resize(x.size());
    for (auto* v : {&dwi0, &dwi1, &dwo}) v->resize(nw);
    if (A.f32(x.data(), T, D, order.data(), K, w.data(), wi0.data(), wi1.data(), wo.data(), nullptr, nullptr, nullptr,
              gs.data(), E, H, MOE_ACT_SILU, 0.0f, y.data(), ra.data(), r0.data(), r1.data(), ro.data()) != MOE_STATUS_OK) {
      std::fprintf(stderr, "forward failed\n");
      return 1;
    }
  }
  // AB_FLUSH=1: a 64 MB read before every timed call, so that no call finds the previous one's weights in L3 (32 MB
  // here: int4 codes of the decode shape's experts, 31 MB, would otherwise come from cache for the second build)
  const bool flush = std::getenv("AB_FLUSH") != nullptr && std::atoi(std::getenv("AB_FLUSH")) != 0;
  auto run = [&](const Build& b) {
    if (flush) B.read_probe(int64_t(1) << 26);
    const double t0 = now();
    const moe_status_t st =
        op == "gmm"     ? b.gmm(lhs.data(), wi0.data(), gs.data(), R, D, H, E, 0, out.data())
        : op == "gmm_t" ? b.gmm(lhs.data(), wi0.data(), gs.data(), R, D, H, E, 1, out.data())
        : op == "tgmm"  ? b.tgmm(lhs.data(), dout.data(), gs.data(), R, D, H, E, out.data())
        : op == "bmm"   ? b.bmm(lhs.data(), wi0.data(), E, R / E, D, H, out.data())
        : served ? b.qffn(&b == &A ? qfa : qf, lhs_bits, op[2] == 'b', x.data(), T, D, order.data(), K, w.data(), codes.data(),
                          qscale.data(), codes1.data(), qscale.data(), codes_o.data(), qscale.data(), nullptr, nullptr,
                          nullptr, gs.data(), E, H, MOE_ACT_SILU, 0.0f, y.data())
        : quant ? b.qgmm(&b == &A ? qfa : qf, qint ? static_cast<const void*>(lhs_i.data()) : lhs.data(), qint ? 1 : 0,
                         qint ? lscale.data() : nullptr, codes.data(), qscale.data(), gs.data(), R, D, H, E, out.data())
        : backward ? b.bwd(dy.data(), x.data(), T, D, order.data(), K, w.data(), wi0.data(), wi1.data(), wo.data(), gs.data(),
                         E, H, MOE_ACT_SILU, 0.0f, ra.data(), r0.data(), r1.data(), ro.data(), dx.data(), nullptr,
                         dwi0.data(), dwi1.data(), dwo.data(), nullptr, nullptr, nullptr)
        : bf16 ? b.bf16(x.data(), T, D, order.data(), K, w.data(), b0.data(), b1.data(), bo.data(), nullptr, nullptr, nullptr,
                      gs.data(), E, H, MOE_ACT_SILU, 0.0f, y.data(), nullptr, nullptr, nullptr, nullptr)
             : b.f32(x.data(), T, D, order.data(), K, w.data(), wi0.data(), wi1.data(), wo.data(), nullptr, nullptr, nullptr,
                     gs.data(), E, H, MOE_ACT_SILU, 0.0f, y.data(), train ? al(ra) : nullptr, train ? al(r0) : nullptr,
                     train ? al(r1) : nullptr, train ? al(ro) : nullptr);
    if (st != MOE_STATUS_OK) {
      std::fprintf(stderr, "%s failed\n", mode);
      std::exit(1);
    }
    return now() - t0;
  };
  for (int i = 0; i < 2; ++i) {  // warm-up: workspaces, pages
    run(A);
    run(B);
  }
  const double read0 = quant ? B.read_probe(int64_t(1) << 28) : 0.0;
  // AB_PROBE=1: a 256 MB read probe before each round, and the rounds split at the median reading (this VM's memory
  // bandwidth switches between regimes for seconds at a time; a change of the streaming kernels may help in one only)
  const bool per_round_probe = std::getenv("AB_PROBE") != nullptr && std::atoi(std::getenv("AB_PROBE")) != 0;
  std::vector<double> ratio, ta, tb, probe;
  for (int i = 0; i < rounds; ++i) {
    if (per_round_probe) probe.push_back(B.read_probe(int64_t(1) << 28));
    double a, b;
    if (i % 2 == 0) {
      a = run(A);
      b = run(B);
    } else {
      b = run(B);
      a = run(A);
    }
    ratio.push_back(b / a);
    ta.push_back(a);
    tb.push_back(b);
  }
  // the outputs of the last call of each build, bit for bit
  std::vector<float>& res = plain && !served ? out : backward ? dwo : y;
  std::vector<float> ra_out, rb_out;
  run(A);
  ra_out = res;
  if (backward) ra_out.insert(ra_out.end(), dx.begin(), dx.end());
  run(B);
  rb_out = res;
  if (backward) rb_out.insert(rb_out.end(), dx.begin(), dx.end());
  const bool same = std::memcmp(ra_out.data(), rb_out.data(), ra_out.size() * sizeof(float)) == 0;
  int64_t hit = 0;
  for (int32_t g : gs) hit += g > 0 ? 1 : 0;
  const double wbytes = quant ? (served ? 3.0 : 1.0) * double(hit) * double(D) * double(q8 ? H : (H + 1) / 2)
                        : op == "gmm" ? double(hit) * double(D) * double(H) * 4.0
                        : plain ? 0.0
                                : double(hit) * 3.0 * double(D) * double(H) * (bf16 ? 2.0 : 4.0);
  if (per_round_probe) {
    std::vector<double> sorted = probe;
    std::sort(sorted.begin(), sorted.end());
    // AB_SPLIT=<GB/s>: split there instead (the regimes apart, however many rounds each had)
    const char* split = std::getenv("AB_SPLIT");
    const double cut = split != nullptr ? std::atof(split) : sorted[sorted.size() / 2];
    const char* at = split != nullptr ? "the split" : "its median";
    for (int upper = 1; upper >= 0; --upper) {
      std::vector<double> r, fa, fb, pr;
      for (int i = 0; i < rounds; ++i) {
        if ((probe[size_t(i)] >= cut) != (upper == 1)) continue;
        r.push_back(ratio[size_t(i)]);
        pr.push_back(probe[size_t(i)]);
        fa.push_back(wbytes / ta[size_t(i)] / 1e9 / probe[size_t(i)]);
        fb.push_back(wbytes / tb[size_t(i)] / 1e9 / probe[size_t(i)]);
      }
      if (r.empty()) continue;
      for (auto* v : {&r, &fa, &fb, &pr}) std::sort(v->begin(), v->end());
      const size_t h = r.size() / 2;
      std::printf("  rounds with the probe %s %s (%zu, probe median %.1f GB/s): B/A median %.3f", upper ? ">=" : "<", at,
                  r.size(), pr[h], r[h]);
      if (wbytes > 0) std::printf("; weights read at A %.0f%%, B %.0f%% of the probe", 100 * fa[h], 100 * fb[h]);
      std::printf("\n");
    }
  }
  for (auto* v : {&ratio, &ta, &tb}) std::sort(v->begin(), v->end());
  const size_t m = size_t(rounds / 2);
  std::printf("%s T=%lld, %d rounds: A median %.1f ms, B median %.1f ms; B/A per round: median %.3f (min %.3f, max %.3f); "
              "outputs %s\n",
              mode, static_cast<long long>(T), rounds, ta[m] * 1e3, tb[m] * 1e3, ratio[m], ratio.front(), ratio.back(),
              same ? "bit-identical" : "DIFFER");
  if (quant) {
    const double read1 = B.read_probe(int64_t(1) << 28);
    const double bytes = wbytes;
    std::printf("  %lld experts hit, %.1f MB of codes: A %.1f GB/s, B %.1f GB/s; read probe %.1f / %.1f GB/s (B: %.0f%%)\n",
                static_cast<long long>(hit), bytes / 1e6, bytes / ta[m] / 1e9, bytes / tb[m] / 1e9, read0, read1,
                100.0 * bytes / tb[m] / 1e9 / ((read0 + read1) / 2));
  }
  return 0;
}
