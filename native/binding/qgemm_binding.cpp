// The quantized GEMM (Q8_0 / Q4_K / Q6_K weights), as seen from JavaScript. Every argument is checked here (types,
// integer shapes, whole blocks, buffer lengths) so a bad call throws a TypeError instead of reading out of bounds.
#include <cmath>
#include <new>
#include <string>

#include "common.h"
#include "gemm_args.h"
#include "loraplex/qgemm.h"

namespace loraplex::binding {
namespace {

// Tags the externals made by qgemmPackWeight, so qgemm never trusts any other object as a weight.
constexpr napi_type_tag kQuantWeightTag = {0x6c6f7261706c6578ULL, 0x7167656d6d717731ULL};

// ggml block types by the names JavaScript uses; false for any other name.
bool quant_type(const std::string& name, QuantType* type) {
  if (name == "q8_0") *type = QuantType::Q8_0;
  else if (name == "q4_k") *type = QuantType::Q4_K;
  else if (name == "q6_k") *type = QuantType::Q6_K;
  else return false;
  return true;
}

// qgemmPackWeight(type: 'q8_0'|'q4_k'|'q6_k', rows: N, cols: K, data: Uint8Array [N · K/QB blocks]) → handle
Napi::Value pack_weight(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const std::string name = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  QuantType type;
  if (!quant_type(name, &type)) {
    fail(env, "qgemmPackWeight: type must be 'q8_0', 'q4_k' or 'q6_k', got '" + name + "'");
    return env.Undefined();
  }
  const int64_t rows = dimension(info, 1, "rows");
  if (rows < 0) return env.Undefined();
  const int64_t cols = dimension(info, 2, "cols");
  if (cols < 0) return env.Undefined();
  const int64_t block = type == QuantType::Q8_0 ? kQ8Block : kQ4KBlock;
  if (cols % block != 0) {
    fail(env, "qgemmPackWeight: cols (K = " + std::to_string(cols) + ") must be a multiple of " +
                  std::to_string(block) + " for " + name);
    return env.Undefined();
  }
  auto data = typed_array<uint8_t>(info, 3, napi_uint8_array, "data (Uint8Array of ggml blocks)");
  if (env.IsExceptionPending()) return env.Undefined();
  const int64_t need = rows * (cols / block) * static_cast<int64_t>(QuantWeight::block_bytes(type));
  if (!check_length(env, "data", data.length, need, "rows · K/block · block bytes")) return env.Undefined();
  QuantWeight* w = nullptr;
  try {
    w = new QuantWeight(type, rows, cols, data.data);
  } catch (const std::bad_alloc&) {
    Napi::RangeError::New(env, "qgemmPackWeight: out of memory packing a " + std::to_string(rows) + " × " +
                                   std::to_string(cols) + " " + name + " weight")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const int64_t bytes = static_cast<int64_t>(w->bytes());
  auto handle = Napi::External<QuantWeight>::New(env, w, [bytes](Napi::Env e, QuantWeight* p) {
    Napi::MemoryManagement::AdjustExternalMemory(e, -bytes);
    delete p;
  });
  handle.TypeTag(&kQuantWeightTag);
  Napi::MemoryManagement::AdjustExternalMemory(env, bytes);
  return handle;
}

// Argument `index` as a weight made by qgemmPackWeight, or null with a TypeError pending.
const QuantWeight* quant_weight_arg(const Napi::CallbackInfo& info, size_t index, const char* fn) {
  if (info.Length() <= index || !info[index].IsExternal() ||
      !info[index].As<Napi::External<QuantWeight>>().CheckTypeTag(&kQuantWeightTag)) {
    fail(info.Env(), std::string(fn) + ": argument 'w' must be a weight made by qgemmPackWeight");
    return nullptr;
  }
  return info[index].As<Napi::External<QuantWeight>>().Data();
}

// qgemm(x: Float32Array [M·K], w: handle, y: Float32Array [M·N], m, bias?: Float32Array [N] | null, accumulate?)
Napi::Value run_qgemm(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const QuantWeight* weight = quant_weight_arg(info, 1, "qgemm");
  if (!weight) return env.Undefined();
  const QuantWeight& w = *weight;
  GemmOperands o;
  if (!read_gemm_operands(info, "qgemm", w.rows(), w.cols(), o)) return env.Undefined();
  try {
    qgemm(o.x.data, o.m, w, o.y.data, o.bias.data, o.accumulate);
  } catch (const std::bad_alloc&) {
    Napi::RangeError::New(env, "qgemm: out of memory quantizing x").ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

// qgemmEmbedding(type: 'q8_0'|'q4_k'|'q6_k', vocab, dim, table: Uint8Array [vocab · dim/QB blocks],
//                ids: Int32Array [T], numTokens: T, out: Float32Array [T · dim])
Napi::Value run_embedding(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const std::string name = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  QuantType type;
  if (!quant_type(name, &type)) {
    fail(env, "qgemmEmbedding: type must be 'q8_0', 'q4_k' or 'q6_k', got '" + name + "'");
    return env.Undefined();
  }
  const int64_t vocab = dimension(info, 1, "vocab");
  if (vocab < 0) return env.Undefined();
  const int64_t dim = dimension(info, 2, "dim");
  if (dim < 0) return env.Undefined();
  const int64_t block = type == QuantType::Q8_0 ? kQ8Block : kQ4KBlock;
  if (vocab < 1 || dim < 1 || dim % block != 0) {
    fail(env, "qgemmEmbedding: the table must have rows, and dim (" + std::to_string(dim) + ") a multiple of " +
                  std::to_string(block) + " for " + name);
    return env.Undefined();
  }
  auto table = typed_array<uint8_t>(info, 3, napi_uint8_array, "table (Uint8Array of ggml blocks)");
  if (env.IsExceptionPending()) return env.Undefined();
  auto ids = typed_array<int32_t>(info, 4, napi_int32_array, "ids (Int32Array)");
  if (env.IsExceptionPending()) return env.Undefined();
  const int64_t tokens = dimension(info, 5, "numTokens");
  if (tokens < 0) return env.Undefined();
  auto out = f32(info, 6, "out");
  if (env.IsExceptionPending()) return env.Undefined();
  const int64_t need = vocab * (dim / block) * static_cast<int64_t>(QuantWeight::block_bytes(type));
  if (!check_length(env, "table", table.length, need, "vocab · dim/block · block bytes")) return env.Undefined();
  if (!check_length(env, "ids", ids.length, tokens, "numTokens")) return env.Undefined();
  if (!check_length(env, "out", out.length, tokens * dim, "numTokens · dim")) return env.Undefined();
  for (int64_t t = 0; t < tokens; ++t) {
    if (ids.data[t] < 0 || ids.data[t] >= vocab) {
      fail(env, "qgemmEmbedding: token id " + std::to_string(ids.data[t]) + " (position " + std::to_string(t) +
                    ") is outside the embedding table (vocab " + std::to_string(vocab) + ")");
      return env.Undefined();
    }
  }
  embedding_from_blocks(type, table.data, dim, ids.data, tokens, out.data);
  return env.Undefined();
}

// qgemmEncodeQ4K(values: Float32Array [blocks · 256], out: Uint8Array [blocks · 144]): encodeQ4_K's bytes
Napi::Value encode_q4k(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto values = f32(info, 0, "values");
  if (env.IsExceptionPending()) return env.Undefined();
  auto out = typed_array<uint8_t>(info, 1, napi_uint8_array, "out (Uint8Array)");
  if (env.IsExceptionPending()) return env.Undefined();
  if (values.length % kQ4KBlock != 0) {
    fail(env, "qgemmEncodeQ4K: values (" + std::to_string(values.length) + ") must be whole blocks of 256");
    return env.Undefined();
  }
  const int64_t blocks = static_cast<int64_t>(values.length) / kQ4KBlock;
  if (!check_length(env, "out", out.length, blocks * 144, "blocks · 144")) return env.Undefined();
  encode_q4_k(values.data, blocks, out.data);
  return env.Undefined();
}

// qgemmSetAmx(allowed: boolean) → whether Q4_K batches of ≥ kQAmxMinRows rows now run on AMX-INT8 tiles
Napi::Value set_amx(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (info.Length() < 1 || !info[0].IsBoolean()) {
    fail(env, "qgemmSetAmx(allowed): allowed must be a boolean");
    return env.Undefined();
  }
  set_qgemm_amx(info[0].As<Napi::Boolean>().Value());
  return Napi::Boolean::New(env, qgemm_amx_active());
}

// qgemmWeightBytes(w: handle) → the bytes its re-laid blocks hold (what batch-1 decode streams), padding included
Napi::Value weight_bytes(const Napi::CallbackInfo& info) {
  const QuantWeight* w = quant_weight_arg(info, 0, "qgemmWeightBytes");
  if (!w) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), static_cast<double>(w->bytes()));
}

// qgemmAmxActive() → whether Q4_K batches of ≥ kQAmxMinRows rows run on AMX-INT8 tiles now
Napi::Value amx_active(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), qgemm_amx_active()); }

}  // namespace

void register_qgemm(Napi::Env env, Napi::Object exports) {
  exports.Set("qgemmEmbedding", Napi::Function::New(env, run_embedding));
  exports.Set("qgemmPackWeight", Napi::Function::New(env, pack_weight));
  exports.Set("qgemm", Napi::Function::New(env, run_qgemm));
  exports.Set("qgemmSetAmx", Napi::Function::New(env, set_amx));
  exports.Set("qgemmEncodeQ4K", Napi::Function::New(env, encode_q4k));
  exports.Set("qgemmAmxActive", Napi::Function::New(env, amx_active));
  exports.Set("qgemmWeightBytes", Napi::Function::New(env, weight_bytes));
}

}  // namespace loraplex::binding
