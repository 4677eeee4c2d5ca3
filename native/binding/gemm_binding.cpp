#include "common.h"

namespace loraplex::binding {

void register_gemm(Napi::Env env, Napi::Object exports) {}

}  // namespace loraplex::binding
