// GEMM and machine peaks, as seen from JavaScript. Every argument is checked here (types, integer
// shapes, buffer lengths) so a bad call throws a TypeError instead of reading out of bounds.
#include <cmath>
#include <new>
#include <string>

#include "common.h"
#include "gemm_args.h"
#include "loraplex/gemm.h"
#include "loraplex/peak.h"

namespace loraplex::binding {
namespace {

// Tags the externals made by gemmPackWeight, so gemm never trusts any other object as a weight.
constexpr napi_type_tag kPackedWeightTag = {0x6c6f7261706c6578ULL, 0x67656d6d70616b31ULL};

// gemmPackWeight(dtype: 'f32'|'f16'|'bf16', rows: N, cols: K, data: Float32Array|Uint16Array [N·K]) → handle
Napi::Value pack_weight(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    fail(env, "gemmPackWeight: dtype must be 'f32', 'f16' or 'bf16'");
    return env.Undefined();
  }
  const std::string name = info[0].As<Napi::String>();
  WeightDType dtype;
  if (name == "f32") {
    dtype = WeightDType::F32;
  } else if (name == "f16") {
    dtype = WeightDType::F16;
  } else if (name == "bf16") {
    dtype = WeightDType::Bf16;
  } else {
    fail(env, "gemmPackWeight: dtype must be 'f32', 'f16' or 'bf16', got '" + name + "'");
    return env.Undefined();
  }
  const int64_t rows = dimension(info, 1, "rows");
  if (rows < 0) return env.Undefined();
  const int64_t cols = dimension(info, 2, "cols");
  if (cols < 0) return env.Undefined();
  const void* data = nullptr;
  size_t length = 0;
  if (dtype == WeightDType::F32) {
    auto s = f32(info, 3, "data (Float32Array for f32)");
    data = s.data, length = s.length;
  } else {
    auto s = u16(info, 3, "data (Uint16Array of bit patterns for f16/bf16)");
    data = s.data, length = s.length;
  }
  if (env.IsExceptionPending()) return env.Undefined();
  if (!check_length(env, "data", length, rows * cols, "rows · cols")) return env.Undefined();
  PackedWeight* w = nullptr;
  try {
    w = new PackedWeight(dtype, rows, cols, data);
  } catch (const std::bad_alloc&) {
    Napi::RangeError::New(env, "gemmPackWeight: out of memory packing a " + std::to_string(rows) + " × " +
                                   std::to_string(cols) + " " + name + " weight")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int64_t bytes = static_cast<int64_t>(w->bytes());
  auto handle = Napi::External<PackedWeight>::New(env, w, [bytes](Napi::Env e, PackedWeight* p) {
    Napi::MemoryManagement::AdjustExternalMemory(e, -bytes);
    delete p;
  });
  handle.TypeTag(&kPackedWeightTag);
  Napi::MemoryManagement::AdjustExternalMemory(env, bytes);
  return handle;
}

// gemm(x: Float32Array [M·K], w: handle, y: Float32Array [M·N], m, bias?: Float32Array [N] | null, accumulate?)
Napi::Value run_gemm(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() < 2 || !info[1].IsExternal() ||
      !info[1].As<Napi::External<PackedWeight>>().CheckTypeTag(&kPackedWeightTag)) {
    fail(env, "gemm: argument 'w' must be a weight made by gemmPackWeight");
    return env.Undefined();
  }
  const PackedWeight& w = *info[1].As<Napi::External<PackedWeight>>().Data();
  GemmOperands o;
  if (!read_gemm_operands(info, "gemm", w.rows(), w.cols(), o)) return env.Undefined();
  gemm(o.x.data, o.m, w, o.y.data, o.bias.data, o.accumulate);
  return env.Undefined();
}

// gemmSetBf16Dot(enabled: boolean, amx?: boolean = true) → whether bf16 weights now use bf16 dot products
// (needs AVX-512 BF16 active); amx false keeps them on the vdpbf16ps tiles where AMX exists.
Napi::Value set_bf16_dot(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() < 1 || !info[0].IsBoolean()) {
    fail(env, "gemmSetBf16Dot(enabled, amx?): enabled must be a boolean");
    return env.Undefined();
  }
  const bool amx_given = info.Length() >= 2 && !info[1].IsUndefined();
  if (amx_given && !info[1].IsBoolean()) {
    fail(env, "gemmSetBf16Dot(enabled, amx?): amx must be a boolean or undefined");
    return env.Undefined();
  }
  set_gemm_bf16_dot(info[0].As<Napi::Boolean>().Value(), !amx_given || info[1].As<Napi::Boolean>().Value());
  return Napi::Boolean::New(env, gemm_bf16_dot_active());
}

Napi::Value bf16_dot_active(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), gemm_bf16_dot_active());
}

// gemmBf16DotPath() → 'amx' | 'vdpbf16ps' | 'off': what bf16 weights run through now.
Napi::Value bf16_dot_path(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), bf16_dot_path_name(gemm_bf16_dot_path()));
}

Napi::Value figure(const Napi::Env& env, PeakFigure f) {
  auto o = Napi::Object::New(env);
  o.Set("value", f.value);
  o.Set("isa", f.isa);
  return o;
}

// measureFmaPeak(seconds) / measureBf16DotPeak(seconds) / measureAmxBf16Peak(seconds) → { value: GFLOP/s, isa }
Napi::Value fma_peak(const Napi::CallbackInfo& info) {
  const double s = number(info, 0, "seconds");
  if (info.Env().IsExceptionPending()) return info.Env().Undefined();
  return figure(info.Env(), measure_fma_peak(s > 0 ? s : 0.5));
}

// measureF32TileInL1(seconds) → { value: GFLOP/s, isa }: the f32 GEMM's tile on L1-resident operands.
Napi::Value f32_tile_in_l1(const Napi::CallbackInfo& info) {
  const double s = number(info, 0, "seconds");
  if (info.Env().IsExceptionPending()) return info.Env().Undefined();
  return figure(info.Env(), measure_f32_tile_in_l1(s > 0 ? s : 0.5));
}

Napi::Value bf16_dot_peak(const Napi::CallbackInfo& info) {
  const double s = number(info, 0, "seconds");
  if (info.Env().IsExceptionPending()) return info.Env().Undefined();
  return figure(info.Env(), measure_bf16_dot_peak(s > 0 ? s : 0.5));
}

Napi::Value amx_bf16_peak(const Napi::CallbackInfo& info) {
  const double s = number(info, 0, "seconds");
  if (info.Env().IsExceptionPending()) return info.Env().Undefined();
  return figure(info.Env(), measure_amx_bf16_peak(s > 0 ? s : 0.5));
}

// measureReadBandwidth(bytes, passes) / measureCopyBandwidth(bytes, passes) → { value: GB/s, isa }
template <PeakFigure (*measure)(size_t, int)>
Napi::Value bandwidth(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const int64_t bytes = dimension(info, 0, "bytes", 64.0 * (1ull << 30));
  if (bytes < 0) return env.Undefined();
  const int64_t passes = dimension(info, 1, "passes", 1000);
  if (passes < 0) return env.Undefined();
  try {
    return figure(env, measure(static_cast<size_t>(bytes), passes > 0 ? static_cast<int>(passes) : 1));
  } catch (const std::bad_alloc&) {
    Napi::RangeError::New(env, "bandwidth: cannot allocate " + std::to_string(bytes) + " bytes")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
}

}  // namespace

void register_gemm(Napi::Env env, Napi::Object exports) {
  exports.Set("gemmPackWeight", Napi::Function::New(env, pack_weight));
  exports.Set("gemm", Napi::Function::New(env, run_gemm));
  exports.Set("gemmSetBf16Dot", Napi::Function::New(env, set_bf16_dot));
  exports.Set("gemmBf16DotActive", Napi::Function::New(env, bf16_dot_active));
  exports.Set("gemmBf16DotPath", Napi::Function::New(env, bf16_dot_path));
  exports.Set("measureFmaPeak", Napi::Function::New(env, fma_peak));
  exports.Set("measureF32TileInL1", Napi::Function::New(env, f32_tile_in_l1));
  exports.Set("measureBf16DotPeak", Napi::Function::New(env, bf16_dot_peak));
  exports.Set("measureAmxBf16Peak", Napi::Function::New(env, amx_bf16_peak));
  exports.Set("measureReadBandwidth", Napi::Function::New(env, bandwidth<measure_read_bandwidth>));
  exports.Set("measureCopyBandwidth", Napi::Function::New(env, bandwidth<measure_copy_bandwidth>));
}

}  // namespace loraplex::binding
