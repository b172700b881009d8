// The library-wide part of the C ABI: version, status strings and errors, the ISA and the thread count.
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <system_error>
#include <vector>

#include "api_util.hpp"
#include "internal.hpp"

using moe::detail::Checker;
using moe::detail::fail;
using moe::detail::guarded;

std::string& moe::detail::last_error() {
  thread_local std::string msg;
  return msg;
}

extern "C" {

const char* moe_version(void) { return "0.1.0"; }

const char* moe_status_string(moe_status_t status) {
  switch (status) {
    case MOE_STATUS_OK: return "ok";
    case MOE_STATUS_INVALID_ARGUMENT: return "invalid argument";
    case MOE_STATUS_OUT_OF_MEMORY: return "out of memory";
    case MOE_STATUS_UNSUPPORTED: return "unsupported";
    case MOE_STATUS_INTERNAL: return "internal error";
  }
  return "unknown status";
}

const char* moe_last_error(void) { return moe::detail::last_error().c_str(); }

const char* moe_isa_name(moe_isa_t isa) {
  switch (isa) {
    case MOE_ISA_SCALAR: return "scalar";
    case MOE_ISA_AVX2: return "avx2";
    case MOE_ISA_AVX512: return "avx512";
  }
  return "unknown";
}

moe_isa_t moe_isa_best(void) { return moe::detail::isa_best(); }
moe_isa_t moe_isa_active(void) { return moe::detail::isa_active(); }

moe_status_t moe_set_isa(moe_isa_t isa) {
  return guarded("moe_set_isa", [&] {
    if (isa < MOE_ISA_SCALAR || isa > moe::detail::isa_best()) {
      return fail(MOE_STATUS_UNSUPPORTED, std::string("moe_set_isa: ") + moe_isa_name(isa) +
                                              " is not available (best: " + moe_isa_name(moe::detail::isa_best()) +
                                              ")");
    }
    moe::detail::isa_set(isa);
    return MOE_STATUS_OK;
  });
}

int moe_num_threads(void) {
  std::lock_guard<std::mutex> lk(moe::detail::call_mutex());
  return moe::detail::pool_threads();
}

int moe_default_num_threads(void) { return moe::detail::pool_default_threads(); }

moe_status_t moe_set_num_threads(int n) {
  return guarded("moe_set_num_threads", [&] {
    if (n < 0 || n > 1024) {
      return fail(MOE_STATUS_INVALID_ARGUMENT, "moe_set_num_threads: n = " + std::to_string(n) + " not in [0, 1024]");
    }
    moe::detail::pool_set_threads(n == 0 ? moe::detail::pool_default_threads() : n);
    return MOE_STATUS_OK;
  });
}

}  // extern "C"
