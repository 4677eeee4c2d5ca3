// JavaScript face of ops.h and sampling.h: argument conversion and checks only (TypeError/RangeError, never a crash).
#include <cmath>
#include <vector>

#include "common.h"
#include "loraplex/ops.h"
#include "loraplex/sampling.h"

namespace loraplex::binding {
namespace {

// Reads arguments in order and stops at the first bad one: throwing a second JS exception while one is
// pending is fatal under NAPI_DISABLE_CPP_EXCEPTIONS. (Same reader as attention_binding.cpp.)
struct Args {
  const Napi::CallbackInfo& info;
  bool ok = true;

  bool pending() { return ok = ok && !info.Env().IsExceptionPending(); }
  template <typename T>
  Span<T> array(size_t i, napi_typedarray_type type, const char* name) {
    Span<T> s;
    if (ok) s = typed_array<T>(info, i, type, name);
    pending();
    return s;
  }
  Span<float> f32s(size_t i, const char* name) { return array<float>(i, napi_float32_array, name); }
  Span<int32_t> i32s(size_t i, const char* name) { return array<int32_t>(i, napi_int32_array, name); }
  int64_t whole(size_t i, const char* name, int64_t lo, int64_t hi) {
    if (!ok) return 0;
    const double d = number(info, i, name);
    if (!pending()) return 0;
    if (!(d >= double(lo) && d <= double(hi)) || d != std::floor(d)) {
      fail_range(std::string("argument '") + name + "' must be a whole number in [" + std::to_string(lo) + ", " +
                 std::to_string(hi) + "]");
      return 0;
    }
    return int64_t(d);
  }
  // Throws a RangeError with `err` unless it is empty; returns whether the call may proceed.
  bool check(const std::string& err) {
    if (ok && !err.empty()) fail_range(err);
    return ok;
  }
  void fail_range(const std::string& err) {
    ok = false;
    Napi::RangeError::New(info.Env(), err).ThrowAsJavaScriptException();
  }
};

constexpr int64_t kMaxInt = 0x7fffffff;
constexpr int64_t kMaxLength = int64_t(1) << 40;

bool overlaps(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  const auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return pa < pb + b_bytes && pb < pa + a_bytes;
}

// rmsNorm(x, weight, out, rows, dim, eps)
Napi::Value rms_norm_js(const Napi::CallbackInfo& info) {
  Args a{info};
  auto x = a.f32s(0, "x");
  auto weight = a.f32s(1, "weight");
  auto out = a.f32s(2, "out");
  const int64_t rows = a.whole(3, "rows", 0, kMaxInt);
  const int64_t dim = a.whole(4, "dim", 1, kMaxInt);
  const double eps = a.ok ? number(info, 5, "eps") : 0;
  if (!a.pending()) return info.Env().Undefined();
  if (!(eps >= 0) || !std::isfinite(eps)) a.check("eps must be finite and ≥ 0");
  if (int64_t(x.length) < rows * dim || int64_t(out.length) < rows * dim)
    a.check("x and out must hold rows·dim values");
  if (int64_t(weight.length) < dim) a.check("weight must hold dim values");
  if (a.ok) rms_norm(x.data, weight.data, out.data, rows, dim, float(eps));
  return info.Env().Undefined();
}

// siluMul / geluTanhMul(gateUp, out, rows, inter): the same arguments, another activation of the gate.
template <void (*GatedMul)(const float*, float*, int64_t, int64_t)>
Napi::Value gated_mul_js(const Napi::CallbackInfo& info) {
  Args a{info};
  auto gate_up = a.f32s(0, "gateUp");
  auto out = a.f32s(1, "out");
  const int64_t rows = a.whole(2, "rows", 0, kMaxInt);
  const int64_t inter = a.whole(3, "inter", 0, kMaxInt);
  if (!a.ok) return info.Env().Undefined();
  if (int64_t(gate_up.length) < rows * 2 * inter) a.check("gateUp must hold rows·2·inter values");
  if (int64_t(out.length) < rows * inter) a.check("out must hold rows·inter values");
  if (a.ok && overlaps(gate_up.data, sizeof(float) * rows * 2 * inter, out.data, sizeof(float) * rows * inter))
    a.check("out must not overlap gateUp");
  if (a.ok) GatedMul(gate_up.data, out.data, rows, inter);
  return info.Env().Undefined();
}

// addInPlace(x, y, length)
Napi::Value add_in_place_js(const Napi::CallbackInfo& info) {
  Args a{info};
  auto x = a.f32s(0, "x");
  auto y = a.f32s(1, "y");
  const int64_t length = a.whole(2, "length", 0, kMaxLength);
  if (!a.ok) return info.Env().Undefined();
  if (int64_t(x.length) < length || int64_t(y.length) < length) a.check("x and y must hold length values");
  if (a.ok) add_in_place(x.data, y.data, length);
  return info.Env().Undefined();
}

// rmsNormHeads(x, rows, rowStride, offset, numHeads, headDim, weight, eps)
Napi::Value rms_norm_heads_js(const Napi::CallbackInfo& info) {
  Args a{info};
  auto x = a.f32s(0, "x");
  const int64_t rows = a.whole(1, "rows", 0, kMaxInt);
  const int64_t stride = a.whole(2, "rowStride", 0, kMaxLength);
  const int64_t offset = a.whole(3, "offset", 0, kMaxLength);
  const int64_t heads = a.whole(4, "numHeads", 0, kMaxInt);
  const int64_t head_dim = a.whole(5, "headDim", 1, kMaxInt);
  auto weight = a.f32s(6, "weight");
  const double eps = a.ok ? number(info, 7, "eps") : 0;
  if (!a.pending()) return info.Env().Undefined();
  if (!(eps >= 0) || !std::isfinite(eps)) a.check("eps must be finite and ≥ 0");
  const int64_t span = heads * head_dim;
  if (offset + span > stride) a.check("offset + numHeads·headDim must fit in rowStride");
  if (rows > 0 && int64_t(x.length) < (rows - 1) * stride + offset + span)
    a.check("x must hold (rows - 1)·rowStride + offset + numHeads·headDim values");
  if (int64_t(weight.length) < head_dim) a.check("weight must hold headDim values");
  if (a.ok && overlaps(weight.data, sizeof(float) * head_dim, x.data, sizeof(float) * x.length))
    a.check("weight must not overlap x");
  if (a.ok) rms_norm_heads(x.data, rows, stride, offset, heads, head_dim, weight.data, float(eps));
  return info.Env().Undefined();
}

// softcapInPlace(x, length, cap)
Napi::Value softcap_in_place_js(const Napi::CallbackInfo& info) {
  Args a{info};
  auto x = a.f32s(0, "x");
  const int64_t length = a.whole(1, "length", 0, kMaxLength);
  const double cap = a.ok ? number(info, 2, "cap") : 0;
  if (!a.pending()) return info.Env().Undefined();
  if (!(cap > 0) || !std::isfinite(float(cap))) a.check("cap must be finite and > 0");
  if (int64_t(x.length) < length) a.check("x must hold length values");
  if (a.ok) softcap_in_place(x.data, length, float(cap));
  return info.Env().Undefined();
}

// scaleInPlace(x, length, factor)
Napi::Value scale_in_place_js(const Napi::CallbackInfo& info) {
  Args a{info};
  auto x = a.f32s(0, "x");
  const int64_t length = a.whole(1, "length", 0, kMaxLength);
  const double factor = a.ok ? number(info, 2, "factor") : 0;
  if (!a.pending()) return info.Env().Undefined();
  if (!std::isfinite(float(factor))) a.check("factor must be finite (as f32)");
  if (int64_t(x.length) < length) a.check("x must hold length values");
  if (a.ok) scale_in_place(x.data, length, float(factor));
  return info.Env().Undefined();
}

// embedding(ids, numTokens, dtype, vocab, dim, table, out); table is a Float32Array (f32) or Uint16Array (f16/bf16)
Napi::Value embedding_js(const Napi::CallbackInfo& info) {
  Args a{info};
  auto ids = a.i32s(0, "ids");
  const int64_t tokens = a.whole(1, "numTokens", 0, kMaxInt);
  if (a.ok && (info.Length() < 3 || !info[2].IsString())) {
    fail(info.Env(), "argument 'dtype' must be 'f32', 'f16' or 'bf16'");
    a.ok = false;
  }
  const std::string dtype_name = a.ok ? std::string(info[2].As<Napi::String>()) : "";
  const int64_t vocab = a.whole(3, "vocab", 1, kMaxInt);
  const int64_t dim = a.whole(4, "dim", 1, kMaxInt);
  if (!a.ok) return info.Env().Undefined();
  TableDType dtype;
  const void* table;
  size_t table_length;
  if (dtype_name == "f32") {
    auto t = a.f32s(5, "table (f32 → Float32Array)");
    dtype = TableDType::F32, table = t.data, table_length = t.length;
  } else if (dtype_name == "f16" || dtype_name == "bf16") {
    auto t = a.array<uint16_t>(5, napi_uint16_array, "table (f16/bf16 → Uint16Array)");
    dtype = dtype_name == "f16" ? TableDType::F16 : TableDType::Bf16, table = t.data, table_length = t.length;
  } else {
    a.check("dtype must be 'f32', 'f16' or 'bf16', got '" + dtype_name + "'");
    return info.Env().Undefined();
  }
  auto out = a.f32s(6, "out");
  if (!a.ok) return info.Env().Undefined();
  if (int64_t(ids.length) < tokens) a.check("ids must hold numTokens values");
  if (int64_t(table_length) < vocab * dim) a.check("table must hold vocab·dim values");
  if (int64_t(out.length) < tokens * dim) a.check("out must hold numTokens·dim values");
  if (a.ok && a.check(check_embedding_ids(ids.data, tokens, vocab)))
    embedding(ids.data, tokens, dtype, table, dim, out.data);
  return info.Env().Undefined();
}

// sample(logits, vocab, params, numRows, out); params [numRows·4] = (temperature, topK, topP, uniform) per row
Napi::Value sample_js(const Napi::CallbackInfo& info) {
  Args a{info};
  auto logits = a.f32s(0, "logits");
  const int64_t vocab = a.whole(1, "vocab", 1, kMaxInt);
  auto params = a.array<double>(2, napi_float64_array, "params");
  const int64_t rows = a.whole(3, "numRows", 0, kMaxInt);
  auto out = a.i32s(4, "out");
  if (!a.ok) return info.Env().Undefined();
  if (int64_t(logits.length) < rows * vocab) a.check("logits must hold numRows·vocab values");
  if (int64_t(params.length) < rows * 4) a.check("params must hold 4 values per row");
  if (int64_t(out.length) < rows) a.check("out must hold numRows values");
  if (!a.ok) return info.Env().Undefined();
  std::vector<SamplingParams> sp(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows && a.ok; ++r) {
    const double* p = params.data + 4 * r;
    sp[r] = {p[0], p[1], p[2], p[3]};
    a.check(check_sampling_params(sp[r], r));
  }
  if (a.ok) sample(logits.data, vocab, sp.data(), rows, out.data);
  return info.Env().Undefined();
}

// logSoftmax(logits, vocab, out)
Napi::Value log_softmax_js(const Napi::CallbackInfo& info) {
  Args a{info};
  auto logits = a.f32s(0, "logits");
  const int64_t vocab = a.whole(1, "vocab", 1, kMaxInt);
  auto out = a.f32s(2, "out");
  if (!a.ok) return info.Env().Undefined();
  if (int64_t(logits.length) < vocab || int64_t(out.length) < vocab) a.check("logits and out must hold vocab values");
  if (a.ok) log_softmax(logits.data, vocab, out.data);
  return info.Env().Undefined();
}

}  // namespace

void register_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("rmsNorm", Napi::Function::New(env, rms_norm_js));
  exports.Set("siluMul", Napi::Function::New(env, gated_mul_js<silu_mul>));
  exports.Set("addInPlace", Napi::Function::New(env, add_in_place_js));
  exports.Set("rmsNormHeads", Napi::Function::New(env, rms_norm_heads_js));
  exports.Set("geluTanhMul", Napi::Function::New(env, gated_mul_js<gelu_tanh_mul>));
  exports.Set("softcapInPlace", Napi::Function::New(env, softcap_in_place_js));
  exports.Set("scaleInPlace", Napi::Function::New(env, scale_in_place_js));
  exports.Set("embedding", Napi::Function::New(env, embedding_js));
  exports.Set("sample", Napi::Function::New(env, sample_js));
  exports.Set("logSoftmax", Napi::Function::New(env, log_softmax_js));
}

}  // namespace loraplex::binding
