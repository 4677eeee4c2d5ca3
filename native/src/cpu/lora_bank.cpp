// The bank of adapter slots: each slot owns a 64-byte-aligned copy of its adapter's matrices (f32, rounded to
// bf16 or f16, or quantized to int8 rows with their scales), so the kernels read adapter weights in place and
// never copy them per token.
// A matrix several modules share (VeRA's, Tied-LoRA's) is copied once: one copy stays in cache for a step.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <new>
#include <tuple>
#include <utility>
#include <vector>

#include "loraplex/lora.h"

namespace loraplex {

namespace {

constexpr size_t kAlignBytes = 64;  // every matrix starts on a cache line

size_t round_up(size_t bytes) { return (bytes + kAlignBytes - 1) / kAlignBytes * kAlignBytes; }

// Bytes a region of n elements in `rows` rows takes as the bank stores it (an int8 region: its values, then its
// rows' f32 scales on the next cache line).
size_t region_bytes(LoraDtype dtype, size_t n, size_t rows) {
  switch (dtype) {
    case LoraDtype::F32: return round_up(n * sizeof(float));
    case LoraDtype::Int8: return round_up(n) + round_up(rows * sizeof(float));
    default: return round_up(n * sizeof(uint16_t));
  }
}

// Row [len] as int8 values and its scale (lora.h's int8 semantics): the absolute maximum over 127, values
// divided by it and rounded to nearest even; a non-finite value makes the scale NaN and the row 0.
float quantize_row(const float* src, size_t len, int8_t* q) {
  float amax = 0.0f;
  bool finite = true;
  for (size_t i = 0; i < len; ++i) {
    const float a = std::fabs(src[i]);
    if (!(a <= std::numeric_limits<float>::max())) finite = false;
    else if (a > amax) amax = a;
  }
  const float s = finite ? amax / 127.0f : std::numeric_limits<float>::quiet_NaN();
  for (size_t i = 0; i < len; ++i) {
    if (!(s > 0.0f)) {
      q[i] = 0;
      continue;
    }
    const float v = std::nearbyint(src[i] / s);  // the default rounding mode: nearest even
    q[i] = static_cast<int8_t>(v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v);
  }
  return s;
}

// Copies a region of n elements in `rows` rows (A: rank × K, Bt: rank × N) into dst as the bank stores it.
void store(LoraDtype dtype, const float* src, size_t n, size_t rows, void* dst) {
  if (dtype == LoraDtype::F32) {
    std::memcpy(dst, src, n * sizeof(float));
    return;
  }
  if (dtype == LoraDtype::Int8) {
    auto* q = static_cast<int8_t*>(dst);
    auto* scales = reinterpret_cast<float*>(static_cast<unsigned char*>(dst) + round_up(n));
    const size_t len = rows > 0 ? n / rows : 0;
    for (size_t r = 0; r < rows; ++r) scales[r] = quantize_row(src + r * len, len, q + r * len);
    return;
  }
  auto* out = static_cast<uint16_t*>(dst);
  const bool f16 = dtype == LoraDtype::F16;
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, src + i, sizeof bits);
    out[i] = f16 ? f32_to_f16(bits) : f32_to_bf16(bits);
  }
}

// Where module m's vector starts in its values array, or -1 (offsets: [num_modules], -1 for none; nullptr: no
// module has one).
int64_t vector_at(const int32_t* offsets, size_t m) { return offsets ? offsets[m] : -1; }

}  // namespace

void LoraBank::FreeDeleter::operator()(void* p) const { std::free(p); }

LoraBank::LoraBank(int32_t num_slots, int32_t num_modules, LoraDtype dtype)
    : dtype_(dtype), num_slots_(num_slots), num_modules_(num_modules), slots_(static_cast<size_t>(num_slots)) {}

void LoraBank::set_slot(int32_t slot, const LoraAdapterView& adapter) {
  const size_t modules = static_cast<size_t>(num_modules_);
  // Byte offsets in the block, planned before allocating. A region of the weights that several modules point
  // at (a shared factor: VeRA, Tied-LoRA) is stored once, keyed by (offset, element count, rows): int8 rows are
  // quantized as rows, so the same values cut into other rows are another region.
  struct Placement {
    size_t a = 0, bt = 0, out_scale = 0, rank_scale = 0, column_scale = 0;
  };
  std::vector<Placement> placed(modules);
  struct Region {
    size_t at;    // byte offset in the block
    size_t rows;  // the matrix's rank (int8 rows carry a scale each)
  };
  std::map<std::tuple<int64_t, size_t, size_t>, Region> regions;
  size_t bytes = 0;
  const auto place = [&](size_t size) {
    const size_t at = bytes;
    bytes += round_up(size);
    return at;
  };
  const auto place_region = [&](int64_t offset, size_t count, size_t rows) {
    const auto [it, fresh] = regions.try_emplace({offset, count, rows}, Region{bytes, rows});
    if (fresh) bytes += region_bytes(dtype_, count, rows);
    return it->second.at;
  };
  for (size_t m = 0; m < modules; ++m) {
    const size_t rank = static_cast<size_t>(adapter.rank[m]);
    if (rank == 0) continue;
    const size_t n = static_cast<size_t>(adapter.out_features[m]);
    Placement& p = placed[m];
    p.a = place_region(adapter.offset_a[m], rank * static_cast<size_t>(adapter.in_features[m]), rank);
    p.bt = place_region(adapter.offset_b[m], rank * n, rank);
    if (vector_at(adapter.offset_out_scale, m) >= 0) p.out_scale = place(n * sizeof(float));
    if (vector_at(adapter.offset_rank_scale, m) >= 0) p.rank_scale = place(rank * sizeof(float));
    if (vector_at(adapter.offset_column_scale, m) >= 0) p.column_scale = place(n * sizeof(float));
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
  auto* block = static_cast<unsigned char*>(next.storage.get());
  for (const auto& [region, place] : regions)
    store(dtype_, adapter.weights + std::get<0>(region), std::get<1>(region), place.rows, block + place.at);
  for (size_t m = 0; m < modules; ++m) {
    LoraModuleWeights& w = next.modules[m];
    w.rank = adapter.rank[m];
    if (w.rank == 0) continue;
    const Placement& p = placed[m];
    w.in_features = adapter.in_features[m];
    w.out_features = adapter.out_features[m];
    w.scale = adapter.scale[m];
    w.a = block + p.a;
    w.bt = block + p.bt;
    const size_t n = static_cast<size_t>(w.out_features);
    if (dtype_ == LoraDtype::Int8) {  // each int8 region's row scales follow its values
      const size_t k = static_cast<size_t>(w.in_features), rank = static_cast<size_t>(w.rank);
      w.a_scale = reinterpret_cast<const float*>(block + p.a + round_up(rank * k));
      w.bt_scale = reinterpret_cast<const float*>(block + p.bt + round_up(rank * n));
    }
    if (const int64_t at = vector_at(adapter.offset_out_scale, m); at >= 0) {
      w.out_scale = reinterpret_cast<const float*>(block + p.out_scale);
      std::memcpy(block + p.out_scale, adapter.out_scale + at, n * sizeof(float));
    }
    if (const int64_t at = vector_at(adapter.offset_rank_scale, m); at >= 0) {
      w.rank_scale = reinterpret_cast<const float*>(block + p.rank_scale);
      std::memcpy(block + p.rank_scale, adapter.rank_scale + at, static_cast<size_t>(w.rank) * sizeof(float));
    }
    if (const int64_t at = vector_at(adapter.offset_column_scale, m); at >= 0) {
      auto* c = reinterpret_cast<float*>(block + p.column_scale);
      for (size_t i = 0; i < n; ++i) c[i] = w.scale * adapter.column_scale[at + static_cast<int64_t>(i)];
      w.column_scale = c;
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
