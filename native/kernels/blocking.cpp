// The GEMM engine's block sizes (baseline code): derived from the core's caches (cache_sizes) and each multiply
// kind's register tile, unless moe_set_blocking (moekit tune's result) overrides them. Block sizes never change
// results: every C element is one chain over the contraction in ascending order whatever kc, mc and nc are, and kc
// stays a multiple of 32, where bf16 pairs and AMX tiles meet the same boundaries.
#include <atomic>
#include <cstring>
#include <string>

#include "api_util.hpp"
#include "engine.hpp"

namespace moe::detail {
namespace {

int64_t round_down(int64_t x, int64_t m) { return x / m * m; }
int64_t clamp(int64_t x, int64_t lo, int64_t hi) { return x < lo ? lo : x > hi ? hi : x; }

// Overrides per (ISA, multiply kind): kc, mc, nc; 0 where the model's value holds.
std::atomic<int> g_override[3][3][3];

int kind_index(Mul mul) { return mul == Mul::F32 ? 0 : mul == Mul::DPBF16 ? 1 : 2; }

}  // namespace

// The model (engine_block.inc's loop: a packed B block of kc rows x nc columns, reused by every row tile of an item;
// each tile's A rows, mr x kc, read in place and reused across the block's panels):
//   kc  the A tile takes half the L1 (the B panels stream through the other half), a multiple of 32 in [64, 512];
//   nc  the packed B block (kc x nc) takes half the L2 (its panels are read in order once per row tile; the other
//       half holds the tiles of C, which go through memory once per kc block, and A's rows); a multiple of 2 nr (both
//       GLU halves) in [2 nr, 2048]. Paired A/B on Zen 5 (L2 1 MiB), bench shape, two threads, same bits, against the
//       whole L2: fp32 (nc 256 against 512) 0.990x and 0.972x the time, 1024 1.026x, 128 1.018x of 256; dpbf16
//       (nc 512 against 1024) 0.995x.
//   mc  not a cache size but the packing's amortisation: the B block is packed once per item and used by mc / mr row
//       tiles; 1536 rows rounded down to mr, so that a group of up to three times the bench shape's (T K / E = 512)
//       is one item. With 504 (512 rounded down), the groups of 505 rows or more (about half of the bench shape's,
//       512 +- 22) were split in two, each half packing the B blocks again: paired A/B on Zen 5, bench shape, two
//       threads, same bits, 1536 against 504 took 0.972x the time (fp32) and 0.971x (dpbf16); 768 the same as 1536.
//   tmc, tnc  the weight gradient's (tgmm) blocks: mc's 1536 rows (the bench shape's D = 1024 and H = 1408 output
//       rows in one block, so each B block is packed once), and the B block in the whole L2 (the backward with half
//       the L2 there too took 1.015x the time; with the whole L2 for tgmm alone, 0.994x). Paired A/B of the fp32
//       backward on Zen 4, bench shape, two threads, same bits: tmc 1536 against 512 0.983x the time (8 rounds), 1024
//       against 512 0.984x, 256 1.007x; 1536 against 1024 0.999x; with 1536, tnc from half the L2 1.019x.
// Paired A/B on Zen 4 (L1 32 KiB, L2 1 MiB; bench shape, 2 threads; bench/RESULTS.md), with the kernels of then and
// groups split at 504 rows: f32 kc 256, 320 and 448 ran the same; nc 384 took 1.04x the time of 1024; dpbf16 nc 1024
// took 0.98x the time of 512.
GemmBlocking blocking_model(const CacheSizes& c, const TileShape& t) {
  GemmBlocking b{};
  b.mr = t.mr;
  b.nr = t.nr;
  b.kg = t.kg;
  b.kc = int(clamp(round_down(c.l1d / 2 / (int64_t(t.mr) * t.a_bytes), 32), 64, 512));
  // the columns of a kc-row B block that fit in `bytes`
  const auto cols = [&](int64_t bytes) {
    return int(clamp(round_down(bytes / (int64_t(b.kc) * t.b_bytes), 2 * t.nr), 2 * t.nr, 2048));
  };
  b.nc = cols(c.l2 / 2);
  b.mc = int(round_down(1536, t.mr));
  b.tmc = b.mc;
  b.tnc = cols(c.l2);
  return b;
}

GemmBlocking blocking_for(moe_isa_t isa, Mul mul, const TileShape& t) {
  GemmBlocking b = blocking_model(cache_sizes(), t);
  const std::atomic<int>* o = g_override[int(isa) % 3][kind_index(mul)];
  if (const int kc = o[0].load(std::memory_order_relaxed)) b.kc = kc;
  if (const int mc = o[1].load(std::memory_order_relaxed)) b.mc = b.tmc = mc;
  if (const int nc = o[2].load(std::memory_order_relaxed)) b.nc = b.tnc = nc;
  return b;
}

// The streaming kernels' prefetch of the weights they read next (isa_avx512.cpp's stream_strip: the next block of weight
// rows; qgmm.hpp's streams: the next chunk's codes) goes into the L1 where the L1 holds 48 KiB or more, else into the
// L2. Paired A/B (native/test/run.sh ab, same bits):
// - stream_strip: on Zen 5 (L1d 48 KiB) the L1 against the L2 took 0.89x / 0.96x the time at T=64 (faster / slower
//   bandwidth regime) and 0.84-0.90x at T=256; on Zen 4 (L1d 32 KiB) the L2 against the L1 took 0.74x / 0.77x at T=64,
//   0.95x / 0.96x at T=256, and for bf16 weights at T=8 0.84x / 0.95x (fp32 at T=8 the same).
// - the codes' streams at the decode shape (T=8, caches flushed): on Zen 5 the L1 against the L2 took 0.84x / 0.94x
//   (float rows, int8 / int4 codes) and 0.75x / 0.96x (int8 rows) in the faster regime, 0.89-0.99x in the slower; on
//   Zen 4 the L2 against the L1 took 0.777x / 0.787x (float rows, int4 / int8), 0.829x (a bf16 layer, int4) and
//   0.714x (int8 rows), over both regimes.
// MOE_BAND_L1 (0 or 1) fixes it, for the lab's A/B.
#ifndef MOE_BAND_L1
#define MOE_BAND_L1 -1
#endif
bool stream_prefetch_l1() {
  static const bool l1 = MOE_BAND_L1 >= 0 ? MOE_BAND_L1 != 0 : cache_sizes().l1d >= (int64_t(48) << 10);
  return l1;
}

bool blocking_overridden(moe_isa_t isa, Mul mul) {
  const std::atomic<int>* o = g_override[int(isa) % 3][kind_index(mul)];
  return o[0].load() != 0 || o[1].load() != 0 || o[2].load() != 0;
}

}  // namespace moe::detail

namespace {

using namespace moe::detail;

// *mul = the multiply kind named `name` ("f32"; "dpbf16", "amx" with avx512) of the active ISA, or the failure of
// `where` naming it.
moe_status_t kind_named(const char* where, const char* name, Mul* mul) {
  const bool f32 = name != nullptr && std::strcmp(name, "f32") == 0;
  const bool dp = name != nullptr && std::strcmp(name, "dpbf16") == 0;
  const bool amx = name != nullptr && std::strcmp(name, "amx") == 0;
  if (f32 || ((dp || amx) && active_isa_unit().isa == MOE_ISA_AVX512)) {
    *mul = f32 ? Mul::F32 : dp ? Mul::DPBF16 : Mul::AMX;
    return MOE_STATUS_OK;
  }
  return fail(MOE_STATUS_INVALID_ARGUMENT, std::string(where) + ": unknown multiply kind '" +
                                               (name != nullptr ? name : "(null)") +
                                               "' for the active ISA (f32; dpbf16, amx with avx512)");
}

}  // namespace

const char* moe_blocking_info(void) {
  static thread_local std::string text;
  const IsaUnit& isa = active_isa_unit();
  const CacheSizes c = cache_sizes();
  auto kind = [&](const char* name, Mul mul) {
    const GemmBlocking b = isa.blocking(mul);
    return std::string(name) + " mr " + std::to_string(b.mr) + " nr " + std::to_string(b.nr) + " kc " +
           std::to_string(b.kc) + " mc " + std::to_string(b.mc) + " nc " + std::to_string(b.nc) +
           (blocking_overridden(isa.isa, mul) ? " (set)" : " (model)");
  };
  text = "l1d " + std::to_string(c.l1d >> 10) + " KiB, l2 " + std::to_string(c.l2 >> 10) + " KiB; " + kind("f32", Mul::F32);
  if (isa.isa == MOE_ISA_AVX512 && effective_bf16_path() != MOE_BF16_WIDEN) {
    text += "; " + kind(effective_bf16_path() == MOE_BF16_AMX ? "amx" : "dpbf16", mul_for(BElem::BF16));
  }
  text += "; one row tile: whole weight rows, kc from half the l2; groups of <= " + std::to_string(isa.stream_rows) +
          " rows (" + std::to_string(std::min(isa.stream_rows, kPairStreamRows)) + " with bf16 pairs) stream the weights";
#if defined(MOE_HAVE_X86_KERNELS)
  if (isa.isa == MOE_ISA_AVX512) {
    const int64_t small = stream_block_rows_avx512(1, 0), mid = stream_block_rows_avx512(8, 0);
    text += std::string(", prefetching the next rows into the ") + (stream_prefetch_l1() ? "l1" : "l2") + ", in blocks of " + std::to_string(small) + " weight rows (" + std::to_string(stream_block_rows_avx512(17, 0)) +
            " above 16 rows" +
            (mid != small ? "; up to " + std::to_string(mid) + " for 5-16 rows, as two blocks fit in 3/4 of the l2" : "") + ")";
  }
#endif
  return text.c_str();
}

moe_status_t moe_set_blocking(const char* kind, int kc, int mc, int nc) {
  Mul mul = Mul::F32;
  if (const moe_status_t st = kind_named("moe_set_blocking", kind, &mul)) return st;
  const IsaUnit& isa = active_isa_unit();
  const GemmBlocking t = isa.blocking(mul);
  auto bad = [&](const char* what, int v, const std::string& rule) {
    return fail(MOE_STATUS_INVALID_ARGUMENT,
                std::string("moe_set_blocking: ") + what + " = " + std::to_string(v) + " must be 0 (the model's) or " + rule);
  };
  if (kc != 0 && (kc < 32 || kc > 4096 || kc % 32 != 0)) return bad("kc", kc, "a multiple of 32 in [32, 4096]");
  if (mc != 0 && (mc < t.mr || mc > 65536 || mc % t.mr != 0)) {
    return bad("mc", mc, "a multiple of mr = " + std::to_string(t.mr) + " up to 65536");
  }
  if (nc != 0 && (nc < t.nr || nc > 65536 || nc % t.nr != 0)) {
    return bad("nc", nc, "a multiple of nr = " + std::to_string(t.nr) + " up to 65536");
  }
  std::atomic<int>* o = g_override[int(isa.isa) % 3][kind_index(mul)];
  o[0].store(kc);
  o[1].store(mc);
  o[2].store(nc);
  return MOE_STATUS_OK;
}

moe_status_t moe_get_blocking(const char* kind, int out[6]) {
  Mul mul = Mul::F32;
  if (out == nullptr) return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_get_blocking: out is NULL");
  if (const moe_status_t st = kind_named("moe_get_blocking", kind, &mul)) return st;
  const IsaUnit& isa = active_isa_unit();
  const GemmBlocking b = isa.blocking(mul);
  out[0] = b.mr;
  out[1] = b.nr;
  out[2] = b.kc;
  out[3] = b.mc;
  out[4] = b.nc;
  out[5] = blocking_overridden(isa.isa, mul) ? 1 : 0;
  return MOE_STATUS_OK;
}

const char* moe_cpu_brand(void) { return cpu_brand(); }
