// DeviceLoraRows: a step's rows grouped by ascending slot on the host (as LoraRowLayout groups them), cut into
// tiles of at most kLoraTileRows rows, and uploaded once per step for every apply_adapters of the step.
// A tile's rows keep their place in `rows` (tile.first), which also indexes the shrink workspace.
#include "lora_rows.cuh"

#include <algorithm>
#include <cstring>

namespace loraplex::cuda {

namespace {
size_t align16(size_t bytes) { return (bytes + 15) / 16 * 16; }
}  // namespace

void DeviceLoraRows::Impl::reserve_h(size_t floats, cudaStream_t stream) {
  if (floats <= h_floats) return;
  if (h) {
    check_cuda(cudaStreamSynchronize(stream), "DeviceLoraRows: waiting before growing the workspace");
    check_cuda(cudaFree(h), "cudaFree (lora workspace)");
    h = nullptr;
    h_floats = 0;
  }
  const size_t grown = std::max(floats, floats / 2 * 3);  // headroom: the next larger step should fit
  check_cuda(cudaMalloc(&h, grown * sizeof(float)), "cudaMalloc (lora workspace)");
  h_floats = grown;
}

DeviceLoraRows::DeviceLoraRows() : impl_(new Impl) {}

DeviceLoraRows::~DeviceLoraRows() {
  cudaDeviceSynchronize();  // work in flight may read the rows; errors cannot be reported from here
  if (impl_->device) cudaFree(impl_->device);
  if (impl_->h) cudaFree(impl_->h);
}

int64_t DeviceLoraRows::num_rows() const { return impl_->num_rows; }
int64_t DeviceLoraRows::num_adapter_rows() const { return static_cast<int64_t>(impl_->rows.size()); }
int32_t DeviceLoraRows::num_groups() const { return impl_->num_groups; }
DeviceLoraRows::Impl& DeviceLoraRows::impl() const { return *impl_; }

void DeviceLoraRows::set(const int32_t* row_slot, int64_t num_rows, cudaStream_t stream) {
  Impl& r = *impl_;
  r.num_rows = num_rows;
  r.num_groups = 0;
  r.rows.clear();
  r.tiles.clear();
  r.by_slot.clear();
  for (int64_t t = 0; t < num_rows; ++t)
    if (row_slot[t] >= 0) r.by_slot.emplace_back(row_slot[t], static_cast<int32_t>(t));
  std::stable_sort(r.by_slot.begin(), r.by_slot.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < r.by_slot.size();) {
    const int32_t slot = r.by_slot[i].first;
    const int32_t first = static_cast<int32_t>(r.rows.size());
    while (i < r.by_slot.size() && r.by_slot[i].first == slot) r.rows.push_back(r.by_slot[i++].second);
    const int32_t count = static_cast<int32_t>(r.rows.size()) - first;
    for (int32_t at = 0; at < count; at += kLoraTileRows)
      r.tiles.push_back({slot, first + at, std::min(kLoraTileRows, count - at)});
    r.num_groups += 1;
  }
  // One-row tiles (decode) and multi-row tiles (prefill segments) run different kernels: one range each.
  r.single_tiles = static_cast<int32_t>(
      std::stable_partition(r.tiles.begin(), r.tiles.end(), [](const LoraTile& t) { return t.count == 1; }) -
      r.tiles.begin());
  if (r.rows.empty()) return;

  const size_t rows_bytes = align16(r.rows.size() * sizeof(int32_t));
  const size_t tiles_bytes = r.tiles.size() * sizeof(LoraTile);
  const size_t total = rows_bytes + tiles_bytes;
  if (total > r.device_bytes) {
    if (r.device) {
      // The previous step's kernels on `stream` may still read the old arrays.
      check_cuda(cudaStreamSynchronize(stream), "DeviceLoraRows: waiting before growing");
      check_cuda(cudaFree(r.device), "cudaFree (lora rows)");
      r.device = nullptr;
      r.device_bytes = 0;
    }
    const size_t grown = std::max(total, total / 2 * 3);
    check_cuda(cudaMalloc(&r.device, grown), "cudaMalloc (lora rows)");
    r.device_bytes = grown;
  }
  r.upload.resize(total);
  std::memcpy(r.upload.data(), r.rows.data(), r.rows.size() * sizeof(int32_t));
  std::memcpy(r.upload.data() + rows_bytes, r.tiles.data(), tiles_bytes);
  // From pageable memory: the source is consumed before the call returns, so `upload` is reusable at once;
  // on `stream`, the copy lands after the previous step's kernels have finished reading.
  check_cuda(cudaMemcpyAsync(r.device, r.upload.data(), total, cudaMemcpyHostToDevice, stream),
             "cudaMemcpyAsync (lora rows)");
  r.device_rows = reinterpret_cast<const int32_t*>(r.device);
  r.device_tiles = reinterpret_cast<const LoraTile*>(r.device + rows_bytes);
}

}  // namespace loraplex::cuda
