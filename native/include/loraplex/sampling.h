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
//   w[v] = floor(p[v] · 2^S), S = 63 − (bit length of |C|): integer weights whose sums are exact and below 2^63
//   (a token with p < 2^-S weighs nothing and is never drawn: at most |C| · 2^-S ≤ 2^-45 of the mass);
//   Z = Σ_C w; L = C ordered by p descending, then token ascending; R_i = w summed over L[0..i]
//   top_p < 1: keep L up to the first i with double(R_i) ≥ top_p · double(Z) (all of L if none), M = R there;
//   else keep L, M = Z.   target = uniform · double(M); pick the first kept token with double(R_i) > target
//   (one always is: uniform < 1 rounds the product below double(M)).
//   double(R) is the integer rounded to nearest, as JavaScript's Number(bigint) does.
// Top-k selects with a heap (no sort of the vocabulary); without top-k the tokens go into buckets by p and
// only the bucket where the walk stops is sorted (exact sums need no order).
void sample(const float* logits, int64_t vocab, const SamplingParams* params, int64_t rows, int32_t* out);

// logits [vocab] → out [vocab]. Semantics: out[v] = logits[v] - logsumexp(logits)
// (computed as (x - m) - log Σ exp(x - m), with m the max and x == m counted as exp(0), so ±inf rows stay finite
// where they can; the sum is accumulated in f64).
void log_softmax(const float* logits, int64_t vocab, float* out);

}  // namespace loraplex
