// The elementwise ops, embedding, gather and the sampler on the device against the CPU kernels (ops.h,
// sampling.h) on odd sizes and misaligned pointers. f32 ops within a tolerance; embedding, gather and greedy
// sampling bit for bit; stochastic sampling token for token, where every mismatch must be a draw (or top-p cut)
// within 1e-6 relative of a boundary: the CPU sampler, rerun with the uniform and top_p nudged, picks the
// device's token.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "groups.h"
#include "loraplex/cuda/ops.h"
#include "loraplex/cuda/sampling.h"
#include "loraplex/ops.h"
#include "loraplex/sampling.h"

namespace loraplex::cuda {
namespace {

using harness::compare;
using harness::DeviceBuffer;
using harness::fmt;
using harness::Harness;
using harness::Rng;

// Worst error over a family of cases.
struct Tally {
  double worst = 0, max_abs = 0;
  std::string worst_case;
  bool ok = true;
  void add(const std::string& name, std::pair<double, double> err) {
    if (!(err.second <= worst)) worst = err.second, max_abs = err.first, worst_case = name;
    if (!(err.second <= 1)) ok = false;
  }
  void report(Harness& h, const std::string& check) {
    h.check(check, ok, fmt("max abs %.3g, worst/tol %.3g", max_abs, worst) + " at " + worst_case);
  }
};

std::string dims(int64_t a, int64_t b) { return std::to_string(a) + "x" + std::to_string(b); }

// `pad` floats in front of the data: a pad of 1 misaligns the device pointer (the scalar paths).
struct Padded {
  DeviceBuffer<float> buf;
  int64_t pad;
  Padded(const std::vector<float>& host, int64_t pad_) : buf(host.size() + size_t(pad_)), pad(pad_) {
    LPX_CUDA(cudaMemcpy(buf.get() + pad, host.data(), host.size() * 4, cudaMemcpyHostToDevice));
  }
  float* get() const { return buf.get() + pad; }
  std::vector<float> download(size_t n) const {
    std::vector<float> h(n);
    LPX_CUDA(cudaMemcpy(h.data(), get(), n * 4, cudaMemcpyDeviceToHost));
    return h;
  }
};

void check_rms_norm(Harness& h, Rng& rng) {
  Tally t, heads;
  const int64_t shapes[][2] = {{1, 1}, {3, 7}, {2, 128}, {17, 4096}, {5, 4099}, {2, 16384}, {64, 4096}};
  for (auto [rows, dim] : shapes) {
    for (int64_t pad : {0, 1}) {
      for (bool alias : {false, true}) {
        const auto x = rng.vec(size_t(rows * dim), -3, 3), w = rng.vec(size_t(dim), 0.5f, 1.5f);
        std::vector<float> want(x.size());
        loraplex::rms_norm(x.data(), w.data(), want.data(), rows, dim, 1e-6f);
        Padded dx(x, pad), dw(w, pad), dout(std::vector<float>(x.size(), NAN), pad);
        float* out = alias ? dx.get() : dout.get();
        cuda::rms_norm(dx.get(), dw.get(), out, rows, dim, 1e-6f, 0);
        LPX_CUDA(cudaDeviceSynchronize());
        const auto got = (alias ? dx : dout).download(x.size());
        t.add(dims(rows, dim) + (pad ? " misaligned" : "") + (alias ? " in place" : ""),
              compare(got, want, 1e-5, 2e-6 * std::sqrt(double(dim)) + 1e-5));
      }
    }
  }
  t.report(h, "rms_norm vs CPU (odd dims, misaligned, in place)");

  struct HeadShape { int64_t rows, stride, offset, heads, head_dim; };
  const HeadShape hs[] = {{1, 7, 0, 1, 7}, {3, 1024, 256, 4, 128}, {5, 640, 0, 2, 256}, {4, 100, 3, 5, 19}};
  for (auto s : hs) {
    auto x = rng.vec(size_t(s.rows * s.stride), -3, 3);
    const auto w = rng.vec(size_t(s.head_dim), 0.5f, 1.5f);
    DeviceBuffer<float> dx(x), dw(w);
    cuda::rms_norm_heads(dx.get(), s.rows, s.stride, s.offset, s.heads, s.head_dim, dw.get(), 1e-6f, 0);
    loraplex::rms_norm_heads(x.data(), s.rows, s.stride, s.offset, s.heads, s.head_dim, w.data(), 1e-6f);
    heads.add(dims(s.rows, s.stride) + " heads " + dims(s.heads, s.head_dim), compare(dx.download(), x, 1e-5, 2e-5));
  }
  heads.report(h, "rms_norm_heads vs CPU (untouched columns kept)");
}

void check_gated(Harness& h, Rng& rng) {
  Tally silu, gelu;
  const int64_t shapes[][2] = {{1, 1}, {3, 5}, {2, 4099}, {4, 14336}, {1, 3}};
  for (auto [rows, inter] : shapes) {
    for (int64_t pad : {0, 1}) {
      const auto gu = rng.vec(size_t(rows * 2 * inter), -8, 8);
      Padded dgu(gu, pad), dout(std::vector<float>(size_t(rows * inter), NAN), pad);
      std::vector<float> want(size_t(rows * inter));
      const std::string name = dims(rows, inter) + (pad ? " misaligned" : "");
      loraplex::silu_mul(gu.data(), want.data(), rows, inter);
      cuda::silu_mul(dgu.get(), dout.get(), rows, inter, 0);
      LPX_CUDA(cudaDeviceSynchronize());
      silu.add(name, compare(dout.download(want.size()), want, 1e-6, 2e-6));
      loraplex::gelu_tanh_mul(gu.data(), want.data(), rows, inter);
      cuda::gelu_tanh_mul(dgu.get(), dout.get(), rows, inter, 0);
      LPX_CUDA(cudaDeviceSynchronize());
      gelu.add(name, compare(dout.download(want.size()), want, 2e-6, 2e-6));  // 1 + tanh cancels for g ≪ 0
    }
  }
  silu.report(h, "silu_mul vs CPU (rel 2e-6)");
  gelu.report(h, "gelu_tanh_mul vs CPU (rel 2e-6, abs 2e-6)");
}

void check_in_place(Harness& h, Rng& rng) {
  Tally add, cap, scale;
  for (int64_t n : {1, 3, 4, 1001, 1000003}) {
    for (int64_t pad : {0, 1, 2}) {
      const auto x = rng.vec(size_t(n), -40, 40), y = rng.vec(size_t(n), -2, 2);
      const std::string name = std::to_string(n) + (pad ? " misaligned" : "");
      {
        Padded dx(x, pad), dy(y, pad ? 3 - pad : 0);  // x and y misaligned differently
        auto want = x;
        loraplex::add_in_place(want.data(), y.data(), n);
        cuda::add_in_place(dx.get(), dy.get(), n, 0);
        add.add(name, compare(dx.download(size_t(n)), want, 0, 0));
      }
      {
        Padded dx(x, pad);
        auto want = x;
        loraplex::softcap_in_place(want.data(), n, 30.f);
        cuda::softcap_in_place(dx.get(), n, 30.f, 0);
        cap.add(name, compare(dx.download(size_t(n)), want, 1e-6, 2e-6));
      }
      {
        Padded dx(x, pad);
        auto want = x;
        loraplex::scale_in_place(want.data(), n, 0.0883883f);
        cuda::scale_in_place(dx.get(), n, 0.0883883f, 0);
        scale.add(name, compare(dx.download(size_t(n)), want, 0, 0));
      }
    }
  }
  add.report(h, "add_in_place vs CPU (exact)");
  cap.report(h, "softcap_in_place vs CPU (rel 2e-6)");
  scale.report(h, "scale_in_place vs CPU (exact)");
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

// Equal bits, except that any NaN equals any NaN: the CPU's F16C widening quiets signalling NaNs, its scalar one
// keeps them, so NaN payloads are not part of the contract.
bool same_values(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (!(std::isnan(a[i]) && std::isnan(b[i])) && std::memcmp(&a[i], &b[i], 4) != 0) return false;
  return true;
}

void check_embedding_gather(Harness& h, Rng& rng) {
  bool ok = true;
  std::string bad;
  const int64_t vocab = 1000;
  for (int64_t dim : {1, 5, 64, 4099}) {
    for (DType dt : {DType::F32, DType::F16, DType::Bf16}) {
      // Random bit patterns: NaN payloads, infinities and subnormals included.
      std::vector<uint32_t> words(size_t(vocab * dim * (dt == DType::F32 ? 2 : 1) / 2 + 1));
      for (auto& w : words) w = uint32_t(rng.next());
      std::vector<int32_t> ids;
      for (int t = 0; t < 37; t++) ids.push_back(t == 0 ? int32_t(vocab - 1) : rng.range(0, int(vocab - 1)));
      std::vector<float> want(ids.size() * size_t(dim));
      loraplex::embedding(ids.data(), int64_t(ids.size()), TableDType(int(dt)), words.data(), dim, want.data());
      DeviceBuffer<uint32_t> table(words);
      DeviceBuffer<int32_t> did(ids);
      DeviceBuffer<float> out(want.size());
      cuda::embedding(did.get(), int64_t(ids.size()), dt, table.get(), dim, out.get(), 0);
      if (!same_values(out.download(), want)) {
        ok = false;
        bad += " dim " + std::to_string(dim) + " dtype " + std::to_string(int(dt));
      }
    }
  }
  h.check("embedding vs CPU (bit-exact but NaN payloads, f32/f16/bf16 random bit patterns)", ok, ok ? "every row equal" : "differs:" + bad);

  ok = true;
  for (int64_t dim : {1, 3, 128, 4097}) {
    const int64_t n = 50;
    const auto x = rng.vec(size_t(n * dim));
    std::vector<int32_t> rows;
    for (int r = 0; r < 23; r++) rows.push_back(rng.range(0, int(n - 1)));
    std::vector<float> want;
    for (int32_t r : rows) want.insert(want.end(), x.begin() + r * dim, x.begin() + (r + 1) * dim);
    DeviceBuffer<float> dx(x), out(want.size());
    DeviceBuffer<int32_t> dr(rows);
    cuda::gather_rows(dx.get(), dr.get(), int64_t(rows.size()), dim, out.get(), 0);
    if (!same_bits(out.download(), want)) ok = false, bad = "dim " + std::to_string(dim);
  }
  h.check("gather_rows (bit-exact)", ok, ok ? "every row equal" : "differs at " + bad);
}

// Runs the device sampler on `rows` rows of `logits` (row_index reversed, so rows are read out of order) and the
// CPU sampler on the same rows.
struct SampleRun {
  std::vector<int32_t> got, want;
};
SampleRun run_sampler(const std::vector<float>& logits, int64_t vocab, const std::vector<SamplingParams>& params) {
  const int64_t rows = int64_t(params.size());
  std::vector<int32_t> index(static_cast<size_t>(rows));
  std::vector<SamplingParams> dev_params(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; r++) index[size_t(r)] = int32_t(rows - 1 - r), dev_params[size_t(r)] = params[size_t(rows - 1 - r)];
  DeviceBuffer<float> dl(logits);
  DeviceBuffer<int32_t> di(index), out{size_t(rows)};
  DeviceBuffer<SamplingParams> dp{size_t(rows)};
  LPX_CUDA(cudaMemcpy(dp.get(), dev_params.data(), size_t(rows) * sizeof(SamplingParams), cudaMemcpyHostToDevice));
  cuda::sample(dl.get(), vocab, di.get(), dp.get(), rows, out.get(), 0);
  const auto reversed = out.download();
  SampleRun run;
  run.got.resize(size_t(rows));
  for (int64_t r = 0; r < rows; r++) run.got[size_t(rows - 1 - r)] = reversed[size_t(r)];
  run.want.resize(size_t(rows));
  loraplex::sample(logits.data(), vocab, params.data(), rows, run.want.data());
  return run;
}

void check_greedy(Harness& h, Rng& rng) {
  int cases = 0, wrong = 0;
  std::string first;
  for (int64_t vocab : {1, 2, 7, 1000, 4099, 128256}) {
    const int64_t rows = 12;
    std::vector<float> logits(size_t(rows * vocab));
    for (int64_t r = 0; r < rows; r++) {
      float* row = logits.data() + r * vocab;
      for (int64_t v = 0; v < vocab; v++) row[v] = rng.uniform(-10, 10);
      const int kind = int(r % 6);
      if (kind == 1) for (int64_t v = 0; v < vocab; v += 3) row[v] = 11.f;               // ties at the top
      if (kind == 2) for (int64_t v = 0; v < vocab; v += 2) row[v] = NAN;                // NaNs never win
      if (kind == 3) for (int64_t v = 0; v < vocab; v++) row[v] = v % 2 ? NAN : -INFINITY;  // nothing finite → 0
      if (kind == 4) row[vocab - 1] = INFINITY, row[vocab / 2] = INFINITY;               // +inf, lowest index
      if (kind == 5) row[vocab / 3] = -0.f, row[vocab / 5] = 0.f;                        // signed zeros (no effect)
    }
    std::vector<SamplingParams> params(size_t(rows), SamplingParams{0, 0, 1, 0.5});
    const auto run = run_sampler(logits, vocab, params);
    for (int64_t r = 0; r < rows; r++, cases++)
      if (run.got[size_t(r)] != run.want[size_t(r)]) {
        if (!wrong) first = fmt("vocab %g row %g: got %g", double(vocab), double(r), run.got[size_t(r)]) +
                            fmt(" want %g", run.want[size_t(r)]);
        wrong++;
      }
  }
  h.check("sample greedy vs CPU (exact; ties, NaN, ±inf rows)", wrong == 0,
          fmt("%g rows, %g differ", cases, wrong) + (wrong ? ": " + first : ""));
}

// A row of logits of one of several shapes: peaked like a language model, flat, quantized (many exact ties),
// with NaNs, or with a +inf.
void fill_row(Rng& rng, float* row, int64_t vocab, int kind) {
  auto normal = [&] {  // Irwin–Hall approximation is enough here
    float s = 0;
    for (int i = 0; i < 4; i++) s += rng.uniform(-1, 1);
    return s * 0.866f;
  };
  for (int64_t v = 0; v < vocab; v++) row[v] = 2.5f * normal();
  if (kind == 0)
    for (int i = 0; i < 8; i++) row[rng.range(0, int(vocab - 1))] += rng.uniform(5, 15);  // peaked
  if (kind == 1)
    for (int64_t v = 0; v < vocab; v++) row[v] = rng.uniform(0, 1);  // flat
  if (kind == 2)
    for (int64_t v = 0; v < vocab; v++) row[v] = std::round(row[v] * 2) / 2;  // quantized: large tie groups
  if (kind == 3)
    for (int64_t v = 0; v < vocab; v += 7) row[v] = NAN;
  if (kind == 4) row[rng.range(0, int(vocab - 1))] = INFINITY;
  if (kind == 5)
    for (int64_t v = 0; v < vocab; v++) row[v] = std::round(row[v] * 4) / 4 + (v % 11 == 0 ? 6.f : 0.f);
}

SamplingParams random_params(Rng& rng, int64_t vocab) {
  static const double temps[] = {0.3, 0.7, 1.0, 1.0, 1.5, 4.0};
  static const double top_ps[] = {1.0, 1.0, 0.9, 0.95, 0.5, 0.0, 0.999};
  const double top_ks[] = {0, 0, 1, 5, 50, 3000, double(vocab), double(vocab - 1)};
  SamplingParams p;
  p.temperature = temps[rng.range(0, 5)];
  p.top_k = std::max(0.0, top_ks[rng.range(0, 7)]);
  p.top_p = top_ps[rng.range(0, 6)];
  p.uniform = double(rng.next() >> 11) * 0x1p-53;
  return p;
}

// Whether `token` is the pick for some draw within 1e-6 relative of this one, on the CPU's list: the walk order L
// (sampling.h) with f64 running sums (the CPU's exact integer sums agree to ~1e-14), a top-p cut and mass M anywhere
// in top_p·Z·(1 ± 1e-6), and a target anywhere in uniform·M·(1 ± 1e-6) ± 1e-6·M. The device sums in another order,
// so only such draws may differ.
bool near_boundary(const float* row, int64_t vocab, const SamplingParams& p, int32_t token) {
  constexpr double eps = 1e-6;
  std::vector<std::pair<float, int32_t>> c;  // (key, token), best first
  for (int64_t v = 0; v < vocab; v++) c.push_back({std::isnan(row[v]) ? -INFINITY : row[v], int32_t(v)});
  std::stable_sort(c.begin(), c.end(), [](auto& a, auto& b) { return a.first > b.first; });
  if (p.top_k > 0 && p.top_k < double(vocab)) c.resize(size_t(p.top_k));
  const double m = double(c[0].first) / p.temperature;
  std::vector<std::pair<double, int32_t>> l;  // walk order: p descending, token ascending
  double z = 0;
  for (auto& [key, v] : c) {
    const double x = double(key) / p.temperature;
    l.push_back({x == m ? 1.0 : std::exp(x - m), v});
    z += l.back().first;
  }
  std::sort(l.begin(), l.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  std::vector<double> cum(l.size());
  double acc = 0;
  for (size_t i = 0; i < l.size(); i++) cum[i] = acc += l[i].first;
  auto first_reaching = [&](double t) {  // index of the first running sum ≥ t (the last index if none)
    size_t i = 0;
    while (i + 1 < l.size() && cum[i] < t) i++;
    return i;
  };
  size_t kept = l.size() - 1;
  double m_lo = acc, m_hi = acc;
  if (p.top_p < 1) {
    kept = first_reaching(p.top_p * z * (1 + eps));
    m_lo = cum[first_reaching(p.top_p * z * (1 - eps))];
    m_hi = cum[kept];
  }
  const double t_lo = p.uniform * m_lo * (1 - eps) - eps * m_hi, t_hi = p.uniform * m_hi * (1 + eps) + eps * m_hi;
  for (size_t i = 0; i <= kept; i++)
    if (l[i].second == token) return l[i].first > 0 && cum[i] >= t_lo && cum[i] - l[i].first <= t_hi;
  return false;
}

void check_stochastic(Harness& h, Rng& rng) {
  int cases = 0, mismatched = 0, unexplained = 0;
  std::string first;
  const int64_t vocabs[] = {3, 50, 1000, 2048, 2049, 5000, 32000, 128256};
  for (int batch = 0; batch < 16; batch++) {
    const int64_t vocab = vocabs[batch % 8];
    const int64_t rows = vocab > 40000 ? 64 : 160;
    std::vector<float> logits(size_t(rows * vocab));
    std::vector<SamplingParams> params;
    for (int64_t r = 0; r < rows; r++) {
      fill_row(rng, logits.data() + r * vocab, vocab, int((r + batch) % 6));
      params.push_back(random_params(rng, vocab));
    }
    const auto run = run_sampler(logits, vocab, params);
    for (int64_t r = 0; r < rows; r++, cases++) {
      const int32_t got = run.got[size_t(r)], want = run.want[size_t(r)];
      if (got == want) continue;
      mismatched++;
      const float* row = logits.data() + r * vocab;
      if (got < 0 || got >= vocab || !near_boundary(row, vocab, params[size_t(r)], got)) {
        if (!unexplained) {
          const auto& p = params[size_t(r)];
          first = fmt("vocab %g kind %g: got %g", double(vocab), double((r + batch) % 6), got) +
                  fmt(" want %g (T %g top_k %g", want, p.temperature, p.top_k) +
                  fmt(" top_p %g u %.17g)", p.top_p, p.uniform);
        }
        unexplained++;
      }
    }
  }
  const bool ok = unexplained == 0 && mismatched * 200 <= cases && cases >= 2000;
  h.check("sample temperature/top-k/top-p vs CPU", ok,
          fmt("%g cases, %g differ (%g not near a boundary)", cases, mismatched, unexplained) +
              (unexplained ? ": " + first : ""));
}

// Rows and parameters at the edges: extreme temperatures, one-token and all-equal rows, rows of only -inf / NaN,
// several +inf, top_p 0, uniform 0 and just below 1, top_k 1.
void check_sampling_edges(Harness& h, Rng& rng) {
  int cases = 0, mismatched = 0, unexplained = 0;
  std::string first;
  const double temps[] = {1e-300, 1e-7, 0.05, 1.0, 1e7, 1e300};
  const double top_ps[] = {0.0, 0.3, 1.0};
  const double uniforms[] = {0.0, 0.5, 1 - 0x1p-53};
  for (int64_t vocab : {1, 2, 3, 4100, 70001}) {
    for (int kind = 0; kind < 6; kind++) {
      std::vector<float> row(static_cast<size_t>(vocab));
      for (int64_t v = 0; v < vocab; v++) {
        const float x = rng.uniform(-20, 20);
        row[size_t(v)] = kind == 0   ? x
                         : kind == 1 ? 3.0f                                   // all equal
                         : kind == 2 ? (v % 3 ? -INFINITY : NAN)              // nothing finite
                         : kind == 3 ? (v % 1000 == 7 ? INFINITY : x)         // several +inf
                         : kind == 4 ? (v % 5 ? NAN : std::round(x))          // NaNs, integer ties
                                     : x * 1e-30f;                            // tiny logits
      }
      std::vector<float> logits;
      std::vector<SamplingParams> params;
      for (double t : temps)
        for (double tp : top_ps)
          for (double u : uniforms)
            for (double k : {0.0, 1.0, 7.0}) {
              params.push_back({t, k, tp, u});
              logits.insert(logits.end(), row.begin(), row.end());
            }
      const auto run = run_sampler(logits, vocab, params);
      for (size_t r = 0; r < params.size(); r++, cases++) {
        const int32_t got = run.got[r], want = run.want[r];
        if (got == want) continue;
        mismatched++;
        if (got < 0 || got >= vocab || !near_boundary(row.data(), vocab, params[r], got)) {
          if (!unexplained)
            first = fmt("vocab %g kind %g: got %g", double(vocab), kind, got) +
                    fmt(" want %g (T %g top_k %g", want, params[r].temperature, params[r].top_k) +
                    fmt(" top_p %g u %.17g)", params[r].top_p, params[r].uniform);
          unexplained++;
        }
      }
    }
  }
  h.check("sample edge cases vs CPU (extreme T, inf/NaN rows, ties, top_p 0, u 0 and 1-2^-53)", unexplained == 0,
          fmt("%g cases, %g differ (%g not near a boundary)", cases, mismatched, unexplained) +
              (unexplained ? ": " + first : ""));
}

}  // namespace

void check_ops(Harness& h) {
  Rng rng(20261204);
  check_rms_norm(h, rng);
  check_gated(h, rng);
  check_in_place(h, rng);
  check_embedding_gather(h, rng);
  check_greedy(h, rng);
  check_stochastic(h, rng);
  check_sampling_edges(h, rng);
}

}  // namespace loraplex::cuda
