// RoPE (Hugging Face Llama rotate_half) on q and k, then the cache write of k and v.
// Scalar on purpose: it is a small fraction of a step, and plain f32 products without FMA contraction
// reproduce the reference (and torch's q·cos + rotate_half(q)·sin) to the last bit given the same cos/sin.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "loraplex/attention.h"
#include "loraplex/thread_pool.h"

namespace loraplex {

std::string check_rope_and_cache_write(int64_t qkv_length, int64_t num_tokens, const AttentionShape& s,
                                       const int32_t* positions, int64_t positions_length, int64_t inv_freq_length,
                                       int64_t q_out_length, int64_t k_cache_length, int64_t v_cache_length,
                                       const int32_t* slot_mapping, int64_t slot_mapping_length) {
  std::string err = check_attention_shape(s);
  if (!err.empty()) return err;
  const int64_t rotary = s.rotary_dim > 0 ? s.rotary_dim : s.head_dim;
  if (s.rotary_dim < 0 || rotary > s.head_dim) return "rotaryDim must be in [0, headDim] (0: headDim)";
  if (rotary % 2 != 0)
    return s.rotary_dim > 0 ? "rotaryDim must be even for rotate-half RoPE" : "headDim must be even for rotate-half RoPE";
  if (num_tokens < 0) return "numTokens must be ≥ 0";
  const int64_t D = s.head_dim;
  if (qkv_length < num_tokens * (s.num_heads + 2 * s.num_kv_heads) * D)
    return "qkv is shorter than numTokens·(numHeads + 2·numKvHeads)·headDim";
  if (positions_length < num_tokens) return "positions is shorter than numTokens";
  if (slot_mapping_length < num_tokens) return "slotMapping is shorter than numTokens";
  if (inv_freq_length < rotary / 2) return "invFreq must hold rotaryDim/2 frequencies (headDim/2 without rotaryDim)";
  if (q_out_length < num_tokens * s.num_heads * D) return "qOut is shorter than numTokens·numHeads·headDim";
  if (k_cache_length != v_cache_length) return "kCache and vCache must have the same length";
  const int64_t block_elems = int64_t(s.block_size) * s.num_kv_heads * D;
  if (k_cache_length % block_elems != 0) return "cache length must be a multiple of blockSize·numKvHeads·headDim";
  const int64_t rows = k_cache_length / (s.num_kv_heads * D);
  for (int64_t t = 0; t < num_tokens; ++t) {
    if (slot_mapping[t] < -1 || slot_mapping[t] >= rows)
      return "slotMapping[" + std::to_string(t) + "] = " + std::to_string(slot_mapping[t]) +
             " is outside the cache (" + std::to_string(rows) + " rows; -1 skips a padding token)";
  }
  return "";
}

namespace {

// cos and sin of f32(pos · inv_freq[i]) for positions [0, positions()), each computed as a call would (f64 cos/sin
// rounded to f32), built once per frequency set: every layer of a step, and every later step, rotates the same
// positions by the same frequencies, and the f64 trig was most of RoPE's time (2 · R/2 calls per token and layer).
// Positions past kMaxBytes are computed in the call.
class RopeTable {
 public:
  static constexpr int64_t kMaxBytes = int64_t(32) << 20;

  bool holds(const float* inv_freq, int half) const {
    return half == half_ && std::memcmp(inv_freq, inv_freq_.data(), sizeof(float) * size_t(half)) == 0;
  }
  // Empties the table and makes it the one for these frequencies.
  void reset(const float* inv_freq, int half) {
    inv_freq_.assign(inv_freq, inv_freq + half);
    half_ = half;
    values_.clear();
  }
  // Holds every position of the call that fits under kMaxBytes (grown at least twofold, so a prefill's rising
  // positions extend it rarely).
  void prepare(const int32_t* positions, int64_t num_tokens) {
    const int half = half_;
    const int64_t cap = kMaxBytes / (int64_t(sizeof(float)) * 2 * std::max(half, 1));
    int64_t last = -1;
    for (int64_t t = 0; t < num_tokens; ++t)
      if (positions[t] < cap) last = std::max<int64_t>(last, positions[t]);
    const int64_t have = this->positions();
    if (last < have) return;
    const int64_t want = std::min(cap, std::max(last + 1, 2 * have));
    values_.resize(size_t(want) * 2 * size_t(half));
    for (int64_t pos = have; pos < want; ++pos) fill(pos, values_.data() + pos * 2 * half);
  }
  int64_t positions() const { return half_ > 0 ? int64_t(values_.size()) / (2 * half_) : 0; }
  // cos at [0, half), sin at [half, 2·half) of position `pos` (< positions()).
  const float* row(int64_t pos) const { return values_.data() + pos * 2 * half_; }
  // The same values for any position, computed.
  void fill(int64_t pos, float* out) const {
    const float p = float(pos);  // as torch's position_ids.float()
    for (int i = 0; i < half_; ++i) {
      const float angle = p * inv_freq_[size_t(i)];
      out[i] = float(std::cos(double(angle)));
      out[half_ + i] = float(std::sin(double(angle)));
    }
  }

 private:
  int half_ = 0;
  std::vector<float> inv_freq_;
  std::vector<float> values_;
};

// The tables of the calling thread (the pool only reads them during a call), one per frequency set: a model
// whose layer types rotate by different frequencies (Gemma 3's local and global layers) keeps one for each
// instead of rebuilding one at every other layer. Past kMaxTables sets, the least recently used is rebuilt.
RopeTable& rope_table_for(const float* inv_freq, int half) {
  constexpr size_t kMaxTables = 4;
  thread_local std::vector<RopeTable> tables;  // most recently used last
  for (size_t i = 0; i < tables.size(); ++i) {
    if (!tables[i].holds(inv_freq, half)) continue;
    std::rotate(tables.begin() + i, tables.begin() + i + 1, tables.end());
    return tables.back();
  }
  if (tables.size() < kMaxTables) {
    tables.emplace_back();
  } else {
    std::rotate(tables.begin(), tables.begin() + 1, tables.end());
  }
  tables.back().reset(inv_freq, half);
  return tables.back();
}

// x'[i] = x[i]·c[i] - x[i+h]·s[i] ; x'[i+h] = x[i+h]·c[i] + x[i]·s[i]   (h = R/2); x'[i] = x[i] for R ≤ i < D
__attribute__((optimize("fp-contract=off"))) void rotate(const float* x, const float* cos_t, const float* sin_t,
                                                         int half, int head_dim, float* y) {
  for (int i = 0; i < half; ++i) {
    const float a = x[i], b = x[i + half];
    const float ac = a * cos_t[i], bs = b * sin_t[i], bc = b * cos_t[i], as = a * sin_t[i];
    y[i] = ac - bs;
    y[i + half] = bc + as;
  }
  for (int i = 2 * half; i < head_dim; ++i) y[i] = x[i];
}

}  // namespace

void rope_and_cache_write(const float* qkv, int64_t num_tokens, const AttentionShape& shape, const int32_t* positions,
                          const float* inv_freq, float* q_out, void* k_cache, void* v_cache, KvDtype kv_dtype,
                          const int32_t* slot_mapping) {
  const int D = shape.head_dim, hq = shape.num_heads, hkv = shape.num_kv_heads;
  const int half = (shape.rotary_dim > 0 ? shape.rotary_dim : D) / 2;
  const int64_t row_width = int64_t(hq + 2 * hkv) * D;
  const int64_t kv_width = int64_t(hkv) * D;
  constexpr int64_t kTokensPerTask = 8;
  RopeTable& table = rope_table_for(inv_freq, half);  // the caller's: the workers read it through this reference
  table.prepare(positions, num_tokens);
  parallel_for((num_tokens + kTokensPerTask - 1) / kTokensPerTask, [&](int64_t task, int) {
    thread_local std::vector<float> scratch;
    scratch.resize(size_t(D) + size_t(kv_width));
    float* k_row = scratch.data() + D;  // a bf16 cache's keys, rotated in f32 before rounding
    const int64_t end = std::min(num_tokens, (task + 1) * kTokensPerTask);
    for (int64_t t = task * kTokensPerTask; t < end; ++t) {
      const int64_t pos = positions[t];
      const float* trig = scratch.data();
      if (pos >= 0 && pos < table.positions())
        trig = table.row(pos);
      else
        table.fill(pos, scratch.data());
      const float* cos_t = trig;
      const float* sin_t = trig + half;
      const float* row = qkv + t * row_width;
      for (int h = 0; h < hq; ++h) rotate(row + int64_t(h) * D, cos_t, sin_t, half, D, q_out + (t * hq + h) * D);
      const int64_t slot = slot_mapping[t];
      if (slot < 0) continue;
      const float* k = row + int64_t(hq) * D;
      const float* v = row + int64_t(hq + hkv) * D;
      if (kv_dtype == KvDtype::F32) {
        float* k_dst = static_cast<float*>(k_cache) + slot * kv_width;
        for (int g = 0; g < hkv; ++g) rotate(k + int64_t(g) * D, cos_t, sin_t, half, D, k_dst + g * D);
        std::memcpy(static_cast<float*>(v_cache) + slot * kv_width, v, sizeof(float) * kv_width);
      } else {
        for (int g = 0; g < hkv; ++g) rotate(k + int64_t(g) * D, cos_t, sin_t, half, D, k_row + g * D);
        uint16_t* k_dst = static_cast<uint16_t*>(k_cache) + slot * kv_width;
        uint16_t* v_dst = static_cast<uint16_t*>(v_cache) + slot * kv_width;
        for (int64_t i = 0; i < kv_width; ++i) k_dst[i] = f32_to_bf16(k_row[i]);
        for (int64_t i = 0; i < kv_width; ++i) v_dst[i] = f32_to_bf16(v[i]);
      }
    }
  });
}

}  // namespace loraplex
