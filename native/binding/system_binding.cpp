// CPU features and the thread pool, as seen from JavaScript.
#include "common.h"
#include "loraplex/cpu_features.h"
#include "loraplex/thread_pool.h"

namespace loraplex::binding {

static Napi::Value cpu_info(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const auto& f = cpu_features();
  auto o = Napi::Object::New(env);
  o.Set("avx2Fma", f.avx2_fma);
  o.Set("avx512", f.avx512f);
  o.Set("avx512Bf16", f.avx512bf16);
  o.Set("avx512Vnni", f.avx512vnni);
  o.Set("amxBf16", f.amx_bf16);
  o.Set("best", isa_name(f.best));
  o.Set("active", isa_name(active_isa()));
  o.Set("threads", pool_threads());
  return o;
}

static Napi::Value set_isa(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) {
    fail(info.Env(), "setIsa(name): name must be scalar|avx2|avx512|avx512bf16");
    return info.Env().Undefined();
  }
  std::string s = info[0].As<Napi::String>();
  Isa cap = s == "scalar" ? Isa::Scalar : s == "avx2" ? Isa::Avx2 : s == "avx512" ? Isa::Avx512 : Isa::Avx512Bf16;
  set_isa_cap(cap);
  return Napi::String::New(info.Env(), isa_name(active_isa()));
}

static Napi::Value set_threads(const Napi::CallbackInfo& info) {
  int64_t n = integer(info, 0, "threads");
  if (info.Env().IsExceptionPending()) return info.Env().Undefined();
  set_pool_threads(static_cast<int>(n));
  return Napi::Number::New(info.Env(), pool_threads());
}

void register_system(Napi::Env env, Napi::Object exports) {
  exports.Set("cpuInfo", Napi::Function::New(env, cpu_info));
  exports.Set("setIsa", Napi::Function::New(env, set_isa));
  exports.Set("setThreads", Napi::Function::New(env, set_threads));
}

}  // namespace loraplex::binding
