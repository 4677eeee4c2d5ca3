// LoRA over a bank of adapter slots: apply_adapters runs a step's rows (each with its slot, or -1 for the
// base) through one or more modules, over a row layout built once per step (LoraRowLayout).
//
// Shapes: x [M, K] contiguous; slot s, module m: A [rank, K] (lora_A), Bt [rank, N_m] (lora_B transposed);
// a call targets one or more modules m, each writing its rows at y[t * stride + offset_m + n], n < N_m.
// Storage: a bank holds A and Bt as f32, or as bf16 or f16 (rounded to nearest even once, in set_slot) to
// halve the bytes decode reads. 16-bit weights are widened to f32 exactly on load (bf16: a shift; f16: F16C
// where the ISA has it, else bit manipulation); x, h, y, scale and accumulation stay f32, and the order of
// operations is the f32 path's, so a 16-bit bank computes bitwise what an f32 bank holding the rounded
// weights would. An int8 bank (below) quarters them, with per-row scales.
// Semantics: for each module m of the call, for each row t whose slot a ≥ 0 targets m (rank > 0):
//   h[j]               = Σ_k x[t, k] · A_a,m[j, k]             (shrink, j < rank)
//   h[j]               = h[j] · λd_a,m[j]   only where the slot has a rank scale for m (VeRA's λd; f32 product)
//   c_n                = f32(scale_a,m · λb_a,m[n]) where the slot has a column scale for m (VeRA's λb;
//                        computed once, in set_slot), else scale_a,m
//   y[t, offset_m + n] = fma(Σ_j h[j] · Bt_a,m[j, n], c_n, y[t, offset_m + n])   (expand; the scalar ISA
//                        rounds the product, then the sum)
//   y[t, offset_m + n] *= s_a,m[n]     only where the slot has an output scale for m (DoRA: the magnitude over
//                                      the weight norm per column), i.e. y = s · (y + delta); s stays f32
// λd, λb and s stay f32 in every bank dtype.
// An int8 bank (a precision trade for decode's bytes: a quarter of f32's) stores each row of A and of Bt as int8
// values q with one f32 scale per row (sa[j] for A's row j, sb[j] for Bt's row j), quantized in set_slot:
//   amax = max_i |M[j, i]|, s = f32(amax / 127),
//   q = s > 0 ? clamp(round_nearest_even(f32(M[j, i] / s)), ±127) : 0;
//   a row holding a NaN or an infinity gets s = NaN and q = 0 (non-finite weights give non-finite outputs, as in
//   the other dtypes). The kernels read q widened exactly to f32, and the scales enter through h:
//   h[j] = f32(Σ_k x[t, k] · qa[j, k]) · sa[j]   (one f32 product), then · λd[j] where given, then · sb[j]
//   y[t, offset_m + n] = fma(Σ_j h[j] · qb[j, n], c_n, y[t, offset_m + n])
// Shared factors (VeRA, Tied-LoRA): modules of one adapter whose A or Bt is the same region of the adapter's
// weights (same offset, element count and rank) share one copy in the slot, so decode reads it once per step while
// it stays in cache.
//
// Batch invariance: a row's result is bitwise the same alone or batched with other rows (of its slot or
// others), adapters or modules, with any thread count: every element is reduced in a fixed order (k
// ascending in SIMD-width lanes, then a fixed lane reduction; j ascending), whatever block or task the row
// lands in. Results differ between ISAs, not within one.
//
// Threading: the bank is not locked. set_slot/clear_slot must not run while a kernel reads the bank;
// callers (the JS thread that owns the bank) issue them between steps, on the thread that runs the kernels.
// Arguments are validated by the binding (native/binding/lora_binding.cpp); these functions trust them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace loraplex {

constexpr int32_t kMaxLoraRank = 1024;

// How a bank stores adapter matrices.
enum class LoraDtype { F32, Bf16, F16, Int8 };

// One module of one slot, pointing into the slot's aligned copy of the adapter.
struct LoraModuleWeights {
  int32_t rank = 0;  // 0: the adapter does not target this module
  int32_t in_features = 0;   // K
  int32_t out_features = 0;  // N
  float scale = 0.0f;
  const void* a = nullptr;   // [rank, K], float, bf16 / f16 bits (uint16_t) or int8_t as the bank's dtype
  const void* bt = nullptr;  // [rank, N], likewise
  const float* a_scale = nullptr;   // [rank] in an int8 bank (A's row scales sa), else nullptr
  const float* bt_scale = nullptr;  // [rank] in an int8 bank (Bt's row scales sb), else nullptr
  const float* out_scale = nullptr;  // [N] or nullptr: y = out_scale · (y + delta) (DoRA), f32 in every bank
  const float* rank_scale = nullptr;    // [rank] or nullptr: h[j] *= rank_scale[j] after the shrink (VeRA's λd)
  const float* column_scale = nullptr;  // [N] or nullptr: c_n = column_scale[n] = f32(scale · λb[n]) (VeRA)
};

// f32 → bf16 bits, round to nearest even; NaN stays a (quiet) NaN. Done in software, not with
// vcvtneps2bf16, which flushes subnormals to zero (the reference, src/model/dtype.ts, keeps them).
inline uint16_t f32_to_bf16(uint32_t bits) {
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

// f32 → f16 bits, round to nearest even, subnormals kept, overflow to infinity, NaN a quiet NaN: bitwise
// f32ToF16 of src/kernels/dtype.ts (the reference). In software: vcvtps2ph depends on MXCSR's modes.
inline uint16_t f32_to_f16(uint32_t bits) {
  const uint32_t sign = (bits >> 16) & 0x8000u;
  const uint32_t exp = (bits >> 23) & 0xffu;
  uint32_t mant = bits & 0x7fffffu;
  if (exp == 0xffu) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));
  int32_t e = static_cast<int32_t>(exp) - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {  // an f16 subnormal (or zero): the rounding carries into the exponent when it must
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const int shift = 14 - e;
    const uint32_t half = 1u << (shift - 1);
    return static_cast<uint16_t>(sign | ((mant + half - 1u + ((mant >> shift) & 1u)) >> shift));
  }
  const uint32_t rounded = mant + 0xfffu + ((mant >> 13) & 1u);
  if (rounded & 0x800000u) {
    mant = 0;
    e += 1;
    if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  } else {
    mant = rounded;
  }
  return static_cast<uint16_t>(sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13));
}

// A PackedAdapter as borrowed from JS; every per-module array has num_modules entries.
struct LoraAdapterView {
  const float* weights = nullptr;
  size_t weights_length = 0;
  const int32_t* rank = nullptr;
  const int32_t* offset_a = nullptr;
  const int32_t* offset_b = nullptr;
  const float* scale = nullptr;
  const int32_t* in_features = nullptr;
  const int32_t* out_features = nullptr;
  const float* out_scale = nullptr;            // optional: module m's [N] at offset_out_scale[m] ≥ 0
  const int32_t* offset_out_scale = nullptr;   // [num_modules] (-1: none), or nullptr for no module
  const float* rank_scale = nullptr;           // optional: module m's [rank] at offset_rank_scale[m] ≥ 0
  const int32_t* offset_rank_scale = nullptr;  // [num_modules] (-1: none), or nullptr for no module
  const float* column_scale = nullptr;           // optional: module m's [N] at offset_column_scale[m] ≥ 0
  const int32_t* offset_column_scale = nullptr;  // [num_modules] (-1: none), or nullptr for no module
};

class LoraBank {
 public:
  LoraBank(int32_t num_slots, int32_t num_modules, LoraDtype dtype = LoraDtype::F32);

  LoraDtype dtype() const { return dtype_; }
  int32_t num_slots() const { return num_slots_; }
  int32_t num_modules() const { return num_modules_; }
  bool occupied(int32_t slot) const { return slots_[slot].occupied; }
  const LoraModuleWeights& module(int32_t slot, int32_t module) const { return slots_[slot].modules[module]; }
  size_t bytes() const { return bytes_; }  // adapter weights held, for the GC's external-memory accounting

  // Copies every targeted module's A and Bt into one 64-byte-aligned block (the view can be dropped),
  // rounding them to bf16 / f16 in a 16-bit bank, quantizing each row in an int8 bank (its scales beside it); a
  // region of the weights several modules point at (same offset, element count and rank) is copied, and counted
  // in bytes(), once. Vectors stay f32; column scales are
  // stored premultiplied by the module's scale.
  void set_slot(int32_t slot, const LoraAdapterView& adapter);
  void clear_slot(int32_t slot);

 private:
  struct FreeDeleter {
    void operator()(void* p) const;
  };
  struct Slot {
    bool occupied = false;
    std::vector<LoraModuleWeights> modules;  // [num_modules] when occupied
    std::unique_ptr<void, FreeDeleter> storage;
    size_t bytes = 0;
  };
  LoraDtype dtype_;
  int32_t num_slots_;
  int32_t num_modules_;
  std::vector<Slot> slots_;
  size_t bytes_ = 0;
};

// One module of a call and where its output columns go: y[t * stride + offset + n], n < N (its out_features).
struct LoraModuleOutput {
  int32_t module;
  int64_t offset;
  int64_t n;
};

// Where a call's output rows live: rows of `stride` floats, one column range per module. The ranges of one
// call must not overlap (tasks write them concurrently).
struct LoraOutputs {
  float* y;
  int64_t stride;
  const LoraModuleOutput* modules;
  int64_t num_modules;
};

// The rows of one step grouped by slot, built once per step (set) and read by every apply_adapters call of
// the step: rows of one slot need not be contiguous in x and y, they are gathered here, not in each call.
class LoraRowLayout {
 public:
  struct Group {
    int32_t slot;   // ≥ 0
    int64_t first;  // rows()[first .. first + count) use this slot
    int64_t count;
  };

  // row_slot [num_rows]: the slot of row t, -1 for the base (no delta). Values must be ≥ -1 (the binding
  // checks; slots are checked against a bank when a call uses them).
  void set(const int32_t* row_slot, int64_t num_rows);

  int64_t num_rows() const { return num_rows_; }
  const std::vector<int32_t>& rows() const { return rows_; }  // rows with a slot, grouped by ascending slot
  const std::vector<Group>& groups() const { return groups_; }

 private:
  int64_t num_rows_ = 0;
  std::vector<int32_t> rows_;
  std::vector<Group> groups_;
  std::vector<std::pair<int32_t, int32_t>> by_slot_;  // scratch: (slot, row)
};

// The adapters of a step on several modules sharing x [M, K] (M = rows.num_rows(); q|k|v of a layer, gate|up):
// one pool dispatch for all of them, each row block running every module while its x rows are in cache.
// Semantics: for each module m of out and each row t whose slot a = row_slot[t] ≥ 0 targets m:
//   y[t, offset_m + n] += c_n · Σ_j (Σ_k x[t, k] · A_a,m[j, k]) · λd[j] · Bt_a,m[j, n]
//   (λd only where the slot has a rank scale; c_n = f32(scale_a,m · λb[n]) with a column scale, else scale_a,m;
//   the header's Semantics give the exact order), then y[t, offset_m + n] *= s_a,m[n] where the slot has an
//   output scale for m (DoRA)
// A row's result for a module is bitwise what a call with that row alone and that module alone computes.
void apply_adapters(const LoraBank& bank, const LoraRowLayout& rows, const float* x, int64_t k,
                    const LoraOutputs& out);

}  // namespace loraplex
