// Speed of the memory-bound ops and of the sampler, as a fraction of the HBM copy ceiling (h.hbm_gbs).
// Bytes counted: what the kernel must read plus write once (the sampler: one read of its logits rows).
#include <vector>

#include "../check/groups.h"
#include "loraplex/cuda/ops.h"
#include "loraplex/cuda/sampling.h"

namespace loraplex::cuda {
namespace {

using harness::DeviceBuffer;
using harness::Harness;

void report(Harness& h, const std::string& name, double ms, double bytes, const std::string& note = "") {
  const double gbs = bytes / (ms * 1e-3) / 1e9;
  h.figure(name, {{"us", ms * 1e3}, {"gbs", gbs}, {"frac_hbm", h.hbm_gbs > 0 ? gbs / h.hbm_gbs : 0}}, note);
}

// Logits shaped like a language model's: a broad normal-ish body and a few tokens far above it.
std::vector<float> lm_logits(harness::Rng& rng, int64_t rows, int64_t vocab) {
  std::vector<float> x(size_t(rows * vocab));
  for (auto& v : x) v = 2.5f * (rng.uniform() + rng.uniform() + rng.uniform() + rng.uniform()) * 0.866f;
  for (int64_t r = 0; r < rows; r++)
    for (int i = 0; i < 16; i++) x[size_t(r * vocab + rng.range(0, int(vocab - 1)))] += rng.uniform(6, 14);
  return x;
}

}  // namespace

void bench_ops(Harness& h) {
  harness::Rng rng(7);
  for (int64_t rows : {64, 2048}) {
    const int64_t dim = 4096;
    DeviceBuffer<float> x(rng.vec(size_t(rows * dim))), w(rng.vec(size_t(dim))), out(size_t(rows * dim));
    const double ms = harness::time_ms([&] { rms_norm(x.get(), w.get(), out.get(), rows, dim, 1e-6f, 0); });
    report(h, "rms_norm " + std::to_string(rows) + "x4096", ms, 4.0 * (2 * rows * dim + dim));
  }
  {
    const int64_t rows = 64, inter = 14336;
    DeviceBuffer<float> gu(rng.vec(size_t(rows * 2 * inter))), out(size_t(rows * inter));
    const double ms = harness::time_ms([&] { silu_mul(gu.get(), out.get(), rows, inter, 0); });
    report(h, "silu_mul 64x14336", ms, 4.0 * 3 * rows * inter);
  }
  {
    const int64_t rows = 64, vocab = 128256;
    DeviceBuffer<float> logits(lm_logits(rng, rows, vocab));
    // The slow shape for the search: no token stands out, so the top-p cut falls among ~10⁵ similar tokens.
    DeviceBuffer<float> flat(rng.vec(size_t(rows * vocab), -1, 1));
    std::vector<int32_t> index(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; r++) index[size_t(r)] = int32_t(r);
    DeviceBuffer<int32_t> di(index), out{size_t(rows)};
    const double bytes = 4.0 * rows * vocab;
    struct Case {
      const char* name;
      SamplingParams p;
      bool flat = false;
    };
    const Case cases[] = {{"greedy", {0, 0, 1, 0.5}},
                          {"T 0.8 top-p 0.9", {0.8, 0, 0.9, 0.5}},
                          {"T 1 (no top-p)", {1.0, 0, 1, 0.5}},
                          {"T 0.8 top-k 50 top-p 0.9", {0.8, 50, 0.9, 0.5}},
                          {"flat logits T 1 top-p 0.95", {1.0, 0, 0.95, 0.5}, true}};
    for (const Case& c : cases) {
      std::vector<SamplingParams> params(size_t(rows), c.p);
      for (int64_t r = 0; r < rows; r++) params[size_t(r)].uniform = double(rng.next() >> 11) * 0x1p-53;
      DeviceBuffer<SamplingParams> dp{size_t(rows)};
      LPX_CUDA(cudaMemcpy(dp.get(), params.data(), params.size() * sizeof(SamplingParams), cudaMemcpyHostToDevice));
      const double ms =
          harness::time_ms([&] { sample((c.flat ? flat : logits).get(), vocab, di.get(), dp.get(), rows, out.get(), 0); });
      report(h, std::string("sample 64x128256 ") + c.name, ms, bytes, "one read of the logits counted");
    }
  }
}

}  // namespace loraplex::cuda
