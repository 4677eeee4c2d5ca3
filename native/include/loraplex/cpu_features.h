// Runtime CPU dispatch: kernels are compiled for several ISAs (GCC target attributes)
// and the best one the running CPU supports is chosen once, at load time.
#pragma once

namespace loraplex {

enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2, Avx512Bf16 = 3 };

struct CpuFeatures {
  bool avx2_fma = false;
  bool avx512f = false;     // plus avx512bw/vl/dq
  bool avx512bf16 = false;  // vdpbf16ps
  bool avx512vnni = false;  // vpdpbusd (the quantized GEMM's int8 dots, on the AVX-512 paths)
  bool amx_bf16 = false;    // amx-tile + amx-bf16 in CPUID (Linux must still grant the tile state: gemm_amx.h)
  bool amx_int8 = false;    // amx-tile + amx-int8 in CPUID (the Q4_K GEMM's batches: qgemm_amx.h)
  Isa best = Isa::Scalar;
};

// Detected once; set_isa_cap (--isa, configureNative; tests of every path) caps the choice.
const CpuFeatures& cpu_features();
Isa active_isa();
void set_isa_cap(Isa cap);  // force a lower path; never raises above what the CPU has
const char* isa_name(Isa isa);

// Linux hands out the 8 KiB AMX tile state only on request (ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA); the
// permission is the process's, so every pool thread has it. Asked once; false where refused or without AMX.
bool amx_tile_data_granted();

}  // namespace loraplex
