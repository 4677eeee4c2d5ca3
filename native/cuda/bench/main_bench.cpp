// loraplex-cuda-bench: the kernels' speed against the machine's ceilings measured in the same run (HBM copy
// bandwidth, bf16 tensor throughput). Usage: loraplex-cuda-bench [--json PATH] [group filters...]
#include <cstring>

#include "../check/groups.h"

using namespace loraplex::cuda;

int main(int argc, char** argv) {
  std::string json;
  std::vector<std::string> filters;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
    else filters.push_back(argv[i]);
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "no CUDA device: nothing to measure\n");
    return 2;
  }
  cudaDeviceProp prop{};
  LPX_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d, %d SMs, %.0f MiB)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount,
              prop.totalGlobalMem / 1048576.0);
  harness::Harness h(filters);
  using Group = void (*)(harness::Harness&);
  // Peaks first: every later figure is a fraction of them.
  const std::pair<const char*, Group> groups[] = {{"peaks", bench_peaks},  {"gemm", bench_gemm},
                                                  {"lora", bench_lora},    {"attention", bench_attention},
                                                  {"ops", bench_ops}};
  for (auto& [name, fn] : groups) {
    if (std::strcmp(name, "peaks") && !h.wants(name)) continue;
    std::printf("── %s\n", name);
    try {
      fn(h);
    } catch (const std::exception& e) {
      h.check(std::string(name) + ": threw", false, e.what());
    }
    cudaError_t err = cudaDeviceSynchronize();
    if (err != cudaSuccess) h.check(std::string(name) + ": device error", false, cudaGetErrorString(err));
  }
  if (!json.empty())
    h.write_json(json, std::string("{\"program\": \"loraplex-cuda-bench\", \"device\": \"") + prop.name + "\"}");
  return h.failures() ? 1 : 0;
}
