#include "common.h"

namespace loraplex::binding {

static Napi::Object init(Napi::Env env, Napi::Object exports) {
  register_system(env, exports);
  register_gemm(env, exports);
  register_qgemm(env, exports);
  register_lora(env, exports);
  register_attention(env, exports);
  register_ops(env, exports);
  return exports;
}

}  // namespace loraplex::binding

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  return loraplex::binding::init(env, exports);
}

NODE_API_MODULE(loraplex_native, InitAddon)
