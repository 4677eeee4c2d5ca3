// Token sampling and log-softmax over rows of logits.
#pragma once

#include <cstdint>
#include <string>

namespace loraplex {

struct SamplingParams {
  double temperature;  // 0 → greedy
  double top_k;        // a whole number; 0 or ≥ vocab → off
  double top_p;        // 1 → off
  double uniform;      // in [0, 1)
};

// Empty string when the parameters are usable; otherwise what is wrong (names the row).
std::string check_sampling_params(const SamplingParams& p, int64_t row);

// logits [rows, vocab] → out [rows]. One row (bitwise the same as the reference's choice up to exp's last ulp):
//   key[v] = logits[v] (NaN → -inf)
//   temperature 0: argmax key, lowest index on ties.
//   C = the top_k largest keys (ties: lower index) if 0 < top_k < vocab, else every token
//   x[v] = key[v] / temperature (f64); m = max_C x; p[v] = x[v] == m ? 1 : exp(x[v] - m)
//   Z = Σ_C p in ascending token order, in 8 interleaved lanes (sampling_rows.h: lane_sum);
//   L = C ordered by p descending, then token ascending
//   top_p < 1: keep the shortest prefix of L with running sum ≥ top_p·Z (all of L if never), M = that sum;
//   else keep L, M = Z.   target = uniform·M; pick the first kept token whose running sum > target
//   (if rounding leaves none, the last kept token with p > 0).
// Top-k selects with a heap (no sort of the vocabulary); without top-k only the prefix of L the walk
// reaches is sorted (tokens above a falling probability threshold).
void sample(const float* logits, int64_t vocab, const SamplingParams* params, int64_t rows, int32_t* out);

// logits [vocab] → out [vocab]. Semantics: out[v] = logits[v] - logsumexp(logits)
// (computed as (x - m) - log Σ exp(x - m), with m the max and x == m counted as exp(0), so ±inf rows stay finite
// where they can; the sum is accumulated in f64).
void log_softmax(const float* logits, int64_t vocab, float* out);

}  // namespace loraplex
