// Machine peaks for the kernel benchmark: what the GEMM figures are compared against. All use every
// thread of the pool. Each call blocks for about `seconds` (or the passes over the buffer).
#pragma once

#include <cstddef>

namespace loraplex {

struct PeakFigure {
  double value;     // GFLOP/s or GB/s (1e9)
  const char* isa;  // the instruction set measured
};

// f32 FMAs on register-resident accumulators with the widest active ISA (an FMA counts 2 FLOP).
PeakFigure measure_fma_peak(double seconds);
// The f32 GEMM's register tile (gemm_tiles: the widest active ISA's, its most rows × 32 columns, k = 256) on
// operands that stay in L1: the most the f32 path's GEMM can reach, in the FLOP it counts.
PeakFigure measure_f32_tile_in_l1(double seconds);
// vdpbf16ps on register-resident accumulators (16 lanes × 2 products: 64 FLOP per instruction);
// value 0 where the active ISA lacks AVX-512 BF16.
PeakFigure measure_bf16_dot_peak(double seconds);
// AMX TDPBF16PS on tile-resident accumulators (16 × 16 × 32 MACs: 16384 FLOP per instruction); value 0
// where the active ISA lacks AVX-512 BF16 or the CPU (or Linux) gives no AMX-BF16.
PeakFigure measure_amx_bf16_peak(double seconds);
// Sum of a `bytes` buffer (first touched, then read `passes` times); best pass, bytes read per second.
PeakFigure measure_read_bandwidth(size_t bytes, int passes);
// Copy of a `bytes` buffer into another; best pass, (bytes read + bytes written) per second, as STREAM.
PeakFigure measure_copy_bandwidth(size_t bytes, int passes);

}  // namespace loraplex
