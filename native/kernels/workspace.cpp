// The workspace's part of the C ABI (size, release, the huge-page hint for fresh buffers); each calling thread's
// instance lives in its context (thread_pool.cpp).
#include <cstdint>
#include <mutex>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "api_util.hpp"
#include "workspace.hpp"

extern "C" {

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

}  // extern "C"
