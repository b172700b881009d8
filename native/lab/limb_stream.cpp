// A candidate for the weight-only int4 decode, not a kernel of the library: float32 rows cut into three signed 8-bit
// limbs (a 22-bit fixed-point value against a power of two above the row's absolute maximum) times int4 codes laid out
// as VNNI quads, by vpdpbusd, the limbs' sums combined exactly in int64. Layout of one [k, n] matrix: panels of 32
// columns, each panel's ceil(k/4) quads of 64 bytes in k order (one panel's codes contiguous); byte t of dword lane i
// of quad q: code(4q + t, 32P + i) + 8 in the low nibble, code(4q + t, 32P + 16 + i) + 8 in the high one. A panel's
// R <= 4 rows keep their 6R accumulators in registers over the whole k.
// Timed at the decode shape (43 of 64 groups hit, 21 with two rows and 22 with one; wi0's k = 1024, n = 1408, then
// wo's k = 1408, n = 1024), two threads, the caches flushed by a read of 512 MB before every call, round-robin in one
// run against: the library's stream of the same float rows (moe_quantized_gmm, codes in tiles), the library's integer
// stream of int8 rows (int8 activations, the same groups), and a plain read of the same bytes group by group (the
// floor). Checked against a float64 loop over the same codes. Build and run: native/test/run.sh limb_stream [rounds]
#pragma GCC target("avx512f,avx512bw,avx512vnni,avx512dq,avx512vl")
// GCC 12 flags _mm512_undefined_*() inside the intrinsics: a known false positive (as in the kernels)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "moe-kernels.h"

#ifndef LS_PF
#define LS_PF 8192  // bytes of codes prefetched ahead (into the L2: 0.82-0.92x the time of the L1 here)
#endif
#ifndef LS_HINT
#define LS_HINT _MM_HINT_T1
#endif

namespace {

struct Limbs {
  const int8_t* l[3];  // kp bytes each
  int32_t sum[3];
  int sh;  // the row's value v = round(x * 2^sh), |v| <= 2^22
};

// The row's limbs; false (nothing usable) if a value is not finite.
bool make_limbs(const float* x, int64_t k, int64_t kp, int8_t* buf, Limbs& L) {
  float m = 0;
  for (int64_t p = 0; p < k; ++p) m = std::max(m, std::fabs(x[p]));
  if (!std::isfinite(m)) return false;
  L.sh = m == 0 ? 0 : 21 - std::ilogb(m);
  const float f = std::ldexp(1.0f, L.sh);
  int8_t* d[3] = {buf, buf + kp, buf + 2 * kp};
  int32_t s[3] = {0, 0, 0};
  for (int64_t p = 0; p < kp; ++p) {
    int32_t v = p < k ? int32_t(std::lrintf(x[p] * f)) : 0;
    for (int l = 0; l < 3; ++l) {
      const int8_t b = int8_t(uint8_t(v & 255));
      d[l][p] = b;
      s[l] += b;
      v = (v - b) >> 8;
    }
  }
  for (int l = 0; l < 3; ++l) L.l[l] = d[l], L.sum[l] = s[l];
  return true;
}

// One quad of k (64 bytes of codes at c) into the R rows' accumulators.
template <int R>
inline __attribute__((always_inline)) void quad_step(__m512i (&acc)[R][3][2], const uint8_t* c, const Limbs* L,
                                                     int64_t q, __m512i m0f) {
  const __m512i v = _mm512_loadu_si512(c);
  const __m512i lo = _mm512_and_si512(v, m0f), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m0f);
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 3
    for (int l = 0; l < 3; ++l) {
      int32_t quad;
      std::memcpy(&quad, L[r].l[l] + 4 * q, 4);
      const __m512i b = _mm512_set1_epi32(quad);
      acc[r][l][0] = _mm512_dpbusd_epi32(acc[r][l][0], lo, b);
      acc[r][l][1] = _mm512_dpbusd_epi32(acc[r][l][1], hi, b);
    }
}

// y[r, 32P + j] for j < 32 and r < R: fl(fl(S) * fl(2^-sh * scale)), S the exact sum of the row's value times the codes.
template <int R>
void stream_panel(const uint8_t* codes, int64_t k, int64_t P, const Limbs* L, const float* scale, float* y,
                  int64_t ldy) {
  const int64_t kq = (k + 3) / 4;
  const uint8_t* t = codes + P * kq * 64;
  __m512i acc[R][3][2];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 3
    for (int l = 0; l < 3; ++l) acc[r][l][0] = acc[r][l][1] = _mm512_setzero_si512();
  const __m512i m0f = _mm512_set1_epi8(0x0f);
  for (int64_t q = 0; q < kq; ++q) {
#if LS_PF > 0
    _mm_prefetch(reinterpret_cast<const char*>(t + q * 64 + LS_PF), LS_HINT);
#endif
    quad_step<R>(acc, t + q * 64, L, q, m0f);
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    const int64_t corr = 8 * ((int64_t(L[r].sum[2]) << 16) + (int64_t(L[r].sum[1]) << 8) + L[r].sum[0]);
    const float rs = std::ldexp(1.0f, -L[r].sh);
#pragma GCC unroll 2
    for (int v = 0; v < 2; ++v) {
      const __m512i a[3] = {acc[r][0][v], acc[r][1][v], acc[r][2][v]};
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        __m512i w[3];
        for (int l = 0; l < 3; ++l)
          w[l] = _mm512_cvtepi32_epi64(h ? _mm512_extracti64x4_epi64(a[l], 1) : _mm512_castsi512_si256(a[l]));
        __m512i s = _mm512_add_epi64(_mm512_add_epi64(_mm512_slli_epi64(w[2], 16), _mm512_slli_epi64(w[1], 8)), w[0]);
        s = _mm512_sub_epi64(s, _mm512_set1_epi64(corr));
        const int64_t j = P * 32 + v * 16 + 8 * h;
        const __m256 sc = _mm256_mul_ps(_mm256_set1_ps(rs), _mm256_loadu_ps(scale + j));
        _mm256_storeu_ps(y + r * ldy + j, _mm256_mul_ps(_mm512_cvtepi64_ps(s), sc));
      }
    }
  }
}

// The same product over chunks of 64 k (layout v3: [ceil(k/64)][n/32 panels][16 quads][64 B], so that a chunk of k
// across the panels is contiguous), the accumulators kept in part [R][3][32] between chunks.
template <int R>
void chunk_panel(const uint8_t* codes, int64_t k, int64_t n, int64_t kt, int64_t P, const Limbs* L, int32_t* part,
                 bool first) {
  const uint8_t* t = codes + (kt * (n / 32) + P) * 1024;
  __m512i acc[R][3][2];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 3
    for (int l = 0; l < 3; ++l)
#pragma GCC unroll 2
      for (int v = 0; v < 2; ++v)
        acc[r][l][v] = first ? _mm512_setzero_si512() : _mm512_loadu_si512(part + (r * 3 + l) * 32 + 16 * v);
  const __m512i m0f = _mm512_set1_epi8(0x0f);
  const int64_t q0 = kt * 16, q1 = std::min<int64_t>(q0 + 16, (k + 3) / 4);
  for (int64_t q = q0; q < q1; ++q) {
#if LS_PF > 0
    _mm_prefetch(reinterpret_cast<const char*>(t + (q - q0) * 64 + LS_PF), LS_HINT);
#endif
    quad_step<R>(acc, t + (q - q0) * 64, L, q, m0f);
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 3
    for (int l = 0; l < 3; ++l)
#pragma GCC unroll 2
      for (int v = 0; v < 2; ++v) _mm512_storeu_si512(part + (r * 3 + l) * 32 + 16 * v, acc[r][l][v]);
}

int code_of(const uint8_t* codes, int64_t k, int64_t p, int64_t j) {
  const int64_t i = j % 32;
  const uint8_t byte = codes[((j / 32) * ((k + 3) / 4) + p / 4) * 64 + (i % 16) * 4 + p % 4];
  return ((i < 16 ? byte : byte >> 4) & 15) - 8;
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
volatile uint64_t sink;

}  // namespace

int main(int argc, char** argv) {
  if (!__builtin_cpu_supports("avx512vnni") || !__builtin_cpu_supports("avx512dq")) {
    std::printf("limb_stream: needs AVX512-VNNI and AVX512DQ\n");
    return 0;
  }
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 20;
  const int64_t G = 64, hit = 43;
  moe_set_num_threads(2);
  omp_set_num_threads(2);
  std::vector<int32_t> gs(G, 0);
  for (int g = 0; g < hit; ++g) gs[size_t(g * G / hit)] = g < hit / 2 ? 2 : 1;
  std::vector<int64_t> off(G + 1, 0);
  for (int g = 0; g < G; ++g) off[size_t(g + 1)] = off[size_t(g)] + gs[size_t(g)];
  const int64_t m = off[G];
  std::vector<uint64_t> flush(size_t(64) << 20, 1);
  auto flush_caches = [&] {
    uint64_t acc = 0;
    for (size_t i = 0; i < flush.size(); i += 8) acc += flush[i];
    sink = sink + acc;
  };
  for (const auto& [k, n] : {std::pair<int64_t, int64_t>{1024, 1408}, {1408, 1024}}) {
    const int64_t gb = (k + 63) / 64 * ((n + 127) / 128) * 4096;  // both layouts' bytes per group (n % 128 == 0)
    std::vector<uint8_t> tiles(size_t(G * gb)), quads(size_t(G * gb));
    for (size_t i = 0; i < tiles.size(); ++i)
      tiles[i] = uint8_t((i * 2654435761u) >> 13), quads[i] = uint8_t((i * 40503u) >> 7);
    std::vector<float> scales(size_t(G * n)), a(size_t(m * k)), out(size_t(m * n)), y(size_t(m * n));
    for (size_t i = 0; i < scales.size(); ++i) scales[i] = 0.01f + 1e-5f * float(i % 100);
    for (size_t i = 0; i < a.size(); ++i) a[i] = std::sin(float(i) * 0.37f) * (i % 97 == 0 ? 30.f : 1.f);
    std::vector<int32_t> a8(a.size());
    for (size_t i = 0; i < a8.size(); ++i) a8[i] = int32_t(i * 7919 % 256) - 128;
    std::vector<float> row_scales(size_t(m), 0.01f);
    const int64_t kp = (k + 63) / 64 * 64, np = n / 32;
    std::vector<int8_t> lbuf(size_t(m * 3 * kp));
    std::vector<Limbs> L(static_cast<size_t>(m));
    auto limb_rows = [&](int th, int nth) {  // this thread's share of the rows, then a barrier
      for (int64_t r = m * th / nth; r < m * (th + 1) / nth; ++r)
        make_limbs(a.data() + r * k, k, kp, lbuf.data() + r * 3 * kp, L[size_t(r)]);
#pragma omp barrier
    };
    auto limbs = [&] {
#pragma omp parallel
      {
        const int th = omp_get_thread_num(), nth = omp_get_num_threads();
        limb_rows(th, nth);
        for (int g = 0; g < G; ++g) {  // each thread: its half of every group's panels
          if (gs[size_t(g)] == 0) continue;
          const int64_t r = off[size_t(g)];
          const uint8_t* cg = quads.data() + g * gb;
          const float* sg = scales.data() + g * n;
          for (int64_t P = np * th / nth; P < np * (th + 1) / nth; ++P) {
            if (gs[size_t(g)] == 1) stream_panel<1>(cg, k, P, &L[size_t(r)], sg, y.data() + r * n, n);
            else stream_panel<2>(cg, k, P, &L[size_t(r)], sg, y.data() + r * n, n);
          }
        }
      }
    };
    auto float_stream = [&] {
      moe_quantized_gmm(MOE_WF_INT4_TILES, a.data(), 0, nullptr, tiles.data(), scales.data(), gs.data(), m, k, n, G,
                        out.data());
    };
    auto int_stream = [&] {
      moe_quantized_gmm(MOE_WF_INT4_TILES, a8.data(), 1, row_scales.data(), tiles.data(), scales.data(), gs.data(), m,
                        k, n, G, out.data());
    };
    std::vector<int32_t> parts(size_t(m * n / 32 * 3 * 32 * 2));
    auto chunked = [&] {
#pragma omp parallel
      {
        const int th = omp_get_thread_num(), nth = omp_get_num_threads();
        limb_rows(th, nth);
        for (int g = 0; g < G; ++g) {
          if (gs[size_t(g)] == 0) continue;
          const int64_t r = off[size_t(g)];
          const uint8_t* cg = quads.data() + g * gb;
          for (int64_t kt = 0; kt < (k + 63) / 64; ++kt)
            for (int64_t P = np * th / nth; P < np * (th + 1) / nth; ++P) {
              int32_t* part = parts.data() + (r * np + P) * 3 * 32 * 2;
              if (gs[size_t(g)] == 1) chunk_panel<1>(cg, k, n, kt, P, &L[size_t(r)], part, kt == 0);
              else chunk_panel<2>(cg, k, n, kt, P, &L[size_t(r)], part, kt == 0);
            }
        }
      }
    };
    auto plain = [&] {
#pragma omp parallel
      {
        const int th = omp_get_thread_num(), nth = omp_get_num_threads();
        __m512i s = _mm512_setzero_si512();
        for (int g = 0; g < G; ++g) {
          if (gs[size_t(g)] == 0) continue;
          for (int64_t i = gb * th / nth / 64 * 64; i < gb * (th + 1) / nth; i += 64)
            s = _mm512_add_epi32(s, _mm512_loadu_si512(quads.data() + g * gb + i));
        }
        sink = sink + uint64_t(_mm512_reduce_add_epi32(s));
      }
    };
    limbs();
    double worst = 0;  // |y - float64| / sum |terms|
    for (int64_t r = 0; r < m; ++r) {
      int64_t g = 0;
      while (off[size_t(g + 1)] <= r) ++g;
      for (int64_t j = 0; j < n; j += 7) {
        double s = 0, sa = 0;
        for (int64_t p = 0; p < k; ++p) {
          const double t = double(a[size_t(r * k + p)]) * code_of(quads.data() + g * gb, k, p, j);
          s += t, sa += std::fabs(t);
        }
        const double sc = scales[size_t(g * n + j)];
        worst = std::max(worst, std::fabs(s * sc - y[size_t(r * n + j)]) / (sa * sc));
      }
    }
    const char* names[5] = {"library float stream (codes in tiles)", "limbs x quads (candidate)",
                            "library int8-row stream (int8 lhs)", "plain read of the same bytes", "limbs, chunks of 64 k"};
    double total[5] = {0, 0, 0, 0, 0};
    for (int rr = 0; rr < rounds; ++rr) {
      for (int c = 0; c < 5; ++c) {
        const int w = (c + rr) % 5;
        flush_caches();
        const double t0 = now();
        w == 0 ? float_stream() : w == 1 ? limbs() : w == 2 ? int_stream() : w == 3 ? plain() : chunked();
        total[w] += now() - t0;
      }
    }
    const double bytes = double(hit) * double(k) * double(n) / 2;
    std::printf("k = %ld, n = %ld (%.1f MB of int4 codes), %d rounds; limbs vs float64: max |err| / sum |terms| %.2g\n",
                long(k), long(n), bytes * 1e-6, rounds, worst);
    for (int c = 0; c < 5; ++c)
      std::printf("  %-40s %7.3f ms  %5.1f GB/s  %.3fx the float stream's time\n", names[c], total[c] / rounds * 1e3,
                  bytes / (total[c] / rounds) * 1e-9, total[c] / total[0]);
  }
  std::printf("read probe: %.1f GB/s\n", moe_probe_read_bandwidth(int64_t(256) << 20));
  return 0;
}
