// The library workspace that the one-shot FFN calls keep their intermediates in (workspace.cpp), and the aligned
// allocation it uses. Baseline code only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <new>

#include "moe-kernels.h"

namespace moe::detail {

constexpr std::align_val_t kAlign{64};

struct AlignedFree {
  void operator()(void* p) const { ::operator delete(p, kAlign); }
};

// Buffers grown to the largest request and kept. Slots: 0, 1, 2 fp32 intermediates of the one-shot calls; 3 int32
// index maps (and scatter_add's row starts and order); 4 the bf16 copy of x for the bf16-pair multiply kinds (qgmm.cpp: a bfloat16 layer's rows as bf16 pairs); 5 x rounded to bf16 (a bf16 layer's forward);
// 6, 7, 8 the integer products' packed A, packed B and B's column sums (int8.cpp; qgmm.cpp packs A into 6); 9 an int
// lhs as floats (qgmm.cpp). The served FFN (ffn_quant.cpp) keeps x's codes and scales in 6 and 7, and the scales and
// codes of its quantized GLU output in 8 and 9.
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
  Slot slots_[10];
};

Workspace& workspace();  // the calling thread's (thread_pool.cpp)

}  // namespace moe::detail
