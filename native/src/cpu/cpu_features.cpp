#include "loraplex/cpu_features.h"

#include <sys/syscall.h>
#include <unistd.h>

namespace loraplex {

static CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  f.avx512f = f.avx2_fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
              __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  f.avx512bf16 = f.avx512f && __builtin_cpu_supports("avx512bf16");
  f.avx512vnni = f.avx512f && __builtin_cpu_supports("avx512vnni");
  f.amx_bf16 = f.avx512bf16 && __builtin_cpu_supports("amx-tile") && __builtin_cpu_supports("amx-bf16");
  f.amx_int8 = f.avx512vnni && __builtin_cpu_supports("amx-tile") && __builtin_cpu_supports("amx-int8");
#endif
  f.best = f.avx512bf16 ? Isa::Avx512Bf16 : f.avx512f ? Isa::Avx512 : f.avx2_fma ? Isa::Avx2 : Isa::Scalar;
  return f;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

// The cap is configuration, set from TypeScript (setIsa); native code reads no environment.
static Isa g_cap = Isa::Avx512Bf16;

Isa active_isa() {
  Isa best = cpu_features().best;
  return static_cast<int>(g_cap) < static_cast<int>(best) ? g_cap : best;
}

void set_isa_cap(Isa cap) { g_cap = cap; }

bool amx_tile_data_granted() {
#if defined(__x86_64__)
  static const bool granted = (cpu_features().amx_bf16 || cpu_features().amx_int8) &&
                              syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
  return granted;
#else
  return false;
#endif
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Avx512Bf16: return "avx512bf16";
  }
  return "unknown";
}

}  // namespace loraplex
