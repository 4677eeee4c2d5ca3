// Glue shared by the binding files: argument access with clear TypeErrors.
// The binding layer only converts arguments; all arithmetic lives in native/src/cpu.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace loraplex::binding {

template <typename T>
struct Span {
  T* data = nullptr;
  size_t length = 0;  // in elements
};

inline bool fail(const Napi::Env& env, const std::string& msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return false;
}

template <typename T>
inline Span<T> typed_array(const Napi::CallbackInfo& info, size_t index, napi_typedarray_type type,
                           const char* name) {
  Span<T> s;
  if (index >= info.Length() || !info[index].IsTypedArray() ||
      info[index].As<Napi::TypedArray>().TypedArrayType() != type) {
    fail(info.Env(), std::string("argument '") + name + "' must be a typed array of the expected type");
    return s;
  }
  auto ta = info[index].As<Napi::TypedArray>();
  auto buffer = ta.ArrayBuffer();
  s.data = reinterpret_cast<T*>(static_cast<uint8_t*>(buffer.Data()) + ta.ByteOffset());
  s.length = ta.ElementLength();
  return s;
}

inline Span<float> f32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return typed_array<float>(info, i, napi_float32_array, name);
}
inline Span<uint16_t> u16(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return typed_array<uint16_t>(info, i, napi_uint16_array, name);
}
inline Span<int32_t> i32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return typed_array<int32_t>(info, i, napi_int32_array, name);
}

inline int64_t integer(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsNumber()) {
    fail(info.Env(), std::string("argument '") + name + "' must be a number");
    return 0;
  }
  return info[i].As<Napi::Number>().Int64Value();
}

inline double number(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsNumber()) {
    fail(info.Env(), std::string("argument '") + name + "' must be a number");
    return 0;
  }
  return info[i].As<Napi::Number>().DoubleValue();
}

// Each kernel group registers its functions on the addon's exports.
void register_system(Napi::Env env, Napi::Object exports);
void register_gemm(Napi::Env env, Napi::Object exports);
void register_qgemm(Napi::Env env, Napi::Object exports);
void register_lora(Napi::Env env, Napi::Object exports);
void register_attention(Napi::Env env, Napi::Object exports);
void register_ops(Napi::Env env, Napi::Object exports);

}  // namespace loraplex::binding
