// The AMX-INT8 Q4_K GEMM (qgemm_amx.cpp), run by qgemm() for batches of x rows where the CPU has AMX-INT8,
// Linux grants the tile state and the VNNI kernels would run otherwise: bit for bit their results
// (qgemm.h's Semantics), from two TDPBSUD chains a super-block instead of vpdpbusd on 4-row tiles.
#pragma once

#include <cstdint>

#include "loraplex/qgemm.h"
#include "qgemm_kernels.h"

namespace loraplex {

// CPUID has AMX-INT8 and Linux granted this process the tile data.
bool amx_int8_usable();

// Q4_K weights only; qx: x quantized for Q4_K (m rows). y: [m, w.rows()], bias: [w.rows()] or null. Uses the thread pool.
void qgemm_amx_q4k(const QuantizedX& qx, int64_t m, const QuantWeight& w, float* y, const float* bias,
                   bool accumulate);

}  // namespace loraplex
