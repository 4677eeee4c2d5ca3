// The harness the CUDA checks and benches share (native/cuda/check, native/cuda/bench): named results,
// device buffers, seeded random data, event timing, JSON output. Host code only (.cu or .cpp).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace loraplex::cuda::harness {

#define LPX_CUDA(expr)                                                                              \
  do {                                                                                              \
    cudaError_t err_ = (expr);                                                                      \
    if (err_ != cudaSuccess) {                                                                      \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(err_)); \
      std::exit(2);                                                                                 \
    }                                                                                               \
  } while (0)

// Results of one program run: checks (pass/fail with a detail) and figures (named numbers), written as JSON.
class Harness {
 public:
  explicit Harness(std::vector<std::string> filters) : filters_(std::move(filters)) {}

  // Whether a group (e.g. "lora", "attention") was asked for: no filters means all.
  bool wants(const std::string& group) const {
    if (filters_.empty()) return true;
    for (auto& f : filters_)
      if (group.find(f) != std::string::npos) return true;
    return false;
  }

  void check(const std::string& name, bool ok, const std::string& detail) {
    checks_.push_back({name, ok, detail});
    std::printf("%s %s — %s\n", ok ? "ok  " : "FAIL", name.c_str(), detail.c_str());
    std::fflush(stdout);
  }
  int failures() const {
    int n = 0;
    for (auto& c : checks_) n += c.ok ? 0 : 1;
    return n;
  }
  size_t num_checks() const { return checks_.size(); }

  // A measured figure, e.g. figure("bgmv decode 32 rows r16 4096x4096", {{"us", 12.3}, {"gbs", 3900}, {"frac_hbm", 0.9}}).
  void figure(const std::string& name, std::vector<std::pair<std::string, double>> values,
              const std::string& note = "") {
    figures_.push_back({name, std::move(values), note});
    std::printf("fig  %s:", name.c_str());
    for (auto& [k, v] : figures_.back().values) std::printf(" %s=%.4g", k.c_str(), v);
    if (!note.empty()) std::printf("  (%s)", note.c_str());
    std::printf("\n");
    std::fflush(stdout);
  }

  // Ceilings measured first by the bench program (0 until then): HBM copy GB/s, bf16 tensor TFLOP/s.
  double hbm_gbs = 0;
  double bf16_tflops = 0;

  void write_json(const std::string& path, const std::string& header_json) const {
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) return;
    std::fprintf(f, "{\n  \"header\": %s,\n  \"hbm_gbs\": %.6g,\n  \"bf16_tflops\": %.6g,\n  \"checks\": [",
                 header_json.c_str(), hbm_gbs, bf16_tflops);
    for (size_t i = 0; i < checks_.size(); i++)
      std::fprintf(f, "%s\n    {\"name\": \"%s\", \"ok\": %s, \"detail\": \"%s\"}", i ? "," : "",
                   esc(checks_[i].name).c_str(), checks_[i].ok ? "true" : "false", esc(checks_[i].detail).c_str());
    std::fprintf(f, "\n  ],\n  \"figures\": [");
    for (size_t i = 0; i < figures_.size(); i++) {
      std::fprintf(f, "%s\n    {\"name\": \"%s\", \"note\": \"%s\"", i ? "," : "", esc(figures_[i].name).c_str(),
                   esc(figures_[i].note).c_str());
      for (auto& [k, v] : figures_[i].values)
        std::fprintf(f, ", \"%s\": %s", esc(k).c_str(), std::isfinite(v) ? std::to_string(v).c_str() : "null");
      std::fprintf(f, "}");
    }
    std::fprintf(f, "\n  ]\n}\n");
    std::fclose(f);
  }

 private:
  static std::string esc(const std::string& s) {
    std::string o;
    for (char c : s) {
      if (c == '"' || c == '\\') o += '\\';
      if (c == '\n') { o += "\\n"; continue; }
      o += c;
    }
    return o;
  }
  struct Check { std::string name; bool ok; std::string detail; };
  struct Figure { std::string name; std::vector<std::pair<std::string, double>> values; std::string note; };
  std::vector<std::string> filters_;
  std::vector<Check> checks_;
  std::vector<Figure> figures_;
};

// A device allocation of n elements of T, freed on destruction.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) : n_(n) { if (n) LPX_CUDA(cudaMalloc(&p_, n * sizeof(T))); }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { if (p_) cudaFree(p_); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept { std::swap(p_, o.p_); std::swap(n_, o.n_); return *this; }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return p_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& host) { LPX_CUDA(cudaMemcpy(p_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice)); }
  std::vector<T> download() const {
    std::vector<T> h(n_);
    if (n_) LPX_CUDA(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
  void zero() { if (n_) LPX_CUDA(cudaMemset(p_, 0, n_ * sizeof(T))); }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

// Seeded xorshift; uniform in [lo, hi).
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }
  float uniform(float lo = -1.f, float hi = 1.f) { return lo + (hi - lo) * float((next() >> 40) * 0x1p-24); }
  int range(int lo, int hi) { return lo + int(next() % uint64_t(hi - lo + 1)); }  // [lo, hi]
  std::vector<float> vec(size_t n, float lo = -1.f, float hi = 1.f) {
    std::vector<float> v(n);
    for (auto& x : v) x = uniform(lo, hi);
    return v;
  }
};

// Max |a - b| / (atol + rtol·|b|) over the elements: ≤ 1 passes. Returns {max abs diff, worst ratio}.
inline std::pair<double, double> compare(const std::vector<float>& got, const std::vector<float>& want, double atol,
                                         double rtol) {
  double max_abs = 0, worst = 0;
  if (got.size() != want.size()) return {INFINITY, INFINITY};
  for (size_t i = 0; i < got.size(); i++) {
    double d = std::fabs(double(got[i]) - double(want[i]));
    if (!(d == d)) d = INFINITY;  // NaN
    max_abs = std::max(max_abs, d);
    worst = std::max(worst, d / (atol + rtol * std::fabs(double(want[i]))));
  }
  return {max_abs, worst};
}

// Median milliseconds of `reps` timed runs of fn on `stream` after `warmup` runs (CUDA events).
inline double time_ms(const std::function<void()>& fn, int warmup = 3, int reps = 20, cudaStream_t stream = 0) {
  for (int i = 0; i < warmup; i++) fn();
  LPX_CUDA(cudaStreamSynchronize(stream));
  cudaEvent_t a, b;
  LPX_CUDA(cudaEventCreate(&a));
  LPX_CUDA(cudaEventCreate(&b));
  std::vector<double> ms;
  for (int i = 0; i < reps; i++) {
    LPX_CUDA(cudaEventRecord(a, stream));
    fn();
    LPX_CUDA(cudaEventRecord(b, stream));
    LPX_CUDA(cudaEventSynchronize(b));
    float t = 0;
    LPX_CUDA(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

inline std::string fmt(const char* f, double a, double b = 0, double c = 0) {
  char buf[256];
  std::snprintf(buf, sizeof buf, f, a, b, c);
  return buf;
}

}  // namespace loraplex::cuda::harness
