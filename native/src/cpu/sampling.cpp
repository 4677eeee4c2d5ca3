// Sampling: greedy, temperature, top-k, top-p and the inverse-CDF pick (semantics in sampling.h).
// The reference (src/kernels/reference/sampling.ts) runs the same arithmetic, so both choose the same token;
// this file only avoids the work the walk never looks at.
#include "loraplex/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "loraplex/cpu_features.h"
#include "loraplex/thread_pool.h"
#include "sampling_rows.h"

namespace loraplex {

std::string check_sampling_params(const SamplingParams& p, int64_t row) {
  const std::string where = "sampling row " + std::to_string(row) + ": ";
  if (!(p.temperature >= 0) || !std::isfinite(p.temperature)) return where + "temperature must be finite and ≥ 0";
  if (!(p.top_k >= 0) || p.top_k != std::floor(p.top_k)) return where + "topK must be a whole number ≥ 0";
  if (!(p.top_p >= 0 && p.top_p <= 1)) return where + "topP must be in [0, 1]";
  if (!(p.uniform >= 0 && p.uniform < 1)) return where + "uniform must be in [0, 1)";
  return "";
}

namespace {

inline float key_of(float logit) { return std::isnan(logit) ? -INFINITY : logit; }

const SamplingRowKernels& row_kernels() {
  const Isa isa = active_isa();
  if (isa >= Isa::Avx512) return kSamplingAvx512;
  if (isa >= Isa::Avx2) return kSamplingAvx2;
  return kSamplingScalar;
}

int32_t argmax(const SamplingRowKernels& k, const float* logits, int64_t vocab) {
  const float best = k.max_key(logits, vocab);
  return best == -INFINITY ? 0 : int32_t(k.next_equal(logits, 0, vocab, best));
}

struct Candidate {
  double p;
  int32_t token;
};

// Descending probability, then ascending token: the walk order L.
inline bool walk_order(const Candidate& a, const Candidate& b) {
  return a.p > b.p || (a.p == b.p && a.token < b.token);
}

// The integer weight of p (sampling.h): floor(p · 2^S), S = 63 − bit length of the candidate count, so that a
// whole candidate set sums below 2^63 and every running sum is exact, in any order.
double weight_scale(int64_t candidates) {
  const int bits = 64 - __builtin_clzll(uint64_t(candidates));
  return std::ldexp(1.0, 63 - bits);
}
inline uint64_t weight_of(double p, double scale) { return uint64_t(p * scale); }

struct Hit {
  int32_t token;  // -1: no running sum reached
  uint64_t sum;   // the running sum at that token
};

// The pick (sampling.h) given find_first(reached): the first token of L whose running sum R satisfies
// reached(R), which must be monotone in R. z: the candidates' total weight.
template <typename FindFirst>
int32_t pick(FindFirst&& find_first, uint64_t z, const SamplingParams& sp) {
  uint64_t mass = z;
  if (sp.top_p < 1) {
    const double cut = sp.top_p * double(z);
    const Hit kept = find_first([cut](uint64_t r) { return double(r) >= cut; });
    if (kept.token >= 0) mass = kept.sum;
  }
  // uniform < 1 keeps the rounded product below double(mass), which the last kept token's running sum reaches.
  const double target = sp.uniform * double(mass);
  return find_first([target](uint64_t r) { return double(r) > target; }).token;
}

// Walks a list already in walk order.
struct ListWalk {
  const std::vector<Candidate>& list;
  double scale;
  template <typename Reached>
  Hit operator()(Reached reached) const {
    uint64_t sum = 0;
    for (const Candidate& c : list) {
      sum += weight_of(c.p, scale);
      if (reached(sum)) return {c.token, sum};
    }
    return {-1, sum};
  }
};

int32_t sample_top_k(const SamplingRowKernels& k, const float* logits, int64_t vocab, int64_t top_k,
                     const SamplingParams& sp) {
  // Heap of the top_k best seen so far, worst on top (lower key, then higher token, is worse).
  using Entry = std::pair<float, int32_t>;
  auto better = [](const Entry& a, const Entry& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  thread_local std::vector<Entry> heap;
  heap.clear();
  for (int64_t v = 0; v < top_k; ++v) heap.emplace_back(key_of(logits[v]), int32_t(v));
  std::make_heap(heap.begin(), heap.end(), better);
  // A later token replaces the worst only with a strictly greater key (ties keep the lower token).
  for (int64_t v = top_k; (v = k.next_above(logits, v, vocab, heap.front().first)) < vocab; ++v) {
    std::pop_heap(heap.begin(), heap.end(), better);
    heap.back() = {logits[v], int32_t(v)};
    std::push_heap(heap.begin(), heap.end(), better);
  }
  double m = -INFINITY;
  for (const Entry& e : heap) m = std::max(m, double(e.first) / sp.temperature);
  const double scale = weight_scale(top_k);
  thread_local std::vector<Candidate> cands;
  cands.clear();
  uint64_t z = 0;
  for (const Entry& e : heap) {
    const double x = double(e.first) / sp.temperature;
    cands.push_back({x == m ? 1.0 : std::exp(x - m), e.second});
    z += weight_of(cands.back().p, scale);
  }
  std::sort(cands.begin(), cands.end(), walk_order);
  return pick(ListWalk{cands, scale}, z, sp);
}

// Without top-k the candidates are the whole vocabulary; sorting it (128 K tokens of a flat row) cost more than
// the rest of a decode step's sampling. Integer weights make every running sum exact in any order, so the walk
// needs only bucket totals: tokens go into buckets by p's bits (64 a factor of two, best first; equal p share
// one), and only the bucket where a running sum is reached is gathered and sorted.
constexpr int kBucketShift = 46;  // 52 mantissa bits − 6: 64 buckets an octave
constexpr uint32_t kBuckets = 4096;  // 64 octaves: every p ≥ 2^-64, all that can weigh anything (S ≤ 62)
constexpr uint64_t kOneBits = 0x3ff0000000000000;  // 1.0

// Non-increasing in p ∈ [0, 1]: a non-negative double's bits order as its value.
inline uint32_t bucket_of(double p) {
  uint64_t bits;
  std::memcpy(&bits, &p, sizeof bits);
  const uint64_t below = (kOneBits - bits) >> kBucketShift;
  return below < kBuckets ? uint32_t(below) : kBuckets - 1;
}

struct BucketWalk {
  const double* p;
  const uint16_t* bucket;
  const uint64_t* mass;  // per bucket
  int64_t vocab;
  double scale;
  std::vector<Candidate>& gathered;
  uint32_t& gathered_bucket;  // which bucket `gathered` holds (kBuckets: none)

  template <typename Reached>
  Hit operator()(Reached reached) const {
    uint64_t sum = 0;
    for (uint32_t d = 0; d < kBuckets; ++d) {
      if (mass[d] == 0 || !reached(sum + mass[d])) {
        sum += mass[d];  // a weightless bucket never reaches first
        continue;
      }
      if (gathered_bucket != d) {
        gathered.clear();
        for (int64_t v = 0; v < vocab; ++v)
          if (bucket[v] == d) gathered.push_back({p[v], int32_t(v)});
        std::sort(gathered.begin(), gathered.end(), walk_order);
        gathered_bucket = d;
      }
      for (const Candidate& c : gathered) {
        sum += weight_of(c.p, scale);
        if (reached(sum)) return {c.token, sum};
      }
      return {-1, sum};  // unreachable: the bucket's total reached
    }
    return {-1, sum};
  }
};

int32_t sample_full(const SamplingRowKernels& k, const float* logits, int64_t vocab, const SamplingParams& sp) {
  thread_local std::vector<double> p;
  thread_local std::vector<uint16_t> bucket;
  thread_local std::vector<Candidate> gathered;
  p.resize(size_t(vocab));
  bucket.resize(size_t(vocab));
  const double m = double(k.max_key(logits, vocab)) / sp.temperature;
  k.softmax_weights(logits, vocab, sp.temperature, m, p.data());
  const double scale = weight_scale(vocab);
  uint64_t mass[kBuckets] = {};
  uint64_t z = 0;
  for (int64_t v = 0; v < vocab; ++v) {
    const uint64_t w = weight_of(p[v], scale);
    const uint32_t d = bucket_of(p[v]);
    bucket[v] = uint16_t(d);
    mass[d] += w;
    z += w;
  }
  uint32_t gathered_bucket = kBuckets;
  return pick(BucketWalk{p.data(), bucket.data(), mass, vocab, scale, gathered, gathered_bucket}, z, sp);
}

int32_t sample_row(const SamplingRowKernels& k, const float* logits, int64_t vocab, const SamplingParams& sp) {
  if (sp.temperature == 0 || vocab == 1) return argmax(k, logits, vocab);
  if (sp.top_k > 0 && sp.top_k < double(vocab)) return sample_top_k(k, logits, vocab, int64_t(sp.top_k), sp);
  return sample_full(k, logits, vocab, sp);
}

}  // namespace

void sample(const float* logits, int64_t vocab, const SamplingParams* params, int64_t rows, int32_t* out) {
  const SamplingRowKernels& k = row_kernels();
  parallel_for(rows, [&](int64_t r, int) { out[r] = sample_row(k, logits + r * vocab, vocab, params[r]); });
}

}  // namespace loraplex
