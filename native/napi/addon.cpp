// Node-API glue over moe-kernels.h: argument checks and conversions only, no math. Every kernel takes its
// output as a preallocated typed array and returns undefined; errors throw.
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "moe-kernels.h"

namespace {

[[noreturn]] void throw_type(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }
[[noreturn]] void throw_range(Napi::Env env, const std::string& msg) { throw Napi::RangeError::New(env, msg); }

void check_status(Napi::Env env, moe_status_t st) {
  if (st == MOE_STATUS_OK) return;
  const std::string detail = moe_last_error();
  throw Napi::Error::New(env, "moekit native: " + (detail.empty() ? std::string(moe_status_string(st)) : detail));
}

// A non-negative integer argument (a JS number no larger than 2^53).
int64_t size_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const Napi::Value v = info[i];
  if (!v.IsNumber()) throw_type(info.Env(), std::string(name) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 9007199254740992.0) || std::floor(d) != d) {
    throw_range(info.Env(), std::string(name) + " must be a non-negative integer, got " + std::to_string(d));
  }
  return int64_t(d);
}

struct View {
  void* data;
  size_t bytes;
};

// A typed array of element type `T` holding exactly `count` elements.
template <class T>
View array_arg(const Napi::CallbackInfo& info, size_t i, const char* name, napi_typedarray_type type,
               const char* type_name, int64_t count) {
  const Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) {
    throw_type(info.Env(), std::string(name) + " must be a " + type_name);
  }
  auto arr = v.As<Napi::TypedArrayOf<T>>();
  if (int64_t(arr.ElementLength()) != count) {
    throw_range(info.Env(), std::string(name) + " has " + std::to_string(arr.ElementLength()) + " elements, expected " +
                                std::to_string(count));
  }
  return {arr.Data(), arr.ByteLength()};
}

View f32_arg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t count) {
  return array_arg<float>(info, i, name, napi_float32_array, "Float32Array", count);
}

View i32_arg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t count) {
  return array_arg<int32_t>(info, i, name, napi_int32_array, "Int32Array", count);
}

// Products of sizes, checked against 2^53 so they compare exactly with array lengths.
int64_t count(Napi::Env env, std::initializer_list<int64_t> dims) {
  int64_t c = 1;
  for (int64_t d : dims) {
    if (__builtin_mul_overflow(c, d, &c) || c > (int64_t(1) << 53)) throw_range(env, "tensor size too large");
  }
  return c;
}

void check_no_overlap(Napi::Env env, const View& out, std::initializer_list<View> ins) {
  const auto* o = static_cast<const char*>(out.data);
  for (const View& in : ins) {
    const auto* p = static_cast<const char*>(in.data);
    if (out.bytes > 0 && in.bytes > 0 && o < p + in.bytes && p < o + out.bytes) {
      throw_range(env, "the output must not overlap an input");
    }
  }
}

bool bool_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsBoolean()) throw_type(info.Env(), std::string(name) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

void expect_args(const Napi::CallbackInfo& info, size_t n, const char* fn) {
  if (info.Length() != n) {
    throw_type(info.Env(), std::string(fn) + " expects " + std::to_string(n) + " arguments, got " +
                               std::to_string(info.Length()));
  }
}

// gmm(lhs, rhs, groupSizes, m, k, n, transposeRhs, out)
Napi::Value Gmm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 8, "gmm");
  const int64_t m = size_arg(info, 3, "m"), k = size_arg(info, 4, "k"), n = size_arg(info, 5, "n");
  const bool trans = bool_arg(info, 6, "transposeRhs");
  const int64_t groups = int64_t(info[2].IsTypedArray() ? info[2].As<Napi::TypedArray>().ElementLength() : 0);
  const View gs = i32_arg(info, 2, "groupSizes", groups);
  const View lhs = f32_arg(info, 0, "lhs", count(env, {m, k}));
  const View rhs = f32_arg(info, 1, "rhs", count(env, {groups, k, n}));
  const View out = f32_arg(info, 7, "out", count(env, {m, n}));
  check_no_overlap(env, out, {lhs, rhs, gs});
  check_status(env, moe_gmm_fwd_f32(static_cast<const float*>(lhs.data), static_cast<const float*>(rhs.data),
                                    static_cast<const int32_t*>(gs.data), m, k, n, groups, trans ? 1 : 0,
                                    static_cast<float*>(out.data)));
  return env.Undefined();
}

// gmmBwdLhs(gradOut, rhs, groupSizes, m, k, n, transposeRhs, gradLhs)
Napi::Value GmmBwdLhs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 8, "gmmBwdLhs");
  const int64_t m = size_arg(info, 3, "m"), k = size_arg(info, 4, "k"), n = size_arg(info, 5, "n");
  const bool trans = bool_arg(info, 6, "transposeRhs");
  const int64_t groups = int64_t(info[2].IsTypedArray() ? info[2].As<Napi::TypedArray>().ElementLength() : 0);
  const View gs = i32_arg(info, 2, "groupSizes", groups);
  const View dout = f32_arg(info, 0, "gradOut", count(env, {m, n}));
  const View rhs = f32_arg(info, 1, "rhs", count(env, {groups, k, n}));
  const View out = f32_arg(info, 7, "gradLhs", count(env, {m, k}));
  check_no_overlap(env, out, {dout, rhs, gs});
  check_status(env, moe_gmm_bwd_lhs_f32(static_cast<const float*>(dout.data), static_cast<const float*>(rhs.data),
                                        static_cast<const int32_t*>(gs.data), m, k, n, groups, trans ? 1 : 0,
                                        static_cast<float*>(out.data)));
  return env.Undefined();
}

// tgmm(lhs, rhs, groupSizes, m, k, n, out): lhs [m,k], rhs [m,n] -> out [G,k,n]
Napi::Value Tgmm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 7, "tgmm");
  const int64_t m = size_arg(info, 3, "m"), k = size_arg(info, 4, "k"), n = size_arg(info, 5, "n");
  const int64_t groups = int64_t(info[2].IsTypedArray() ? info[2].As<Napi::TypedArray>().ElementLength() : 0);
  const View gs = i32_arg(info, 2, "groupSizes", groups);
  const View lhs = f32_arg(info, 0, "lhs", count(env, {m, k}));
  const View rhs = f32_arg(info, 1, "rhs", count(env, {m, n}));
  const View out = f32_arg(info, 6, "out", count(env, {groups, k, n}));
  check_no_overlap(env, out, {lhs, rhs, gs});
  check_status(env, moe_gmm_bwd_rhs_f32(static_cast<const float*>(lhs.data), static_cast<const float*>(rhs.data),
                                        static_cast<const int32_t*>(gs.data), m, k, n, groups,
                                        static_cast<float*>(out.data)));
  return env.Undefined();
}

// bmm(a, b, batch, m, k, n, out)
Napi::Value Bmm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 7, "bmm");
  const int64_t batch = size_arg(info, 2, "batch"), m = size_arg(info, 3, "m"), k = size_arg(info, 4, "k"),
                n = size_arg(info, 5, "n");
  const View a = f32_arg(info, 0, "a", count(env, {batch, m, k}));
  const View b = f32_arg(info, 1, "b", count(env, {batch, k, n}));
  const View out = f32_arg(info, 6, "out", count(env, {batch, m, n}));
  check_no_overlap(env, out, {a, b});
  check_status(env, moe_bmm_f32(static_cast<const float*>(a.data), static_cast<const float*>(b.data), batch, m, k, n,
                                static_cast<float*>(out.data)));
  return env.Undefined();
}

Napi::Value Isa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), moe_isa_name(moe_isa_active())); }

Napi::Value BestIsa(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), moe_isa_name(moe_isa_best()));
}

// setIsa(name): "scalar" | "avx2" | "avx512", at most bestIsa()
Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 1, "setIsa");
  if (!info[0].IsString()) throw_type(env, "setIsa expects an ISA name");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  for (moe_isa_t isa : {MOE_ISA_SCALAR, MOE_ISA_AVX2, MOE_ISA_AVX512}) {
    if (name == moe_isa_name(isa)) {
      check_status(env, moe_set_isa(isa));
      return env.Undefined();
    }
  }
  throw_range(env, "unknown ISA \"" + name + "\" (scalar, avx2, avx512)");
}

Napi::Value Threads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), moe_num_threads()); }

Napi::Value DefaultThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), moe_default_num_threads());
}

// setThreads(n): n >= 1, or 0 for the default
Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 1, "setThreads");
  const int64_t n = size_arg(info, 0, "n");
  if (n > 1024) throw_range(env, "setThreads: n = " + std::to_string(n) + " exceeds 1024");
  check_status(env, moe_set_num_threads(int(n)));
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("version", Napi::String::New(env, moe_version()));
  exports.Set("isa", Napi::Function::New(env, Isa, "isa"));
  exports.Set("bestIsa", Napi::Function::New(env, BestIsa, "bestIsa"));
  exports.Set("setIsa", Napi::Function::New(env, SetIsa, "setIsa"));
  exports.Set("threads", Napi::Function::New(env, Threads, "threads"));
  exports.Set("defaultThreads", Napi::Function::New(env, DefaultThreads, "defaultThreads"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("gmm", Napi::Function::New(env, Gmm, "gmm"));
  exports.Set("gmmBwdLhs", Napi::Function::New(env, GmmBwdLhs, "gmmBwdLhs"));
  exports.Set("tgmm", Napi::Function::New(env, Tgmm, "tgmm"));
  exports.Set("bmm", Napi::Function::New(env, Bmm, "bmm"));
  return exports;
}

}  // namespace

NODE_API_MODULE(moekit_native, Init)
