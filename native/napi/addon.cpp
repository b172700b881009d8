// Node-API glue over moe-kernels.h: argument checks and conversions only, no math. Every kernel takes its
// output as a preallocated typed array and returns undefined; errors throw.
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "moe-kernels.h"
#include "pooled.hpp"

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

// Elements of argument i when it is a typed array (0 otherwise: the array check that follows reports it).
int64_t typed_length(const Napi::CallbackInfo& info, size_t i) {
  return info[i].IsTypedArray() ? int64_t(info[i].As<Napi::TypedArray>().ElementLength()) : 0;
}

View f32_arg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t count) {
  return array_arg<float>(info, i, name, napi_float32_array, "Float32Array", count);
}

View i32_arg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t count) {
  return array_arg<int32_t>(info, i, name, napi_int32_array, "Int32Array", count);
}

template <class T>
const T* cp(const View& v) {
  return static_cast<const T*>(v.data);
}
template <class T>
T* mp(const View& v) {
  return static_cast<T*>(v.data);
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

// The arguments of gmm and gmmI8, (lhs, rhs, groupSizes, m, k, n, transposeRhs, out) with lhs [m, k], rhs
// [groups, k, n] and out [m, n] of element type T (read by `arg`), checked; then `kernel` on them.
template <class T, class Kernel>
Napi::Value grouped_matmul(const Napi::CallbackInfo& info, const char* fn,
                           View (*arg)(const Napi::CallbackInfo&, size_t, const char*, int64_t), Kernel kernel) {
  Napi::Env env = info.Env();
  expect_args(info, 8, fn);
  const int64_t m = size_arg(info, 3, "m"), k = size_arg(info, 4, "k"), n = size_arg(info, 5, "n");
  const bool trans = bool_arg(info, 6, "transposeRhs");
  const int64_t groups = typed_length(info, 2);
  const View gs = i32_arg(info, 2, "groupSizes", groups);
  const View lhs = arg(info, 0, "lhs", count(env, {m, k}));
  const View rhs = arg(info, 1, "rhs", count(env, {groups, k, n}));
  const View out = arg(info, 7, "out", count(env, {m, n}));
  check_no_overlap(env, out, {lhs, rhs, gs});
  check_status(env, kernel(cp<T>(lhs), cp<T>(rhs), cp<int32_t>(gs), m, k, n, groups, trans ? 1 : 0, mp<T>(out)));
  return env.Undefined();
}

// gmm(lhs, rhs, groupSizes, m, k, n, transposeRhs, out): lhs [m, k] -> out [m, n].
Napi::Value Gmm(const Napi::CallbackInfo& info) { return grouped_matmul<float>(info, "gmm", &f32_arg, &moe_gmm_fwd_f32); }

// gmmI8(lhs, rhs, groupSizes, m, k, n, transposeRhs, out): as gmm on Int32Arrays whose values fit in int8.
Napi::Value GmmI8(const Napi::CallbackInfo& info) { return grouped_matmul<int32_t>(info, "gmmI8", &i32_arg, &moe_gmm_i8); }

// A typed array of one-byte elements (Int8Array or Uint8Array) holding exactly `count` of them.
View bytes_arg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t count) {
  const Napi::Value v = info[i];
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int8_array) {
    return array_arg<int8_t>(info, i, name, napi_int8_array, "Int8Array", count);
  }
  return array_arg<uint8_t>(info, i, name, napi_uint8_array, "Uint8Array or Int8Array", count);
}

// Elements of the codes and scales of `groups` [k, n] weights in a moe_weight_format_t storage (moe-kernels.h).
struct QuantCounts {
  int64_t codes, scales;
};
QuantCounts quant_counts(Napi::Env env, int64_t format, int64_t groups, int64_t k, int64_t n) {
  switch (format) {
    case MOE_WF_INT8:
      return {count(env, {groups, k, n}), count(env, {groups, n})};
    case MOE_WF_INT4:
      return {count(env, {groups, k, (n + 1) / 2}), count(env, {groups, n})};
    case MOE_WF_FP8_E4M3:
      return {count(env, {groups, n, k}), count(env, {groups, (n + 127) / 128, (k + 127) / 128})};
    case MOE_WF_INT8_TILES:
    case MOE_WF_INT4_TILES:  // tiles of 64 rows x 64 bytes: 64 int8 or 128 int4 columns
      return {count(env, {groups, (k + 63) / 64, (n + (format == MOE_WF_INT8_TILES ? 63 : 127)) / (format == MOE_WF_INT8_TILES ? 64 : 128), 4096}),
              count(env, {groups, n})};
    default:
      return {count(env, {groups, n, k / 2}), count(env, {groups, n, k / 32})};
  }
}

// quantizedGmm(format, lhs, lhsScales | null, codes, scales, groupSizes, m, k, n, out): moe_quantized_gmm with a
// Float32Array lhs (lhsScales null) or an Int32Array lhs and its Float32Array row scales; out Float32Array [m, n].
Napi::Value QuantizedGmm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 10, "quantizedGmm");
  const int64_t format = size_arg(info, 0, "format");
  const int64_t m = size_arg(info, 6, "m"), k = size_arg(info, 7, "k"), n = size_arg(info, 8, "n");
  if (format > MOE_WF_INT4_TILES) throw_range(env, "unknown weight format " + std::to_string(format));
  const int64_t groups = typed_length(info, 5);
  const View gs = i32_arg(info, 5, "groupSizes", groups);
  const bool int_lhs = info[1].IsTypedArray() && info[1].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array;
  const View lhs = int_lhs ? i32_arg(info, 1, "lhs", count(env, {m, k})) : f32_arg(info, 1, "lhs", count(env, {m, k}));
  const View ls = int_lhs ? f32_arg(info, 2, "lhsScales", m) : View{nullptr, 0};
  if (!int_lhs && !info[2].IsNull()) throw_type(env, "a Float32Array lhs takes lhsScales null");
  const QuantCounts qc = quant_counts(env, format, groups, k, n);
  const View codes = bytes_arg(info, 3, "codes", qc.codes);
  const View scales = format == MOE_WF_MXFP4 ? bytes_arg(info, 4, "scales", qc.scales)
                                             : f32_arg(info, 4, "scales", qc.scales);
  const View out = f32_arg(info, 9, "out", count(env, {m, n}));
  check_no_overlap(env, out, {lhs, ls, codes, scales, gs});
  check_status(env, moe_quantized_gmm(moe_weight_format_t(format), lhs.data, int_lhs ? 1 : 0,
                                      static_cast<const float*>(ls.data), codes.data, scales.data,
                                      static_cast<const int32_t*>(gs.data), m, k, n, groups,
                                      static_cast<float*>(out.data)));
  return env.Undefined();
}

// i32FitsI8(x): whether every element of the Int32Array is in [-128, 127].
Napi::Value I32FitsI8(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 1, "i32FitsI8");
  const View x = i32_arg(info, 0, "x", typed_length(info, 0));
  return Napi::Boolean::New(env, moe_i32_fits_i8(static_cast<const int32_t*>(x.data), int64_t(x.bytes / 4)) == 1);
}

// quantizeF32(x, noise | null, P, C, Q, bits, qwix, q, scales): returns the flat index of the first non-finite x, or -1.
Napi::Value QuantizeF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 9, "quantizeF32");
  const int64_t P = size_arg(info, 2, "P"), C = size_arg(info, 3, "C"), Q = size_arg(info, 4, "Q");
  const int64_t bits = size_arg(info, 5, "bits");
  const bool qwix = bool_arg(info, 6, "qwix");
  const int64_t n = count(env, {P, C, Q});
  const View x = f32_arg(info, 0, "x", n);
  const bool noisy = !(info[1].IsNull() || info[1].IsUndefined());
  const View noise = noisy ? f32_arg(info, 1, "noise", n) : View{nullptr, 0};
  const View q = i32_arg(info, 7, "q", n);
  const View scales = f32_arg(info, 8, "scales", count(env, {P, Q}));
  for (const View& out : {q, scales}) check_no_overlap(env, out, {x, noise});
  int64_t bad = -1;
  check_status(env, moe_quantize_f32(static_cast<const float*>(x.data), static_cast<const float*>(noise.data), P, C, Q,
                                     int(bits), qwix ? 1 : 0, static_cast<int32_t*>(q.data),
                                     static_cast<float*>(scales.data), &bad));
  return Napi::Number::New(env, double(bad));
}

// tgmm(lhs, rhs, groupSizes, m, k, n, out): lhs [m,k], rhs [m,n] -> out [G,k,n]
Napi::Value Tgmm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 7, "tgmm");
  const int64_t m = size_arg(info, 3, "m"), k = size_arg(info, 4, "k"), n = size_arg(info, 5, "n");
  const int64_t groups = typed_length(info, 2);
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

// topk(x, rows, n, k, values, indices)
Napi::Value Topk(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 6, "topk");
  const int64_t rows = size_arg(info, 1, "rows"), n = size_arg(info, 2, "n"), k = size_arg(info, 3, "k");
  const View x = f32_arg(info, 0, "x", count(env, {rows, n}));
  const View vals = f32_arg(info, 4, "values", count(env, {rows, k}));
  const View ids = i32_arg(info, 5, "indices", count(env, {rows, k}));
  check_no_overlap(env, vals, {x});
  check_no_overlap(env, ids, {x});
  check_status(env, moe_topk_f32(static_cast<const float*>(x.data), rows, n, k, static_cast<float*>(vals.data),
                                 static_cast<int32_t*>(ids.data)));
  return env.Undefined();
}

// argsortI32(keys, out)
Napi::Value ArgsortI32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 2, "argsortI32");
  const int64_t n = typed_length(info, 0);
  const View keys = i32_arg(info, 0, "keys", n);
  const View out = i32_arg(info, 1, "out", n);
  check_no_overlap(env, out, {keys});
  check_status(env, moe_argsort_i32(static_cast<const int32_t*>(keys.data), n, static_cast<int32_t*>(out.data)));
  return env.Undefined();
}

// A Float32Array or Int32Array (4-byte elements moved as bits) of `count` elements.
View b32_arg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t count) {
  if (info[i].IsTypedArray() && info[i].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) return i32_arg(info, i, name, count);
  return f32_arg(info, i, name, count);
}

// binary(op, a, b, out): op 0 add, 1 sub, 2 mul, 3 div, on Float32Arrays (moe_binary_f32) or Int32Arrays
// (moe_binary_i32, no div); out is written fresh (huge pages advised)
Napi::Value Binary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 4, "binary");
  const int64_t op = size_arg(info, 0, "op");
  const int64_t n = typed_length(info, 1);
  const View a = b32_arg(info, 1, "a", n);
  const bool ints = info[1].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array;
  const View b = ints ? i32_arg(info, 2, "b", n) : f32_arg(info, 2, "b", n);
  const View out = ints ? i32_arg(info, 3, "out", n) : f32_arg(info, 3, "out", n);
  moe_advise_fresh_output(out.data, int64_t(out.bytes));
  const auto bop = moe_binary_op_t(op > 3 ? 4 : op);
  check_status(env, ints ? moe_binary_i32(bop, static_cast<const int32_t*>(a.data), static_cast<const int32_t*>(b.data),
                                          static_cast<int32_t*>(out.data), n)
                         : moe_binary_f32(bop, static_cast<const float*>(a.data), static_cast<const float*>(b.data),
                                          static_cast<float*>(out.data), n));
  return env.Undefined();
}

// unaryF32(op, x, out): op 0 neg, 1 exp, 2 sigmoid
Napi::Value UnaryF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 3, "unaryF32");
  const int64_t op = size_arg(info, 0, "op");
  const int64_t n = typed_length(info, 1);
  const View x = f32_arg(info, 1, "x", n), out = f32_arg(info, 2, "out", n);
  moe_advise_fresh_output(out.data, int64_t(out.bytes));
  check_status(env, moe_unary_f32(moe_unary_op_t(op > 2 ? 3 : op), static_cast<const float*>(x.data), static_cast<float*>(out.data), n));
  return env.Undefined();
}

// reduceF32(op, x, P, R, Q, out): op 0 sum, 1 max; x [P,R,Q] -> out [P,Q]
Napi::Value ReduceF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 6, "reduceF32");
  const int64_t op = size_arg(info, 0, "op");
  const int64_t P = size_arg(info, 2, "P"), R = size_arg(info, 3, "R"), Q = size_arg(info, 4, "Q");
  const View x = f32_arg(info, 1, "x", count(env, {P, R, Q})), out = f32_arg(info, 5, "out", count(env, {P, Q}));
  check_no_overlap(env, out, {x});
  check_status(env, moe_reduce_f32(moe_reduce_op_t(op > 1 ? 2 : op), static_cast<const float*>(x.data), P, R, Q,
                                   static_cast<float*>(out.data)));
  return env.Undefined();
}

// softmaxF32(x, rows, n, out)
Napi::Value SoftmaxF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 4, "softmaxF32");
  const int64_t rows = size_arg(info, 1, "rows"), n = size_arg(info, 2, "n");
  const View x = f32_arg(info, 0, "x", count(env, {rows, n})), out = f32_arg(info, 3, "out", count(env, {rows, n}));
  check_no_overlap(env, out, {x});
  check_status(env, moe_softmax_f32(static_cast<const float*>(x.data), rows, n, static_cast<float*>(out.data)));
  return env.Undefined();
}

// A JS array of non-negative integers.
std::vector<int64_t> sizes_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsArray()) throw_type(info.Env(), std::string(name) + " must be an array");
  const auto a = info[i].As<Napi::Array>();
  std::vector<int64_t> v(a.Length());
  for (uint32_t k = 0; k < a.Length(); ++k) {
    const Napi::Value e = a.Get(k);
    const double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && d <= 9007199254740992.0) || std::floor(d) != d) throw_range(info.Env(), std::string(name) + " must hold non-negative integers");
    v[k] = int64_t(d);
  }
  return v;
}

// copyStrided(src, dst, shape, strides, offset): dst[flat] = src[offset + sum idx*strides] (Float32Array or Int32Array)
Napi::Value CopyStrided(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 5, "copyStrided");
  const std::vector<int64_t> shape = sizes_arg(info, 2, "shape"), strides = sizes_arg(info, 3, "strides");
  if (shape.size() != strides.size()) throw_range(env, "shape and strides differ in length");
  int64_t total = 1;
  for (int64_t d : shape) total = count(env, {total, d});
  const View src = b32_arg(info, 0, "src", typed_length(info, 0)), dst = b32_arg(info, 1, "dst", total);
  check_no_overlap(env, dst, {src});
  moe_advise_fresh_output(dst.data, int64_t(dst.bytes));
  check_status(env, moe_copy_strided_b32(src.data, typed_length(info, 0), dst.data, int(shape.size()), shape.data(),
                                         strides.data(), size_arg(info, 4, "offset")));
  return env.Undefined();
}

// gather(x, rows, inner, idx, out) -> the first out-of-range position, or -1
Napi::Value Gather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 5, "gather");
  const int64_t rows = size_arg(info, 1, "rows"), inner = size_arg(info, 2, "inner");
  const int64_t n = typed_length(info, 3);
  const View x = b32_arg(info, 0, "x", count(env, {rows, inner})), idx = i32_arg(info, 3, "idx", n);
  const View out = b32_arg(info, 4, "out", count(env, {n, inner}));
  check_no_overlap(env, out, {x, idx});
  int64_t bad = -1;
  check_status(env, moe_gather_b32(x.data, rows, inner, static_cast<const int32_t*>(idx.data), n, out.data, &bad));
  return Napi::Number::New(env, double(bad));
}

// scatterAddF32(u, idx, inner, numRows, out) -> the first out-of-range position, or -1
Napi::Value ScatterAddF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 5, "scatterAddF32");
  const int64_t inner = size_arg(info, 2, "inner"), rows = size_arg(info, 3, "numRows");
  const int64_t n = typed_length(info, 1);
  const View u = f32_arg(info, 0, "u", count(env, {n, inner})), idx = i32_arg(info, 1, "idx", n);
  const View out = f32_arg(info, 4, "out", count(env, {rows, inner}));
  check_no_overlap(env, out, {u, idx});
  int64_t bad = -1;
  check_status(env, moe_scatter_add_f32(static_cast<const float*>(u.data), static_cast<const int32_t*>(idx.data), n, inner, rows,
                                        static_cast<float*>(out.data), &bad));
  return Napi::Number::New(env, double(bad));
}

// iotaI32(outer, n, inner, out)
Napi::Value IotaI32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 4, "iotaI32");
  const int64_t outer = size_arg(info, 0, "outer"), n = size_arg(info, 1, "n"), inner = size_arg(info, 2, "inner");
  const View out = i32_arg(info, 3, "out", count(env, {outer, n, inner}));
  check_status(env, moe_iota_i32(outer, n, inner, static_cast<int32_t*>(out.data)));
  return env.Undefined();
}

// bincountI32(x, out): out.length bins
Napi::Value BincountI32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 2, "bincountI32");
  const View x = i32_arg(info, 0, "x", typed_length(info, 0)), out = i32_arg(info, 1, "out", typed_length(info, 1));
  check_no_overlap(env, out, {x});
  check_status(env, moe_bincount_i32(static_cast<const int32_t*>(x.data), typed_length(info, 0), typed_length(info, 1),
                                     static_cast<int32_t*>(out.data)));
  return env.Undefined();
}

// f32ToBf16Bits(src, dst)
Napi::Value F32ToBf16Bits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 2, "f32ToBf16Bits");
  const int64_t n = typed_length(info, 0);
  const View src = f32_arg(info, 0, "src", n);
  const View dst = array_arg<uint16_t>(info, 1, "dst", napi_uint16_array, "Uint16Array", n);
  check_no_overlap(env, dst, {src});
  check_status(env, moe_f32_to_bf16_bits(static_cast<const float*>(src.data), n, static_cast<uint16_t*>(dst.data)));
  return env.Undefined();
}

// roundBf16F32(src, dst): dst may be src
Napi::Value RoundBf16F32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 2, "roundBf16F32");
  const int64_t n = typed_length(info, 0);
  const View src = f32_arg(info, 0, "src", n);
  const View dst = f32_arg(info, 1, "dst", n);
  check_status(env, moe_round_bf16_f32(static_cast<const float*>(src.data), n, static_cast<float*>(dst.data)));
  return env.Undefined();
}

float f32_scalar(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const Napi::Value v = info[i];
  if (!v.IsNumber()) throw_type(info.Env(), std::string(name) + " must be a number");
  return float(v.As<Napi::Number>().DoubleValue());
}

// adamwF32(p, g, m, v, lr, b1, oneMinusB1, b2, oneMinusB2, bc1, bc2, eps, wd)
Napi::Value AdamwF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 13, "adamwF32");
  const int64_t n = typed_length(info, 0);
  const View p = f32_arg(info, 0, "p", n), g = f32_arg(info, 1, "g", n), m = f32_arg(info, 2, "m", n),
             v = f32_arg(info, 3, "v", n);
  check_no_overlap(env, p, {g, m, v});
  check_no_overlap(env, m, {g, v});
  check_no_overlap(env, v, {g});
  static const char* const names[] = {"lr", "b1", "oneMinusB1", "b2", "oneMinusB2", "bc1", "bc2", "eps", "wd"};
  float s[9];
  for (size_t i = 0; i < 9; ++i) s[i] = f32_scalar(info, 4 + i, names[i]);
  const moe_adamw_t h = {s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8]};
  // the moments are zero-filled arrays the first step touches first: huge pages (a hint; idempotent later)
  moe_advise_fresh_output(m.data, int64_t(m.bytes));
  moe_advise_fresh_output(v.data, int64_t(v.bytes));
  check_status(env, moe_adamw_f32(static_cast<float*>(p.data), static_cast<const float*>(g.data),
                                  static_cast<float*>(m.data), static_cast<float*>(v.data), n, &h));
  return env.Undefined();
}

// sgdF32(p, g, trace | null, lr, momentum)
Napi::Value SgdF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 5, "sgdF32");
  const int64_t n = typed_length(info, 0);
  const View p = f32_arg(info, 0, "p", n), g = f32_arg(info, 1, "g", n);
  const bool has_trace = !info[2].IsNull() && !info[2].IsUndefined();
  const View t = has_trace ? f32_arg(info, 2, "trace", n) : View{nullptr, 0};
  check_no_overlap(env, p, {g});
  if (has_trace) {
    check_no_overlap(env, t, {p, g});
    moe_advise_fresh_output(t.data, int64_t(t.bytes));
  }
  check_status(env, moe_sgd_f32(static_cast<float*>(p.data), static_cast<const float*>(g.data),
                                static_cast<float*>(t.data), n, f32_scalar(info, 3, "lr"), f32_scalar(info, 4, "momentum")));
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

// ---- Stage 2: the fused MoE FFN ------------------------------------------------------------------------------
// ffnFwd(args) / ffnBwd(args) take one object whose fields are the C ABI's arguments (moe_ffn_fwd_* / moe_ffn_bwd_*);
// weights are Float32Array (fp32) or Uint16Array (bf16 bits), all three of the same type; optional tensors may be
// null or absent.

struct Obj {
  const Napi::Object o;
  Napi::Env env;

  Napi::Value get(const char* name) const { return o.Get(name); }

  int64_t size(const char* name) const {
    const Napi::Value v = get(name);
    if (!v.IsNumber()) throw_type(env, std::string(name) + " must be a number");
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= 9007199254740992.0) || std::floor(d) != d) {
      throw_range(env, std::string(name) + " must be a non-negative integer, got " + std::to_string(d));
    }
    return int64_t(d);
  }

  double number(const char* name) const {
    const Napi::Value v = get(name);
    if (!v.IsNumber()) throw_type(env, std::string(name) + " must be a number");
    return v.As<Napi::Number>().DoubleValue();
  }

  bool present(const char* name) const {
    const Napi::Value v = get(name);
    return !(v.IsNull() || v.IsUndefined());
  }

  template <class T>
  View typed(const char* name, napi_typedarray_type type, const char* type_name, int64_t count, bool optional) const {
    const Napi::Value v = get(name);
    if (optional && (v.IsNull() || v.IsUndefined())) return {nullptr, 0};
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) {
      throw_type(env, std::string(name) + " must be a " + type_name + (optional ? " or null" : ""));
    }
    auto arr = v.As<Napi::TypedArrayOf<T>>();
    if (int64_t(arr.ElementLength()) != count) {
      throw_range(env, std::string(name) + " has " + std::to_string(arr.ElementLength()) + " elements, expected " +
                           std::to_string(count));
    }
    return {arr.Data(), arr.ByteLength()};
  }

  View f32(const char* name, int64_t n, bool optional = false) const {
    return typed<float>(name, napi_float32_array, "Float32Array", n, optional);
  }
  View i32(const char* name, int64_t n) const { return typed<int32_t>(name, napi_int32_array, "Int32Array", n, false); }
  View u16(const char* name, int64_t n) const { return typed<uint16_t>(name, napi_uint16_array, "Uint16Array", n, false); }
  // A Uint8Array or Int8Array (quantized codes, e8m0 scales).
  View bytes(const char* name, int64_t n) const {
    const Napi::Value v = get(name);
    const bool i8 = v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int8_array;
    return i8 ? typed<int8_t>(name, napi_int8_array, "Uint8Array or Int8Array", n, false)
              : typed<uint8_t>(name, napi_uint8_array, "Uint8Array or Int8Array", n, false);
  }

  // A weight tensor: Float32Array or Uint16Array (bf16 bits); `bf16` is set from the first one.
  View weight(const char* name, int64_t n, int& bf16) const {
    const Napi::Value v = get(name);
    const bool is16 = v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint16_array;
    if (bf16 < 0) bf16 = is16 ? 1 : 0;
    if (is16 != (bf16 == 1)) throw_type(env, std::string(name) + ": wi0, wi1 and wo must all be fp32 or all bf16");
    return bf16 == 1 ? u16(name, n) : f32(name, n);
  }
};

Obj obj_arg(const Napi::CallbackInfo& info, const char* fn) {
  expect_args(info, 1, fn);
  if (!info[0].IsObject()) throw_type(info.Env(), std::string(fn) + " expects an argument object");
  return Obj{info[0].As<Napi::Object>(), info.Env()};
}

moe_activation_t activation_arg(const Obj& a) {
  const int64_t v = a.size("activation");
  if (v > MOE_ACT_RELU) throw_range(a.env, "activation must be 0..4 (linear, silu, gelu_tanh, sigmoid, relu)");
  return moe_activation_t(v);
}

// ffnFwd({x, T, D, order, K, w?, wi0, wi1, wo, b0?, b1?, bo?, groupSizes, E, H, activation, clampLimit, y,
//         resAct?, resH0?, resH1?, resO?, bf16Layer?}); bf16Layer: moe_ffn_fwd_bf16 (bf16 weights) or _bf16_f32w
Napi::Value FfnFwd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Obj a = obj_arg(info, "ffnFwd");
  const int64_t T = a.size("T"), D = a.size("D"), K = a.size("K"), E = a.size("E"), H = a.size("H");
  const int64_t R = count(env, {T, K});
  const moe_activation_t act = activation_arg(a);
  const float limit = float(a.number("clampLimit"));
  int bf16 = -1;
  const View x = a.f32("x", count(env, {T, D})), order = a.i32("order", R), w = a.f32("w", R, true);
  const View wi0 = a.weight("wi0", count(env, {E, D, H}), bf16), wi1 = a.weight("wi1", count(env, {E, D, H}), bf16),
             wo = a.weight("wo", count(env, {E, H, D}), bf16);
  const View b0 = a.f32("b0", count(env, {E, H}), true), b1 = a.f32("b1", count(env, {E, H}), true),
             bo = a.f32("bo", count(env, {E, D}), true), gs = a.i32("groupSizes", E);
  const View y = a.f32("y", count(env, {T, D}));
  const View ra = a.f32("resAct", count(env, {R, H}), true), r0 = a.f32("resH0", count(env, {R, H}), true),
             r1 = a.f32("resH1", count(env, {R, H}), true), ro = a.f32("resO", count(env, {R, D}), true);
  const std::initializer_list<View> ins = {x, order, w, wi0, wi1, wo, b0, b1, bo, gs};
  for (const View& out : {y, ra, r0, r1, ro}) {
    check_no_overlap(env, out, ins);
    moe_advise_fresh_output(out.data, int64_t(out.bytes));
  }
  const bool bf16_layer = a.present("bf16Layer") && a.get("bf16Layer").ToBoolean().Value();
  moe_status_t st;
  if (bf16_layer && bf16 != 1) {
    st = moe_ffn_fwd_bf16_f32w(cp<float>(x), T, D, cp<int32_t>(order), K, cp<float>(w), cp<float>(wi0), cp<float>(wi1),
                               cp<float>(wo), cp<float>(b0), cp<float>(b1), cp<float>(bo), cp<int32_t>(gs), E, H, act,
                               limit, mp<float>(y), mp<float>(ra), mp<float>(r0), mp<float>(r1), mp<float>(ro));
  } else if (bf16_layer) {
    st = moe_ffn_fwd_bf16(cp<float>(x), T, D, cp<int32_t>(order), K, cp<float>(w), cp<uint16_t>(wi0), cp<uint16_t>(wi1),
                          cp<uint16_t>(wo), cp<float>(b0), cp<float>(b1), cp<float>(bo), cp<int32_t>(gs), E, H, act,
                          limit, mp<float>(y), mp<float>(ra), mp<float>(r0), mp<float>(r1), mp<float>(ro));
  } else if (bf16 == 1) {
    st = moe_ffn_fwd_bf16w(cp<float>(x), T, D, cp<int32_t>(order), K, cp<float>(w), cp<uint16_t>(wi0), cp<uint16_t>(wi1),
                           cp<uint16_t>(wo), cp<float>(b0), cp<float>(b1), cp<float>(bo), cp<int32_t>(gs), E, H, act,
                           limit, mp<float>(y), mp<float>(ra), mp<float>(r0), mp<float>(r1), mp<float>(ro));
  } else {
    st = moe_ffn_fwd_f32(cp<float>(x), T, D, cp<int32_t>(order), K, cp<float>(w), cp<float>(wi0), cp<float>(wi1),
                         cp<float>(wo), cp<float>(b0), cp<float>(b1), cp<float>(bo), cp<int32_t>(gs), E, H, act, limit,
                         mp<float>(y), mp<float>(ra), mp<float>(r0), mp<float>(r1), mp<float>(ro));
  }
  check_status(env, st);
  return env.Undefined();
}

// ffnFwdQuantized({format, lhsBits, x, T, D, order, K, w?, wi0Codes, wi0Scales, wi1Codes, wi1Scales, woCodes, woScales,
//                  b0?, b1?, bo?, groupSizes, E, H, activation, clampLimit, y, bf16Layer?}): moe_ffn_fwd_quantized; codes Uint8Array
// or Int8Array, scales Float32Array (Uint8Array e8m0 for mxfp4).
Napi::Value FfnFwdQuantized(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Obj a = obj_arg(info, "ffnFwdQuantized");
  const int64_t format = a.size("format"), bits = a.size("lhsBits");
  if (format > MOE_WF_INT4_TILES) throw_range(env, "unknown weight format " + std::to_string(format));
  const int64_t T = a.size("T"), D = a.size("D"), K = a.size("K"), E = a.size("E"), H = a.size("H");
  const int64_t R = count(env, {T, K});
  const moe_activation_t act = activation_arg(a);
  const float limit = float(a.number("clampLimit"));
  const View x = a.f32("x", count(env, {T, D})), order = a.i32("order", R), w = a.f32("w", R, true);
  const QuantCounts up = quant_counts(env, format, E, D, H), down = quant_counts(env, format, E, H, D);
  const bool e8m0 = format == MOE_WF_MXFP4;
  auto scales = [&](const char* name, int64_t n) { return e8m0 ? a.bytes(name, n) : a.f32(name, n); };
  const View c0 = a.bytes("wi0Codes", up.codes), s0 = scales("wi0Scales", up.scales);
  const View c1 = a.bytes("wi1Codes", up.codes), s1 = scales("wi1Scales", up.scales);
  const View co = a.bytes("woCodes", down.codes), so = scales("woScales", down.scales);
  const View b0 = a.f32("b0", count(env, {E, H}), true), b1 = a.f32("b1", count(env, {E, H}), true),
             bo = a.f32("bo", count(env, {E, D}), true), gs = a.i32("groupSizes", E);
  const View y = a.f32("y", count(env, {T, D}));
  check_no_overlap(env, y, {x, order, w, c0, s0, c1, s1, co, so, b0, b1, bo, gs});
  moe_advise_fresh_output(y.data, int64_t(y.bytes));
  const bool bf16_layer = a.present("bf16Layer") && a.get("bf16Layer").ToBoolean().Value();
  check_status(env, moe_ffn_fwd_quantized(moe_weight_format_t(format), int(bits), bf16_layer ? 1 : 0, cp<float>(x), T, D, cp<int32_t>(order),
                                          K, cp<float>(w), c0.data, s0.data, c1.data, s1.data, co.data, so.data,
                                          cp<float>(b0), cp<float>(b1), cp<float>(bo), cp<int32_t>(gs), E, H, act,
                                          limit, mp<float>(y)));
  return env.Undefined();
}

// ffnBwd({dy, x, T, D, order, K, w?, wi0, wi1, wo, groupSizes, E, H, activation, clampLimit, resAct, resH0, resH1,
//         resO, dx, dw?, dwi0?, dwi1?, dwo?, db0?, db1?, dbo?})
Napi::Value FfnBwd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Obj a = obj_arg(info, "ffnBwd");
  const int64_t T = a.size("T"), D = a.size("D"), K = a.size("K"), E = a.size("E"), H = a.size("H");
  const int64_t R = count(env, {T, K});
  const moe_activation_t act = activation_arg(a);
  const float limit = float(a.number("clampLimit"));
  int bf16 = -1;
  const View dy = a.f32("dy", count(env, {T, D})), x = a.f32("x", count(env, {T, D})), order = a.i32("order", R),
             w = a.f32("w", R, true);
  const View wi0 = a.weight("wi0", count(env, {E, D, H}), bf16), wi1 = a.weight("wi1", count(env, {E, D, H}), bf16),
             wo = a.weight("wo", count(env, {E, H, D}), bf16);
  const View gs = a.i32("groupSizes", E);
  const View ra = a.f32("resAct", count(env, {R, H})), r0 = a.f32("resH0", count(env, {R, H})),
             r1 = a.f32("resH1", count(env, {R, H})), ro = a.f32("resO", count(env, {R, D}));
  const View dx = a.f32("dx", count(env, {T, D})), dw = a.f32("dw", R, true),
             dwi0 = a.f32("dwi0", count(env, {E, D, H}), true), dwi1 = a.f32("dwi1", count(env, {E, D, H}), true),
             dwo = a.f32("dwo", count(env, {E, H, D}), true);
  const View db0 = a.f32("db0", count(env, {E, H}), true), db1 = a.f32("db1", count(env, {E, H}), true),
             dbo = a.f32("dbo", count(env, {E, D}), true);
  const std::initializer_list<View> ins = {dy, x, order, w, wi0, wi1, wo, gs, ra, r0, r1, ro};
  const std::initializer_list<View> outs = {dx, dw, dwi0, dwi1, dwo, db0, db1, dbo};
  for (const View& out : outs) {
    check_no_overlap(env, out, ins);
    moe_advise_fresh_output(out.data, int64_t(out.bytes));
  }
  moe_status_t st;
  if (bf16 == 1) {
    st = moe_ffn_bwd_bf16w(cp<float>(dy), cp<float>(x), T, D, cp<int32_t>(order), K, cp<float>(w), cp<uint16_t>(wi0),
                           cp<uint16_t>(wi1), cp<uint16_t>(wo), cp<int32_t>(gs), E, H, act, limit, cp<float>(ra),
                           cp<float>(r0), cp<float>(r1), cp<float>(ro), mp<float>(dx), mp<float>(dw), mp<float>(dwi0),
                           mp<float>(dwi1), mp<float>(dwo), mp<float>(db0), mp<float>(db1), mp<float>(dbo));
  } else {
    st = moe_ffn_bwd_f32(cp<float>(dy), cp<float>(x), T, D, cp<int32_t>(order), K, cp<float>(w), cp<float>(wi0),
                         cp<float>(wi1), cp<float>(wo), cp<int32_t>(gs), E, H, act, limit, cp<float>(ra), cp<float>(r0),
                         cp<float>(r1), cp<float>(ro), mp<float>(dx), mp<float>(dw), mp<float>(dwi0), mp<float>(dwi1),
                         mp<float>(dwo), mp<float>(db0), mp<float>(db1), mp<float>(dbo));
  }
  check_status(env, st);
  return env.Undefined();
}

double seconds_arg(const Napi::CallbackInfo& info, const char* fn) {
  expect_args(info, 1, fn);
  if (!info[0].IsNumber()) throw_type(info.Env(), std::string(fn) + " expects seconds");
  return info[0].As<Napi::Number>().DoubleValue();
}

Napi::Value ProbeFma(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), moe_probe_fma_peak_f32(seconds_arg(info, "probeFmaPeak")));
}
Napi::Value ProbeBf16(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), moe_probe_bf16_peak(seconds_arg(info, "probeBf16Peak")));
}
Napi::Value ProbeInt8(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), moe_probe_int8_peak(seconds_arg(info, "probeInt8Peak")));
}
Napi::Value ProbeAmx(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), moe_probe_amx_peak(seconds_arg(info, "probeAmxPeak")));
}
Napi::Value ProbeBandwidth(const Napi::CallbackInfo& info) {
  expect_args(info, 1, "probeReadBandwidth");
  return Napi::Number::New(info.Env(), moe_probe_read_bandwidth(size_arg(info, 0, "bytes")));
}
// probeReadBandwidthOf(buffer: Float32Array of at least 2^18 elements)
Napi::Value ProbeBandwidthOf(const Napi::CallbackInfo& info) {
  expect_args(info, 1, "probeReadBandwidthOf");
  const int64_t n = typed_length(info, 0);
  const View buf = f32_arg(info, 0, "buffer", n);
  return Napi::Number::New(info.Env(), moe_probe_read_bandwidth_of(static_cast<const float*>(buf.data), n));
}

Napi::Value CpuHasAvx512Bf16(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), moe_cpu_has_avx512_bf16() != 0);
}
Napi::Value CpuHasAmxBf16(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), moe_cpu_has_amx_bf16() != 0);
}
Napi::Value Bf16Path(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), moe_bf16_path_name(moe_bf16_path()));
}

// setBf16Path(name): "widen" | "dpbf16" | "amx"
Napi::Value SetBf16Path(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 1, "setBf16Path");
  if (!info[0].IsString()) throw_type(env, "setBf16Path expects a path name");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  for (moe_bf16_path_t p : {MOE_BF16_WIDEN, MOE_BF16_DPBF16, MOE_BF16_AMX}) {
    if (name == moe_bf16_path_name(p)) {
      check_status(env, moe_set_bf16_path(p));
      return env.Undefined();
    }
  }
  throw_range(env, "unknown bf16 path \"" + name + "\" (widen, dpbf16, amx)");
}

Napi::Value BlockingInfo(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), moe_blocking_info()); }

// setBlocking(kind, kc, mc, nc): moe_set_blocking (0: the model's value).
Napi::Value SetBlocking(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 4, "setBlocking");
  if (!info[0].IsString()) throw_type(env, "setBlocking expects a multiply kind name");
  int v[3];
  for (int i = 0; i < 3; ++i) {
    const int64_t x = size_arg(info, size_t(i + 1), i == 0 ? "kc" : i == 1 ? "mc" : "nc");
    if (x > (int64_t(1) << 30)) throw_range(env, "setBlocking: block size too large");
    v[i] = int(x);
  }
  check_status(env, moe_set_blocking(info[0].As<Napi::String>().Utf8Value().c_str(), v[0], v[1], v[2]));
  return env.Undefined();
}

// getBlocking(kind): {mr, nr, kc, mc, nc, set} of moe_get_blocking.
Napi::Value GetBlocking(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  expect_args(info, 1, "getBlocking");
  if (!info[0].IsString()) throw_type(env, "getBlocking expects a multiply kind name");
  int v[6];
  check_status(env, moe_get_blocking(info[0].As<Napi::String>().Utf8Value().c_str(), v));
  Napi::Object o = Napi::Object::New(env);
  const char* names[5] = {"mr", "nr", "kc", "mc", "nc"};
  for (int i = 0; i < 5; ++i) o.Set(names[i], Napi::Number::New(env, v[i]));
  o.Set("set", Napi::Boolean::New(env, v[5] != 0));
  return o;
}

Napi::Value CpuBrand(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), moe_cpu_brand()); }

Napi::Value WorkspaceBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(moe_workspace_bytes()));
}
Napi::Value ReleaseWorkspace(const Napi::CallbackInfo& info) {
  moe_workspace_release();
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("version", Napi::String::New(env, moe_version()));
  exports.Set("isa", Napi::Function::New(env, Isa, "isa"));
  exports.Set("f32ToBf16Bits", Napi::Function::New(env, F32ToBf16Bits, "f32ToBf16Bits"));
  exports.Set("roundBf16F32", Napi::Function::New(env, RoundBf16F32, "roundBf16F32"));
  exports.Set("binary", Napi::Function::New(env, Binary, "binary"));
  exports.Set("unaryF32", Napi::Function::New(env, UnaryF32, "unaryF32"));
  exports.Set("reduceF32", Napi::Function::New(env, ReduceF32, "reduceF32"));
  exports.Set("softmaxF32", Napi::Function::New(env, SoftmaxF32, "softmaxF32"));
  exports.Set("copyStrided", Napi::Function::New(env, CopyStrided, "copyStrided"));
  exports.Set("gather", Napi::Function::New(env, Gather, "gather"));
  exports.Set("scatterAddF32", Napi::Function::New(env, ScatterAddF32, "scatterAddF32"));
  exports.Set("iotaI32", Napi::Function::New(env, IotaI32, "iotaI32"));
  exports.Set("bincountI32", Napi::Function::New(env, BincountI32, "bincountI32"));
  exports.Set("adamwF32", Napi::Function::New(env, AdamwF32, "adamwF32"));
  exports.Set("sgdF32", Napi::Function::New(env, SgdF32, "sgdF32"));
  exports.Set("bestIsa", Napi::Function::New(env, BestIsa, "bestIsa"));
  exports.Set("setIsa", Napi::Function::New(env, SetIsa, "setIsa"));
  exports.Set("threads", Napi::Function::New(env, Threads, "threads"));
  exports.Set("defaultThreads", Napi::Function::New(env, DefaultThreads, "defaultThreads"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("gmm", Napi::Function::New(env, Gmm, "gmm"));
  exports.Set("tgmm", Napi::Function::New(env, Tgmm, "tgmm"));
  exports.Set("bmm", Napi::Function::New(env, Bmm, "bmm"));
  exports.Set("topk", Napi::Function::New(env, Topk, "topk"));
  exports.Set("argsortI32", Napi::Function::New(env, ArgsortI32, "argsortI32"));
  exports.Set("ffnFwd", Napi::Function::New(env, FfnFwd, "ffnFwd"));
  exports.Set("ffnFwdQuantized", Napi::Function::New(env, FfnFwdQuantized, "ffnFwdQuantized"));
  exports.Set("gmmI8", Napi::Function::New(env, GmmI8, "gmmI8"));
  exports.Set("i32FitsI8", Napi::Function::New(env, I32FitsI8, "i32FitsI8"));
  exports.Set("quantizeF32", Napi::Function::New(env, QuantizeF32, "quantizeF32"));
  exports.Set("quantizedGmm", Napi::Function::New(env, QuantizedGmm, "quantizedGmm"));
  exports.Set("ffnBwd", Napi::Function::New(env, FfnBwd, "ffnBwd"));
  exports.Set("probeFmaPeak", Napi::Function::New(env, ProbeFma, "probeFmaPeak"));
  exports.Set("probeBf16Peak", Napi::Function::New(env, ProbeBf16, "probeBf16Peak"));
  exports.Set("probeInt8Peak", Napi::Function::New(env, ProbeInt8, "probeInt8Peak"));
  exports.Set("probeAmxPeak", Napi::Function::New(env, ProbeAmx, "probeAmxPeak"));
  exports.Set("probeReadBandwidth", Napi::Function::New(env, ProbeBandwidth, "probeReadBandwidth"));
  exports.Set("probeReadBandwidthOf", Napi::Function::New(env, ProbeBandwidthOf, "probeReadBandwidthOf"));
  exports.Set("cpuHasAvx512Bf16", Napi::Function::New(env, CpuHasAvx512Bf16, "cpuHasAvx512Bf16"));
  exports.Set("cpuHasAmxBf16", Napi::Function::New(env, CpuHasAmxBf16, "cpuHasAmxBf16"));
  exports.Set("bf16Path", Napi::Function::New(env, Bf16Path, "bf16Path"));
  exports.Set("setBf16Path", Napi::Function::New(env, SetBf16Path, "setBf16Path"));
  exports.Set("blockingInfo", Napi::Function::New(env, BlockingInfo, "blockingInfo"));
  exports.Set("setBlocking", Napi::Function::New(env, SetBlocking, "setBlocking"));
  exports.Set("getBlocking", Napi::Function::New(env, GetBlocking, "getBlocking"));
  exports.Set("cpuBrand", Napi::Function::New(env, CpuBrand, "cpuBrand"));
  exports.Set("workspaceBytes", Napi::Function::New(env, WorkspaceBytes, "workspaceBytes"));
  exports.Set("releaseWorkspace", Napi::Function::New(env, ReleaseWorkspace, "releaseWorkspace"));
  moekit_napi::register_pooled(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(moekit_native, Init)
