// The memory ceiling every memory-bound figure is a fraction of: device-to-device copy bandwidth, counting
// bytes read plus written (what KINDS.md's 4.3 TB/s counts), on 4 GiB so the 60 MB L2 cannot help.
#include "../check/groups.h"

namespace loraplex::cuda {

__global__ void copy_kernel(const float4* __restrict__ src, float4* __restrict__ dst, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    dst[i] = src[i];
}

void bench_peaks(harness::Harness& h) {
  const size_t bytes = size_t(2) << 30;  // each of source and destination
  harness::DeviceBuffer<float4> src(bytes / 16), dst(bytes / 16);
  LPX_CUDA(cudaMemset(src.get(), 0, bytes));
  int sms = 0;
  LPX_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  double ms_kernel = harness::time_ms([&] { copy_kernel<<<sms * 8, 512>>>(src.get(), dst.get(), bytes / 16); }, 3, 10);
  double ms_memcpy = harness::time_ms([&] { cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice); }, 3, 10);
  double best = std::min(ms_kernel, ms_memcpy);
  h.hbm_gbs = 2.0 * bytes / (best * 1e-3) / 1e9;
  h.figure("hbm copy (read + write)", {{"gbs", h.hbm_gbs}, {"kernel_ms", ms_kernel}, {"memcpy_ms", ms_memcpy}},
           "2 GiB → 2 GiB, median of 10");
}

}  // namespace loraplex::cuda
