// loraplex-cuda-check: the CUDA kernels against the CPU kernels (themselves checked against the TypeScript
// reference) on randomized shapes. Usage: loraplex-cuda-check [--json PATH] [group filters...]
// Exit status: 0 all passed, 1 some check failed, 2 no usable device.
#include <cstring>

#include "groups.h"

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
    std::fprintf(stderr, "no CUDA device: nothing to check\n");
    return 2;
  }
  cudaDeviceProp prop{};
  LPX_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
  harness::Harness h(filters);
  using Group = void (*)(harness::Harness&);
  const std::pair<const char*, Group> groups[] = {
      {"ops", check_ops}, {"gemm", check_gemm}, {"lora", check_lora}, {"attention", check_attention}};
  for (auto& [name, fn] : groups) {
    if (!h.wants(name)) continue;
    std::printf("── %s\n", name);
    try {
      fn(h);
    } catch (const std::exception& e) {
      h.check(std::string(name) + ": threw", false, e.what());
    }
    cudaError_t err = cudaDeviceSynchronize();
    if (err != cudaSuccess) h.check(std::string(name) + ": device error", false, cudaGetErrorString(err));
  }
  std::printf("%zu checks, %d failed\n", h.num_checks(), h.failures());
  if (!json.empty())
    h.write_json(json, std::string("{\"program\": \"loraplex-cuda-check\", \"device\": \"") + prop.name + "\"}");
  return h.failures() ? 1 : 0;
}
