// bench_lora: apply_adapters at Llama-3.1-8B's shapes on a bf16 bank (K 4096; q|k|v 4096|1024|1024 in one
// call, gate|up 14336 each in one call, down 14336 → 4096): decode (64 rows over 1, 8, 32, 64 distinct
// adapters, ranks 8, 16, 64), prefill (2048 rows in 4 segments) and a mixed-rank batch. Bytes counted: the
// distinct adapters' A and Bt of the call's modules, x once, y read and written. Each timed call takes the
// next of 8 x / y buffers and row sets (adapters shifted by 8 slots), so x, y and a single adapter are not
// served from the 50 MB L2 across repetitions, as they would not be across a model's layers.
// Times: `us` is device time per call with the calls queued back to back behind a spin kernel (so host launch
// cost is hidden, as it is in a running engine); `latency_us` is one call alone, launches included.
#include <algorithm>
#include <functional>
#include <numeric>
#include <string>

#include "../check/groups.h"
#include "loraplex/cuda/lora.h"

namespace loraplex::cuda {
namespace {

using harness::DeviceBuffer;

// Holds the stream for about `cycles` clocks, so the calls enqueued behind it run back to back.
__global__ void spin(long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {
  }
}

// Median device milliseconds per call of `batch` (which enqueues `calls` calls), behind a ~0.5 ms spin.
double queued_ms(const std::function<void()>& batch, int calls, cudaStream_t stream) {
  cudaEvent_t a, b;
  LPX_CUDA(cudaEventCreate(&a));
  LPX_CUDA(cudaEventCreate(&b));
  std::vector<double> ms;
  for (int rep = 0; rep < 11; ++rep) {
    spin<<<1, 1, 0, stream>>>(1000000);
    LPX_CUDA(cudaEventRecord(a, stream));
    batch();
    LPX_CUDA(cudaEventRecord(b, stream));
    LPX_CUDA(cudaEventSynchronize(b));
    float t = 0;
    LPX_CUDA(cudaEventElapsedTime(&t, a, b));
    ms.push_back(double(t) / calls);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

constexpr int32_t kSlots = 64;
constexpr int kRotation = 8;
const std::vector<int32_t> kIn = {4096, 4096, 4096, 4096, 4096, 14336};     // q k v gate up down
const std::vector<int32_t> kOut = {4096, 1024, 1024, 14336, 14336, 4096};
struct Call {
  const char* name;
  std::vector<int32_t> modules;
};
const Call kCalls[] = {{"q|k|v", {0, 1, 2}}, {"gate|up", {3, 4}}, {"down", {5}}};

// One adapter's packed weights with the given rank per module (values irrelevant to speed).
struct Packed {
  std::vector<float> weights, scale;
  std::vector<int32_t> rank, offset_a, offset_b, no_scale;
  LoraAdapterView view() const {
    LoraAdapterView v;
    v.weights = weights.data();
    v.weights_length = weights.size();
    v.rank = rank.data();
    v.offset_a = offset_a.data();
    v.offset_b = offset_b.data();
    v.scale = scale.data();
    v.in_features = kIn.data();
    v.out_features = kOut.data();
    v.offset_out_scale = no_scale.data();
    return v;
  }
};

Packed packed(int32_t rank) {
  Packed p;
  harness::Rng rng{static_cast<uint64_t>(rank)};
  for (size_t m = 0; m < kIn.size(); ++m) {
    p.rank.push_back(rank);
    p.scale.push_back(0.5f);
    p.no_scale.push_back(-1);
    p.offset_a.push_back(int32_t(p.weights.size()));
    p.weights.resize(p.weights.size() + size_t(rank) * kIn[m]);
    p.offset_b.push_back(int32_t(p.weights.size()));
    p.weights.resize(p.weights.size() + size_t(rank) * kOut[m]);
  }
  for (auto& w : p.weights) w = rng.uniform(-0.05f, 0.05f);
  return p;
}

struct Buffers {
  std::vector<DeviceBuffer<float>> x, y;
  int64_t y_stride = 28672;
  Buffers(int64_t rows) {
    for (int i = 0; i < kRotation; ++i) {
      x.emplace_back(size_t(rows) * 14336);
      y.emplace_back(size_t(rows) * size_t(y_stride));
      x.back().zero();
      y.back().zero();
    }
  }
};

// Times `call` over kRotation row sets; returns microseconds and figures GB/s against the HBM ceiling.
double measure(harness::Harness& h, const std::string& name, const DeviceLoraBank& bank,
               std::vector<DeviceLoraRows>& rows, Buffers& buf, const Call& call, double weight_bytes,
               int64_t adapter_rows, cudaStream_t stream) {
  std::vector<LoraModuleOutput> outs;
  int64_t at = 0;
  for (int32_t m : call.modules) {
    outs.push_back({m, at, kOut[size_t(m)]});
    at += kOut[size_t(m)];
  }
  const int64_t k = kIn[size_t(call.modules[0])];
  int turn = 0;
  auto one = [&] {
    const int i = turn++ % kRotation;
    apply_adapters(bank, rows[size_t(i)], buf.x[size_t(i)].get(), k, buf.y[size_t(i)].get(), buf.y_stride,
                   outs.data(), int64_t(outs.size()), stream);
  };
  const double latency_ms = harness::time_ms(one, kRotation, 2 * kRotation, stream);
  const double ms = queued_ms(
      [&] {
        for (int i = 0; i < 2 * kRotation; ++i) one();
      },
      2 * kRotation, stream);
  LPX_CUDA(cudaGetLastError());
  const double bytes = weight_bytes + double(adapter_rows) * (double(k) * 4 + double(at) * 8);
  const double gbs = bytes / (ms * 1e-3) / 1e9;
  h.figure(name, {{"us", ms * 1e3},
                  {"gbs", gbs},
                  {"frac_hbm", h.hbm_gbs > 0 ? gbs / h.hbm_gbs : 0},
                  {"mb", bytes / 1e6},
                  {"latency_us", latency_ms * 1e3}});
  return ms * 1e3;
}

// bf16 bytes of A and Bt of the call's modules for one adapter of `rank`.
double adapter_bytes(const Call& call, int32_t rank) {
  double b = 0;
  for (int32_t m : call.modules) b += 2.0 * rank * (kIn[size_t(m)] + kOut[size_t(m)]);
  return b;
}

// kRotation row sets: row t uses slot (t % distinct + 8 · set) % kSlots.
std::vector<DeviceLoraRows> row_sets(const std::vector<int32_t>& base, cudaStream_t stream) {
  std::vector<DeviceLoraRows> sets(kRotation);
  for (int i = 0; i < kRotation; ++i) {
    std::vector<int32_t> s = base;
    for (auto& v : s)
      if (v >= 0) v = (v + 8 * i) % kSlots;
    sets[size_t(i)].set(s.data(), int64_t(s.size()), stream);
  }
  return sets;
}

}  // namespace

void bench_lora(harness::Harness& h) {
  cudaStream_t stream;
  LPX_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const int64_t decode_rows = 64, prefill_rows = 2048;
  Buffers decode(decode_rows);
  for (int32_t rank : {8, 16, 64}) {
    DeviceLoraBank bank(kSlots, int32_t(kIn.size()), LoraDtype::Bf16);
    const Packed p = packed(rank);
    for (int32_t s = 0; s < kSlots; ++s) bank.set_slot(s, p.view());
    double one = 0;
    for (int distinct : {1, 8, 32, 64}) {
      std::vector<int32_t> slots(decode_rows);
      for (int64_t t = 0; t < decode_rows; ++t) slots[size_t(t)] = int32_t(t % distinct);
      auto rows = row_sets(slots, stream);
      for (const Call& call : kCalls) {
        const double us = measure(h, "decode 64 rows, " + std::to_string(distinct) + " adapters, r" +
                                         std::to_string(rank) + ", " + call.name,
                                  bank, rows, decode, call, distinct * adapter_bytes(call, rank), decode_rows, stream);
        if (call.modules.size() == 3 && distinct == 1) one = us;
        if (call.modules.size() == 3 && distinct == 64)
          h.figure("64 distinct vs 1 adapter, 64 rows, r" + std::to_string(rank) + ", q|k|v", {{"time_ratio", us / one}});
      }
    }
    if (rank == 8) {
      // Mixed ranks: one slot at r64 among r8 ones must cost its own bytes, not r64 for every slot.
      const Packed big = packed(64);
      bank.set_slot(0, big.view());
      std::vector<int32_t> slots(decode_rows);
      std::iota(slots.begin(), slots.end(), 0);
      auto rows = row_sets(slots, stream);
      const Call& qkv = kCalls[0];
      measure(h, "decode 64 rows, 63 adapters r8 + 1 r64, q|k|v", bank, rows, decode, qkv,
              63 * adapter_bytes(qkv, 8) + adapter_bytes(qkv, 64), decode_rows, stream);
    }
    if (rank == 16 || rank == 64) {
      Buffers prefill(prefill_rows);
      std::vector<int32_t> slots(prefill_rows);
      for (int64_t t = 0; t < prefill_rows; ++t) slots[size_t(t)] = int32_t(t / 512);
      auto rows = row_sets(slots, stream);
      for (const Call& call : kCalls)
        measure(h, "prefill 2048 rows, 4 adapters, r" + std::to_string(rank) + ", " + call.name, bank, rows, prefill,
                call, 4 * adapter_bytes(call, rank), prefill_rows, stream);
    }
  }
  LPX_CUDA(cudaStreamSynchronize(stream));
  cudaStreamDestroy(stream);
}

}  // namespace loraplex::cuda
