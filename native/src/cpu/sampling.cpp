// Sampling: greedy, temperature, top-k, top-p and the inverse-CDF pick (semantics in sampling.h).
// The reference (src/kernels/reference/sampling.ts) runs the same arithmetic in the same order, so both
// choose the same token; this file only avoids the work the walk never looks at.
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

// Descending probability, then ascending token: the order of the inverse-CDF walk.
inline bool walk_order(const Candidate& a, const Candidate& b) {
  return a.p > b.p || (a.p == b.p && a.token < b.token);
}

// Candidates given in ascending token order, put in walk order. A long prefix (a flat distribution keeps most of
// the vocabulary: 128 K tokens took ~15 ms in std::sort) goes through a stable LSD radix sort on p's bits instead:
// p ≥ 0 is never NaN here, so its bits order as its values, their complement orders descending, and stability
// keeps equal p in ascending token order: exactly walk_order, in O(n).
constexpr size_t kRadixMin = 4096;

// A stable LSD radix sort of items[0, n) (n ≥ 1) by key(item)'s bits [lo, 64), kDigitBits a pass; a pass whose
// items all share one digit moves nothing and is skipped. The result lies in `items` or `scratch`: the one returned.
template <int kDigitBits, typename T, typename Key>
T* radix_sort(T* items, T* scratch, size_t n, int lo, Key key) {
  constexpr uint64_t kMask = (uint64_t(1) << kDigitBits) - 1;
  thread_local std::vector<uint32_t> count(size_t(1) << kDigitBits);
  T* from = items;
  T* to = scratch;
  for (int shift = lo; shift < 64; shift += kDigitBits) {
    std::fill(count.begin(), count.end(), 0u);
    for (size_t i = 0; i < n; ++i) ++count[(key(from[i]) >> shift) & kMask];
    if (count[(key(from[0]) >> shift) & kMask] == n) continue;
    uint32_t sum = 0;
    for (uint32_t& c : count) {
      const uint32_t here = c;
      c = sum;
      sum += here;
    }
    for (size_t i = 0; i < n; ++i) to[count[(key(from[i]) >> shift) & kMask]++] = from[i];
    std::swap(from, to);
  }
  return from;
}

void sort_walk_order(std::vector<Candidate>& c) {
  if (c.size() < kRadixMin) {
    std::sort(c.begin(), c.end(), walk_order);
    return;
  }
  thread_local std::vector<Candidate> scratch;
  scratch.resize(c.size());
  const Candidate* sorted = radix_sort<16>(c.data(), scratch.data(), c.size(), 0, [](const Candidate& x) {
    uint64_t bits;
    std::memcpy(&bits, &x.p, sizeof bits);
    return ~bits;
  });
  if (sorted != c.data()) c.swap(scratch);
}

// Tokens given in ascending order (a long prefix: a flat distribution keeps most of the vocabulary) → `out`,
// the first of them in walk order, enough to hold `need` of the mass (all of them if need is infinite);
// `complete` when that is all of them. Found from the logits: p = exp(x − m) with x = logit / T is
// non-decreasing in the logit, so logits descending give p non-increasing.
//   1. A 32-bit key per token (descending logit) and a histogram of its top 11 bits, with each bucket's mass and
//      largest p. The buckets in order until their mass passes `need` (a margin far above the rounding of these
//      sums) are the ones the walk can reach: on average half the tokens, for a uniform draw.
//   2. Those tokens, by a stable LSD radix sort on the key (three 11-bit digits, 8-byte items).
//   3. Equal p from different logits (exp rounds them together) go back to token order. A p that rises along
//      the result, or a later bucket holding a p as large as the last one taken, returns false (the caller
//      then sorts on p itself). So whenever this returns true, `out` is exactly a prefix of walk_order.
bool walk_prefix_by_logit(const float* logits, const double* p, const std::vector<int32_t>& tokens, double need,
                          std::vector<Candidate>& out, bool& complete) {
  constexpr int kDigitBits = 11;
  constexpr uint32_t kDigits = 1u << kDigitBits;
  constexpr int kTopShift = 64 - kDigitBits;
  thread_local std::vector<uint64_t> items, scratch;
  const size_t n = tokens.size();
  items.resize(n);
  scratch.resize(n);
  uint32_t count[kDigits] = {};
  double mass[kDigits] = {}, top_p[kDigits] = {};
  for (size_t i = 0; i < n; ++i) {
    const int32_t token = tokens[i];
    uint32_t bits;
    const float key = key_of(logits[token]);
    std::memcpy(&bits, &key, sizeof bits);
    const uint32_t ascending = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
    const uint64_t item = (uint64_t(~ascending) << 32) | uint32_t(token);  // tokens ascending: the sort is stable
    items[i] = item;
    const uint32_t d = uint32_t(item >> kTopShift);
    ++count[d];
    mass[d] += p[token];
    top_p[d] = std::max(top_p[d], p[token]);
  }
  uint32_t last = kDigits - 1;
  double cum = 0;
  for (uint32_t d = 0; d < kDigits; ++d) {
    cum += mass[d];
    if (count[d] && cum > need * (1 + 0x1p-20)) {
      last = d;
      break;
    }
  }
  double later_top = -1;  // the largest p past the taken buckets
  for (uint32_t d = last + 1; d < kDigits; ++d) later_top = std::max(later_top, top_p[d]);
  size_t taken = 0;
  for (size_t i = 0; i < n; ++i) {
    if (uint32_t(items[i] >> kTopShift) <= last) items[taken++] = items[i];
  }
  complete = taken == n;
  const uint64_t* sorted =
      radix_sort<kDigitBits>(items.data(), scratch.data(), taken, 32, [](uint64_t x) { return x; });
  out.resize(taken);
  for (size_t i = 0; i < taken; ++i) {
    const int32_t token = int32_t(uint32_t(sorted[i]));
    out[i] = {p[token], token};
  }
  for (size_t i = 1, run = 0; i <= taken; ++i) {
    if (i < taken && out[i].p > out[i - 1].p) return false;
    if (i < taken && out[i].p == out[i - 1].p) continue;
    if (i - run > 1) {  // equal p: lowest token first
      std::sort(out.begin() + run, out.begin() + i,
                [](const Candidate& x, const Candidate& y) { return x.token < y.token; });
    }
    run = i;
  }
  return complete || later_top < out.back().p;
}

constexpr int32_t kNeedMore = -1;

// Walks `prefix` (a prefix of the full walk order L, `complete` when it is all of L).
// Returns the token, or kNeedMore when the answer lies beyond the prefix.
int32_t walk(const std::vector<Candidate>& prefix, bool complete, double z, const SamplingParams& sp) {
  size_t kept = prefix.size();
  double mass = z;
  if (sp.top_p < 1) {
    const double cut = sp.top_p * z;
    double cum = 0;
    bool reached = false;
    for (size_t i = 0; i < prefix.size(); ++i) {
      cum += prefix[i].p;
      if (cum >= cut) {
        kept = i + 1;
        reached = true;
        break;
      }
    }
    if (!reached && !complete) return kNeedMore;
    mass = cum;
    complete = true;  // the kept set is now fully known
  }
  const double target = sp.uniform * mass;
  double acc = 0;
  for (size_t i = 0; i < kept; ++i) {
    acc += prefix[i].p;
    if (acc > target) return prefix[i].token;
  }
  if (!complete) return kNeedMore;
  for (size_t i = kept; i-- > 0;)
    if (prefix[i].p > 0) return prefix[i].token;
  return prefix[0].token;
}

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
  std::sort(heap.begin(), heap.end(), [](const Entry& a, const Entry& b) { return a.second < b.second; });
  double m = -INFINITY;
  for (const Entry& e : heap) m = std::max(m, double(e.first) / sp.temperature);
  thread_local std::vector<Candidate> cands;
  thread_local std::vector<double> weights;
  cands.clear();
  weights.clear();
  for (const Entry& e : heap) {
    const double x = double(e.first) / sp.temperature;
    cands.push_back({x == m ? 1.0 : std::exp(x - m), e.second});
    weights.push_back(cands.back().p);
  }
  const double z = lane_sum(weights.data(), int64_t(weights.size()));  // in token order
  std::sort(cands.begin(), cands.end(), walk_order);
  return walk(cands, true, z, sp);
}

int32_t sample_full(const SamplingRowKernels& k, const float* logits, int64_t vocab, const SamplingParams& sp) {
  thread_local std::vector<double> p;
  p.resize(size_t(vocab));
  const double m = double(k.max_key(logits, vocab)) / sp.temperature;
  const double z = k.softmax_weights(logits, vocab, sp.temperature, m, p.data());
  // Tokens with p ≥ t form a prefix of the walk order; lower t until the walk ends inside it.
  static constexpr double kThresholds[] = {0x1p-10, 0x1p-24, 0x1p-50, 0.0};
  thread_local std::vector<Candidate> prefix;
  thread_local std::vector<int32_t> tokens;
  for (double t : kThresholds) {
    tokens.clear();
    for (int64_t v = 0; (v = k.next_at_least(p.data(), v, vocab, t)) < vocab;) {
      for (; v < vocab && p[v] >= t; ++v) tokens.push_back(int32_t(v));  // a run: no call per token
    }
    if (tokens.size() >= kRadixMin) {
      // The mass the walk must reach: the top-p cut, else the draw's target.
      const double need = sp.top_p < 1 ? sp.top_p * z : sp.uniform * z;
      bool complete = false;
      bool exact = walk_prefix_by_logit(logits, p.data(), tokens, need, prefix, complete);
      if (exact && !complete) {
        const int32_t token = walk(prefix, false, z, sp);
        if (token != kNeedMore) return token;
        exact = walk_prefix_by_logit(logits, p.data(), tokens, INFINITY, prefix, complete);  // a rounding fell short
      }
      if (exact) {
        const int32_t token = walk(prefix, t == 0.0, z, sp);
        if (token != kNeedMore) return token;
        continue;  // the walk goes past this threshold's tokens
      }
    }
    prefix.clear();
    for (int32_t v : tokens) prefix.push_back({p[v], v});
    sort_walk_order(prefix);
    const int32_t token = walk(prefix, t == 0.0, z, sp);
    if (token != kNeedMore) return token;
  }
  return prefix[0].token;  // unreachable: the last threshold takes every token, and that walk always ends
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
