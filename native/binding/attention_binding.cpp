#include "common.h"

namespace loraplex::binding {

void register_attention(Napi::Env env, Napi::Object exports) {}

}  // namespace loraplex::binding
