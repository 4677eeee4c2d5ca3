// Token sampling on the device (semantics in ../include/loraplex/sampling.h), one block per sampled row.
//
// Greedy is one argmax pass. Otherwise every question the CPU answers by walking a sorted list ("the k-th
// best token", "the first token where the running mass reaches top_p·Z", "the first where it passes
// uniform·M") is a crossing search over a 64-bit value with a weight, in descending (value, then token
// ascending) order:
//   top-k:  value = rank (ordered key bits, then inverted token), weight 1, find count ≥ k;
//   p:      value = bits of p (p ≥ 0, so the bit order is the numeric order), weight p.
// The search is a radix descent (11-bit digits, per-digit count and mass) until the bucket holding the
// crossing has ≤ kCap members; those are gathered into shared memory, sorted and scanned. A bucket of one
// repeated p larger than that is resolved in token order. p is recomputed from the logits each pass (the row
// stays in L2); a conservative key interval skips the exp for tokens that cannot be in the bucket.
// The device sums p in f64 in its own order where the CPU sums p in exact integer units of 2^-S (sampling.h),
// so a draw within ~1e-14 relative of a boundary may pick the neighbouring token; everything else matches.
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "loraplex/cuda/sampling.h"

namespace loraplex::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kCap = 2048;   // candidates sorted in shared memory; also the bins of one digit (≤ 11 bits)
constexpr int kPerThread = kCap / kThreads;
constexpr int kTopBins = 1024;  // the first digit of p: bits 52..61 (p ≤ 1 keeps bits 62, 63 clear)
static_assert(kCap % kThreads == 0, "scans give each thread kPerThread items");

enum class Mode { Rank, Prob };

struct Digit {
  int shift, bits;
};

__device__ Digit digit_at(Mode mode, int level) {
  if (mode == Mode::Prob) {
    constexpr Digit d[] = {{52, 10}, {41, 11}, {30, 11}, {19, 11}, {8, 11}, {0, 8}};
    return d[level];
  }
  constexpr Digit d[] = {{53, 11}, {42, 11}, {32, 10}, {21, 11}, {10, 11}, {0, 10}};
  return d[level];
}
constexpr int kLevels = 6;

struct Smem {
  union {
    struct {
      unsigned count[kCap];
      double mass[kCap];
    } hist;
    struct {
      uint64_t value[kCap];
      int32_t token[kCap];
    } cand;
  };
  unsigned top_count[kTopBins];  // first digit of p over every member, shared by the top-p and the walk searches
  double top_mass[kTopBins];
  double stage[kWarps][32];
  double warp_d[kWarps];
  float warp_f[kWarps];
  int warp_i[kWarps];
  unsigned long long warp_u[kWarps];
  int n_cand, first, last;
  double cum_first, cum_last;
};

// The row being sampled and what the passes so far have learnt about it.
struct Row {
  const float* logits;
  int n;
  double temperature;
  float max_key;
  double m;         // max_key / temperature (f64), as the CPU
  bool top_k;       // members are the tokens with rank ≥ kth
  uint64_t kth;
  bool bounds_ok;   // the key interval prefilter is safe for this temperature and max
};

// The members whose value has `prefix` in the bits at and above `fixed` (64: every member).
struct Bucket {
  uint64_t prefix;
  int fixed;
  double key_lo, key_hi;  // a conservative interval of the keys whose p can lie in the bucket
};

struct Found {
  bool ok;  // false: the running weight never reaches the target
  uint64_t value;
  int32_t token;
  double cum;  // running weight through this element
};

__device__ __forceinline__ float key_of(float logit) { return isnan(logit) ? -INFINITY : logit + 0.0f; }  // -0 → +0

__device__ __forceinline__ uint64_t rank_of(float key, int v) {
  uint32_t u = __float_as_uint(key);
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return (uint64_t(u) << 32) | uint64_t(0xFFFFFFFFu - uint32_t(v));
}

__device__ __forceinline__ double prob_of(const Row& r, float key) {
  const double x = double(key) / r.temperature;
  return x == r.m ? 1.0 : exp(x - r.m);
}

__device__ __forceinline__ bool in_bucket(uint64_t value, const Bucket& b) {
  return b.fixed >= 64 || (value >> b.fixed) == (b.prefix >> b.fixed);
}

__device__ __forceinline__ double weight_of(Mode mode, uint64_t value) {
  return mode == Mode::Rank ? 1.0 : __longlong_as_double((long long)value);
}

__device__ __forceinline__ bool reaches(double cum, double target, bool strict) {
  return strict ? cum > target : cum >= target;
}

// Whether token v is a member inside bucket b; its value and weight when it is.
__device__ __forceinline__ bool evaluate(const Row& r, Mode mode, const Bucket& b, int v, float logit,
                                         uint64_t& value, double& w) {
  const float key = key_of(logit);
  if (mode == Mode::Rank) {
    value = rank_of(key, v);
    w = 1.0;
    return in_bucket(value, b);
  }
  if (r.top_k && rank_of(key, v) < r.kth) return false;
  const double k = double(key);
  if (k < b.key_lo || k > b.key_hi) return false;
  const double p = prob_of(r, key);
  value = uint64_t(__double_as_longlong(p));
  w = p;
  return in_bucket(value, b);
}

// Keys whose p may lie in [p_lo, p_hi]: p = exp(key/T − max/T) rounded, so key ≈ max + T·log p; the slack
// dwarfs every rounding involved. Only a prefilter: membership is decided on p itself.
__device__ void set_key_bounds(const Row& r, Mode mode, Bucket& b) {
  b.key_lo = -INFINITY;
  b.key_hi = INFINITY;
  if (mode != Mode::Prob || !r.bounds_ok || b.fixed >= 62) return;
  const double p_lo = __longlong_as_double((long long)b.prefix);
  const double p_hi = __longlong_as_double((long long)(b.prefix | ((uint64_t(1) << b.fixed) - 1)));
  const double t = r.temperature, top = double(r.max_key);
  if (p_lo > 0) {
    const double d = log(p_lo) * t;
    b.key_lo = top + d - (1e-9 * (fabs(top) + fabs(d) + t) + 1e-30);
  }
  if (p_hi < 1) {
    const double d = log(p_hi) * t;
    b.key_hi = top + d + (1e-9 * (fabs(top) + fabs(d) + t) + 1e-30);
  }
}

// Calls f(v, logit, valid) for every token v of the row; every thread makes the same number of calls (the
// callbacks use warp collectives). Loads are float4 where the row's alignment allows; kUnroll of them per thread
// are in flight at once (8 for the plain scans, which are bound by memory latency).
template <int kUnroll = 4, class F>
__device__ __forceinline__ void visit_row(const float* x, int n, F&& f) {
  const int head = min(n, int(((16 - (reinterpret_cast<uintptr_t>(x) & 15)) & 15) / 4));
  {
    const int v = threadIdx.x;
    const bool ok = v < head;
    f(v, ok ? x[v] : 0.f, ok);
  }
  const float4* x4 = reinterpret_cast<const float4*>(x + head);
  const int n4 = (n - head) / 4;
  for (int base = 0; base < n4; base += kThreads * kUnroll) {
    float4 q[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int i = base + u * kThreads + int(threadIdx.x);
      q[u] = i < n4 ? x4[i] : make_float4(0.f, 0.f, 0.f, 0.f);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int i = base + u * kThreads + int(threadIdx.x);
      const bool ok = i < n4;
      const int v = head + 4 * i;
      f(v, q[u].x, ok);
      f(v + 1, q[u].y, ok);
      f(v + 2, q[u].z, ok);
      f(v + 3, q[u].w, ok);
    }
  }
  {
    const int v = head + 4 * n4 + int(threadIdx.x);
    const bool ok = v < n;
    f(v, ok ? x[v] : 0.f, ok);
  }
}

// ── block reductions and scans (every thread calls; every thread gets the result) ──

__device__ float block_max(float v, Smem& s) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if (threadIdx.x % 32 == 0) s.warp_f[threadIdx.x / 32] = v;
  __syncthreads();
  float m = -INFINITY;
  for (int w = 0; w < kWarps; ++w) m = fmaxf(m, s.warp_f[w]);
  return m;
}

__device__ double block_sum(double v, Smem& s) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (threadIdx.x % 32 == 0) s.warp_d[threadIdx.x / 32] = v;
  __syncthreads();
  double t = 0;
  for (int w = 0; w < kWarps; ++w) t += s.warp_d[w];
  return t;
}

// The best (key, token) by key descending then token ascending.
__device__ int block_argmax(float key, int token, Smem& s) {
  for (int o = 16; o > 0; o >>= 1) {
    const float k = __shfl_xor_sync(0xffffffffu, key, o);
    const int t = __shfl_xor_sync(0xffffffffu, token, o);
    if (k > key || (k == key && t < token)) key = k, token = t;
  }
  __syncthreads();
  if (threadIdx.x % 32 == 0) s.warp_f[threadIdx.x / 32] = key, s.warp_i[threadIdx.x / 32] = token;
  __syncthreads();
  for (int w = 0; w < kWarps; ++w)
    if (s.warp_f[w] > key || (s.warp_f[w] == key && s.warp_i[w] < token)) key = s.warp_f[w], token = s.warp_i[w];
  return token;
}

// The smallest (value, then largest token): the last element of the descending order.
__device__ void block_last(uint64_t& value, int& token, Smem& s) {
  for (int o = 16; o > 0; o >>= 1) {
    const uint64_t u = __shfl_xor_sync(0xffffffffu, (unsigned long long)value, o);
    const int t = __shfl_xor_sync(0xffffffffu, token, o);
    if (u < value || (u == value && t > token)) value = u, token = t;
  }
  __syncthreads();
  if (threadIdx.x % 32 == 0) s.warp_u[threadIdx.x / 32] = value, s.warp_i[threadIdx.x / 32] = token;
  __syncthreads();
  for (int w = 0; w < kWarps; ++w)
    if (s.warp_u[w] < value || (s.warp_u[w] == value && s.warp_i[w] > token)) value = s.warp_u[w], token = s.warp_i[w];
}

// Σ of v over the threads before this one (thread order).
__device__ double block_exclusive_sum(double v, Smem& s) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  double inc = v;
  for (int o = 1; o < 32; o <<= 1) {
    const double t = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += t;
  }
  double exc = __shfl_up_sync(0xffffffffu, inc, 1);
  if (lane == 0) exc = 0;
  __syncthreads();
  if (lane == 31) s.warp_d[warp] = inc;
  __syncthreads();
  double before = 0;
  for (int w = 0; w < warp; ++w) before += s.warp_d[w];
  return before + exc;
}

struct Crossing {
  int first;         // first position whose running weight reaches the target, −1 if none
  int last;          // last non-empty position, −1 if none
  double cum_first;  // running weight before `first` / before `last`
  double cum_last;
};

// Over positions [0, len) (len ≤ kCap) with weight(i) and nonempty(i), running from `base`: where the target is
// reached. Thread t owns positions kPerThread·t ...
template <class Weight>
__device__ Crossing first_crossing(int len, Weight&& weight, double base, double target, bool strict, Smem& s) {
  double w[kPerThread];
  bool full[kPerThread];
  double local = 0;
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    const int i = int(threadIdx.x) * kPerThread + j;
    full[j] = i < len && weight(i, w[j]);
    if (!full[j]) w[j] = 0;
    local += w[j];
  }
  const double before = block_exclusive_sum(local, s);
  if (threadIdx.x == 0) s.first = INT_MAX, s.last = -1;
  __syncthreads();
  double cum = base + before;
  int my_first = INT_MAX, my_last = -1;
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    if (!full[j]) continue;
    const int i = int(threadIdx.x) * kPerThread + j;
    if (my_first == INT_MAX && reaches(cum + w[j], target, strict)) my_first = i;
    my_last = i;
    cum += w[j];
  }
  if (my_first != INT_MAX) atomicMin(&s.first, my_first);
  if (my_last >= 0) atomicMax(&s.last, my_last);
  __syncthreads();
  // The owners of `first` and `last` write the running weight before them.
  cum = base + before;
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    if (!full[j]) continue;
    const int i = int(threadIdx.x) * kPerThread + j;
    if (i == s.first) s.cum_first = cum;
    if (i == s.last) s.cum_last = cum;
    cum += w[j];
  }
  __syncthreads();
  Crossing c{s.first == INT_MAX ? -1 : s.first, s.last, s.cum_first, s.cum_last};
  __syncthreads();  // s.first / s.last are reused by the next call
  return c;
}

// Per-digit count and mass of the bucket's members (digit d, just below the bucket's fixed bits).
// `z` (may be null) receives Σ weight over them.
__device__ void histogram(const Row& r, Mode mode, const Bucket& b, Digit d, unsigned* count, double* mass, int bins,
                          double* z, Smem& s) {
  for (int i = threadIdx.x; i < bins; i += kThreads) count[i] = 0, mass[i] = 0;
  __syncthreads();
  const int lane = threadIdx.x % 32;
  double* stage = s.stage[threadIdx.x / 32];
  double zsum = 0;
  const unsigned digit_mask = (1u << d.bits) - 1;
  visit_row(r.logits, r.n, [&](int v, float logit, bool valid) {
    uint64_t value = 0;
    double w = 0;
    const bool in = valid && evaluate(r, mode, b, v, logit, value, w);
    const unsigned any = __ballot_sync(0xffffffffu, in);
    if (!any) return;
    zsum += in ? w : 0.0;
    const unsigned digit = unsigned(value >> d.shift) & digit_mask;
    // Lanes with the same digit add once: the leader sums their weights in lane order.
    const unsigned peers = __match_any_sync(0xffffffffu, in ? digit : 0xffffffffu);
    stage[lane] = w;
    __syncwarp();
    if (in && lane == __ffs(peers) - 1) {
      double sum = 0;
      for (unsigned m = peers; m; m &= m - 1) sum += stage[__ffs(m) - 1];
      atomicAdd(&mass[digit], sum);
      atomicAdd(&count[digit], unsigned(__popc(peers)));
    }
    __syncwarp();
  });
  if (z) {
    const double t = block_sum(zsum, s);
    if (threadIdx.x == 0) *z = t;
  }
  __syncthreads();
}

// Gathers the bucket's members into s.cand, sorts them in descending (value, token ascending) order and finds the
// crossing. `whole`: the bucket is every member, so no crossing means the target is never reached.
__device__ Found finish_small(const Row& r, Mode mode, const Bucket& b, double base, double target, bool strict,
                              bool whole, Smem& s) {
  if (threadIdx.x == 0) s.n_cand = 0;
  __syncthreads();
  const int lane = threadIdx.x % 32;
  visit_row(r.logits, r.n, [&](int v, float logit, bool valid) {
    uint64_t value = 0;
    double w = 0;
    const bool in = valid && evaluate(r, mode, b, v, logit, value, w);
    const unsigned ballot = __ballot_sync(0xffffffffu, in);
    if (!ballot) return;
    const int leader = __ffs(ballot) - 1;
    int at = 0;
    if (lane == leader) at = atomicAdd(&s.n_cand, __popc(ballot));
    at = __shfl_sync(0xffffffffu, at, leader) + __popc(ballot & ((1u << lane) - 1));
    if (in && at < kCap) s.cand.value[at] = value, s.cand.token[at] = v;
  });
  __syncthreads();
  const int n = min(s.n_cand, kCap);
  int size = 1;
  while (size < n) size <<= 1;
  for (int i = n + threadIdx.x; i < size; i += kThreads) s.cand.value[i] = 0, s.cand.token[i] = INT_MAX;  // sort last
  __syncthreads();
  // Bitonic sort; "before" is the walk order.
  for (int k = 2; k <= size; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < size; i += kThreads) {
        const int o = i ^ j;
        if (o <= i) continue;
        const uint64_t vi = s.cand.value[i], vo = s.cand.value[o];
        const int32_t ti = s.cand.token[i], to = s.cand.token[o];
        const bool o_before_i = vo > vi || (vo == vi && to < ti);
        const bool i_before_o = vi > vo || (vi == vo && ti < to);
        if ((i & k) == 0 ? o_before_i : i_before_o) {
          s.cand.value[i] = vo, s.cand.value[o] = vi;
          s.cand.token[i] = to, s.cand.token[o] = ti;
        }
      }
      __syncthreads();
    }
  }
  const Crossing c = first_crossing(
      n,
      [&](int i, double& w) {
        w = weight_of(mode, s.cand.value[i]);
        return true;
      },
      base, target, strict, s);
  Found f{false, 0, 0, 0};
  if (c.first >= 0) {
    f = {true, s.cand.value[c.first], s.cand.token[c.first], c.cum_first + weight_of(mode, s.cand.value[c.first])};
  } else if (!whole && c.last >= 0) {  // rounding put the crossing just past this bucket: its last element
    f = {true, s.cand.value[c.last], s.cand.token[c.last], c.cum_last + weight_of(mode, s.cand.value[c.last])};
  }
  __syncthreads();  // s.cand is reused by the next search
  return f;
}

// A bucket of `count` members sharing one value: the j-th in token order, j the fewest that reach the target.
__device__ Found finish_ties(const Row& r, Mode mode, const Bucket& b, unsigned count, double base, double target,
                             bool strict, Smem& s) {
  const double w = weight_of(mode, b.prefix);
  auto ok = [&](long long j) { return reaches(base + double(j) * w, target, strict); };
  long long j = 1;
  if (w > 0) {
    const double est = ceil((target - base) / w);
    j = est < 1 ? 1 : est > double(count) ? (long long)count : (long long)est;
    for (int guard = 0; guard < 64 && j > 1 && ok(j - 1); ++guard) --j;
    for (int guard = 0; guard < 64 && j < (long long)count && !ok(j); ++guard) ++j;
  }
  // Walk the row in token order, one tile of kThreads tokens at a time, counting members of the bucket.
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  long long seen = 0;
  if (threadIdx.x == 0) s.last = -1;
  __syncthreads();
  int token = -1;
  for (int t0 = 0; t0 < r.n; t0 += kThreads) {
    const int v = t0 + int(threadIdx.x);
    uint64_t value = 0;
    double wv = 0;
    const bool in = v < r.n && evaluate(r, mode, b, v, r.logits[v], value, wv);
    const int tile = __syncthreads_count(in);
    if (seen + tile < j) {
      seen += tile;
      continue;
    }
    const unsigned ballot = __ballot_sync(0xffffffffu, in);
    if (lane == 0) s.warp_i[warp] = __popc(ballot);
    __syncthreads();
    long long rank = seen + __popc(ballot & ((1u << lane) - 1)) + 1;
    for (int k = 0; k < warp; ++k) rank += s.warp_i[k];
    if (in && rank == j) s.last = v;
    __syncthreads();
    token = s.last;
    break;
  }
  if (token < 0) return Found{false, 0, 0, 0};
  return Found{true, b.prefix, token, base + double(j) * w};
}

// The first element, in descending (value, token ascending) order over the members, whose running weight reaches
// `target` (> when strict, ≥ otherwise). `members`: how many tokens are members.
__device__ Found search(const Row& r, Mode mode, double target, bool strict, unsigned members, Smem& s) {
  Bucket b{0, 64, -INFINITY, INFINITY};
  double base = 0;
  unsigned count = members;
  for (int level = 0;; ++level) {
    if (count <= unsigned(kCap)) return finish_small(r, mode, b, base, target, strict, level == 0, s);
    if (level == kLevels) return finish_ties(r, mode, b, count, base, target, strict, s);
    const Digit d = digit_at(mode, level);
    const int bins = 1 << d.bits;
    const unsigned* count_of = s.hist.count;
    const double* mass_of = s.hist.mass;
    if (mode == Mode::Prob && level == 0) {
      count_of = s.top_count, mass_of = s.top_mass;  // built with Z
    } else {
      histogram(r, mode, b, d, s.hist.count, s.hist.mass, bins, nullptr, s);
    }
    const Crossing c = first_crossing(
        bins,
        [&](int i, double& w) {
          const int bin = bins - 1 - i;
          w = mass_of[bin];
          return count_of[bin] != 0;
        },
        base, target, strict, s);
    int pick = c.first;
    double before = c.cum_first;
    if (pick < 0) {
      if (level == 0 || c.last < 0) return Found{false, 0, 0, 0};
      pick = c.last, before = c.cum_last;  // rounding: the crossing is at the end of this bucket
    }
    const int bin = bins - 1 - pick;
    count = count_of[bin];
    base = before;
    b.prefix |= uint64_t(bin) << d.shift;
    b.fixed = d.shift;
    set_key_bounds(r, mode, b);
    __syncthreads();  // the histogram is overwritten next
  }
}

// The last member with p > 0 in the walk order (the CPU's fallback when rounding leaves no crossing).
__device__ int last_positive(const Row& r, Smem& s) {
  uint64_t best = ~uint64_t(0);
  int token = -1;
  const Bucket all{0, 64, -INFINITY, INFINITY};
  visit_row(r.logits, r.n, [&](int v, float logit, bool valid) {
    uint64_t value = 0;
    double w = 0;
    if (valid && evaluate(r, Mode::Prob, all, v, logit, value, w) && w > 0 &&
        (value < best || (value == best && v > token)))
      best = value, token = v;
  });
  block_last(best, token, s);
  return token < 0 ? 0 : token;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(const float* logits, int64_t vocab,
                                                          const int32_t* row_index, const SamplingParams* params,
                                                          int32_t* out) {
  __shared__ Smem s;
  const SamplingParams sp = params[blockIdx.x];
  const int32_t src = row_index[blockIdx.x];
  if (src < 0) {  // the caller's bug; no memory is read
    if (threadIdx.x == 0) out[blockIdx.x] = -1;
    return;
  }
  Row r{};
  r.logits = logits + int64_t(src) * vocab;
  r.n = int(vocab);

  if (sp.temperature == 0 || r.n == 1) {
    float best = -INFINITY;
    int token = INT_MAX;
    visit_row<8>(r.logits, r.n, [&](int v, float logit, bool valid) {
      const float k = key_of(logit);
      if (valid && (k > best || (k == best && v < token))) best = k, token = v;
    });
    token = block_argmax(best, token, s);
    if (threadIdx.x == 0) out[blockIdx.x] = token == INT_MAX ? 0 : token;
    return;
  }

  float mk = -INFINITY;
  visit_row<8>(r.logits, r.n, [&](int, float logit, bool valid) {
    if (valid) mk = fmaxf(mk, key_of(logit));
  });
  r.max_key = block_max(mk, s);
  r.temperature = sp.temperature;
  r.m = double(r.max_key) / sp.temperature;
  r.bounds_ok = isfinite(r.m) && sp.temperature >= 1e-6 && sp.temperature <= 1e6;

  unsigned members = unsigned(r.n);
  if (sp.top_k > 0 && sp.top_k < double(r.n)) {
    members = unsigned(sp.top_k);
    const Found kth = search(r, Mode::Rank, double(members), false, unsigned(r.n), s);
    r.kth = kth.value;  // counts are exact: always found
    r.top_k = true;
  }

  // Z = Σ p over the members, and the first digit of p for both searches below.
  __shared__ double z_shared;
  const Bucket all{0, 64, -INFINITY, INFINITY};
  histogram(r, Mode::Prob, all, digit_at(Mode::Prob, 0), s.top_count, s.top_mass, kTopBins, &z_shared, s);
  const double z = z_shared;

  double mass = z;
  Found cut{false, 0, 0, 0};
  if (sp.top_p < 1) {
    cut = search(r, Mode::Prob, sp.top_p * z, false, members, s);
    if (cut.ok) mass = cut.cum;
  }
  const Found pick = search(r, Mode::Prob, sp.uniform * mass, true, members, s);
  int token;
  const bool past_cut = cut.ok && (!pick.ok || pick.value < cut.value || (pick.value == cut.value && pick.token > cut.token));
  if (past_cut) token = cut.token;  // the last kept token (its p > 0)
  else if (pick.ok) token = pick.token;
  else token = last_positive(r, s);
  if (threadIdx.x == 0) out[blockIdx.x] = token;
}

}  // namespace

void sample(float* logits, int64_t vocab, const int32_t* row_index, const SamplingParams* params, int64_t rows,
            int32_t* out, cudaStream_t stream) {
  if (rows <= 0 || vocab <= 0) return;
  if (vocab > INT_MAX - 1 || rows > INT_MAX) throw std::invalid_argument("cuda::sample: vocab or rows out of range");
  sample_kernel<<<unsigned(rows), kThreads, 0, stream>>>(logits, vocab, row_index, params, out);
}

}  // namespace loraplex::cuda
