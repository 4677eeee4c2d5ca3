// Token sampling on the device, with the semantics of the CPU sampler (../sampling.h): greedy (argmax, lowest
// index on ties), temperature, top-k and top-p with the caller's uniform draw per row.
#pragma once

#include "../sampling.h"  // SamplingParams
#include "common.h"

namespace loraplex::cuda {

// logits [*, vocab] device; row_index device [rows] (which logits row each sampled row reads); params device
// [rows]; out device [rows]. May overwrite the logits rows it reads.
void sample(float* logits, int64_t vocab, const int32_t* row_index, const SamplingParams* params, int64_t rows,
            int32_t* out, cudaStream_t stream);

}  // namespace loraplex::cuda
