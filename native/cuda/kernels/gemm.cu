// GemmContext and DeviceWeight (loraplex/cuda/gemm.h): cuBLAS when it loads (cublas_loader.h), else the
// built-in kernels (gemm_kernels.h).
//
// Scratch: the 16-bit cuBLAS path rounds x into a scratch buffer first; the scratch grows on first use of a
// larger M·K, which synchronizes the device once (so not inside CUDA graph capture): call gemm once with the
// largest shape to warm it.
#include <cstdint>
#include <stdexcept>

#include "cublas_loader.h"
#include "gemm_kernels.h"
#include "loraplex/cuda/gemm.h"

namespace loraplex::cuda {

// ── DeviceWeight ──

DeviceWeight::DeviceWeight(DType dtype, int64_t rows, int64_t cols, const void* src)
    : dtype_(dtype), rows_(rows), cols_(cols) {
  if (rows < 0 || cols < 0) throw std::invalid_argument("DeviceWeight: negative shape");
  const size_t n = bytes();
  if (n == 0) return;
  if (!src) throw std::invalid_argument("DeviceWeight: null source for a non-empty weight");
  check_cuda(cudaMalloc(&data_, n), "DeviceWeight: cudaMalloc");
  const cudaError_t err = cudaMemcpy(data_, src, n, cudaMemcpyHostToDevice);
  if (err != cudaSuccess) {
    cudaFree(data_);
    data_ = nullptr;
    check_cuda(err, "DeviceWeight: cudaMemcpy");
  }
}

DeviceWeight::~DeviceWeight() {
  if (data_) cudaFree(data_);
}

// ── GemmContext ──

struct GemmContext::Impl {
  cublas::Handle handle = nullptr;
  const cublas::Api* api = nullptr;
  std::string source;
  GemmEngine engine = GemmEngine::Auto;
  int sms = 1;
  uint16_t* scratch = nullptr;  // x rounded to 16 bits for cuBLAS
  size_t scratch_elements = 0;

  uint16_t* scratch_for(size_t elements) {
    if (elements <= scratch_elements) return scratch;
    // Kernels still queued may read the old buffer: wait for them (only when the buffer grows).
    check_cuda(cudaDeviceSynchronize(), "GemmContext: synchronize before growing the scratch");
    if (scratch) cudaFree(scratch);
    scratch = nullptr;
    scratch_elements = 0;
    check_cuda(cudaMalloc(&scratch, elements * sizeof(uint16_t)), "GemmContext: cudaMalloc scratch");
    scratch_elements = elements;
    return scratch;
  }

  void check(cublas::Status s, const char* what) const {
    if (s != 0) throw std::runtime_error(std::string("cuBLAS ") + what + ": " + cublas::status_name(s));
  }
};

GemmContext::GemmContext() : impl_(std::make_unique<Impl>()) {
  int device = 0;
  check_cuda(cudaGetDevice(&device), "GemmContext: cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&impl_->sms, cudaDevAttrMultiProcessorCount, device),
             "GemmContext: multiprocessor count");
  const cublas::Api* api = cublas::api();
  impl_->source = cublas::source();
  if (!api) return;
  cublas::Handle handle = nullptr;
  const cublas::Status s = api->create(&handle);
  if (s != 0 || !handle) {
    impl_->source += ": cublasCreate failed with " + cublas::status_name(s) + " (built-in kernels run)";
    return;
  }
  impl_->handle = handle;
  impl_->api = api;
}

GemmContext::~GemmContext() {
  if (impl_->handle) impl_->api->destroy(impl_->handle);
  if (impl_->scratch) cudaFree(impl_->scratch);
}

bool GemmContext::has_cublas() const { return impl_->handle != nullptr; }

std::string GemmContext::cublas_source() const { return impl_->source; }

void GemmContext::set_engine(GemmEngine engine) {
  if (engine == GemmEngine::Cublas && !has_cublas())
    throw std::runtime_error("GemmContext: cuBLAS engine asked for, but " + impl_->source);
  impl_->engine = engine;
}

void GemmContext::gemm(const float* x, int64_t m, const DeviceWeight& w, float* y, const float* bias,
                       cudaStream_t stream) {
  const int64_t n = w.rows(), k = w.cols();
  if (m < 0) throw std::invalid_argument("GemmContext::gemm: negative m");
  if (m == 0 || n == 0) return;
  Impl& s = *impl_;
  constexpr int64_t kIntMax = 2147483647;
  const bool fits_int = m <= kIntMax && n <= kIntMax && k <= kIntMax;
  const bool cublas = s.handle && s.engine != GemmEngine::Builtin && k > 0 && fits_int;

  if (cublas) {
    const cublas::Api& api = *s.api;
    const float one = 1.f, zero = 0.f;
    const int mi = static_cast<int>(m), ni = static_cast<int>(n), ki = static_cast<int>(k);
    s.check(api.set_stream(s.handle, stream), "cublasSetStream");
    // Row-major y[M, N] = x · Wᵀ is column-major yᵀ[N, M] = op_T(W as [K, N]) · (x as [K, M]).
    if (w.dtype() == DType::F32) {
      s.check(api.set_math_mode(s.handle, cublas::kPedanticMath), "cublasSetMathMode");
      s.check(api.sgemm(s.handle, cublas::kOpT, cublas::kOpN, ni, mi, ki, &one, static_cast<const float*>(w.data()),
                        ki, x, ki, &zero, y, ni),
              "cublasSgemm");
    } else {
      const bool bf16 = w.dtype() == DType::Bf16;
      uint16_t* xs = s.scratch_for(static_cast<size_t>(m * k));
      gemm_kernels::round_to_16(w.dtype(), x, xs, m * k, stream);
      const cudaDataType_t t = bf16 ? CUDA_R_16BF : CUDA_R_16F;
      s.check(api.set_math_mode(s.handle, cublas::kDefaultMath), "cublasSetMathMode");
      s.check(api.gemm_ex(s.handle, cublas::kOpT, cublas::kOpN, ni, mi, ki, &one, w.data(), t, ki, xs, t, ki, &zero, y,
                          CUDA_R_32F, ni, cublas::kCompute32F, cublas::kGemmDefault),
              "cublasGemmEx");
    }
    if (bias) gemm_kernels::add_bias(y, bias, m, n, stream);
    return;
  }

  const void* wd = w.data();
  if (m <= gemm_kernels::kGemvMaxRows) {
    gemm_kernels::gemv(w.dtype(), x, m, k, wd, n, y, bias, stream);
  } else if ((m + 31) / 32 > 65535) {  // the smallest tensor-core tiles are 32 rows
    throw std::invalid_argument("GemmContext::gemm: m = " + std::to_string(m) + " rows exceed the built-in grid");
  } else if (w.dtype() == DType::F32) {
    gemm_kernels::sgemm(x, m, k, static_cast<const float*>(wd), n, y, bias, stream);
  } else {
    gemm_kernels::tensor_gemm(w.dtype(), x, m, k, static_cast<const uint16_t*>(wd), n, y, bias, s.sms, stream);
  }
}

}  // namespace loraplex::cuda
