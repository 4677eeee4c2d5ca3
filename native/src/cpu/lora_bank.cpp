// The bank of adapter slots: each slot owns a 64-byte-aligned copy of its adapter's matrices (f32, or
// rounded to bf16 or f16), so the kernels read adapter weights in place and never copy them per token.
#include <cstdlib>
#include <cstring>
#include <new>

#include "loraplex/lora.h"

namespace loraplex {

namespace {

constexpr size_t kAlignBytes = 64;  // every matrix starts on a cache line

size_t round_up(size_t bytes) { return (bytes + kAlignBytes - 1) / kAlignBytes * kAlignBytes; }

// Copies n elements of src into dst as the bank stores them; returns the bytes written.
size_t store(LoraDtype dtype, const float* src, size_t n, void* dst) {
  if (dtype == LoraDtype::F32) {
    std::memcpy(dst, src, n * sizeof(float));
    return n * sizeof(float);
  }
  auto* out = static_cast<uint16_t*>(dst);
  const bool f16 = dtype == LoraDtype::F16;
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, src + i, sizeof bits);
    out[i] = f16 ? f32_to_f16(bits) : f32_to_bf16(bits);
  }
  return n * sizeof(uint16_t);
}

bool has_out_scale(const LoraAdapterView& adapter, size_t m) {
  return adapter.offset_out_scale && adapter.offset_out_scale[m] >= 0;
}

}  // namespace

void LoraBank::FreeDeleter::operator()(void* p) const { std::free(p); }

LoraBank::LoraBank(int32_t num_slots, int32_t num_modules, LoraDtype dtype)
    : dtype_(dtype), num_slots_(num_slots), num_modules_(num_modules), slots_(static_cast<size_t>(num_slots)) {}

void LoraBank::set_slot(int32_t slot, const LoraAdapterView& adapter) {
  const size_t modules = static_cast<size_t>(num_modules_);
  const size_t element = dtype_ == LoraDtype::F32 ? sizeof(float) : sizeof(uint16_t);
  size_t bytes = 0;
  for (size_t m = 0; m < modules; ++m) {
    const size_t rank = static_cast<size_t>(adapter.rank[m]);
    if (rank == 0) continue;
    bytes += round_up(rank * static_cast<size_t>(adapter.in_features[m]) * element);
    bytes += round_up(rank * static_cast<size_t>(adapter.out_features[m]) * element);
    if (has_out_scale(adapter, m)) bytes += round_up(static_cast<size_t>(adapter.out_features[m]) * sizeof(float));
  }
  // Build the replacement fully before touching the slot, so a failed allocation leaves it as it was.
  Slot next;
  next.occupied = true;
  next.modules.resize(modules);
  next.bytes = bytes;
  if (bytes > 0) {
    void* storage = std::aligned_alloc(kAlignBytes, bytes);
    if (!storage) throw std::bad_alloc();
    next.storage.reset(storage);
  }
  auto* cursor = static_cast<unsigned char*>(next.storage.get());
  for (size_t m = 0; m < modules; ++m) {
    LoraModuleWeights& w = next.modules[m];
    w.rank = adapter.rank[m];
    if (w.rank == 0) continue;
    w.in_features = adapter.in_features[m];
    w.out_features = adapter.out_features[m];
    w.scale = adapter.scale[m];
    const size_t a_len = static_cast<size_t>(w.rank) * static_cast<size_t>(w.in_features);
    const size_t b_len = static_cast<size_t>(w.rank) * static_cast<size_t>(w.out_features);
    w.a = cursor;
    cursor += round_up(store(dtype_, adapter.weights + adapter.offset_a[m], a_len, cursor));
    w.bt = cursor;
    cursor += round_up(store(dtype_, adapter.weights + adapter.offset_b[m], b_len, cursor));
    if (has_out_scale(adapter, m)) {
      w.out_scale = reinterpret_cast<const float*>(cursor);
      cursor += round_up(store(LoraDtype::F32, adapter.out_scale + adapter.offset_out_scale[m],
                               static_cast<size_t>(w.out_features), cursor));
    }
  }
  bytes_ = bytes_ - slots_[slot].bytes + next.bytes;
  slots_[slot] = std::move(next);
}

void LoraBank::clear_slot(int32_t slot) {
  bytes_ -= slots_[slot].bytes;
  slots_[slot] = Slot();
}

}  // namespace loraplex
