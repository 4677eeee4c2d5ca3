// The AMX-BF16 GEMM for bf16 weights (gemm_amx.cpp), run by gemm() in place of the tiles when the bf16 dot
// mode is on and the CPU and kernel allow AMX (gemm.cpp decides; see set_gemm_bf16_dot in gemm.h).
//
// Semantics: y[m, n] = (accumulate ? y[m, n] : 0) ⊕ … ⊕ bias[n], where ⊕ runs one TDPBF16PS per 32 k
// (x rounded to bf16, k zero-padded to 32; the order of the 32 products inside one instruction is the
// hardware's, not a vdpbf16ps chain), carried in f32 from one instruction to the next, k ascending.
// Each C element depends only on its x row and W column, so results never depend on M, on the other rows
// or on the thread count; decode (M = 1) goes through the same instructions.
#pragma once

#include <cstdint>

#include "loraplex/gemm.h"

namespace loraplex {

// CPUID has AMX-BF16 and Linux granted this process the tile data (arch_prctl, asked on the first call).
bool amx_bf16_usable();

// bf16 weights only; x: [m, w.cols()], y: [m, w.rows()], bias: [w.rows()] or null. Uses the thread pool.
void gemm_amx_bf16(const float* x, int64_t m, const PackedWeight& w, float* y, const float* bias, bool accumulate);

}  // namespace loraplex
