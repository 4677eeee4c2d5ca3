// GEMM on the device (built-in kernels, and cuBLAS when it loads) against loraplex::gemm on the CPU, on odd
// shapes, every weight dtype, with and without bias. 16-bit weights: the CPU runs on x rounded to the weight's
// dtype, so only the summation order differs. A guard region after y catches writes past the end.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstring>

#include "groups.h"
#include "loraplex/cuda/gemm.h"
#include "loraplex/gemm.h"

namespace loraplex::cuda {
namespace {

uint16_t to_bits(float v, DType d) {
  if (d == DType::Bf16) return __nv_bfloat16_raw(__float2bfloat16_rn(v)).x;
  return __half_raw(__float2half_rn(v)).x;
}
float from_bits(uint16_t b, DType d) {
  if (d == DType::Bf16) {
    __nv_bfloat16_raw r;
    r.x = b;
    return __bfloat162float(__nv_bfloat16(r));
  }
  __half_raw r;
  r.x = b;
  return __half2float(__half(r));
}

const char* dtype_name(DType d) { return d == DType::F32 ? "f32" : d == DType::F16 ? "f16" : "bf16"; }

struct Shape {
  int64_t m, n, k;
};

// The worst element over every shape of one (engine, dtype, bias) group.
struct Tally {
  double worst = 0, max_abs = 0;
  std::string worst_shape, first_failure;
  int cases = 0, failures = 0;
  void add(const Shape& s, std::pair<double, double> err, bool guard_ok) {
    cases++;
    const std::string name = std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k);
    if (!(err.second <= worst)) worst = err.second, max_abs = err.first, worst_shape = name;
    if (!(err.second <= 1) || !guard_ok) {
      if (!failures) first_failure = name + (guard_ok ? "" : " (wrote past y)");
      failures++;
    }
  }
};

constexpr uint32_t kSentinel = 0xFFFFFFFFu;  // a NaN pattern: unwritten outputs fail the comparison
constexpr int64_t kGuard = 256;

}  // namespace

void check_gemm(harness::Harness& h) {
  GemmContext ctx;
  std::printf("cuBLAS: %s\n", ctx.cublas_source().c_str());
  std::vector<GemmEngine> engines = {GemmEngine::Builtin};
  if (ctx.has_cublas()) engines.push_back(GemmEngine::Cublas);

  std::vector<Shape> shapes;
  for (int64_t m : {1, 3, 17, 64, 130})
    for (int64_t n : {1, 33, 257, 1000})
      for (int64_t k : {1, 7, 64, 300, 1031}) shapes.push_back({m, n, k});
  // The edges of the kernel choice: the widest GEMV (8 rows), the first tensor-core row count (9), a grid
  // large enough for the 64×128 tiles with ragged edges on every side, and a decode-like row.
  for (Shape s : {Shape{8, 1000, 1031}, Shape{9, 257, 300}, Shape{520, 2100, 200}, Shape{2, 4096, 4096},
                  Shape{33, 129, 0}})
    shapes.push_back(s);

  const cudaStream_t stream = 0;
  for (DType dtype : {DType::F32, DType::F16, DType::Bf16}) {
    std::map<std::pair<int, bool>, Tally> tallies;  // (engine, bias)
    harness::Rng rng(uint64_t(dtype) * 1000 + 7);
    for (const Shape& s : shapes) {
      std::vector<float> x = rng.vec(s.m * s.k), wf = rng.vec(s.n * s.k), bias = rng.vec(s.n);
      std::vector<float> x_ref = x;
      std::vector<uint16_t> w16;
      const void* wsrc = wf.data();
      if (dtype != DType::F32) {
        w16.resize(wf.size());
        for (size_t i = 0; i < wf.size(); i++) w16[i] = to_bits(wf[i], dtype);
        for (auto& v : x_ref) v = from_bits(to_bits(v, dtype), dtype);
        wsrc = w16.data();
      }
      PackedWeight packed(static_cast<WeightDType>(dtype), s.n, s.k, wsrc);
      std::vector<float> want(s.m * s.n), want_bias(s.m * s.n);
      gemm(x_ref.data(), s.m, packed, want.data(), nullptr, false);
      gemm(x_ref.data(), s.m, packed, want_bias.data(), bias.data(), false);

      DeviceWeight w(dtype, s.n, s.k, wsrc);
      harness::DeviceBuffer<float> dx(std::max<size_t>(x.size(), 1)), dbias(bias), dy(s.m * s.n + kGuard);
      if (!x.empty()) dx.upload(x);  // K = 0: nothing to copy, but the pointer stays non-null
      const double root_k = std::sqrt(double(std::max<int64_t>(s.k, 1)));
      const double tol = (dtype == DType::F32 ? 1e-5 : 2e-5) * root_k;
      for (GemmEngine e : engines) {
        ctx.set_engine(e);
        for (bool with_bias : {false, true}) {
          LPX_CUDA(cudaMemset(dy.get(), 0xFF, dy.size() * sizeof(float)));
          ctx.gemm(dx.get(), s.m, w, dy.get(), with_bias ? dbias.get() : nullptr, stream);
          LPX_CUDA(cudaGetLastError());
          LPX_CUDA(cudaStreamSynchronize(stream));
          std::vector<float> got = dy.download();
          bool guard_ok = true;
          for (int64_t i = s.m * s.n; i < int64_t(got.size()); i++) {
            uint32_t bits;
            std::memcpy(&bits, &got[i], 4);
            guard_ok = guard_ok && bits == kSentinel;
          }
          got.resize(s.m * s.n);
          tallies[{int(e), with_bias}].add(s, harness::compare(got, with_bias ? want_bias : want, tol, tol), guard_ok);
        }
      }
    }
    for (auto& [key, t] : tallies) {
      const std::string name = std::string("gemm ") + (key.first == int(GemmEngine::Cublas) ? "cublas " : "builtin ") +
                               dtype_name(dtype) + (key.second ? " +bias" : "");
      std::string detail = std::to_string(t.cases) + " shapes, " + std::to_string(t.failures) + " failed" +
                           harness::fmt("; worst %.3g of tolerance (max |err| %.3g)", t.worst, t.max_abs) + " at " +
                           t.worst_shape + " (tol (1+|y|)·" + (dtype == DType::F32 ? "1e-5" : "2e-5") + "·√K)";
      if (t.failures) detail += "; first failure " + t.first_failure;
      h.check(name, t.failures == 0, detail);
    }
  }
  ctx.set_engine(GemmEngine::Auto);
}

}  // namespace loraplex::cuda
