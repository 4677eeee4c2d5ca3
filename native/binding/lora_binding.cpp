#include "common.h"

namespace loraplex::binding {

void register_lora(Napi::Env env, Napi::Object exports) {}

}  // namespace loraplex::binding
