// The check and bench groups, one pair per kernel area; main_check.cpp / main_bench.cpp run them in order.
#pragma once
#include "harness.h"

namespace loraplex::cuda {
void check_lora(harness::Harness& h);
void check_attention(harness::Harness& h);
void check_ops(harness::Harness& h);       // ops, embedding, gather, sampling
void check_gemm(harness::Harness& h);
void bench_peaks(harness::Harness& h);     // HBM copy bandwidth; sets h.hbm_gbs (bench/bench_peaks.cu)
void bench_gemm(harness::Harness& h);      // bf16 tensor peak through cuBLAS; sets h.bf16_tflops first
void bench_lora(harness::Harness& h);
void bench_attention(harness::Harness& h);
void bench_ops(harness::Harness& h);
}  // namespace loraplex::cuda
