// dlopen of cuBLAS (see cublas_loader.h). The handle is never closed: cuBLAS stays loaded for the process.
#include "cublas_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <vector>

namespace loraplex::cuda::cublas {
namespace {

struct Loaded {
  Api api{};
  bool ok = false;
  std::string source;
};

template <typename Fn>
bool bind(void* lib, const char* name, Fn& fn, std::string& missing) {
  fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (!fn) missing += (missing.empty() ? "" : ", ") + std::string(name);
  return fn != nullptr;
}

// Binds every entry point of one opened library; on success describes it in `source`.
bool bind_all(void* lib, Api& api, std::string& source, std::string& why) {
  std::string missing;
  bind(lib, "cublasCreate_v2", api.create, missing);
  bind(lib, "cublasDestroy_v2", api.destroy, missing);
  bind(lib, "cublasSetStream_v2", api.set_stream, missing);
  bind(lib, "cublasSetMathMode", api.set_math_mode, missing);
  bind(lib, "cublasSgemm_v2", api.sgemm, missing);
  bind(lib, "cublasGemmEx", api.gemm_ex, missing);
  if (!missing.empty()) {
    why = "lacks " + missing;
    return false;
  }
  std::string optional_missing;
  bind(lib, "cublasGetStatusString", api.status_string, optional_missing);
  Status (*get_property)(libraryPropertyType, int*) = nullptr;
  bind(lib, "cublasGetProperty", get_property, optional_missing);

  Dl_info info{};
  source = dladdr(reinterpret_cast<void*>(api.create), &info) && info.dli_fname ? info.dli_fname : "cuBLAS";
  int major = 0, minor = 0, patch = 0;
  if (get_property && get_property(MAJOR_VERSION, &major) == 0 && get_property(MINOR_VERSION, &minor) == 0 &&
      get_property(PATCH_LEVEL, &patch) == 0)
    source += " (cuBLAS " + std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch) + ")";
  return true;
}

Loaded load() {
  Loaded out;
  std::vector<std::string> candidates;
  if (const char* path = std::getenv("LORAPLEX_CUBLAS"); path && *path) candidates.push_back(path);
  for (const char* name : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}) candidates.push_back(name);
  std::string tried;
  for (size_t i = 0; i < candidates.size(); i++) {
    const std::string& name = candidates[i];
    const bool from_env = candidates.size() == 4 && i == 0;
    const std::string label = from_env ? "LORAPLEX_CUBLAS=" + name : name;
    void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* err = dlerror();  // names the file already
      tried += std::string("; ") + (from_env ? "LORAPLEX_CUBLAS: " : "") + (err ? std::string(err) : name + ": dlopen failed");
      continue;
    }
    std::string why;
    if (bind_all(lib, out.api, out.source, why)) {
      out.ok = true;
      return out;
    }
    tried += "; " + label + ": " + why;
    dlclose(lib);
    out.api = Api{};
  }
  out.source = "no cuBLAS (built-in kernels run)" + tried +
               " (hint: set LORAPLEX_CUBLAS to libcublas.so's path, or put its folder in LD_LIBRARY_PATH)";
  return out;
}

const Loaded& loaded() {
  static const Loaded once = load();  // thread-safe initialisation
  return once;
}

}  // namespace

const Api* api() { return loaded().ok ? &loaded().api : nullptr; }

const std::string& source() { return loaded().source; }

std::string status_name(Status s) {
  const Api* a = api();
  const char* text = a && a->status_string ? a->status_string(s) : nullptr;
  if (!text) {
    switch (s) {  // cublasStatus_t values from cublas_api.h
      case 0: text = "CUBLAS_STATUS_SUCCESS"; break;
      case 1: text = "CUBLAS_STATUS_NOT_INITIALIZED"; break;
      case 3: text = "CUBLAS_STATUS_ALLOC_FAILED"; break;
      case 7: text = "CUBLAS_STATUS_INVALID_VALUE"; break;
      case 8: text = "CUBLAS_STATUS_ARCH_MISMATCH"; break;
      case 11: text = "CUBLAS_STATUS_MAPPING_ERROR"; break;
      case 13: text = "CUBLAS_STATUS_EXECUTION_FAILED"; break;
      case 14: text = "CUBLAS_STATUS_INTERNAL_ERROR"; break;
      case 15: text = "CUBLAS_STATUS_NOT_SUPPORTED"; break;
      case 16: text = "CUBLAS_STATUS_LICENSE_ERROR"; break;
      default: text = "CUBLAS_STATUS_UNKNOWN"; break;
    }
  }
  return std::string(text) + " (" + std::to_string(s) + ")";
}

}  // namespace loraplex::cuda::cublas
