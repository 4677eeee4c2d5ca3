// LoRA on the device: a bank of adapter slots in device memory and the one adapter entry point, with the
// semantics of the CPU kernels (../lora.h): for each module m of a call and each row t whose slot a ≥ 0
// targets m (rank > 0):
//   h[j]               = Σ_k x[t, k] · A_a,m[j, k]                  (shrink, j < rank)
//   y[t, offset_m + n] += scale_a,m · Σ_j h[j] · Bt_a,m[j, n]        (expand)
//   y[t, offset_m + n] *= s_a,m[n]   where the slot has an output scale for m (DoRA)
// Rows are grouped by slot once per step (DeviceLoraRows); prefill groups run as segments (SGMV), decode
// rows one per group (BGMV); each group uses its own slot's rank, so mixed ranks carry no padding.
// Results are f32 and agree with the CPU kernels to f32 rounding (summation order differs).
#pragma once

#include "../lora.h"  // LoraDtype, LoraAdapterView, LoraModuleOutput, kMaxLoraRank
#include "common.h"

#include <memory>
#include <vector>

namespace loraplex::cuda {

// Per slot and module, as the kernels read it (device array [num_slots · num_modules]).
struct LoraModuleDesc {
  int32_t rank;  // 0: not targeted (or empty slot)
  int32_t in_features;
  int32_t out_features;
  float scale;
  const void* a;            // [rank, K] in the bank's dtype
  const void* bt;           // [rank, N]
  const float* out_scale;   // [N] or nullptr
};

class DeviceLoraBank {
 public:
  DeviceLoraBank(int32_t num_slots, int32_t num_modules, LoraDtype dtype);
  ~DeviceLoraBank();
  DeviceLoraBank(const DeviceLoraBank&) = delete;
  DeviceLoraBank& operator=(const DeviceLoraBank&) = delete;

  LoraDtype dtype() const;
  int32_t num_slots() const;
  int32_t num_modules() const;
  bool occupied(int32_t slot) const;
  int32_t max_rank(int32_t module) const;  // over occupied slots (host-side bookkeeping)
  size_t bytes() const;                    // device bytes held by adapter weights

  // Rounds A/Bt to the bank's dtype on the host (as the CPU bank does), then copies them to the device on the
  // bank's own upload stream (pinned staging), so an upload overlaps compute on other streams. The next
  // apply_adapters on any stream waits for it (an event), never the host.
  void set_slot(int32_t slot, const LoraAdapterView& adapter);
  void clear_slot(int32_t slot);

  const LoraModuleDesc* device_descs() const;  // [num_slots · num_modules]
  cudaEvent_t ready() const;                   // recorded after the last upload

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// One step's rows grouped by slot, uploaded once per step and read by every apply_adapters of the step.
class DeviceLoraRows {
 public:
  DeviceLoraRows();
  ~DeviceLoraRows();
  DeviceLoraRows(const DeviceLoraRows&) = delete;
  DeviceLoraRows& operator=(const DeviceLoraRows&) = delete;

  // row_slot: HOST array [num_rows], -1 for the base. Groups on the host, uploads on `stream`.
  void set(const int32_t* row_slot, int64_t num_rows, cudaStream_t stream);
  int64_t num_rows() const;
  int64_t num_adapter_rows() const;  // rows with a slot ≥ 0
  int32_t num_groups() const;

  struct Impl;
  Impl& impl() const;

 private:
  std::unique_ptr<Impl> impl_;
};

// x [M, k] device, y rows of y_stride floats; modules: HOST array. Enqueued on `stream`.
void apply_adapters(const DeviceLoraBank& bank, const DeviceLoraRows& rows, const float* x, int64_t k, float* y,
                    int64_t y_stride, const LoraModuleOutput* modules, int64_t num_modules, cudaStream_t stream);

}  // namespace loraplex::cuda
