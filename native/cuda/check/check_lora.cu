// check_lora: the CUDA apply_adapters against the CPU one (loraplex::apply_adapters over a LoraBank and a
// LoraRowLayout holding the same adapters) on randomized cases: f32 / bf16 / f16 banks, ranks 1..128 mixed,
// modules of different N (and K), base rows, empty calls, one token, 40+ slots, DoRA output scales, strided y
// with column offsets, shapes that take the plain kernels, and set / clear / replace between applies.
// The banks round weights identically, so only summation order differs: f32 tolerances.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "../check/groups.h"
#include "loraplex/cuda/lora.h"
#include "loraplex/lora.h"

namespace loraplex::cuda {
namespace {

using harness::DeviceBuffer;
using harness::Rng;

constexpr int kMaxTestRank = 128;

// A packed adapter as the binding hands it over: one weights array, per-module offsets.
struct Adapter {
  std::vector<float> weights, scale, out_scale;
  std::vector<int32_t> rank, offset_a, offset_b, in, out, offset_out_scale;

  LoraAdapterView view() const {
    LoraAdapterView v;
    v.weights = weights.data();
    v.weights_length = weights.size();
    v.rank = rank.data();
    v.offset_a = offset_a.data();
    v.offset_b = offset_b.data();
    v.scale = scale.data();
    v.in_features = in.data();
    v.out_features = out.data();
    v.out_scale = out_scale.data();
    v.offset_out_scale = offset_out_scale.data();
    return v;
  }
};

// ranks[m] = 0 leaves module m untargeted; dora[m] gives it an output scale.
Adapter make_adapter(Rng& rng, const std::vector<int32_t>& in, const std::vector<int32_t>& out,
                     const std::vector<int32_t>& ranks, const std::vector<bool>& dora) {
  Adapter a;
  a.in = in;
  a.out = out;
  a.rank = ranks;
  for (size_t m = 0; m < in.size(); ++m) {
    const int32_t r = ranks[m];
    a.scale.push_back(rng.uniform(0.25f, 2.f));
    a.offset_a.push_back(static_cast<int32_t>(a.weights.size()));
    const float sa = 1.f / std::sqrt(float(in[m]));
    for (int64_t i = 0; i < int64_t(r) * in[m]; ++i) a.weights.push_back(rng.uniform() * sa);
    a.offset_b.push_back(static_cast<int32_t>(a.weights.size()));
    const float sb = r > 0 ? 1.f / std::sqrt(float(r)) : 0.f;
    for (int64_t i = 0; i < int64_t(r) * out[m]; ++i) a.weights.push_back(rng.uniform() * sb);
    if (r > 0 && dora[m]) {
      a.offset_out_scale.push_back(static_cast<int32_t>(a.out_scale.size()));
      for (int32_t n = 0; n < out[m]; ++n) a.out_scale.push_back(rng.uniform(0.5f, 1.5f));
    } else {
      a.offset_out_scale.push_back(-1);
    }
  }
  if (a.out_scale.empty()) a.out_scale.push_back(0.f);  // a valid pointer either way
  return a;
}

// Random ranks in [1, max_rank] (zero with probability `untargeted`), DoRA with probability `dora`.
Adapter random_adapter(Rng& rng, const std::vector<int32_t>& in, const std::vector<int32_t>& out, int max_rank,
                       double untargeted, double dora) {
  std::vector<int32_t> ranks;
  std::vector<bool> doras;
  for (size_t m = 0; m < in.size(); ++m) {
    ranks.push_back(rng.uniform(0.f, 1.f) < untargeted ? 0 : rng.range(1, max_rank));
    doras.push_back(rng.uniform(0.f, 1.f) < dora);
  }
  return make_adapter(rng, in, out, ranks, doras);
}

// The same adapters in a CPU and a device bank, applied to the same rows.
class Fixture {
 public:
  Fixture(int32_t slots, std::vector<int32_t> in, std::vector<int32_t> out, LoraDtype dtype)
      : in_(std::move(in)), out_(std::move(out)), cpu_(slots, int32_t(in_.size()), dtype),
        gpu_(slots, int32_t(in_.size()), dtype) {
    LPX_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~Fixture() { cudaStreamDestroy(stream_); }

  const std::vector<int32_t>& in() const { return in_; }
  const std::vector<int32_t>& out() const { return out_; }
  bool occupied(int32_t slot) const { return cpu_.occupied(slot); }
  int32_t slots() const { return cpu_.num_slots(); }

  void set(int32_t slot, const Adapter& a) {
    cpu_.set_slot(slot, a.view());
    gpu_.set_slot(slot, a.view());
  }
  void clear(int32_t slot) {
    cpu_.clear_slot(slot);
    gpu_.clear_slot(slot);
  }
  void fill(Rng& rng, int max_rank, double untargeted, double dora, double empty) {
    for (int32_t s = 0; s < slots(); ++s)
      if (rng.uniform(0.f, 1.f) >= empty) set(s, random_adapter(rng, in_, out_, max_rank, untargeted, dora));
  }
  // Rows: a random occupied slot each, or -1 with probability `base`.
  std::vector<int32_t> random_rows(Rng& rng, int64_t m, double base) const {
    std::vector<int32_t> occupied_slots;
    for (int32_t s = 0; s < slots(); ++s)
      if (occupied(s)) occupied_slots.push_back(s);
    std::vector<int32_t> rows(size_t(m), -1);
    for (auto& r : rows)
      if (!occupied_slots.empty() && rng.uniform(0.f, 1.f) >= base)
        r = occupied_slots[size_t(rng.range(0, int(occupied_slots.size()) - 1))];
    return rows;
  }

  // One step: rows set once, then each call (modules sharing one x of K = in[module]) on both backends.
  // Returns {max abs error, worst ratio to the tolerance} over every y element, including untouched ones.
  std::pair<double, double> apply(Rng& rng, const std::vector<int32_t>& row_slot,
                                  const std::vector<std::vector<int32_t>>& calls, bool odd_layout) {
    const int64_t m = int64_t(row_slot.size());
    LoraRowLayout layout;
    layout.set(row_slot.data(), m);
    DeviceLoraRows rows;
    rows.set(row_slot.data(), m, stream_);
    double max_abs = 0, worst = 0;
    for (const auto& call : calls) {
      const int64_t k = in_[size_t(call[0])];
      // Column ranges with gaps (odd ones when asked), in the call's order.
      std::vector<LoraModuleOutput> outs;
      int64_t at = odd_layout ? 3 : 4;
      for (int32_t mod : call) {
        outs.push_back({mod, at, out_[size_t(mod)]});
        at += out_[size_t(mod)] + (odd_layout ? 5 : 8);
      }
      const int64_t stride = odd_layout ? at + 1 : (at + 3) / 4 * 4;
      // At least one element each, so the device buffers exist even for a step without rows.
      std::vector<float> x = rng.vec(std::max<size_t>(1, size_t(m * k))), y = rng.vec(std::max<size_t>(1, size_t(m * stride)));
      DeviceBuffer<float> dx(x), dy(y);
      std::vector<float> want = y;
      apply_adapters(cpu_, layout, x.data(), k, LoraOutputs{want.data(), stride, outs.data(), int64_t(outs.size())});
      loraplex::cuda::apply_adapters(gpu_, rows, dx.get(), k, dy.get(), stride, outs.data(), int64_t(outs.size()),
                                     stream_);
      LPX_CUDA(cudaGetLastError());
      LPX_CUDA(cudaStreamSynchronize(stream_));
      const double atol = 2e-6 * std::sqrt(double(k) + kMaxTestRank) + 1e-6;  // f32 sums of K, then rank terms
      auto [a, w] = harness::compare(dy.download(), want, atol, 1e-5);
      max_abs = std::max(max_abs, a);
      worst = std::max(worst, w);
    }
    return {max_abs, worst};
  }

 private:
  std::vector<int32_t> in_, out_;
  LoraBank cpu_;
  DeviceLoraBank gpu_;
  cudaStream_t stream_ = nullptr;
};

const char* dtype_name(LoraDtype d) { return d == LoraDtype::F32 ? "f32" : d == LoraDtype::Bf16 ? "bf16" : "f16"; }

void report(harness::Harness& h, const std::string& name, std::pair<double, double> r) {
  h.check("lora " + name, r.second <= 1.0, harness::fmt("max abs err %.3g, worst err/tol %.3g", r.first, r.second));
}

}  // namespace

void check_lora(harness::Harness& h) {
  Rng rng(20261204);
  const LoraDtype dtypes[] = {LoraDtype::F32, LoraDtype::Bf16, LoraDtype::F16};

  // Many slots, mixed ranks 1..128, untargeted modules, DoRA, base rows; one call of all 5 modules (out of
  // order) and a second of 2 on the same rows. Aligned shapes: the fast kernels.
  for (LoraDtype d : dtypes) {
    Fixture f(45, {256, 256, 256, 256, 256}, {256, 64, 136, 24, 512}, d);
    f.fill(rng, 128, 0.2, 0.3, 0.1);
    auto rows = f.random_rows(rng, 80, 0.2);
    report(h, std::string("mixed ranks, 45 slots, 80 rows, ") + dtype_name(d),
           f.apply(rng, rows, {{4, 0, 2, 1, 3}, {1, 3}}, false));
  }

  // Shapes the fast kernels cannot take: odd K, odd N, odd offsets and stride (plain shrink and expand), and
  // the two halves (fast shrink with plain expand, plain shrink with fast expand).
  for (LoraDtype d : dtypes) {
    Fixture f(7, {37, 37, 64, 64, 36, 36}, {33, 5, 30, 16, 64, 8}, d);
    f.fill(rng, 40, 0.1, 0.4, 0.0);
    auto rows = f.random_rows(rng, 29, 0.25);
    report(h, std::string("odd K and N, odd offsets, ") + dtype_name(d),
           f.apply(rng, rows, {{0, 1}, {2, 3}, {4, 5}}, true));
    report(h, std::string("K 64 odd N, K 36 aligned N, ") + dtype_name(d), f.apply(rng, rows, {{3}, {5, 4}}, false));
  }

  // Decode at Llama-3.1-8B's q|k|v: one token, then 64 rows of 64 distinct adapters, rank 16 and 1.
  {
    Fixture f(64, {4096, 4096, 4096}, {4096, 1024, 1024}, LoraDtype::Bf16);
    for (int32_t s = 0; s < 64; ++s)
      f.set(s, make_adapter(rng, f.in(), f.out(), {s % 2 ? 16 : 1, 16, s % 3 ? 16 : 0}, {false, s % 5 == 0, false}));
    report(h, "one token, q|k|v 4096, bf16", f.apply(rng, {17}, {{0, 1, 2}}, false));
    std::vector<int32_t> rows(64);
    std::iota(rows.begin(), rows.end(), 0);
    std::reverse(rows.begin(), rows.end());
    report(h, "64 rows, 64 adapters, q|k|v 4096, bf16", f.apply(rng, rows, {{0, 1, 2}}, false));
  }

  // K split over blocks (few tiles), with a last part shorter than the others (K 3000 = 1536 + 1464).
  for (LoraDtype d : {LoraDtype::F16, LoraDtype::Bf16}) {
    Fixture f(2, {3000, 3000, 3000}, {24, 4096, 30}, d);
    f.set(0, make_adapter(rng, f.in(), f.out(), {128, 5, 7}, {false, true, true}));
    f.set(1, make_adapter(rng, f.in(), f.out(), {3, 64, 16}, {true, false, false}));
    // The N 30 call runs the plain expand over the split shrink's partials.
    report(h, std::string("K 3000 split over blocks, ") + dtype_name(d),
           f.apply(rng, {0, 1, 0, -1, 0}, {{1, 0}, {2}}, false));
  }

  // Prefill segments: long groups (tiles of 8 and a remainder), interleaved rows, ranks 128 / 64 / 8 / 1.
  for (LoraDtype d : {LoraDtype::F32, LoraDtype::Bf16}) {
    Fixture f(4, {512, 512}, {512, 128}, d);
    const int32_t ranks[4][2] = {{128, 8}, {64, 64}, {8, 1}, {1, 128}};
    for (int32_t s = 0; s < 4; ++s) f.set(s, make_adapter(rng, f.in(), f.out(), {ranks[s][0], ranks[s][1]}, {s == 1, s == 3}));
    std::vector<int32_t> rows;
    for (int i = 0; i < 250; ++i) rows.push_back(2);
    for (int i = 0; i < 301; ++i) rows.push_back(i % 3 == 0 ? -1 : 0);
    for (int i = 0; i < 53; ++i) rows.push_back(i % 2 ? 1 : 3);
    report(h, std::string("prefill 604 rows, 4 adapters, ") + dtype_name(d), f.apply(rng, rows, {{0, 1}}, false));
  }

  // Nothing to do: every row on the base; a call whose modules no adapter targets; no rows at all.
  {
    Fixture f(3, {64, 64}, {64, 64}, LoraDtype::F32);
    f.set(0, make_adapter(rng, f.in(), f.out(), {8, 0}, {false, false}));
    f.set(2, make_adapter(rng, f.in(), f.out(), {4, 0}, {true, false}));
    report(h, "all rows base", f.apply(rng, std::vector<int32_t>(9, -1), {{0, 1}}, false));
    report(h, "untargeted module", f.apply(rng, {0, 2, 0, -1}, {{1}}, false));
    report(h, "no rows", f.apply(rng, {}, {{0}}, false));
  }

  // More modules than one launch takes (10 > 8), with a mix of ranks.
  {
    std::vector<int32_t> in(10, 128), out;
    for (int i = 0; i < 10; ++i) out.push_back(8 * (i + 1));
    Fixture f(5, in, out, LoraDtype::F16);
    f.fill(rng, 32, 0.3, 0.3, 0.0);
    auto rows = f.random_rows(rng, 21, 0.1);
    report(h, "10 modules in one call, f16", f.apply(rng, rows, {{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}}, false));
  }

  // Slots change between steps: replace an occupied slot (new ranks), clear one, fill an empty one, clear and
  // re-set; each step applies right after, on another stream than the uploads.
  for (LoraDtype d : {LoraDtype::Bf16, LoraDtype::F32}) {
    Fixture f(41, {128, 128, 96}, {128, 40, 96}, d);
    f.fill(rng, 64, 0.1, 0.2, 0.3);
    auto step = [&](const std::string& what) {
      auto rows = f.random_rows(rng, 50, 0.1);
      report(h, what + ", " + dtype_name(d), f.apply(rng, rows, {{0, 1}, {2}}, false));
    };
    step("41 slots before changes");
    int32_t occupied = 0, empty = 0;
    while (!f.occupied(occupied)) ++occupied;
    while (f.occupied(empty)) ++empty;
    f.set(occupied, random_adapter(rng, f.in(), f.out(), 128, 0.0, 0.5));
    step("after replacing a slot");
    f.clear(occupied);
    step("after clearing it");
    f.set(empty, random_adapter(rng, f.in(), f.out(), 16, 0.0, 0.0));
    f.set(occupied, random_adapter(rng, f.in(), f.out(), 3, 0.0, 1.0));
    step("after filling an empty slot and re-setting the cleared one");
  }
}

}  // namespace loraplex::cuda
