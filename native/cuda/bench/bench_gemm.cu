// GEMM speed. First the bf16 tensor ceiling every prefill figure is a fraction of (cuBLAS 8192³ GemmEx; the
// built-in kernel when cuBLAS does not load, and the figure says so); then Llama-3.1-8B's projections in bf16:
// decode rows as weight GB/s against the HBM copy ceiling, prefill as TFLOP/s against the tensor ceiling, with
// the cuBLAS and built-in engines side by side.
#include <cmath>
#include <cstring>

#include "../check/groups.h"
#include "../kernels/cublas_loader.h"
#include "loraplex/cuda/gemm.h"

namespace loraplex::cuda {
namespace {

__device__ uint32_t mix(uint64_t i, uint32_t seed) {
  uint32_t h = static_cast<uint32_t>(i) * 0x9E3779B1u ^ static_cast<uint32_t>(i >> 32) ^ seed * 0x85EBCA77u;
  h ^= h >> 15, h *= 0x2C1B3C6Du, h ^= h >> 12, h *= 0x297A2D39u, h ^= h >> 15;
  return h;
}

// Uniform in [-1, 1): f32, or its bf16 bits (the top half of the f32: truncation is fine for timing data).
__global__ void fill_f32(float* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = (mix(i, seed) >> 8) * 0x1p-23f - 1.f;
}
__global__ void fill_bf16(uint16_t* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const float v = (mix(i, seed) >> 8) * 0x1p-23f - 1.f;
    p[i] = static_cast<uint16_t>(__float_as_uint(v) >> 16);
  }
}

// Host weights for DeviceWeight (which copies from the host): a 1 Mi-element random bf16 block, repeated;
// every weight takes a prefix.
std::vector<uint16_t> host_bf16(size_t n) {
  std::vector<uint16_t> block(size_t(1) << 20), v(n);
  harness::Rng rng(11);
  for (auto& b : block) {
    const float f = rng.uniform();
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    b = static_cast<uint16_t>(bits >> 16);
  }
  for (size_t i = 0; i < n; i += block.size())
    std::memcpy(v.data() + i, block.data(), std::min(block.size(), n - i) * sizeof(uint16_t));
  return v;
}

double cublas_peak_tflops(int s) {
  const cublas::Api* api = cublas::api();
  cublas::Handle handle = nullptr;
  if (!api || api->create(&handle) != 0) return 0;
  harness::DeviceBuffer<uint16_t> a(size_t(s) * s), b(size_t(s) * s), c(size_t(s) * s);
  fill_bf16<<<1024, 256>>>(a.get(), a.size(), 1);
  fill_bf16<<<1024, 256>>>(b.get(), b.size(), 2);
  const float one = 1.f, zero = 0.f;
  int status = 0;
  api->set_stream(handle, 0);
  api->set_math_mode(handle, cublas::kDefaultMath);
  const double ms = harness::time_ms(
      [&] {
        const int st = api->gemm_ex(handle, cublas::kOpT, cublas::kOpN, s, s, s, &one, a.get(), CUDA_R_16BF, s,
                                    b.get(), CUDA_R_16BF, s, &zero, c.get(), CUDA_R_16BF, s, cublas::kCompute32F,
                                    cublas::kGemmDefault);
        if (st) status = st;
      },
      3, 10);
  api->destroy(handle);
  if (status) {
    std::printf("cuBLAS GemmEx failed: %s\n", cublas::status_name(status).c_str());
    return 0;
  }
  return 2.0 * s * s * double(s) / (ms * 1e-3) / 1e12;
}

const char* engine_name(GemmEngine e) { return e == GemmEngine::Cublas ? "cublas" : "builtin"; }

}  // namespace

void bench_gemm(harness::Harness& h) {
  GemmContext ctx;
  std::printf("cuBLAS: %s\n", ctx.cublas_source().c_str());
  std::vector<GemmEngine> engines;
  if (ctx.has_cublas()) engines.push_back(GemmEngine::Cublas);
  engines.push_back(GemmEngine::Builtin);

  const int64_t kMaxWeight = int64_t(28672) * 4096;
  const std::vector<uint16_t> host = host_bf16(kMaxWeight);
  const int64_t kMaxM = 2048, kMaxK = 14336, kMaxN = 28672;
  harness::DeviceBuffer<float> x(size_t(8192) * 8192 > size_t(kMaxM * kMaxK) ? size_t(8192) * 8192 : kMaxM * kMaxK);
  harness::DeviceBuffer<float> y(size_t(8192) * 8192 > size_t(kMaxM * kMaxN) ? size_t(8192) * 8192 : kMaxM * kMaxN);
  fill_f32<<<1024, 256>>>(x.get(), x.size(), 3);
  LPX_CUDA(cudaGetLastError());

  // The tensor ceiling.
  const int s = 8192;
  double peak = ctx.has_cublas() ? cublas_peak_tflops(s) : 0;
  std::string note = "cuBLAS GemmEx bf16 in, bf16 out, f32 compute, median of 10";
  if (peak <= 0) {
    DeviceWeight w(DType::Bf16, s, s, host.data());
    ctx.set_engine(GemmEngine::Builtin);
    const double ms = harness::time_ms([&] { ctx.gemm(x.get(), s, w, y.get(), nullptr, 0); }, 2, 5);
    peak = 2.0 * s * s * double(s) / (ms * 1e-3) / 1e12;
    note = "BUILT-IN wmma kernel (no cuBLAS: " + ctx.cublas_source() + "), f32 x rounded to bf16, median of 5";
  }
  h.bf16_tflops = peak;
  h.figure("bf16 tensor peak 8192x8192x8192", {{"tflops", peak}}, note);
  LPX_CUDA(cudaGetLastError());

  // Llama-3.1-8B projections, bf16 weights, f32 activations.
  struct Proj {
    const char* name;
    int64_t n, k;
  };
  const Proj projs[] = {{"qkv 4096->6144", 6144, 4096},
                        {"o 4096->4096", 4096, 4096},
                        {"gate|up 4096->28672", 28672, 4096},
                        {"down 14336->4096", 4096, 14336}};
  const double nan = std::nan("");
  for (const Proj& p : projs) {
    DeviceWeight w(DType::Bf16, p.n, p.k, host.data());
    for (int64_t m : {1, 8, 64, 2048}) {
      const bool decode = m <= 64;
      std::vector<std::pair<std::string, double>> values;
      for (GemmEngine e : engines) {
        ctx.set_engine(e);
        const double ms = harness::time_ms([&] { ctx.gemm(x.get(), m, w, y.get(), nullptr, 0); }, 3, 20);
        LPX_CUDA(cudaGetLastError());
        const std::string en = engine_name(e);
        const double gbs = double(w.bytes()) / (ms * 1e-3) / 1e9;
        const double tflops = 2.0 * m * p.n * double(p.k) / (ms * 1e-3) / 1e12;
        values.push_back({en + "_us", ms * 1e3});
        if (decode) {
          values.push_back({en + "_gbs", gbs});
          values.push_back({en + "_frac_hbm", h.hbm_gbs > 0 ? gbs / h.hbm_gbs : nan});
        } else {
          values.push_back({en + "_tflops", tflops});
          values.push_back({en + "_frac_bf16", h.bf16_tflops > 0 ? tflops / h.bf16_tflops : nan});
        }
      }
      h.figure("gemm bf16 M=" + std::to_string(m) + " " + p.name, values,
               decode ? "weight bytes / time; cuBLAS time includes rounding x to bf16"
                      : "2·M·N·K / time; cuBLAS time includes rounding x to bf16");
    }
  }

  // f32 weights (exact f32 arithmetic: SGEMM without TF32, or the SIMT kernel), one square shape.
  {
    std::vector<float> wf(size_t(4096) * 4096);
    harness::Rng rng(5);
    for (auto& v : wf) v = rng.uniform();
    DeviceWeight w(DType::F32, 4096, 4096, wf.data());
    for (int64_t m : {1, 64, 2048}) {
      std::vector<std::pair<std::string, double>> values;
      for (GemmEngine e : engines) {
        ctx.set_engine(e);
        const double ms = harness::time_ms([&] { ctx.gemm(x.get(), m, w, y.get(), nullptr, 0); }, 3, 10);
        LPX_CUDA(cudaGetLastError());
        const std::string en = engine_name(e);
        values.push_back({en + "_us", ms * 1e3});
        values.push_back({en + "_gbs", double(w.bytes()) / (ms * 1e-3) / 1e9});
        values.push_back({en + "_tflops", 2.0 * m * 4096 * 4096.0 / (ms * 1e-3) / 1e12});
      }
      h.figure("gemm f32 M=" + std::to_string(m) + " 4096->4096", values, "f32 arithmetic, no TF32");
    }
  }
  ctx.set_engine(GemmEngine::Auto);
}

}  // namespace loraplex::cuda
