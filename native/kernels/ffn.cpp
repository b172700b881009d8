// The C ABI of the fused MoE FFN (moe-kernels.h, stage 2): argument checks, the mapping of each stage onto fused
// grouped-GEMM problems (ffn.hpp) and their split into work items, the memory-bound passes (combine, scatter, row
// sums, index maps), the one-shot workspace, CPU feature checks and the probes. Baseline code: the ISA units run
// the items.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "api_util.hpp"
#include "ffn.hpp"

#if defined(MOE_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace moe::detail {
namespace {

// ---- CPU features and the bf16 path -------------------------------------------------------------------------

#if defined(MOE_HAVE_X86_KERNELS) && (defined(__GNUC__) || defined(__clang__))
uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

bool detect_avx512_bf16() {
  if (isa_best() != MOE_ISA_AVX512) return false;
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return (a >> 5) & 1u;
}

bool detect_amx_bf16() {
  if (!detect_avx512_bf16()) return false;
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool amx_bf16 = (d >> 22) & 1u, amx_tile = (d >> 24) & 1u;
  if (!amx_bf16 || !amx_tile) return false;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1u)) return false;  // OSXSAVE
  const uint64_t xcr0 = xgetbv0();
  if (((xcr0 >> 17) & 3u) != 3u) return false;  // XTILECFG, XTILEDATA
  return amx_enable();
}

// AMD cores (Zen 4, Zen 5) run vdpbf16ps at twice the fp32 fma rate; Intel cores (Cooper Lake to Granite Rapids) at
// half of it (measured here: 160 against 330 GFLOP/s), where widening the weights to fp32 is faster.
bool detect_fast_dpbf16() {
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return false;
  char vendor[13] = {};
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  return std::strcmp(vendor, "AuthenticAMD") == 0 || std::strcmp(vendor, "HygonGenuine") == 0;
}
#else
bool detect_avx512_bf16() { return false; }
bool detect_amx_bf16() { return false; }
bool detect_fast_dpbf16() { return false; }
#endif

// AMX where the CPU and OS allow it; vdpbf16ps where it outruns fp32 fma; else bf16 weights widened to fp32 (which
// also keeps the activations in fp32).
moe_bf16_path_t best_bf16_path() {
  static const bool fast_dpbf16 = detect_fast_dpbf16();
  if (cpu_has_amx_bf16()) return MOE_BF16_AMX;
  if (cpu_has_avx512_bf16() && fast_dpbf16) return MOE_BF16_DPBF16;
  return MOE_BF16_WIDEN;
}

bool bf16_path_available(moe_bf16_path_t p) {
  switch (p) {
    case MOE_BF16_WIDEN: return true;
    case MOE_BF16_DPBF16: return cpu_has_avx512_bf16();
    case MOE_BF16_AMX: return cpu_has_amx_bf16();
  }
  return false;
}

moe_bf16_path_t initial_bf16_path() {
  const moe_bf16_path_t best = best_bf16_path();
  const char* v = std::getenv("MOEKIT_NATIVE_BF16");
  if (v == nullptr) return best;
  moe_bf16_path_t want = best;
  if (std::strcmp(v, "widen") == 0) want = MOE_BF16_WIDEN;
  if (std::strcmp(v, "dpbf16") == 0) want = MOE_BF16_DPBF16;
  if (std::strcmp(v, "amx") == 0) want = MOE_BF16_AMX;
  return bf16_path_available(want) ? want : best;
}

std::atomic<int>& bf16_path_setting() {
  static std::atomic<int> p{int(initial_bf16_path())};
  return p;
}

// The path used now: the setting, or WIDEN when the active ISA is below AVX-512.
moe_bf16_path_t effective_bf16_path() {
  if (isa_active() != MOE_ISA_AVX512) return MOE_BF16_WIDEN;
  return moe_bf16_path_t(bf16_path_setting().load(std::memory_order_relaxed));
}

Mul mul_for(BElem e) {
  if (e == BElem::F32) return Mul::F32;
  switch (effective_bf16_path()) {
    case MOE_BF16_DPBF16: return Mul::DPBF16;
    case MOE_BF16_AMX: return Mul::AMX;
    case MOE_BF16_WIDEN: break;
  }
  return Mul::F32;
}

// ---- Workspace ------------------------------------------------------------------------------------------------

constexpr std::align_val_t kAlign{64};

struct AlignedFree {
  void operator()(void* p) const { ::operator delete(p, kAlign); }
};

// Buffers grown to the largest request and kept. Slots: 0, 1, 2 fp32 intermediates of the one-shot calls; 3 int32
// index maps; 4 the bf16 copy of x for the bf16-pair multiply kinds.
class Workspace {
 public:
  void* get(int slot, int64_t bytes) {
    Slot& s = slots_[size_t(slot)];
    if (s.bytes < bytes) {
      s.p.reset();
      s.bytes = 0;
      s.p.reset(::operator new(size_t(bytes), kAlign));
      s.bytes = bytes;
      moe_advise_fresh_output(s.p.get(), bytes);
    }
    return s.p.get();
  }
  float* f32(int slot, int64_t n) { return static_cast<float*>(get(slot, std::max<int64_t>(n, 1) * 4)); }
  int32_t* i32(int slot, int64_t n) { return static_cast<int32_t*>(get(slot, std::max<int64_t>(n, 1) * 4)); }
  int64_t bytes() const {
    int64_t b = 0;
    for (const Slot& s : slots_) b += s.bytes;
    return b;
  }
  void release() {
    for (Slot& s : slots_) {
      s.p.reset();
      s.bytes = 0;
    }
  }

 private:
  struct Slot {
    std::unique_ptr<void, AlignedFree> p;
    int64_t bytes = 0;
  };
  Slot slots_[5];
};

Workspace& workspace() {
  static Workspace ws;
  return ws;
}

// ---- Running problems ------------------------------------------------------------------------------------------

// Below this many elements a memory-bound pass runs on the calling thread.
constexpr double kSerialElems = double(1 << 16);

template <class F>
void parallel_items(int64_t n_items, bool serial, F& f) {
  parallel_for(
      n_items, serial ? 1 : pool_threads(), [](void* ctx, int64_t i, int w) { (*static_cast<F*>(ctx))(i, w); }, &f);
}

// ---- Memory-bound passes ---------------------------------------------------------------------------------------

// Tokens per work item of the token-major passes (fixed by D).
int64_t token_chunk(int64_t D) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(D, 1)); }

// y[t] = sum_k w[t, k] * rows[inv[t * K + k]] (w NULL: 1), ascending k, mul then add.
void combine_fwd(const float* rows, int64_t D, const int32_t* inv, const float* w, int64_t T, int64_t K, float* y) {
  if (T == 0 || D == 0) return;
  const int64_t chunk = token_chunk(D);
  auto body = [&](int64_t item, int) {
    const int64_t t1 = std::min(T, (item + 1) * chunk);
    for (int64_t t = item * chunk; t < t1; ++t) {
      float* __restrict yt = y + t * D;
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

// d_rows[inv[t * K + k]] = w[t, k] * dy[t]; dw[t, k] = <rows[inv[t * K + k]], dy[t]> (when dw != NULL).
void combine_bwd(const float* dy, const float* rows, int64_t D, const int32_t* inv, const float* w, int64_t T,
                 int64_t K, float* d_rows, float* dw) {
  if (T == 0 || K == 0) return;
  const int64_t chunk = token_chunk(D);
  auto body = [&](int64_t item, int) {
    const int64_t t1 = std::min(T, (item + 1) * chunk);
    for (int64_t t = item * chunk; t < t1; ++t) {
      const float* __restrict g = dy + t * D;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t r = inv[t * K + k];
        float* __restrict d = d_rows + r * D;
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

// out[g, j] = sum over the rows r of group g (ascending) of src[r, j]; items: (group, 256-column block).
void group_row_sums(const float* src, int64_t n, const std::vector<int64_t>& off, float* out) {
  const int64_t G = int64_t(off.size()) - 1;
  if (G <= 0 || n == 0) return;
  constexpr int64_t kCols = 256;
  const int64_t nblk = (n + kCols - 1) / kCols;
  auto body = [&](int64_t item, int) {
    const int64_t g = item / nblk, j0 = (item % nblk) * kCols, j1 = std::min(n, j0 + kCols);
    float* __restrict o = out + g * n;
    for (int64_t j = j0; j < j1; ++j) o[j] = 0.0f;
    for (int64_t r = off[size_t(g)]; r < off[size_t(g) + 1]; ++r) {
      const float* __restrict s = src + r * n;
      for (int64_t j = j0; j < j1; ++j) o[j] = o[j] + s[j];
    }
  };
  parallel_items(G * nblk, double(off.back()) * double(n) < kSerialElems, body);
}

// Elementwise GLU over n values in blocks of 4096.
void glu_fwd_all(const float* h0, const float* h1, int64_t n, moe_activation_t act, float limit, float* out) {
  constexpr int64_t kBlk = 4096;
  const FfnIsa& isa = active_ffn_isa();
  auto body = [&](int64_t item, int) {
    const int64_t j0 = item * kBlk, len = std::min(kBlk, n - j0);
    isa.glu_fwd(h0 + j0, h1 + j0, len, nullptr, nullptr, act, limit, out + j0, nullptr, nullptr);
  };
  parallel_items((n + kBlk - 1) / kBlk, double(n) < kSerialElems, body);
}

void glu_bwd_all(const float* d, const float* h0, const float* h1, int64_t n, moe_activation_t act, float limit,
                 float* dh0, float* dh1) {
  constexpr int64_t kBlk = 4096;
  const FfnIsa& isa = active_ffn_isa();
  auto body = [&](int64_t item, int) {
    const int64_t j0 = item * kBlk, len = std::min(kBlk, n - j0);
    isa.glu_bwd(d + j0, h0 + j0, h1 + j0, len, act, limit, dh0 + j0, dh1 + j0);
  };
  parallel_items((n + kBlk - 1) / kBlk, double(n) < kSerialElems, body);
}

// ---- The stages (arguments already checked) ----------------------------------------------------------------------

struct Dims {
  int64_t T, D, R, E, H;
  std::vector<int64_t> off;  // E + 1 group offsets
};

// Rows mode over the routed rows with the multiply kind of the weights' element type (see rows_problem).
FfnProblem rows_problem(const Dims& d, int64_t n, int64_t k, const float* a, const void* w, BElem be, bool btrans) {
  FfnProblem P = rows_problem(d.off.data(), d.E, k, n, a, w, be, btrans);
  P.mul = mul_for(be);
  return P;
}

// tgmm mode: out_g (m x n, Store) = A_g^T @ B_g over group g's rows, A(i, p) = a[arow(p) * m + i]; the B halves
// (rows of n) and outputs are the caller's.
FfnProblem tgmm_problem(const Dims& d, int64_t m, int64_t n, const float* a, const int32_t* arow) {
  FfnProblem P;
  P.tgmm = true;
  P.off = d.off.data();
  P.groups = d.E;
  P.m = m;
  P.n = n;
  P.a[0] = a;
  P.lda = m;
  P.arow = arow;
  P.ldb = n;
  P.epi.kind = EpiKind::Store;
  P.epi.ldo = n;
  return P;
}

void up_fwd(const Dims& d, const float* x, const int32_t* row_token, const void* wi0, const void* wi1, BElem be,
            const float* b0, const float* b1, moe_activation_t act, float limit, float* act_out, float* h0,
            float* h1) {
  FfnProblem P = rows_problem(d, d.H, d.D, x, wi0, be, false);
  P.halves = 2;
  P.arow = row_token;
  P.b[1][0] = wi1;
  P.epi.kind = EpiKind::GluFwd;
  P.epi.out[0] = act_out;
  P.epi.bias[0] = b0;
  P.epi.bias[1] = b1;
  P.epi.h_out[0] = h0;
  P.epi.h_out[1] = h1;
  P.epi.act = act;
  P.epi.limit = limit;
  P.stream_small = true;
#if defined(MOE_HAVE_X86_KERNELS)
  if (P.mul != Mul::F32) {  // every token is gathered K times per column block: convert x to bf16 once
    auto* x16 = static_cast<uint16_t*>(workspace().get(4, std::max<int64_t>(1, d.T * d.D) * 2));
    const int64_t chunk = 1 << 16, n = d.T * d.D;
    auto cvt = [&](int64_t item, int) {
      const int64_t b = item * chunk;
      to_bf16_avx512bf16(x + b, std::min(chunk, n - b), x16 + b);
    };
    parallel_items((n + chunk - 1) / chunk, double(n) < kSerialElems, cvt);
    P.a16 = x16;
  }
#endif
  run_problem(P);
  for (float* o : {act_out, h0, h1}) zero_rows(o, d.off.back(), d.R, d.H);
}

void down_fwd(const Dims& d, const float* act, const void* wo, BElem be, const float* bo, float* o_rows) {
  FfnProblem P = rows_problem(d, d.D, d.H, act, wo, be, false);
  P.epi.kind = EpiKind::Store;
  P.epi.out[0] = o_rows;
  P.epi.bias[0] = bo;
  P.stream_small = true;
  run_problem(P);
  zero_rows(o_rows, d.off.back(), d.R, d.D);
}

void down_bwd(const Dims& d, const float* d_o, const float* act, const float* h0, const float* h1, const void* wo,
              BElem be, moe_activation_t a, float limit, float* dh0, float* dh1, float* dwo, float* dbo) {
  {  // d_act = d_o @ wo^T, GLU backward in the epilogue
    FfnProblem P = rows_problem(d, d.H, d.D, d_o, wo, be, true);  // B(p, j) = wo[g][j * D + p]
    P.epi.kind = EpiKind::GluBwd;
    P.epi.out[0] = dh0;
    P.epi.out[1] = dh1;
    P.epi.h_in[0] = h0;
    P.epi.h_in[1] = h1;
    P.epi.act = a;
    P.epi.limit = limit;
    run_problem(P);
    zero_rows(dh0, d.off.back(), d.R, d.H);
    zero_rows(dh1, d.off.back(), d.R, d.H);
  }
  if (dwo != nullptr) {  // dwo[g] = act_g^T @ d_o_g
    FfnProblem P = tgmm_problem(d, d.H, d.D, act, nullptr);
    P.b[0][0] = d_o;
    P.epi.out[0] = dwo;
    run_problem(P);
  }
  if (dbo != nullptr) group_row_sums(d_o, d.D, d.off, dbo);
}

void up_bwd(const Dims& d, const float* dh0, const float* dh1, const float* x, const int32_t* row_token,
            const void* wi0, const void* wi1, BElem be, float* dx_rows, float* dwi0, float* dwi1, float* db0,
            float* db1) {
  {  // dx_rows = dh0 @ wi0^T + dh1 @ wi1^T: one contraction over [dh0 | dh1]
    FfnProblem P = rows_problem(d, d.D, d.H, dh0, wi0, be, true);  // B(p, j) = wi[g][j * H + p]
    P.k[1] = d.H;
    P.a[1] = dh1;
    P.b[0][1] = wi1;
    P.epi.kind = EpiKind::Store;
    P.epi.out[0] = dx_rows;
    run_problem(P);
    zero_rows(dx_rows, d.off.back(), d.R, d.D);
  }
  if (dwi0 != nullptr || dwi1 != nullptr) {  // dwi{0,1}[g] = x_rows_g^T @ dh{0,1}_g, x rows gathered while packing
    FfnProblem P = tgmm_problem(d, d.D, d.H, x, row_token);
    int h = 0;  // both: one pass, two halves sharing the packed x
    if (dwi0 != nullptr) {
      P.b[h][0] = dh0;
      P.epi.out[h++] = dwi0;
    }
    if (dwi1 != nullptr) {
      P.b[h][0] = dh1;
      P.epi.out[h++] = dwi1;
    }
    P.halves = h;
    run_problem(P);
  }
  if (db0 != nullptr) group_row_sums(dh0, d.H, d.off, db0);
  if (db1 != nullptr) group_row_sums(dh1, d.H, d.off, db1);
}

// ---- Argument checks ---------------------------------------------------------------------------------------------

bool check_activation(Checker& ck, moe_activation_t act, float limit) {
  return ck.require(act >= MOE_ACT_LINEAR && act <= MOE_ACT_RELU, "unknown activation " + std::to_string(int(act))) &&
         ck.require(limit >= 0.0f && std::isfinite(limit), "clamp_limit must be finite and >= 0");
}

bool check_row_token(Checker& ck, const int32_t* row_token, int64_t R, int64_t T) {
  for (int64_t r = 0; r < R; ++r) {
    if (row_token[r] < 0 || row_token[r] >= T) {
      return ck.require(false, "row_token[" + std::to_string(r) + "] = " + std::to_string(row_token[r]) +
                                   " is not a token in [0, " + std::to_string(T) + ")");
    }
  }
  return ck.error.empty();
}

// inv must be a permutation of [0, n).
bool check_permutation(Checker& ck, const char* name, const int32_t* p, int64_t n) {
  if (!ck.error.empty()) return false;
  std::vector<uint8_t> seen(size_t(n), 0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = p[i];
    if (v < 0 || v >= n || seen[size_t(v)] != 0) {
      return ck.require(false, std::string(name) + " is not a permutation of [0, " + std::to_string(n) + "): " + name +
                                   "[" + std::to_string(i) + "] = " + std::to_string(v));
    }
    seen[size_t(v)] = 1;
  }
  return true;
}

// row_token[r] = order[r] / K and inv[order[r]] = r, checking that order is a permutation of [0, R).
bool derive_maps(Checker& ck, const int32_t* order, int64_t R, int64_t K, int32_t* row_token, int32_t* inv) {
  if (!ck.error.empty()) return false;
  std::fill(inv, inv + R, -1);
  for (int64_t r = 0; r < R; ++r) {
    const int64_t c = order[r];
    if (c < 0 || c >= R || inv[c] != -1) {
      return ck.require(false, "order is not a permutation of [0, T*K): order[" + std::to_string(r) + "] = " +
                                   std::to_string(c));
    }
    inv[c] = int32_t(r);
    row_token[r] = int32_t(c / K);
  }
  return true;
}

bool check_sizes(Checker& ck, std::initializer_list<std::pair<const char*, int64_t>> sizes) {
  for (const auto& s : sizes) {
    if (!ck.size(s.first, s.second)) return false;
  }
  return true;
}

bool check_index_range(Checker& ck, int64_t R) {
  return ck.require(R <= int64_t(INT32_MAX), "R = " + std::to_string(R) + " exceeds the int32 index range");
}

// ---- Typed entry points ------------------------------------------------------------------------------------------

moe_status_t up_fwd_api(const char* where, const float* x, int64_t T, int64_t D, const int32_t* row_token, int64_t R,
                        const void* wi0, const void* wi1, BElem be, const float* b0, const float* b1,
                        const int32_t* gs, int64_t E, int64_t H, moe_activation_t act, float limit, float* act_out,
                        float* h0, float* h1) {
  return guarded(where, [&] {
    Checker ck{where, {}};
    Dims d{T, D, R, E, H, {}};
    if (!(check_sizes(ck, {{"T", T}, {"D", D}, {"R", R}, {"E", E}, {"H", H}}) && check_index_range(ck, R) &&
          ck.tensor("x", x, {T, D}) && ck.tensor("row_token", row_token, {R}) && ck.tensor("wi0", wi0, {E, D, H}) &&
          ck.tensor("wi1", wi1, {E, D, H}) && ck.tensor("group_sizes", gs, {E}) && ck.tensor("act", act_out, {R, H}) &&
          check_activation(ck, act, limit) && group_offsets(ck, gs, E, R, d.off) && check_row_token(ck, row_token, R, T))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    up_fwd(d, x, row_token, wi0, wi1, be, b0, b1, act, limit, act_out, h0, h1);
    return MOE_STATUS_OK;
  });
}

moe_status_t down_fwd_api(const char* where, const float* act, int64_t R, int64_t H, const void* wo, BElem be,
                          const float* bo, const int32_t* gs, int64_t E, int64_t D, float* o_rows) {
  return guarded(where, [&] {
    Checker ck{where, {}};
    Dims d{0, D, R, E, H, {}};
    if (!(check_sizes(ck, {{"R", R}, {"H", H}, {"E", E}, {"D", D}}) && ck.tensor("act", act, {R, H}) &&
          ck.tensor("wo", wo, {E, H, D}) && ck.tensor("group_sizes", gs, {E}) && ck.tensor("o_rows", o_rows, {R, D}) &&
          group_offsets(ck, gs, E, R, d.off))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    down_fwd(d, act, wo, be, bo, o_rows);
    return MOE_STATUS_OK;
  });
}

moe_status_t down_bwd_api(const char* where, const float* d_o, const float* act, const float* h0, const float* h1,
                          int64_t R, int64_t H, const void* wo, BElem be, const int32_t* gs, int64_t E, int64_t D,
                          moe_activation_t a, float limit, float* dh0, float* dh1, float* dwo, float* dbo) {
  return guarded(where, [&] {
    Checker ck{where, {}};
    Dims d{0, D, R, E, H, {}};
    if (!(check_sizes(ck, {{"R", R}, {"H", H}, {"E", E}, {"D", D}}) && ck.tensor("d_o_rows", d_o, {R, D}) &&
          ck.tensor("act", act, {R, H}) && ck.tensor("h0", h0, {R, H}) && ck.tensor("h1", h1, {R, H}) &&
          ck.tensor("wo", wo, {E, H, D}) && ck.tensor("group_sizes", gs, {E}) && ck.tensor("dh0", dh0, {R, H}) &&
          ck.tensor("dh1", dh1, {R, H}) && check_activation(ck, a, limit) &&
          group_offsets(ck, gs, E, R, d.off))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    down_bwd(d, d_o, act, h0, h1, wo, be, a, limit, dh0, dh1, dwo, dbo);
    return MOE_STATUS_OK;
  });
}

moe_status_t up_bwd_api(const char* where, const float* dh0, const float* dh1, int64_t R, int64_t H, const float* x,
                        int64_t T, int64_t D, const int32_t* row_token, const void* wi0, const void* wi1, BElem be,
                        const int32_t* gs, int64_t E, float* dx_rows, float* dwi0, float* dwi1, float* db0,
                        float* db1) {
  return guarded(where, [&] {
    Checker ck{where, {}};
    Dims d{T, D, R, E, H, {}};
    if (!(check_sizes(ck, {{"R", R}, {"H", H}, {"T", T}, {"D", D}, {"E", E}}) && check_index_range(ck, R) &&
          ck.tensor("dh0", dh0, {R, H}) && ck.tensor("dh1", dh1, {R, H}) && ck.tensor("x", x, {T, D}) &&
          ck.tensor("row_token", row_token, {R}) && ck.tensor("wi0", wi0, {E, D, H}) &&
          ck.tensor("wi1", wi1, {E, D, H}) && ck.tensor("group_sizes", gs, {E}) &&
          ck.tensor("dx_rows", dx_rows, {R, D}) && group_offsets(ck, gs, E, R, d.off) &&
          check_row_token(ck, row_token, R, T))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    up_bwd(d, dh0, dh1, x, row_token, wi0, wi1, be, dx_rows, dwi0, dwi1, db0, db1);
    return MOE_STATUS_OK;
  });
}

// Common checks of the one-shot calls; fills d and the index maps (workspace slot 3: row_token then inv).
bool oneshot_setup(Checker& ck, Dims& d, const float* x, int64_t T, int64_t D, const int32_t* order, int64_t K,
                   const void* wi0, const void* wi1, const void* wo, const int32_t* gs, int64_t E, int64_t H,
                   moe_activation_t act, float limit, int32_t*& row_token, int32_t*& inv) {
  if (!(check_sizes(ck, {{"T", T}, {"D", D}, {"K", K}, {"E", E}, {"H", H}}))) return false;
  int64_t R = 0;
  if (!ck.require(!__builtin_mul_overflow(T, K, &R), "T * K overflows")) return false;
  d = Dims{T, D, R, E, H, {}};
  if (!(check_index_range(ck, R) && ck.tensor("x", x, {T, D}) && ck.tensor("order", order, {R}) &&
        ck.tensor("wi0", wi0, {E, D, H}) && ck.tensor("wi1", wi1, {E, D, H}) && ck.tensor("wo", wo, {E, H, D}) &&
        ck.tensor("group_sizes", gs, {E}) && check_activation(ck, act, limit) && group_offsets(ck, gs, E, R, d.off))) {
    return false;
  }
  int32_t* maps = workspace().i32(3, 2 * R);
  row_token = maps;
  inv = maps + R;
  return derive_maps(ck, order, R, K, row_token, inv);
}

moe_status_t fwd_api(const char* where, const float* x, int64_t T, int64_t D, const int32_t* order, int64_t K,
                     const float* w, const void* wi0, const void* wi1, const void* wo, BElem be, const float* b0,
                     const float* b1, const float* bo, const int32_t* gs, int64_t E, int64_t H, moe_activation_t act,
                     float limit, float* y, float* res_act, float* res_h0, float* res_h1, float* res_o) {
  return guarded(where, [&] {
    Checker ck{where, {}};
    Dims d;
    int32_t *row_token = nullptr, *inv = nullptr;
    if (!(oneshot_setup(ck, d, x, T, D, order, K, wi0, wi1, wo, gs, E, H, act, limit, row_token, inv) &&
          ck.tensor("y", y, {T, D}))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    const int64_t R = d.R;
    float* act_buf = res_act != nullptr ? res_act : workspace().f32(0, R * H);
    float* o_buf = res_o != nullptr ? res_o : workspace().f32(1, R * D);
    up_fwd(d, x, row_token, wi0, wi1, be, b0, b1, act, limit, act_buf, res_h0, res_h1);
    down_fwd(d, act_buf, wo, be, bo, o_buf);
    combine_fwd(o_buf, D, inv, w, T, K, y);
    return MOE_STATUS_OK;
  });
}

moe_status_t bwd_api(const char* where, const float* dy, const float* x, int64_t T, int64_t D, const int32_t* order,
                     int64_t K, const float* w, const void* wi0, const void* wi1, const void* wo, BElem be,
                     const int32_t* gs, int64_t E, int64_t H, moe_activation_t act, float limit, const float* res_act,
                     const float* res_h0, const float* res_h1, const float* res_o, float* dx, float* dw, float* dwi0,
                     float* dwi1, float* dwo, float* db0, float* db1, float* dbo) {
  return guarded(where, [&] {
    Checker ck{where, {}};
    Dims d;
    int32_t *row_token = nullptr, *inv = nullptr;
    if (!(oneshot_setup(ck, d, x, T, D, order, K, wi0, wi1, wo, gs, E, H, act, limit, row_token, inv) &&
          ck.tensor("dy", dy, {T, D}) && ck.tensor("res_act", res_act, {d.R, H}) &&
          ck.tensor("res_h0", res_h0, {d.R, H}) && ck.tensor("res_h1", res_h1, {d.R, H}) &&
          ck.tensor("res_o_rows", res_o, {d.R, D}) && ck.tensor("dx", dx, {T, D}))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    const int64_t R = d.R;
    float* d_o = workspace().f32(1, R * D);
    float* dh0 = workspace().f32(0, R * H);
    float* dh1 = workspace().f32(2, R * H);
    combine_bwd(dy, res_o, D, inv, w, T, K, d_o, dw);
    down_bwd(d, d_o, res_act, res_h0, res_h1, wo, be, act, limit, dh0, dh1, dwo, dbo);
    float* dx_rows = d_o;  // d_o is dead once down_bwd is done
    up_bwd(d, dh0, dh1, x, row_token, wi0, wi1, be, dx_rows, dwi0, dwi1, db0, db1);
    combine_fwd(dx_rows, D, inv, nullptr, T, K, dx);
    return MOE_STATUS_OK;
  });
}

// ---- Probes ------------------------------------------------------------------------------------------------------

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

bool cpu_has_avx512_bf16() {
  static const bool v = detect_avx512_bf16();
  return v;
}

bool cpu_has_amx_bf16() {
  static const bool v = detect_amx_bf16();
  return v;
}

}  // namespace moe::detail

using moe::detail::BElem;

extern "C" {

const char* moe_bf16_path_name(moe_bf16_path_t path) {
  switch (path) {
    case MOE_BF16_WIDEN: return "widen";
    case MOE_BF16_DPBF16: return "dpbf16";
    case MOE_BF16_AMX: return "amx";
  }
  return "unknown";
}

int moe_cpu_has_avx512_bf16(void) { return moe::detail::cpu_has_avx512_bf16() ? 1 : 0; }
int moe_cpu_has_amx_bf16(void) { return moe::detail::cpu_has_amx_bf16() ? 1 : 0; }

moe_bf16_path_t moe_bf16_path(void) { return moe::detail::effective_bf16_path(); }

moe_status_t moe_set_bf16_path(moe_bf16_path_t path) {
  return moe::detail::guarded("moe_set_bf16_path", [&] {
    if (!moe::detail::bf16_path_available(path) ||
        (path != MOE_BF16_WIDEN && moe::detail::isa_active() != MOE_ISA_AVX512)) {
      return moe::detail::fail(MOE_STATUS_UNSUPPORTED, std::string("moe_set_bf16_path: ") + moe_bf16_path_name(path) +
                                                           " is not available on this CPU / ISA");
    }
    moe::detail::bf16_path_setting().store(int(path), std::memory_order_relaxed);
    return MOE_STATUS_OK;
  });
}

void moe_advise_fresh_output(void* p, int64_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  if (p == nullptr || bytes < int64_t(4 * kHuge)) return;
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + uintptr_t(bytes)) & ~(kHuge - 1);
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE);  // a hint: failure is harmless
#else
  (void)p;
  (void)bytes;
#endif
}

int64_t moe_workspace_bytes(void) {
  std::lock_guard<std::mutex> lk(moe::detail::call_mutex());
  return moe::detail::workspace().bytes();
}

void moe_workspace_release(void) {
  std::lock_guard<std::mutex> lk(moe::detail::call_mutex());
  moe::detail::workspace().release();
}

moe_status_t moe_ffn_up_fwd_f32(const float* x, int64_t T, int64_t D, const int32_t* row_token, int64_t R,
                                const float* wi0, const float* wi1, const float* b0, const float* b1,
                                const int32_t* group_sizes, int64_t E, int64_t H, moe_activation_t activation,
                                float clamp_limit, float* act, float* h0_out, float* h1_out) {
  return moe::detail::up_fwd_api("moe_ffn_up_fwd_f32", x, T, D, row_token, R, wi0, wi1, BElem::F32, b0, b1,
                                 group_sizes, E, H, activation, clamp_limit, act, h0_out, h1_out);
}

moe_status_t moe_ffn_up_fwd_bf16w(const float* x, int64_t T, int64_t D, const int32_t* row_token, int64_t R,
                                  const uint16_t* wi0, const uint16_t* wi1, const float* b0, const float* b1,
                                  const int32_t* group_sizes, int64_t E, int64_t H, moe_activation_t activation,
                                  float clamp_limit, float* act, float* h0_out, float* h1_out) {
  return moe::detail::up_fwd_api("moe_ffn_up_fwd_bf16w", x, T, D, row_token, R, wi0, wi1, BElem::BF16, b0, b1,
                                 group_sizes, E, H, activation, clamp_limit, act, h0_out, h1_out);
}

moe_status_t moe_ffn_down_fwd_f32(const float* act, int64_t R, int64_t H, const float* wo, const float* bo,
                                  const int32_t* group_sizes, int64_t E, int64_t D, float* o_rows) {
  return moe::detail::down_fwd_api("moe_ffn_down_fwd_f32", act, R, H, wo, BElem::F32, bo, group_sizes, E, D, o_rows);
}

moe_status_t moe_ffn_down_fwd_bf16w(const float* act, int64_t R, int64_t H, const uint16_t* wo, const float* bo,
                                    const int32_t* group_sizes, int64_t E, int64_t D, float* o_rows) {
  return moe::detail::down_fwd_api("moe_ffn_down_fwd_bf16w", act, R, H, wo, BElem::BF16, bo, group_sizes, E, D,
                                   o_rows);
}

moe_status_t moe_combine_fwd_f32(const float* rows, int64_t R, int64_t D, const int32_t* inv, const float* w,
                                 int64_t T, int64_t K, float* y) {
  using namespace moe::detail;
  return guarded("moe_combine_fwd_f32", [&] {
    Checker ck{"moe_combine_fwd_f32", {}};
    int64_t TK = 0;
    if (!(check_sizes(ck, {{"R", R}, {"D", D}, {"T", T}, {"K", K}}) &&
          ck.require(!__builtin_mul_overflow(T, K, &TK) && TK == R, "T * K must equal R") && check_index_range(ck, R) &&
          ck.tensor("rows", rows, {R, D}) && ck.tensor("inv", inv, {R}) && ck.tensor("y", y, {T, D}) &&
          check_permutation(ck, "inv", inv, R))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    combine_fwd(rows, D, inv, w, T, K, y);
    return MOE_STATUS_OK;
  });
}

moe_status_t moe_combine_bwd_f32(const float* dy, const float* rows, int64_t R, int64_t D, const int32_t* inv,
                                 const float* w, int64_t T, int64_t K, float* d_rows, float* dw) {
  using namespace moe::detail;
  return guarded("moe_combine_bwd_f32", [&] {
    Checker ck{"moe_combine_bwd_f32", {}};
    int64_t TK = 0;
    if (!(check_sizes(ck, {{"R", R}, {"D", D}, {"T", T}, {"K", K}}) &&
          ck.require(!__builtin_mul_overflow(T, K, &TK) && TK == R, "T * K must equal R") && check_index_range(ck, R) &&
          ck.tensor("dy", dy, {T, D}) && ck.tensor("inv", inv, {R}) && ck.tensor("d_rows", d_rows, {R, D}) &&
          (dw == nullptr || ck.tensor("rows", rows, {R, D})) && check_permutation(ck, "inv", inv, R))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    combine_bwd(dy, rows, D, inv, w, T, K, d_rows, dw);
    return MOE_STATUS_OK;
  });
}

moe_status_t moe_glu_fwd_f32(const float* h0, const float* h1, int64_t n, moe_activation_t activation,
                             float clamp_limit, float* act) {
  using namespace moe::detail;
  return guarded("moe_glu_fwd_f32", [&] {
    Checker ck{"moe_glu_fwd_f32", {}};
    if (!(ck.size("n", n) && ck.tensor("h0", h0, {n}) && ck.tensor("h1", h1, {n}) && ck.tensor("act", act, {n}) &&
          check_activation(ck, activation, clamp_limit))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    glu_fwd_all(h0, h1, n, activation, clamp_limit, act);
    return MOE_STATUS_OK;
  });
}

moe_status_t moe_glu_bwd_f32(const float* d_act, const float* h0, const float* h1, int64_t n,
                             moe_activation_t activation, float clamp_limit, float* dh0, float* dh1) {
  using namespace moe::detail;
  return guarded("moe_glu_bwd_f32", [&] {
    Checker ck{"moe_glu_bwd_f32", {}};
    if (!(ck.size("n", n) && ck.tensor("d_act", d_act, {n}) && ck.tensor("h0", h0, {n}) && ck.tensor("h1", h1, {n}) &&
          ck.tensor("dh0", dh0, {n}) && ck.tensor("dh1", dh1, {n}) && check_activation(ck, activation, clamp_limit))) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, ck.error);
    }
    glu_bwd_all(d_act, h0, h1, n, activation, clamp_limit, dh0, dh1);
    return MOE_STATUS_OK;
  });
}

moe_status_t moe_ffn_down_bwd_f32(const float* d_o_rows, const float* act, const float* h0, const float* h1, int64_t R,
                                  int64_t H, const float* wo, const int32_t* group_sizes, int64_t E, int64_t D,
                                  moe_activation_t activation, float clamp_limit, float* dh0, float* dh1, float* dwo,
                                  float* dbo) {
  return moe::detail::down_bwd_api("moe_ffn_down_bwd_f32", d_o_rows, act, h0, h1, R, H, wo, BElem::F32, group_sizes,
                                   E, D, activation, clamp_limit, dh0, dh1, dwo, dbo);
}

moe_status_t moe_ffn_down_bwd_bf16w(const float* d_o_rows, const float* act, const float* h0, const float* h1,
                                    int64_t R, int64_t H, const uint16_t* wo, const int32_t* group_sizes, int64_t E,
                                    int64_t D, moe_activation_t activation, float clamp_limit, float* dh0, float* dh1,
                                    float* dwo, float* dbo) {
  return moe::detail::down_bwd_api("moe_ffn_down_bwd_bf16w", d_o_rows, act, h0, h1, R, H, wo, BElem::BF16,
                                   group_sizes, E, D, activation, clamp_limit, dh0, dh1, dwo, dbo);
}

moe_status_t moe_ffn_up_bwd_f32(const float* dh0, const float* dh1, int64_t R, int64_t H, const float* x, int64_t T,
                                int64_t D, const int32_t* row_token, const float* wi0, const float* wi1,
                                const int32_t* group_sizes, int64_t E, float* dx_rows, float* dwi0, float* dwi1,
                                float* db0, float* db1) {
  return moe::detail::up_bwd_api("moe_ffn_up_bwd_f32", dh0, dh1, R, H, x, T, D, row_token, wi0, wi1, BElem::F32,
                                 group_sizes, E, dx_rows, dwi0, dwi1, db0, db1);
}

moe_status_t moe_ffn_up_bwd_bf16w(const float* dh0, const float* dh1, int64_t R, int64_t H, const float* x, int64_t T,
                                  int64_t D, const int32_t* row_token, const uint16_t* wi0, const uint16_t* wi1,
                                  const int32_t* group_sizes, int64_t E, float* dx_rows, float* dwi0, float* dwi1,
                                  float* db0, float* db1) {
  return moe::detail::up_bwd_api("moe_ffn_up_bwd_bf16w", dh0, dh1, R, H, x, T, D, row_token, wi0, wi1, BElem::BF16,
                                 group_sizes, E, dx_rows, dwi0, dwi1, db0, db1);
}

moe_status_t moe_ffn_fwd_f32(const float* x, int64_t T, int64_t D, const int32_t* order, int64_t K, const float* w,
                             const float* wi0, const float* wi1, const float* wo, const float* b0, const float* b1,
                             const float* bo, const int32_t* group_sizes, int64_t E, int64_t H,
                             moe_activation_t activation, float clamp_limit, float* y, float* res_act, float* res_h0,
                             float* res_h1, float* res_o_rows) {
  return moe::detail::fwd_api("moe_ffn_fwd_f32", x, T, D, order, K, w, wi0, wi1, wo, BElem::F32, b0, b1, bo,
                              group_sizes, E, H, activation, clamp_limit, y, res_act, res_h0, res_h1, res_o_rows);
}

moe_status_t moe_ffn_fwd_bf16w(const float* x, int64_t T, int64_t D, const int32_t* order, int64_t K, const float* w,
                               const uint16_t* wi0, const uint16_t* wi1, const uint16_t* wo, const float* b0,
                               const float* b1, const float* bo, const int32_t* group_sizes, int64_t E, int64_t H,
                               moe_activation_t activation, float clamp_limit, float* y, float* res_act, float* res_h0,
                               float* res_h1, float* res_o_rows) {
  return moe::detail::fwd_api("moe_ffn_fwd_bf16w", x, T, D, order, K, w, wi0, wi1, wo, BElem::BF16, b0, b1, bo,
                              group_sizes, E, H, activation, clamp_limit, y, res_act, res_h0, res_h1, res_o_rows);
}

moe_status_t moe_ffn_bwd_f32(const float* dy, const float* x, int64_t T, int64_t D, const int32_t* order, int64_t K,
                             const float* w, const float* wi0, const float* wi1, const float* wo,
                             const int32_t* group_sizes, int64_t E, int64_t H, moe_activation_t activation,
                             float clamp_limit, const float* res_act, const float* res_h0, const float* res_h1,
                             const float* res_o_rows, float* dx, float* dw, float* dwi0, float* dwi1, float* dwo,
                             float* db0, float* db1, float* dbo) {
  return moe::detail::bwd_api("moe_ffn_bwd_f32", dy, x, T, D, order, K, w, wi0, wi1, wo, BElem::F32, group_sizes, E,
                              H, activation, clamp_limit, res_act, res_h0, res_h1, res_o_rows, dx, dw, dwi0, dwi1, dwo,
                              db0, db1, dbo);
}

moe_status_t moe_ffn_bwd_bf16w(const float* dy, const float* x, int64_t T, int64_t D, const int32_t* order, int64_t K,
                               const float* w, const uint16_t* wi0, const uint16_t* wi1, const uint16_t* wo,
                               const int32_t* group_sizes, int64_t E, int64_t H, moe_activation_t activation,
                               float clamp_limit, const float* res_act, const float* res_h0, const float* res_h1,
                               const float* res_o_rows, float* dx, float* dw, float* dwi0, float* dwi1, float* dwo,
                               float* db0, float* db1, float* dbo) {
  return moe::detail::bwd_api("moe_ffn_bwd_bf16w", dy, x, T, D, order, K, w, wi0, wi1, wo, BElem::BF16, group_sizes,
                              E, H, activation, clamp_limit, res_act, res_h0, res_h1, res_o_rows, dx, dw, dwi0, dwi1,
                              dwo, db0, db1, dbo);
}

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

double moe_probe_amx_peak(double seconds) {
#if defined(MOE_HAVE_X86_KERNELS)
  if (moe::detail::cpu_has_amx_bf16()) return moe::detail::run_probe(seconds, &moe::detail::probe_amx);
#endif
  (void)seconds;
  return 0.0;
}

double moe_probe_read_bandwidth(int64_t bytes) {
  using namespace moe::detail;
  try {
    bytes = std::max<int64_t>(bytes, int64_t(1) << 20) / 64 * 64;
    const int64_t n = bytes / 4;
    std::unique_ptr<void, AlignedFree> buf(::operator new(size_t(bytes), kAlign));
    auto* f = static_cast<float*>(buf.get());
    std::lock_guard<std::mutex> lk(call_mutex());
    const int p = pool_threads();
    const int64_t items = int64_t(p) * kProbeItemsPerThread;
    const int64_t per = ((n + items - 1) / items + 15) / 16 * 16;
    std::vector<float> sums(size_t(items), 0.0f);
    struct Ctx {
      float* f;
      int64_t n, per;
      float* sums;
      bool fill;
    } ctx{f, n, per, sums.data(), true};
    auto fn = [](void* c, int64_t i, int) {
      auto* x = static_cast<Ctx*>(c);
      const int64_t b = std::min(x->n, i * x->per), e = std::min(x->n, b + x->per);
      if (x->fill) {
        for (int64_t j = b; j < e; ++j) x->f[j] = 1.0f;
        return;
      }
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
    parallel_for(items, p, fn, &ctx);
    ctx.fill = false;
    double best = 0;
    for (int pass = 0; pass < 5; ++pass) {
      const auto t0 = std::chrono::steady_clock::now();
      parallel_for(items, p, fn, &ctx);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (s > 0) best = std::max(best, double(bytes) / s / 1e9);
    }
    return best;
  } catch (...) {
    return -1.0;
  }
}

}  // extern "C"
