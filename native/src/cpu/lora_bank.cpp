// The bank of adapter slots: each slot owns a 64-byte-aligned copy of its adapter's matrices, so the
// kernels read adapter weights in place and never copy them per token.
#include <cstdlib>
#include <cstring>
#include <new>

#include "loraplex/lora.h"

namespace loraplex {

namespace {

constexpr size_t kAlignFloats = 16;  // 64 bytes: every matrix starts on a cache line

size_t round_up(size_t n) { return (n + kAlignFloats - 1) / kAlignFloats * kAlignFloats; }

}  // namespace

void LoraBank::FreeDeleter::operator()(float* p) const { std::free(p); }

LoraBank::LoraBank(int32_t num_slots, int32_t num_modules)
    : num_slots_(num_slots), num_modules_(num_modules), slots_(static_cast<size_t>(num_slots)) {}

void LoraBank::set_slot(int32_t slot, const LoraAdapterView& adapter) {
  const size_t modules = static_cast<size_t>(num_modules_);
  size_t floats = 0;
  for (size_t m = 0; m < modules; ++m) {
    const size_t rank = static_cast<size_t>(adapter.rank[m]);
    if (rank == 0) continue;
    floats += round_up(rank * static_cast<size_t>(adapter.in_features[m]));
    floats += round_up(rank * static_cast<size_t>(adapter.out_features[m]));
  }
  // Build the replacement fully before touching the slot, so a failed allocation leaves it as it was.
  Slot next;
  next.occupied = true;
  next.modules.resize(modules);
  next.bytes = floats * sizeof(float);
  if (floats > 0) {
    float* storage = static_cast<float*>(std::aligned_alloc(kAlignFloats * sizeof(float), next.bytes));
    if (!storage) throw std::bad_alloc();
    next.storage.reset(storage);
  }
  float* cursor = next.storage.get();
  for (size_t m = 0; m < modules; ++m) {
    LoraModuleWeights& w = next.modules[m];
    w.rank = adapter.rank[m];
    if (w.rank == 0) continue;
    w.in_features = adapter.in_features[m];
    w.out_features = adapter.out_features[m];
    w.scale = adapter.scale[m];
    const size_t a_len = static_cast<size_t>(w.rank) * static_cast<size_t>(w.in_features);
    const size_t b_len = static_cast<size_t>(w.rank) * static_cast<size_t>(w.out_features);
    std::memcpy(cursor, adapter.weights + adapter.offset_a[m], a_len * sizeof(float));
    w.a = cursor;
    cursor += round_up(a_len);
    std::memcpy(cursor, adapter.weights + adapter.offset_b[m], b_len * sizeof(float));
    w.bt = cursor;
    cursor += round_up(b_len);
  }
  bytes_ = bytes_ - slots_[slot].bytes + next.bytes;
  slots_[slot] = std::move(next);
}

void LoraBank::clear_slot(int32_t slot) {
  bytes_ -= slots_[slot].bytes;
  slots_[slot] = Slot();
}

}  // namespace loraplex
