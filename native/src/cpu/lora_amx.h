// The LoRA shrink on AMX tiles (lora_amx.cpp), which apply_adapters runs for bf16 slot banks while the bf16 dot
// mode runs on AMX, for every row (decode too), so a row's result never depends on the batch it is in.
//
// Semantics, per row r and module m with rank R (the bank's bf16 A [R, K]):
//   h[r][j] = ⊕ over 32-k steps, k ascending, of one TDPBF16PS each (x rounded to bf16 to nearest even,
//             denormals to zero, k zero-padded to 32; the order of the 32 products inside one instruction is the
//             hardware's), carried in f32
// — the trade --bf16-dot's GEMMs make. The rank factors and the expand then run as on the row kernels (f32).
#pragma once

#include <cstdint>

#include "loraplex/lora.h"

namespace loraplex {

// Whether apply_adapters shrinks `bank` here: bf16 slots, and the GEMMs' bf16 dot mode on its AMX path.
bool lora_amx_applies(const LoraBank& bank);

// One module of a shrink: A [rank, K] bf16; h of row r at h + r · ldh (rank floats).
struct LoraAmxShrink {
  const uint16_t* a;
  int rank;
  float* h;
  int64_t ldh;
};

// The shrinks of `count` modules that share x (rows ≤ 16 pointers to K floats), on the calling thread.
void lora_amx_shrink(const float* const* x, int rows, int64_t k, const LoraAmxShrink* modules, int count);

}  // namespace loraplex
