// The device bank of adapter slots: each occupied slot owns one device allocation holding its modules' A, Bt
// (f32, or rounded to bf16 / f16 on the host exactly as the CPU bank rounds) and DoRA output scales, and a
// descriptor per module in a device array the kernels index by slot · num_modules + module.
// Uploads run on the bank's own stream from pinned staging and end by recording `ready`, which every
// apply_adapters waits on; replacing or clearing an occupied slot first waits for the device, so no kernel in
// flight can read freed memory or a descriptor that changes under it (both are rare, between steps).
#include "loraplex/cuda/lora.h"

#include <algorithm>
#include <cstring>

namespace loraplex::cuda {

namespace {

constexpr size_t kDeviceAlign = 256;  // every matrix starts 256-byte aligned: 16-byte vector loads are safe

size_t round_up(size_t bytes) { return (bytes + kDeviceAlign - 1) / kDeviceAlign * kDeviceAlign; }

size_t element_bytes(LoraDtype dtype) { return dtype == LoraDtype::F32 ? sizeof(float) : sizeof(uint16_t); }

// n elements of src into dst as the bank stores them (the CPU bank's rounding); returns the bytes written.
size_t store(LoraDtype dtype, const float* src, size_t n, unsigned char* dst) {
  if (dtype == LoraDtype::F32) {
    std::memcpy(dst, src, n * sizeof(float));
    return n * sizeof(float);
  }
  const bool f16 = dtype == LoraDtype::F16;
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, src + i, sizeof bits);
    const uint16_t out = f16 ? f32_to_f16(bits) : f32_to_bf16(bits);
    std::memcpy(dst + 2 * i, &out, sizeof out);
  }
  return n * sizeof(uint16_t);
}

bool has_out_scale(const LoraAdapterView& adapter, size_t m) {
  return adapter.offset_out_scale && adapter.offset_out_scale[m] >= 0;
}

}  // namespace

struct DeviceLoraBank::Impl {
  struct Slot {
    bool occupied = false;
    void* memory = nullptr;  // device
    size_t bytes = 0;
  };

  LoraDtype dtype;
  int32_t num_slots;
  int32_t num_modules;
  std::vector<Slot> slots;
  std::vector<LoraModuleDesc> descs;  // host mirror of the device array
  size_t bytes = 0;

  LoraModuleDesc* device_descs = nullptr;
  cudaStream_t upload = nullptr;
  cudaEvent_t ready = nullptr;
  unsigned char* staging = nullptr;  // pinned; free to overwrite once `ready` has completed
  size_t staging_bytes = 0;

  // Pinned staging of at least `bytes`, after the previous upload has finished reading it.
  unsigned char* staging_for(size_t bytes_needed) {
    check_cuda(cudaEventSynchronize(ready), "DeviceLoraBank: waiting for the previous upload");
    if (bytes_needed > staging_bytes) {
      const size_t grown = std::max(bytes_needed, staging_bytes * 2);
      if (staging) check_cuda(cudaFreeHost(staging), "cudaFreeHost (lora staging)");
      staging = nullptr;
      staging_bytes = 0;
      check_cuda(cudaMallocHost(&staging, grown), "cudaMallocHost (lora staging)");
      staging_bytes = grown;
    }
    return staging;
  }

  // Copies the slot's descriptors through staging at `at` to the device and records `ready`.
  void upload_descs(int32_t slot, unsigned char* at) {
    const size_t n = static_cast<size_t>(num_modules);
    std::memcpy(at, descs.data() + static_cast<size_t>(slot) * n, n * sizeof(LoraModuleDesc));
    check_cuda(cudaMemcpyAsync(device_descs + static_cast<size_t>(slot) * n, at, n * sizeof(LoraModuleDesc),
                               cudaMemcpyHostToDevice, upload),
               "cudaMemcpyAsync (lora descriptors)");
    check_cuda(cudaEventRecord(ready, upload), "cudaEventRecord (lora ready)");
  }

  // Nothing enqueued before this call still reads the slot once it returns.
  void wait_for_readers() { check_cuda(cudaDeviceSynchronize(), "DeviceLoraBank: waiting for kernels in flight"); }
};

DeviceLoraBank::DeviceLoraBank(int32_t num_slots, int32_t num_modules, LoraDtype dtype) : impl_(new Impl) {
  Impl& b = *impl_;
  b.dtype = dtype;
  b.num_slots = num_slots;
  b.num_modules = num_modules;
  b.slots.resize(static_cast<size_t>(num_slots));
  b.descs.assign(static_cast<size_t>(num_slots) * static_cast<size_t>(num_modules), LoraModuleDesc{});
  check_cuda(cudaStreamCreateWithFlags(&b.upload, cudaStreamNonBlocking), "cudaStreamCreate (lora upload)");
  check_cuda(cudaEventCreateWithFlags(&b.ready, cudaEventDisableTiming), "cudaEventCreate (lora ready)");
  const size_t desc_bytes = b.descs.size() * sizeof(LoraModuleDesc);
  if (desc_bytes) {
    check_cuda(cudaMalloc(&b.device_descs, desc_bytes), "cudaMalloc (lora descriptors)");
    // Every slot starts empty (rank 0); synchronous, so `ready` is trivially complete.
    check_cuda(cudaMemcpy(b.device_descs, b.descs.data(), desc_bytes, cudaMemcpyHostToDevice),
               "cudaMemcpy (lora descriptors)");
  }
}

DeviceLoraBank::~DeviceLoraBank() {
  Impl& b = *impl_;
  cudaDeviceSynchronize();  // kernels in flight may read the bank; errors cannot be reported from here
  for (auto& s : b.slots)
    if (s.memory) cudaFree(s.memory);
  if (b.device_descs) cudaFree(b.device_descs);
  if (b.staging) cudaFreeHost(b.staging);
  if (b.ready) cudaEventDestroy(b.ready);
  if (b.upload) cudaStreamDestroy(b.upload);
}

LoraDtype DeviceLoraBank::dtype() const { return impl_->dtype; }
int32_t DeviceLoraBank::num_slots() const { return impl_->num_slots; }
int32_t DeviceLoraBank::num_modules() const { return impl_->num_modules; }
bool DeviceLoraBank::occupied(int32_t slot) const { return impl_->slots[static_cast<size_t>(slot)].occupied; }
size_t DeviceLoraBank::bytes() const { return impl_->bytes; }
const LoraModuleDesc* DeviceLoraBank::device_descs() const { return impl_->device_descs; }
cudaEvent_t DeviceLoraBank::ready() const { return impl_->ready; }

int32_t DeviceLoraBank::max_rank(int32_t module) const {
  const Impl& b = *impl_;
  int32_t best = 0;
  for (int32_t s = 0; s < b.num_slots; ++s)
    best = std::max(best, b.descs[static_cast<size_t>(s) * b.num_modules + module].rank);
  return best;
}

void DeviceLoraBank::set_slot(int32_t slot, const LoraAdapterView& adapter) {
  Impl& b = *impl_;
  const size_t modules = static_cast<size_t>(b.num_modules);
  const size_t element = element_bytes(b.dtype);
  size_t bytes = 0;
  for (size_t m = 0; m < modules; ++m) {
    const size_t rank = static_cast<size_t>(adapter.rank[m]);
    if (rank == 0) continue;
    bytes += round_up(rank * static_cast<size_t>(adapter.in_features[m]) * element);
    bytes += round_up(rank * static_cast<size_t>(adapter.out_features[m]) * element);
    if (has_out_scale(adapter, m)) bytes += round_up(static_cast<size_t>(adapter.out_features[m]) * sizeof(float));
  }
  Impl::Slot& current = b.slots[static_cast<size_t>(slot)];
  if (current.occupied) b.wait_for_readers();

  // The new allocation is filled before the slot changes, so a failure leaves the slot as it was.
  void* memory = nullptr;
  if (bytes) check_cuda(cudaMalloc(&memory, bytes), "cudaMalloc (lora slot)");
  const size_t desc_bytes = round_up(modules * sizeof(LoraModuleDesc));
  unsigned char* stage;
  try {
    stage = b.staging_for(desc_bytes + bytes);
  } catch (...) {
    if (memory) cudaFree(memory);
    throw;
  }
  unsigned char* weights = stage + desc_bytes;
  std::vector<LoraModuleDesc> next(modules, LoraModuleDesc{});
  size_t cursor = 0;
  auto device_at = [&](size_t offset) { return static_cast<const unsigned char*>(memory) + offset; };
  for (size_t m = 0; m < modules; ++m) {
    LoraModuleDesc& d = next[m];
    d.rank = adapter.rank[m];
    if (d.rank == 0) continue;
    d.in_features = adapter.in_features[m];
    d.out_features = adapter.out_features[m];
    d.scale = adapter.scale[m];
    const size_t a_len = static_cast<size_t>(d.rank) * static_cast<size_t>(d.in_features);
    const size_t b_len = static_cast<size_t>(d.rank) * static_cast<size_t>(d.out_features);
    d.a = device_at(cursor);
    cursor += round_up(store(b.dtype, adapter.weights + adapter.offset_a[m], a_len, weights + cursor));
    d.bt = device_at(cursor);
    cursor += round_up(store(b.dtype, adapter.weights + adapter.offset_b[m], b_len, weights + cursor));
    if (has_out_scale(adapter, m)) {
      d.out_scale = reinterpret_cast<const float*>(device_at(cursor));
      cursor += round_up(store(LoraDtype::F32, adapter.out_scale + adapter.offset_out_scale[m],
                               static_cast<size_t>(d.out_features), weights + cursor));
    }
  }
  try {
    if (bytes)
      check_cuda(cudaMemcpyAsync(memory, weights, bytes, cudaMemcpyHostToDevice, b.upload),
                 "cudaMemcpyAsync (lora slot weights)");
    std::copy(next.begin(), next.end(), b.descs.begin() + static_cast<std::ptrdiff_t>(slot * modules));
    b.upload_descs(slot, stage);
  } catch (...) {
    // The copy may still be queued: wait for it before freeing (errors are already being reported).
    cudaStreamSynchronize(b.upload);
    if (memory) cudaFree(memory);
    throw;
  }
  // Readers of the old allocation finished before wait_for_readers returned; later ones wait on `ready`.
  if (current.memory) cudaFree(current.memory);
  b.bytes = b.bytes - current.bytes + bytes;
  current = Impl::Slot{true, memory, bytes};
}

void DeviceLoraBank::clear_slot(int32_t slot) {
  Impl& b = *impl_;
  Impl::Slot& current = b.slots[static_cast<size_t>(slot)];
  if (!current.occupied) return;
  b.wait_for_readers();
  const size_t modules = static_cast<size_t>(b.num_modules);
  std::fill_n(b.descs.begin() + static_cast<std::ptrdiff_t>(slot * modules), modules, LoraModuleDesc{});
  b.upload_descs(slot, b.staging_for(modules * sizeof(LoraModuleDesc)));
  if (current.memory) check_cuda(cudaFree(current.memory), "cudaFree (lora slot)");
  b.bytes -= current.bytes;
  current = Impl::Slot{};
}

}  // namespace loraplex::cuda
