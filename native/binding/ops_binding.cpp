#include "common.h"

namespace loraplex::binding {

void register_ops(Napi::Env env, Napi::Object exports) {}

}  // namespace loraplex::binding
