// apply_adapters on the device: a shrink launch then an expand launch per tile class (one-row tiles of decode,
// multi-row tiles of prefill segments), each launch covering every module of the call.
//   shrink: h[row, h_offset_m + j] = Σ_k x[row, k] · A[j, k]        block: (tile, module, ranks, part of K)
//   expand: y[row, offset_m + n] = (y + scale · Σ_j h[row, j] · Bt[j, n]) · s[n]     block: (tile, module, columns)
// A block reads its slot's descriptor and leaves at once where the slot does not target the module or its
// rank ends below the block's ranks, so a call with mixed ranks pays for each slot's own rank only. When a
// launch has too few blocks to fill the GPU (decode with few adapters), K is split over blocks into partial h
// arrays that the expand adds in a fixed order (no atomics: results do not depend on scheduling).
// The fast kernels read 8 weights per 16-byte load and need K, N multiples of 8 and 16-byte aligned x, y
// rows and offsets; other shapes run the plain kernels (same arithmetic, scalar loads, one K part).
#include <algorithm>
#include <stdexcept>

#include "lora_expand.cuh"
#include "lora_shrink.cuh"

namespace loraplex::cuda {

namespace {

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

int multiprocessors() {
  static const int count = [] {
    int device = 0, sms = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
      return 132;
    return sms;
  }();
  return count;
}

// Ranks per shrink block and the parts of K: enough blocks for about 4 per SM, each part at least 1024 of K.
Split split_for(bool fast, bool multi, int64_t k, int64_t tiles, int64_t modules, int32_t max_rank, int64_t h_floats) {
  const int ranks = fast ? (multi ? kMultiWarps : kSingleWarps) * kWarpRanks : kPlainWarps;
  Split s{1, (max_rank + ranks - 1) / ranks, k, h_floats};
  if (!fast || tiles == 0) return s;
  const int64_t blocks = tiles * modules * s.rank_tiles;
  const int64_t want = std::min<int64_t>((4 * multiprocessors() + blocks - 1) / blocks, std::max<int64_t>(1, k / 1024));
  if (want <= 1) return s;
  s.chunk = ((k + want - 1) / want + 255) / 256 * 256;
  s.parts = static_cast<int32_t>((k + s.chunk - 1) / s.chunk);
  return s;
}

template <int W>
void launch_shrink(bool fast, bool multi, dim3 grid, cudaStream_t stream, const Pass& p, const float* x, int64_t k) {
  if (!fast) shrink_plain<W><<<grid, kPlainWarps * 32, 0, stream>>>(p, x, k);
  else if (multi) shrink_fast<W, true><<<grid, kMultiWarps * 32, 0, stream>>>(p, x, k);
  else shrink_fast<W, false><<<grid, kSingleWarps * 32, 0, stream>>>(p, x, k);
}

template <int W>
void launch_expand(bool fast, bool multi, dim3 grid, size_t shared, cudaStream_t stream, const Pass& p, float* y,
                   int64_t y_stride) {
  if (!fast) expand_plain<W><<<grid, kPlainExpandColumns, 0, stream>>>(p, y, y_stride);
  else if (multi) expand_fast<W, true><<<grid, kExpandThreads, shared, stream>>>(p, y, y_stride);
  else expand_fast<W, false><<<grid, kExpandThreads, shared, stream>>>(p, y, y_stride);
}

// One call's shrink then expand over the tiles [first, first + count) of one class.
void run_class(LoraDtype dtype, bool multi, unsigned first, unsigned count, Pass p, bool x_fast, bool y_fast,
               int64_t modules, int32_t max_rank, int64_t max_n, const float* x, int64_t k, float* y,
               int64_t y_stride, cudaStream_t stream) {
  if (count == 0) return;
  p.tiles += first;
  const dim3 shrink_grid(count, static_cast<unsigned>(modules),
                         static_cast<unsigned>(p.split.rank_tiles * p.split.parts));
  const int64_t columns = y_fast ? kExpandThreads * (multi ? kMultiColumns : kSingleColumns) : kPlainExpandColumns;
  const dim3 expand_grid(count, static_cast<unsigned>(modules), static_cast<unsigned>((max_n + columns - 1) / columns));
  const size_t shared = y_fast ? sizeof(float) * (multi ? kLoraTileRows : 1) * static_cast<size_t>(max_rank) : 0;
  switch (dtype) {
    case LoraDtype::F32:
      launch_shrink<0>(x_fast, multi, shrink_grid, stream, p, x, k);
      launch_expand<0>(y_fast, multi, expand_grid, shared, stream, p, y, y_stride);
      break;
    case LoraDtype::Bf16:
      launch_shrink<1>(x_fast, multi, shrink_grid, stream, p, x, k);
      launch_expand<1>(y_fast, multi, expand_grid, shared, stream, p, y, y_stride);
      break;
    case LoraDtype::F16:
      launch_shrink<2>(x_fast, multi, shrink_grid, stream, p, x, k);
      launch_expand<2>(y_fast, multi, expand_grid, shared, stream, p, y, y_stride);
      break;
  }
}

}  // namespace

void apply_adapters(const DeviceLoraBank& bank, const DeviceLoraRows& rows, const float* x, int64_t k, float* y,
                    int64_t y_stride, const LoraModuleOutput* modules, int64_t num_modules, cudaStream_t stream) {
  DeviceLoraRows::Impl& r = rows.impl();
  if (r.tiles.empty() || num_modules <= 0) return;
  check_cuda(cudaStreamWaitEvent(stream, bank.ready(), 0), "cudaStreamWaitEvent (lora ready)");
  const unsigned singles = static_cast<unsigned>(r.single_tiles);
  const unsigned multis = static_cast<unsigned>(r.tiles.size()) - singles;
  const bool x_fast = k % 8 == 0 && aligned16(x);
  for (int64_t first = 0; first < num_modules; first += kMaxCallModules) {
    const int64_t count = std::min<int64_t>(kMaxCallModules, num_modules - first);
    Pass p{};
    p.descs = bank.device_descs();
    p.num_slots = bank.num_slots();
    p.bank_modules = bank.num_modules();
    p.tiles = r.device_tiles;
    p.rows = r.device_rows;
    int32_t h_stride = 0, max_rank = 0;
    int64_t max_n = 0;
    bool y_fast = aligned16(y) && y_stride % 4 == 0;
    for (int64_t o = 0; o < kMaxCallModules; ++o) {
      if (o >= count) {
        p.call[o] = CallModule{-1, 0, 0, 0};  // never indexed: grid.y == count
        continue;
      }
      const LoraModuleOutput& m = modules[first + o];
      const int32_t rank = m.module >= 0 && m.module < bank.num_modules() ? bank.max_rank(m.module) : 0;
      p.call[o] = CallModule{m.module, h_stride, m.offset, m.n};
      h_stride += rank;
      max_rank = std::max(max_rank, rank);
      max_n = std::max(max_n, m.n);
      y_fast = y_fast && m.n % 8 == 0 && m.offset % 4 == 0;
    }
    if (max_rank == 0 || max_n == 0) continue;
    // The expand keeps a tile's h rows in shared memory: 8 · kMaxLoraRank floats is 32 KiB, under 48 KiB.
    if (max_rank > kMaxLoraRank) throw std::invalid_argument("apply_adapters: an adapter's rank exceeds kMaxLoraRank");
    const int64_t h_floats = static_cast<int64_t>(r.rows.size()) * h_stride;
    const Split single = split_for(x_fast, false, k, singles, count, max_rank, h_floats);
    const Split multi = split_for(x_fast, true, k, multis, count, max_rank, h_floats);
    const int32_t parts = std::max(singles ? single.parts : 1, multis ? multi.parts : 1);
    r.reserve_h(static_cast<size_t>(h_floats) * static_cast<size_t>(parts), stream);
    p.h = r.h;
    p.h_stride = h_stride;
    p.split = single;
    run_class(bank.dtype(), false, 0, singles, p, x_fast, y_fast, count, max_rank, max_n, x, k, y, y_stride, stream);
    p.split = multi;
    run_class(bank.dtype(), true, singles, multis, p, x_fast, y_fast, count, max_rank, max_n, x, k, y, y_stride,
              stream);
  }
}

}  // namespace loraplex::cuda
