// The CUDA backend as seen from JavaScript (wrapped by src/backends/cuda-backend.ts): device memory behind
// handles, and one function per Backend op. Every handle is an External registered in a live set with its
// kind, so a stale or foreign handle is refused, never dereferenced. Everything a kernel will read is
// bounds-checked here first, on the host copies of the step plan (the CPU kernels' check_* functions), so a
// bad plan is a RangeError and never a device fault. Ops only enqueue on the backend's stream; `read` and
// `sample` synchronise (they return host data), and any asynchronous device error surfaces there as an Error.
#include <cuda_runtime.h>
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "loraplex/attention.h"
#include "loraplex/cuda/attention.h"
#include "loraplex/cuda/gemm.h"
#include "loraplex/cuda/lora.h"
#include "loraplex/cuda/ops.h"
#include "loraplex/cuda/sampling.h"
#include "loraplex/ops.h"
#include "loraplex/sampling.h"

namespace loraplex::cuda::binding {
namespace {

// ── the context: one device, one stream, one GEMM context per process ─────────────────────────────────────

struct Context {
  cudaStream_t stream = nullptr;
  std::unique_ptr<GemmContext> gemm;
};

Context* g_ctx = nullptr;

struct JsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct JsRangeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct JsTypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void cuda_ok(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw JsError(std::string("CUDA: ") + what + ": " + cudaGetErrorString(err));
}

Context& ctx() {
  if (!g_ctx) {
    int n = 0;
    cuda_ok(cudaGetDeviceCount(&n), "no usable CUDA device");
    if (n == 0) throw JsError("CUDA: no device");
    cuda_ok(cudaSetDevice(0), "cudaSetDevice");
    auto* c = new Context();
    cuda_ok(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    c->gemm = std::make_unique<GemmContext>();
    g_ctx = c;
  }
  return *g_ctx;
}

// Errors a launch reports at once (bad configuration, an earlier asynchronous fault).
void launched(const char* op) { cuda_ok(cudaPeekAtLastError(), op); }

// ── handles ──────────────────────────────────────────────────────────────────────────────────────────────

enum class Kind { Tensor, Weight, Kv, Bank, Step };

struct Handle {
  explicit Handle(Kind k) : kind(k) {}
  virtual ~Handle() = default;
  Kind kind;
};

std::mutex g_live_mutex;
std::unordered_set<Handle*> g_live;

struct TensorH : Handle {
  TensorH() : Handle(Kind::Tensor) {}
  ~TensorH() override { release(); }
  void release() {
    if (p) cudaFree(p);
    p = nullptr;
  }
  float* p = nullptr;
  int64_t n = 0;
};

struct WeightH : Handle {
  WeightH() : Handle(Kind::Weight) {}
  std::unique_ptr<DeviceWeight> w;
};

struct KvH : Handle {
  KvH() : Handle(Kind::Kv) {}
  ~KvH() override {
    if (k) cudaFree(k);
    if (v) cudaFree(v);
  }
  void* k = nullptr;
  void* v = nullptr;
  int64_t layers = 0, elements = 0;  // elements per layer (rows · rowWidth)
  KvDtype dtype = KvDtype::F32;
  void* layer(void* base, int64_t l) const {
    return static_cast<char*>(base) + l * elements * (dtype == KvDtype::Bf16 ? 2 : 4);
  }
};

struct BankH : Handle {
  BankH() : Handle(Kind::Bank) {}
  std::unique_ptr<DeviceLoraBank> bank;
  // Host mirror of each slot's shapes, for the bounds checks of applyAdapters.
  struct ModuleShape {
    int32_t rank, in, out;
  };
  std::vector<std::vector<ModuleShape>> slots;  // [num_slots], empty when unoccupied
};

// A grown device buffer of int32 values with a pinned host staging area.
struct StagedInts {
  ~StagedInts() {
    if (device) cudaFree(device);
    if (host) cudaFreeHost(host);
    if (done) cudaEventDestroy(done);
  }
  void reserve(size_t n) {
    if (n <= capacity) return;
    if (done) cuda_ok(cudaEventSynchronize(done), "staging wait");
    if (device) cudaFree(device);
    if (host) cudaFreeHost(host);
    device = nullptr;
    host = nullptr;
    capacity = std::max<size_t>(n, 2 * capacity);
    cuda_ok(cudaMalloc(&device, capacity * sizeof(int32_t)), "cudaMalloc (step plan)");
    cuda_ok(cudaMallocHost(&host, capacity * sizeof(int32_t)), "cudaMallocHost (step plan)");
    if (!done) cuda_ok(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "cudaEventCreate");
  }
  // Waits for the last upload from the staging area before it is rewritten.
  int32_t* staging() {
    if (done) cuda_ok(cudaEventSynchronize(done), "staging wait");
    return host;
  }
  void upload(size_t n, cudaStream_t stream) {
    if (n) cuda_ok(cudaMemcpyAsync(device, host, n * sizeof(int32_t), cudaMemcpyHostToDevice, stream), "plan upload");
    cuda_ok(cudaEventRecord(done, stream), "cudaEventRecord");
  }
  int32_t* device = nullptr;
  int32_t* host = nullptr;
  size_t capacity = 0;
  cudaEvent_t done = nullptr;
};

struct StepH : Handle {
  StepH() : Handle(Kind::Step) {}
  // Host copies (for the checks) and offsets of each array in the one device buffer.
  std::vector<int32_t> tokens, positions, slot_mapping, q_start, kv_len, block_tables, block_table_start, logit_rows;
  size_t o_tokens = 0, o_positions = 0, o_slots = 0, o_qstart = 0, o_kvlen = 0, o_tables = 0, o_tstart = 0,
         o_logits = 0;
  StagedInts plan;
  StagedInts sample_rows;  // row_index for sample()
  DeviceLoraRows rows;
  int64_t num_tokens = 0;
  int num_seqs = 0, max_q_len = 0, max_kv_len = 0;
  bool has_adapters = false;
  std::vector<int32_t> used_slots;  // distinct slots ≥ 0 of the step's rows
  bool set = false;
  const int32_t* dev(size_t offset) const { return plan.device + offset; }
  DeviceAttentionBatch batch() const {
    return {dev(o_qstart), dev(o_kvlen), dev(o_tables), dev(o_tstart), num_seqs, int(num_tokens), max_q_len,
            max_kv_len};
  }
  AttentionBatch host_batch() const {
    return {q_start.data(), kv_len.data(), block_tables.data(), block_table_start.data(),
            int64_t(block_tables.size()), num_seqs};
  }
};

void finalize(Napi::Env, Handle* h) {
  {
    std::lock_guard<std::mutex> lock(g_live_mutex);
    g_live.erase(h);
  }
  delete h;
}

Napi::Value wrap(Napi::Env env, Handle* h) {
  {
    std::lock_guard<std::mutex> lock(g_live_mutex);
    g_live.insert(h);
  }
  return Napi::External<Handle>::New(env, h, finalize);
}

template <typename T>
T* handle(const Napi::CallbackInfo& info, size_t i, Kind kind, const char* name) {
  if (i < info.Length() && info[i].IsExternal()) {
    Handle* h = info[i].As<Napi::External<Handle>>().Data();
    std::lock_guard<std::mutex> lock(g_live_mutex);
    if (g_live.count(h) && h->kind == kind) return static_cast<T*>(h);
  }
  throw JsTypeError(std::string("argument '") + name + "' is not a live CUDA handle of the expected kind");
}

TensorH* tensor(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t need) {
  auto* t = handle<TensorH>(info, i, Kind::Tensor, name);
  if (!t->p && t->n > 0) throw JsTypeError(std::string("tensor '") + name + "' was freed");
  if (need < 0 || need > t->n)
    throw JsRangeError(std::string("tensor '") + name + "' holds " + std::to_string(t->n) + " elements, the op needs " +
                       std::to_string(need));
  return t;
}

// ── argument helpers ─────────────────────────────────────────────────────────────────────────────────────

int64_t whole(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi) {
  if (i >= info.Length() || !info[i].IsNumber()) throw JsTypeError(std::string("argument '") + name + "' must be a number");
  const double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= double(lo) && d <= double(hi)) || d != std::floor(d))
    throw JsRangeError(std::string("argument '") + name + "' must be a whole number in [" + std::to_string(lo) + ", " +
                       std::to_string(hi) + "]");
  return int64_t(d);
}

double real(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsNumber()) throw JsTypeError(std::string("argument '") + name + "' must be a number");
  const double d = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) throw JsRangeError(std::string("argument '") + name + "' must be finite");
  return d;
}

template <typename T>
struct View {
  const T* data = nullptr;
  size_t length = 0;
};

template <typename T>
View<T> typed(const Napi::CallbackInfo& info, size_t i, napi_typedarray_type type, const char* name,
              bool optional = false) {
  if (optional && (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined())) return {};
  if (i >= info.Length() || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != type)
    throw JsTypeError(std::string("argument '") + name + "' must be a typed array of the expected type");
  auto ta = info[i].As<Napi::TypedArray>();
  const auto* base = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  return {reinterpret_cast<const T*>(base), ta.ElementLength()};
}
View<float> f32s(const Napi::CallbackInfo& info, size_t i, const char* name, bool optional = false) {
  return typed<float>(info, i, napi_float32_array, name, optional);
}
View<int32_t> i32s(const Napi::CallbackInfo& info, size_t i, const char* name, bool optional = false) {
  return typed<int32_t>(info, i, napi_int32_array, name, optional);
}

void check(const std::string& err) {
  if (!err.empty()) throw JsRangeError(err);
}

// Runs an op body, turning the exceptions above into JS errors of the right type.
template <typename F>
Napi::Value guarded(const Napi::CallbackInfo& info, F&& body) {
  try {
    return body();
  } catch (const JsTypeError& e) {
    Napi::TypeError::New(info.Env(), e.what()).ThrowAsJavaScriptException();
  } catch (const JsRangeError& e) {
    Napi::RangeError::New(info.Env(), e.what()).ThrowAsJavaScriptException();
  } catch (const std::exception& e) {
    Napi::Error::New(info.Env(), e.what()).ThrowAsJavaScriptException();
  }
  return info.Env().Undefined();
}

#define OP(name) Napi::Value name(const Napi::CallbackInfo& info)
#define BODY(...) return guarded(info, [&]() -> Napi::Value { __VA_ARGS__ })

constexpr int64_t kMaxInt = 0x7fffffff;
constexpr int64_t kMaxElements = int64_t(1) << 40;

// ── system and memory ───────────────────────────────────────────────────────────────────────────────────

OP(device_info) {
  BODY({
    Context& c = ctx();
    cudaDeviceProp prop{};
    cuda_ok(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    auto o = Napi::Object::New(info.Env());
    o.Set("name", prop.name);
    o.Set("computeCapability", std::to_string(prop.major) + "." + std::to_string(prop.minor));
    o.Set("multiprocessors", prop.multiProcessorCount);
    o.Set("memoryBytes", double(prop.totalGlobalMem));
    o.Set("driverVersion", driver);
    o.Set("runtimeVersion", runtime);
    o.Set("cublas", c.gemm->cublas_source());
    o.Set("hasCublas", c.gemm->has_cublas());
    return o;
  });
}

OP(set_gemm_engine) {
  BODY({
    const std::string e = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    if (e == "auto") ctx().gemm->set_engine(GemmEngine::Auto);
    else if (e == "cublas") ctx().gemm->set_engine(GemmEngine::Cublas);
    else if (e == "builtin") ctx().gemm->set_engine(GemmEngine::Builtin);
    else throw JsRangeError("gemm engine must be 'auto', 'cublas' or 'builtin'");
    return info.Env().Undefined();
  });
}

OP(synchronize) {
  BODY({
    cuda_ok(cudaStreamSynchronize(ctx().stream), "the device failed");
    return info.Env().Undefined();
  });
}

OP(alloc) {
  BODY({
    const int64_t n = whole(info, 0, "length", 0, kMaxElements);
    ctx();
    auto* t = new TensorH();
    t->n = n;
    if (n > 0) {
      cudaError_t err = cudaMalloc(&t->p, size_t(n) * sizeof(float));
      if (err != cudaSuccess) {
        delete t;
        cuda_ok(err, "cudaMalloc (tensor)");
      }
    }
    return wrap(info.Env(), t);
  });
}

OP(free_tensor) {
  BODY({
    auto* t = handle<TensorH>(info, 0, Kind::Tensor, "tensor");
    cuda_ok(cudaStreamSynchronize(ctx().stream), "the device failed");  // no op in flight may still use it
    t->release();
    return info.Env().Undefined();
  });
}

// upload(tensor, Float32Array): host → device on the stream (the source is copied before return).
OP(upload) {
  BODY({
    auto src = f32s(info, 1, "data");
    TensorH* t = tensor(info, 0, "tensor", int64_t(src.length));
    if (src.length)
      cuda_ok(cudaMemcpyAsync(t->p, src.data, src.length * sizeof(float), cudaMemcpyHostToDevice, ctx().stream),
              "upload");
    cuda_ok(cudaStreamSynchronize(ctx().stream), "upload");  // pageable source: it must outlive the copy
    return info.Env().Undefined();
  });
}

OP(read) {
  BODY({
    const int64_t offset = whole(info, 1, "offset", 0, kMaxElements);
    const int64_t length = whole(info, 2, "length", 0, kMaxElements);
    TensorH* t = tensor(info, 0, "tensor", offset + length);
    auto out = Napi::Float32Array::New(info.Env(), size_t(length));
    if (length)
      cuda_ok(cudaMemcpyAsync(out.Data(), t->p + offset, size_t(length) * sizeof(float), cudaMemcpyDeviceToHost,
                              ctx().stream),
              "read");
    cuda_ok(cudaStreamSynchronize(ctx().stream), "the device failed");
    return out;
  });
}

// ── weights, caches, banks ──────────────────────────────────────────────────────────────────────────────

// weight(dtype 0 f32 | 1 f16 | 2 bf16, rows, cols, data Float32Array | Uint16Array)
OP(weight) {
  BODY({
    const int64_t dtype = whole(info, 0, "dtype", 0, 2);
    const int64_t rows = whole(info, 1, "rows", 1, kMaxInt);
    const int64_t cols = whole(info, 2, "cols", 1, kMaxInt);
    const void* src = nullptr;
    size_t length = 0;
    if (dtype == 0) {
      auto v = f32s(info, 3, "data");
      src = v.data;
      length = v.length;
    } else {
      auto v = typed<uint16_t>(info, 3, napi_uint16_array, "data");
      src = v.data;
      length = v.length;
    }
    if (int64_t(length) < rows * cols) throw JsRangeError("weight data holds fewer than rows·cols elements");
    ctx();
    auto* h = new WeightH();
    try {
      h->w = std::make_unique<DeviceWeight>(DType(dtype), rows, cols, src);
    } catch (...) {
      delete h;
      throw;
    }
    return wrap(info.Env(), h);
  });
}

// kvCreate(numLayers, numBlocks, blockSize, rowWidth, dtype 0 f32 | 1 bf16)
OP(kv_create) {
  BODY({
    const int64_t layers = whole(info, 0, "numLayers", 1, 1 << 16);
    const int64_t blocks = whole(info, 1, "numBlocks", 1, kMaxInt);
    const int64_t block_size = whole(info, 2, "blockSize", 1, 1 << 16);
    const int64_t width = whole(info, 3, "rowWidth", 1, 1 << 24);
    const int64_t dtype = whole(info, 4, "dtype", 0, 1);
    ctx();
    auto* h = new KvH();
    h->layers = layers;
    h->elements = blocks * block_size * width;
    h->dtype = dtype ? KvDtype::Bf16 : KvDtype::F32;
    const size_t bytes = size_t(layers * h->elements) * (dtype ? 2 : 4);
    cudaError_t err = cudaMalloc(&h->k, bytes);
    if (err == cudaSuccess) err = cudaMalloc(&h->v, bytes);
    if (err == cudaSuccess) err = cudaMemset(h->k, 0, bytes);
    if (err == cudaSuccess) err = cudaMemset(h->v, 0, bytes);
    if (err != cudaSuccess) {
      delete h;
      cuda_ok(err, "cudaMalloc (KV cache)");
    }
    return wrap(info.Env(), h);
  });
}

// bankCreate(numSlots, numModules, dtype 0 f32 | 1 bf16 | 2 f16)
OP(bank_create) {
  BODY({
    const int64_t slots = whole(info, 0, "numSlots", 1, 1 << 16);
    const int64_t modules = whole(info, 1, "numModules", 1, 1 << 20);
    const int64_t dtype = whole(info, 2, "dtype", 0, 2);
    ctx();
    auto* h = new BankH();
    const LoraDtype d = dtype == 0 ? LoraDtype::F32 : dtype == 1 ? LoraDtype::Bf16 : LoraDtype::F16;
    try {
      h->bank = std::make_unique<DeviceLoraBank>(int32_t(slots), int32_t(modules), d);
    } catch (...) {
      delete h;
      throw;
    }
    h->slots.resize(size_t(slots));
    return wrap(info.Env(), h);
  });
}

// bankSet(bank, slot, weights, rank, offsetA, offsetB, scale, inFeatures, outFeatures[, outScale, offsetOutScale])
OP(bank_set) {
  BODY({
    auto* h = handle<BankH>(info, 0, Kind::Bank, "bank");
    const int64_t slot = whole(info, 1, "slot", 0, h->bank->num_slots() - 1);
    auto weights = f32s(info, 2, "weights");
    auto rank = i32s(info, 3, "rank");
    auto off_a = i32s(info, 4, "offsetA");
    auto off_b = i32s(info, 5, "offsetB");
    auto scale = f32s(info, 6, "scale");
    auto in = i32s(info, 7, "inFeatures");
    auto out = i32s(info, 8, "outFeatures");
    auto out_scale = f32s(info, 9, "outScale", true);
    auto off_out = i32s(info, 10, "offsetOutScale", true);
    const size_t m = size_t(h->bank->num_modules());
    if (rank.length != m || off_a.length != m || off_b.length != m || scale.length != m || in.length != m ||
        out.length != m || (off_out.data && off_out.length != m))
      throw JsRangeError("bankSet: every per-module array must have numModules entries");
    if (bool(out_scale.data) != bool(off_out.data)) throw JsRangeError("bankSet: outScale and offsetOutScale go together");
    std::vector<BankH::ModuleShape> shapes(m);
    for (size_t i = 0; i < m; i++) {
      const int64_t r = rank.data[i], k = in.data[i], n = out.data[i];
      if (r < 0 || r > kMaxLoraRank) throw JsRangeError("bankSet: rank out of [0, " + std::to_string(kMaxLoraRank) + "]");
      if (r == 0) continue;
      if (k < 1 || n < 1 || k > (1 << 24) || n > (1 << 24)) throw JsRangeError("bankSet: bad in/out features");
      if (off_a.data[i] < 0 || int64_t(off_a.data[i]) + r * k > int64_t(weights.length) || off_b.data[i] < 0 ||
          int64_t(off_b.data[i]) + r * n > int64_t(weights.length))
        throw JsRangeError("bankSet: module " + std::to_string(i) + "'s A or B lies outside the weights");
      if (off_out.data && off_out.data[i] >= 0 && int64_t(off_out.data[i]) + n > int64_t(out_scale.length))
        throw JsRangeError("bankSet: module " + std::to_string(i) + "'s output scale lies outside outScale");
      if (!std::isfinite(scale.data[i])) throw JsRangeError("bankSet: scale must be finite");
      shapes[i] = {int32_t(r), int32_t(k), int32_t(n)};
    }
    LoraAdapterView view;
    view.weights = weights.data;
    view.weights_length = weights.length;
    view.rank = rank.data;
    view.offset_a = off_a.data;
    view.offset_b = off_b.data;
    view.scale = scale.data;
    view.in_features = in.data;
    view.out_features = out.data;
    view.out_scale = out_scale.data;
    view.offset_out_scale = off_out.data;
    h->bank->set_slot(int32_t(slot), view);
    h->slots[size_t(slot)] = std::move(shapes);
    return info.Env().Undefined();
  });
}

OP(bank_clear) {
  BODY({
    auto* h = handle<BankH>(info, 0, Kind::Bank, "bank");
    const int64_t slot = whole(info, 1, "slot", 0, h->bank->num_slots() - 1);
    h->bank->clear_slot(int32_t(slot));
    h->slots[size_t(slot)].clear();
    return info.Env().Undefined();
  });
}

// ── the step ─────────────────────────────────────────────────────────────────────────────────────────────

OP(step_create) {
  BODY({
    ctx();
    return wrap(info.Env(), new StepH());
  });
}

// stepSet(step, numTokens, tokens, positions, slotMapping, qStart, kvLen, blockTables, blockTableStart, numSeqs,
//         rowSlot, logitRows) → whether some row uses an adapter
OP(step_set) {
  BODY({
    auto* s = handle<StepH>(info, 0, Kind::Step, "step");
    const int64_t t = whole(info, 1, "numTokens", 0, kMaxInt);
    auto tokens = i32s(info, 2, "tokens");
    auto positions = i32s(info, 3, "positions");
    auto slots = i32s(info, 4, "slotMapping");
    auto q_start = i32s(info, 5, "qStart");
    auto kv_len = i32s(info, 6, "kvLen");
    auto tables = i32s(info, 7, "blockTables");
    auto table_start = i32s(info, 8, "blockTableStart");
    const int64_t seqs = whole(info, 9, "numSeqs", 0, kMaxInt);
    auto row_slot = i32s(info, 10, "rowSlot");
    auto logit_rows = i32s(info, 11, "logitRows");
    if (int64_t(tokens.length) < t || int64_t(positions.length) < t || int64_t(slots.length) < t ||
        int64_t(row_slot.length) < t)
      throw JsRangeError("setStep: tokens, positions, slotMapping and rowSlot need numTokens entries");
    if (int64_t(q_start.length) < seqs + 1 || int64_t(kv_len.length) < seqs || int64_t(table_start.length) < seqs)
      throw JsRangeError("setStep: qStart needs numSeqs + 1 entries, kvLen and blockTableStart numSeqs");
    for (size_t i = 0; i < logit_rows.length; i++)
      if (logit_rows.data[i] < 0 || logit_rows.data[i] >= t) throw JsRangeError("setStep: a logit row is not a row of the step");
    for (int64_t i = 0; i < t; i++)
      if (row_slot.data[i] < -1) throw JsRangeError("setStep: rowSlot values must be ≥ -1");
    auto copy = [](std::vector<int32_t>& dst, const int32_t* src, size_t n) { dst.assign(src, src + n); };
    copy(s->tokens, tokens.data, size_t(t));
    copy(s->positions, positions.data, size_t(t));
    copy(s->slot_mapping, slots.data, size_t(t));
    copy(s->q_start, q_start.data, size_t(seqs + 1));
    copy(s->kv_len, kv_len.data, size_t(seqs));
    copy(s->block_tables, tables.data, tables.length);
    copy(s->block_table_start, table_start.data, size_t(seqs));
    copy(s->logit_rows, logit_rows.data, logit_rows.length);
    s->num_tokens = t;
    s->num_seqs = int(seqs);
    s->max_q_len = 0;
    s->max_kv_len = 0;
    for (int64_t i = 0; i < seqs; i++) {
      s->max_q_len = std::max(s->max_q_len, s->q_start[i + 1] - s->q_start[i]);
      s->max_kv_len = std::max(s->max_kv_len, s->kv_len[i]);
    }
    // One upload for the whole plan.
    std::vector<std::vector<int32_t>*> parts = {&s->tokens,       &s->positions,         &s->slot_mapping,
                                                &s->q_start,      &s->kv_len,            &s->block_tables,
                                                &s->block_table_start, &s->logit_rows};
    size_t* offsets[] = {&s->o_tokens, &s->o_positions, &s->o_slots, &s->o_qstart,
                         &s->o_kvlen,  &s->o_tables,    &s->o_tstart, &s->o_logits};
    size_t total = 0;
    for (size_t i = 0; i < parts.size(); i++) {
      *offsets[i] = total;
      total += parts[i]->size();
    }
    Context& c = ctx();
    s->plan.reserve(std::max<size_t>(total, 1));
    int32_t* staging = s->plan.staging();
    for (size_t i = 0; i < parts.size(); i++)
      if (!parts[i]->empty()) std::memcpy(staging + *offsets[i], parts[i]->data(), parts[i]->size() * sizeof(int32_t));
    s->plan.upload(total, c.stream);
    s->has_adapters = std::any_of(row_slot.data, row_slot.data + t, [](int32_t v) { return v >= 0; });
    s->used_slots.clear();
    if (s->has_adapters) {
      s->used_slots.assign(row_slot.data, row_slot.data + t);
      std::sort(s->used_slots.begin(), s->used_slots.end());
      s->used_slots.erase(std::unique(s->used_slots.begin(), s->used_slots.end()), s->used_slots.end());
      s->used_slots.erase(s->used_slots.begin(), std::lower_bound(s->used_slots.begin(), s->used_slots.end(), 0));
      s->rows.set(row_slot.data, t, c.stream);
    }
    s->set = true;
    launched("setStep");
    return Napi::Boolean::New(info.Env(), s->has_adapters);
  });
}

StepH* step_arg(const Napi::CallbackInfo& info, size_t i) {
  auto* s = handle<StepH>(info, i, Kind::Step, "step");
  if (!s->set) throw JsError("the step has no plan: call setStep() first");
  return s;
}

// ── ops ──────────────────────────────────────────────────────────────────────────────────────────────────

// embedding(step, table, out)
OP(embedding_op) {
  BODY({
    StepH* s = step_arg(info, 0);
    auto* table = handle<WeightH>(info, 1, Kind::Weight, "table");
    const DeviceWeight& w = *table->w;
    TensorH* out = tensor(info, 2, "out", s->num_tokens * w.cols());
    check(check_embedding_ids(s->tokens.data(), s->num_tokens, w.rows()));
    embedding(s->dev(s->o_tokens), s->num_tokens, w.dtype(), w.data(), w.cols(), out->p, ctx().stream);
    launched("embedding");
    return info.Env().Undefined();
  });
}

// rmsNorm(x, weight, out, rows, dim, eps)
OP(rms_norm_op) {
  BODY({
    const int64_t rows = whole(info, 3, "rows", 0, kMaxInt);
    const int64_t dim = whole(info, 4, "dim", 1, kMaxInt);
    const float eps = float(real(info, 5, "eps"));
    TensorH* x = tensor(info, 0, "x", rows * dim);
    TensorH* w = tensor(info, 1, "weight", dim);
    TensorH* out = tensor(info, 2, "out", rows * dim);
    rms_norm(x->p, w->p, out->p, rows, dim, eps, ctx().stream);
    launched("rmsNorm");
    return info.Env().Undefined();
  });
}

// gemm(x, weight, y, m, bias | null)
OP(gemm_op) {
  BODY({
    auto* wh = handle<WeightH>(info, 1, Kind::Weight, "weight");
    const DeviceWeight& w = *wh->w;
    const int64_t m = whole(info, 3, "m", 0, kMaxInt);
    TensorH* x = tensor(info, 0, "x", m * w.cols());
    TensorH* y = tensor(info, 2, "y", m * w.rows());
    const float* bias = nullptr;
    if (info.Length() > 4 && !info[4].IsNull() && !info[4].IsUndefined()) bias = tensor(info, 4, "bias", w.rows())->p;
    if (x->p == y->p && m > 0) throw JsRangeError("gemm: x and y must not overlap");
    if (m > 0) ctx().gemm->gemm(x->p, m, w, y->p, bias, ctx().stream);
    launched("gemm");
    return info.Env().Undefined();
  });
}

// applyAdapters(bank, step, x, k, y, yStride, modules Int32Array [module, yOffset, n]·count)
OP(apply_adapters_op) {
  BODY({
    auto* bh = handle<BankH>(info, 0, Kind::Bank, "bank");
    StepH* s = step_arg(info, 1);
    const int64_t k = whole(info, 3, "k", 1, 1 << 24);
    const int64_t stride = whole(info, 5, "yStride", 1, 1 << 30);
    auto mods = i32s(info, 6, "modules");
    if (mods.length % 3) throw JsRangeError("applyAdapters: modules must be (module, yOffset, n) triples");
    if (!s->has_adapters) return info.Env().Undefined();
    const int64_t rows = s->num_tokens;
    TensorH* x = tensor(info, 2, "x", rows * k);
    TensorH* y = tensor(info, 4, "y", rows * stride);
    std::vector<LoraModuleOutput> outs(mods.length / 3);
    for (size_t i = 0; i < outs.size(); i++) {
      const int64_t module = mods.data[3 * i], offset = mods.data[3 * i + 1], n = mods.data[3 * i + 2];
      if (module < 0 || module >= bh->bank->num_modules()) throw JsRangeError("applyAdapters: module out of range");
      if (offset < 0 || n < 0 || offset + n > stride) throw JsRangeError("applyAdapters: an output range exceeds yStride");
      outs[i] = {int32_t(module), offset, n};
    }
    // Every slot used this step must be set, and agree with the call's shapes (the kernels trust them).
    for (int32_t slot : s->used_slots) {
      if (slot >= bh->bank->num_slots() || bh->slots[size_t(slot)].empty())
        throw JsRangeError("applyAdapters: slot " + std::to_string(slot) + " holds no adapter");
      for (auto& o : outs) {
        const auto& shape = bh->slots[size_t(slot)][size_t(o.module)];
        if (shape.rank > 0 && (shape.in != k || shape.out != o.n))
          throw JsRangeError("applyAdapters: slot " + std::to_string(slot) + " module " + std::to_string(o.module) +
                             " is " + std::to_string(shape.in) + "→" + std::to_string(shape.out) + ", the call " +
                             std::to_string(k) + "→" + std::to_string(o.n));
      }
    }
    ctx();
    apply_adapters(*bh->bank, s->rows, x->p, k, y->p, stride, outs.data(), int64_t(outs.size()), ctx().stream);
    launched("applyAdapters");
    return info.Env().Undefined();
  });
}

AttentionShape shape_arg(const Napi::CallbackInfo& info, size_t i) {
  auto v = typed<double>(info, i, napi_float64_array, "shape");
  if (v.length != 8) throw JsRangeError("shape must be [Hq, Hkv, D, blockSize, window, scale, softcap, rotaryDim]");
  AttentionShape s;
  auto whole_of = [&](size_t j, const char* name, double lo, double hi) {
    const double d = v.data[j];
    if (!(d >= lo && d <= hi) || d != std::floor(d)) throw JsRangeError(std::string("shape: bad ") + name);
    return int(d);
  };
  s.num_heads = whole_of(0, "numHeads", 1, 1 << 16);
  s.num_kv_heads = whole_of(1, "numKvHeads", 1, 1 << 16);
  s.head_dim = whole_of(2, "headDim", 1, 1 << 16);
  s.block_size = whole_of(3, "blockSize", 1, 1 << 16);
  s.sliding_window = whole_of(4, "slidingWindow", 0, double(kMaxInt));
  s.scale = float(v.data[5]);
  s.softcap = float(v.data[6]);
  s.rotary_dim = whole_of(7, "rotaryDim", 0, 1 << 16);
  if (!(s.scale >= 0.0f) || !std::isfinite(s.scale)) throw JsRangeError("shape: scale must be finite and ≥ 0 (0: 1/√D)");
  check(check_attention_shape(s));
  return s;
}

KvH* kv_layer_arg(const Napi::CallbackInfo& info, size_t i, size_t layer_index, int64_t* layer) {
  auto* kv = handle<KvH>(info, i, Kind::Kv, "kv");
  *layer = whole(info, layer_index, "layer", 0, kv->layers - 1);
  return kv;
}

// ropeAndCacheWrite(step, qkv, shape, invFreq, qOut, kv, layer)
OP(rope_op) {
  BODY({
    StepH* s = step_arg(info, 0);
    const AttentionShape shape = shape_arg(info, 2);
    int64_t layer = 0;
    KvH* kv = kv_layer_arg(info, 5, 6, &layer);
    const int64_t t = s->num_tokens;
    const int64_t width = int64_t(shape.num_heads + 2 * shape.num_kv_heads) * shape.head_dim;
    TensorH* qkv = tensor(info, 1, "qkv", t * width);
    auto* inv = handle<TensorH>(info, 3, Kind::Tensor, "invFreq");
    TensorH* q_out = tensor(info, 4, "qOut", t * shape.num_heads * shape.head_dim);
    check(check_rope_and_cache_write(qkv->n, t, shape, s->positions.data(), int64_t(s->positions.size()), inv->n,
                                     q_out->n, kv->elements, kv->elements, s->slot_mapping.data(),
                                     int64_t(s->slot_mapping.size())));
    rope_and_cache_write(qkv->p, t, shape, s->dev(s->o_positions), inv->p, q_out->p, kv->layer(kv->k, layer),
                         kv->layer(kv->v, layer), kv->dtype, s->dev(s->o_slots), ctx().stream);
    launched("ropeAndCacheWrite");
    return info.Env().Undefined();
  });
}

// pagedAttention(step, q, kv, layer, out, shape)
OP(attention_op) {
  BODY({
    StepH* s = step_arg(info, 0);
    const AttentionShape shape = shape_arg(info, 5);
    int64_t layer = 0;
    KvH* kv = kv_layer_arg(info, 2, 3, &layer);
    auto* q = handle<TensorH>(info, 1, Kind::Tensor, "q");
    auto* out = handle<TensorH>(info, 4, Kind::Tensor, "out");
    check(check_paged_attention(q->n, kv->elements, kv->elements, out->n, shape, s->host_batch()));
    if (s->num_seqs > 0 && s->num_tokens > 0)
      paged_attention(q->p, kv->layer(kv->k, layer), kv->layer(kv->v, layer), kv->dtype, out->p, shape, s->batch(),
                      ctx().stream);
    launched("pagedAttention");
    return info.Env().Undefined();
  });
}

// rmsNormHeads(x, rows, rowStride, offset, numHeads, headDim, weight, eps)
OP(rms_norm_heads_op) {
  BODY({
    const int64_t rows = whole(info, 1, "rows", 0, kMaxInt);
    const int64_t stride = whole(info, 2, "rowStride", 1, kMaxInt);
    const int64_t offset = whole(info, 3, "offset", 0, kMaxInt);
    const int64_t heads = whole(info, 4, "numHeads", 0, 1 << 16);
    const int64_t dim = whole(info, 5, "headDim", 1, 1 << 16);
    const float eps = float(real(info, 7, "eps"));
    if (offset + heads * dim > stride) throw JsRangeError("rmsNormHeads: the heads exceed rowStride");
    TensorH* x = tensor(info, 0, "x", rows * stride);
    TensorH* w = tensor(info, 6, "weight", dim);
    rms_norm_heads(x->p, rows, stride, offset, heads, dim, w->p, eps, ctx().stream);
    launched("rmsNormHeads");
    return info.Env().Undefined();
  });
}

template <void (*Fn)(const float*, float*, int64_t, int64_t, cudaStream_t)>
OP(gated_op) {
  BODY({
    const int64_t rows = whole(info, 2, "rows", 0, kMaxInt);
    const int64_t inter = whole(info, 3, "inter", 1, kMaxInt);
    TensorH* gu = tensor(info, 0, "gateUp", rows * 2 * inter);
    TensorH* out = tensor(info, 1, "out", rows * inter);
    if (gu->p == out->p && rows > 0) throw JsRangeError("out must not alias gateUp");
    Fn(gu->p, out->p, rows, inter, ctx().stream);
    launched("gated activation");
    return info.Env().Undefined();
  });
}

OP(add_op) {
  BODY({
    const int64_t n = whole(info, 2, "length", 0, kMaxElements);
    TensorH* x = tensor(info, 0, "x", n);
    TensorH* y = tensor(info, 1, "y", n);
    add_in_place(x->p, y->p, n, ctx().stream);
    launched("addInPlace");
    return info.Env().Undefined();
  });
}

OP(softcap_op) {
  BODY({
    const int64_t n = whole(info, 1, "length", 0, kMaxElements);
    const double cap = real(info, 2, "cap");
    if (!(cap > 0)) throw JsRangeError("softcapInPlace: cap must be > 0");
    TensorH* x = tensor(info, 0, "x", n);
    softcap_in_place(x->p, n, float(cap), ctx().stream);
    launched("softcapInPlace");
    return info.Env().Undefined();
  });
}

OP(scale_op) {
  BODY({
    const int64_t n = whole(info, 1, "length", 0, kMaxElements);
    const double factor = real(info, 2, "factor");
    TensorH* x = tensor(info, 0, "x", n);
    scale_in_place(x->p, n, float(factor), ctx().stream);
    launched("scaleInPlace");
    return info.Env().Undefined();
  });
}

// gatherLogitRows(step, x, dim, out)
OP(gather_op) {
  BODY({
    StepH* s = step_arg(info, 0);
    const int64_t dim = whole(info, 2, "dim", 1, kMaxInt);
    TensorH* x = tensor(info, 1, "x", s->num_tokens * dim);
    const int64_t rows = int64_t(s->logit_rows.size());
    TensorH* out = tensor(info, 3, "out", rows * dim);
    if (rows > 0) gather_rows(x->p, s->dev(s->o_logits), rows, dim, out->p, ctx().stream);
    launched("gatherLogitRows");
    return info.Env().Undefined();
  });
}

// The device buffers of sample(): row indices and parameters in, tokens out, one pinned staging area.
struct SampleScratch {
  void* device = nullptr;
  void* host = nullptr;
  size_t capacity = 0;  // rows
  void reserve(size_t rows) {
    if (rows <= capacity) return;
    if (device) cudaFree(device);
    if (host) cudaFreeHost(host);
    device = host = nullptr;
    capacity = std::max<size_t>(rows, 2 * capacity);
    cuda_ok(cudaMalloc(&device, capacity * bytes_per_row()), "cudaMalloc (sampling)");
    cuda_ok(cudaMallocHost(&host, capacity * bytes_per_row()), "cudaMallocHost (sampling)");
  }
  static size_t bytes_per_row() { return sizeof(SamplingParams) + 2 * sizeof(int32_t); }
};
SampleScratch g_sample;

// sample(logits, vocab, rowIndex Int32Array, params Float64Array [temperature, topK, topP, uniform]·rows) → Int32Array
OP(sample_op) {
  BODY({
    const int64_t vocab = whole(info, 1, "vocab", 1, kMaxInt);
    auto row_index = i32s(info, 2, "rowIndex");
    auto params = typed<double>(info, 3, napi_float64_array, "params");
    const size_t rows = row_index.length;
    if (params.length != 4 * rows) throw JsRangeError("sample: params must hold 4 numbers per row");
    auto* logits = handle<TensorH>(info, 0, Kind::Tensor, "logits");
    auto result = Napi::Int32Array::New(info.Env(), rows);
    if (rows == 0) return result;
    for (size_t r = 0; r < rows; r++)
      if (row_index.data[r] < 0 || (int64_t(row_index.data[r]) + 1) * vocab > logits->n)
        throw JsRangeError("sample: a row index lies outside the logits");
    std::vector<SamplingParams> p(rows);
    for (size_t r = 0; r < rows; r++) {
      p[r] = {params.data[4 * r], params.data[4 * r + 1], params.data[4 * r + 2], params.data[4 * r + 3]};
      check(check_sampling_params(p[r], int64_t(r)));
    }
    Context& c = ctx();
    g_sample.reserve(rows);
    auto* host = static_cast<char*>(g_sample.host);
    auto* dev = static_cast<char*>(g_sample.device);
    const size_t params_bytes = rows * sizeof(SamplingParams), index_bytes = rows * sizeof(int32_t);
    std::memcpy(host, p.data(), params_bytes);
    std::memcpy(host + params_bytes, row_index.data, index_bytes);
    cuda_ok(cudaMemcpyAsync(dev, host, params_bytes + index_bytes, cudaMemcpyHostToDevice, c.stream), "sample upload");
    auto* tokens = reinterpret_cast<int32_t*>(dev + params_bytes + index_bytes);
    sample(logits->p, vocab, reinterpret_cast<const int32_t*>(dev + params_bytes),
           reinterpret_cast<const SamplingParams*>(dev), int64_t(rows), tokens, c.stream);
    launched("sample");
    cuda_ok(cudaMemcpyAsync(host + params_bytes + index_bytes, tokens, index_bytes, cudaMemcpyDeviceToHost, c.stream),
            "sample download");
    cuda_ok(cudaStreamSynchronize(c.stream), "the device failed");
    std::memcpy(result.Data(), host + params_bytes + index_bytes, index_bytes);
    return result;
  });
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto set = [&](const char* name, Napi::Value (*fn)(const Napi::CallbackInfo&)) {
    exports.Set(name, Napi::Function::New(env, fn, name));
  };
  set("deviceInfo", device_info);
  set("setGemmEngine", set_gemm_engine);
  set("synchronize", synchronize);
  set("alloc", alloc);
  set("free", free_tensor);
  set("upload", upload);
  set("read", read);
  set("weight", weight);
  set("kvCreate", kv_create);
  set("bankCreate", bank_create);
  set("bankSet", bank_set);
  set("bankClear", bank_clear);
  set("stepCreate", step_create);
  set("stepSet", step_set);
  set("embedding", embedding_op);
  set("rmsNorm", rms_norm_op);
  set("gemm", gemm_op);
  set("applyAdapters", apply_adapters_op);
  set("ropeAndCacheWrite", rope_op);
  set("pagedAttention", attention_op);
  set("rmsNormHeads", rms_norm_heads_op);
  set("siluMul", gated_op<silu_mul>);
  set("geluTanhMul", gated_op<gelu_tanh_mul>);
  set("addInPlace", add_op);
  set("softcapInPlace", softcap_op);
  set("scaleInPlace", scale_op);
  set("gatherLogitRows", gather_op);
  set("sample", sample_op);
  return exports;
}

}  // namespace
}  // namespace loraplex::cuda::binding

static Napi::Object InitCudaAddon(Napi::Env env, Napi::Object exports) {
  return loraplex::cuda::binding::init(env, exports);
}

NODE_API_MODULE(loraplex_cuda, InitCudaAddon)
