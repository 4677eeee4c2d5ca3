// JavaScript face of attention.h: argument conversion and checks only (TypeError/RangeError, never a crash).
#include <cmath>

#include "common.h"
#include "loraplex/attention.h"

namespace loraplex::binding {
namespace {

// Reads arguments in order and stops at the first bad one: throwing a second JS exception while one is
// pending is fatal under NAPI_DISABLE_CPP_EXCEPTIONS.
struct Args {
  const Napi::CallbackInfo& info;
  bool ok = true;

  bool pending() { return ok = ok && !info.Env().IsExceptionPending(); }
  Span<float> f32s(size_t i, const char* name) {
    Span<float> s;
    if (ok) s = f32(info, i, name);
    pending();
    return s;
  }
  // A KV cache: a Float32Array (f32) or a Uint16Array (bf16 bit patterns).
  struct Kv {
    void* data = nullptr;
    size_t length = 0;
    KvDtype dtype = KvDtype::F32;
  };
  Kv kv(size_t i, const char* name) {
    Kv kv;
    if (!ok) return kv;
    if (i < info.Length() && info[i].IsTypedArray() &&
        info[i].As<Napi::TypedArray>().TypedArrayType() == napi_uint16_array) {
      const Span<uint16_t> s = u16(info, i, name);
      kv = {s.data, s.length, KvDtype::Bf16};
    } else {
      const Span<float> s = typed_array<float>(info, i, napi_float32_array,
                                               (std::string(name) + " (Float32Array, or Uint16Array for bf16)").c_str());
      kv = {s.data, s.length, KvDtype::F32};
    }
    pending();
    return kv;
  }
  // Both caches of a call share one dtype.
  void same_dtype(const Kv& k, const Kv& v) {
    if (ok && k.dtype != v.dtype) {
      ok = false;
      fail(info.Env(), "kCache and vCache must have the same dtype (both Float32Array or both Uint16Array for bf16)");
    }
  }
  Span<int32_t> i32s(size_t i, const char* name) {
    Span<int32_t> s;
    if (ok) s = i32(info, i, name);
    pending();
    return s;
  }
  int64_t whole(size_t i, const char* name, int64_t lo, int64_t hi) {
    if (!ok) return 0;
    const double d = number(info, i, name);
    if (!pending()) return 0;
    if (!(d >= double(lo) && d <= double(hi)) || d != std::floor(d)) {
      ok = false;
      Napi::RangeError::New(info.Env(), std::string("argument '") + name + "' must be a whole number in [" +
                                            std::to_string(lo) + ", " + std::to_string(hi) + "]")
          .ThrowAsJavaScriptException();
      return 0;
    }
    return int64_t(d);
  }
  // A number as f32 (range checks are the kernel's: check_paged_attention).
  float real(size_t i, const char* name) {
    if (!ok) return 0.0f;
    const double d = number(info, i, name);
    pending();
    return float(d);
  }
  // Throws a RangeError with `err` unless it is empty; returns whether the call may proceed.
  bool check(const std::string& err) {
    if (ok && !err.empty()) {
      ok = false;
      Napi::RangeError::New(info.Env(), err).ThrowAsJavaScriptException();
    }
    return ok;
  }
};

constexpr int64_t kMaxInt = 0x7fffffff;

AttentionShape read_shape(Args& a, size_t first) {
  AttentionShape s;
  s.num_heads = int(a.whole(first, "numHeads", 1, kMaxInt));
  s.num_kv_heads = int(a.whole(first + 1, "numKvHeads", 1, kMaxInt));
  s.head_dim = int(a.whole(first + 2, "headDim", 1, 1 << 16));
  s.block_size = int(a.whole(first + 3, "blockSize", 1, kMaxInt));
  return s;
}

// ropeAndCacheWrite(qkv, numTokens, numHeads, numKvHeads, headDim, blockSize, positions, invFreq, qOut,
//                   kCache, vCache, slotMapping[, rotaryDim]); caches: both Float32Array, or both Uint16Array
//                   (bf16); rotaryDim undefined: headDim
Napi::Value rope_and_cache_write_js(const Napi::CallbackInfo& info) {
  Args a{info};
  auto qkv = a.f32s(0, "qkv");
  const int64_t tokens = a.whole(1, "numTokens", 0, kMaxInt);
  const AttentionShape shape = read_shape(a, 2);
  auto positions = a.i32s(6, "positions");
  auto inv_freq = a.f32s(7, "invFreq");
  auto q_out = a.f32s(8, "qOut");
  auto k_cache = a.kv(9, "kCache");
  auto v_cache = a.kv(10, "vCache");
  a.same_dtype(k_cache, v_cache);
  auto slots = a.i32s(11, "slotMapping");
  AttentionShape rotary = shape;
  if (info.Length() > 12 && !info[12].IsUndefined()) rotary.rotary_dim = int(a.whole(12, "rotaryDim", 2, 1 << 16));
  if (!a.ok) return info.Env().Undefined();
  if (!a.check(check_attention_shape(shape))) return info.Env().Undefined();
  if (!a.check(check_rope_and_cache_write(qkv.length, tokens, rotary, positions.data, positions.length,
                                          inv_freq.length, q_out.length, k_cache.length, v_cache.length,
                                          slots.data, slots.length)))
    return info.Env().Undefined();
  rope_and_cache_write(qkv.data, tokens, rotary, positions.data, inv_freq.data, q_out.data, k_cache.data, v_cache.data,
                       k_cache.dtype, slots.data);
  return info.Env().Undefined();
}

// pagedAttention(q, kCache, vCache, out, numHeads, numKvHeads, headDim, blockSize,
//                qStart, kvLen, blockTables, blockTableStart, numSeqs[, slidingWindow[, scale[, softcap]]])
// scale undefined: 1/√headDim; softcap 0 or undefined: off.
Napi::Value paged_attention_js(const Napi::CallbackInfo& info) {
  Args a{info};
  auto q = a.f32s(0, "q");
  auto k_cache = a.kv(1, "kCache");
  auto v_cache = a.kv(2, "vCache");
  a.same_dtype(k_cache, v_cache);
  auto out = a.f32s(3, "out");
  const AttentionShape shape = read_shape(a, 4);
  auto q_start = a.i32s(8, "qStart");
  auto kv_len = a.i32s(9, "kvLen");
  auto tables = a.i32s(10, "blockTables");
  auto table_start = a.i32s(11, "blockTableStart");
  const int64_t seqs = a.whole(12, "numSeqs", 0, kMaxInt);
  AttentionShape windowed = shape;
  if (info.Length() > 13) windowed.sliding_window = int(a.whole(13, "slidingWindow", 0, kMaxInt));
  if (info.Length() > 14 && !info[14].IsUndefined()) {
    windowed.scale = a.real(14, "scale");
    if (!(windowed.scale > 0.0f)) a.check("scale must be finite and > 0 (undefined: 1/√headDim)");
  }
  if (info.Length() > 15 && !info[15].IsUndefined()) windowed.softcap = a.real(15, "softcap");
  if (!a.ok) return info.Env().Undefined();
  const bool short_q_start = seqs > 0 && int64_t(q_start.length) < seqs + 1;
  if (short_q_start || int64_t(kv_len.length) < seqs || int64_t(table_start.length) < seqs) {
    a.check("qStart must hold numSeqs + 1 entries, kvLen and blockTableStart numSeqs entries");
    return info.Env().Undefined();
  }
  const AttentionBatch batch{q_start.data, kv_len.data, tables.data, table_start.data, int64_t(tables.length),
                             int(seqs)};
  if (!a.check(check_paged_attention(q.length, k_cache.length, v_cache.length, out.length, windowed, batch)))
    return info.Env().Undefined();
  paged_attention(q.data, k_cache.data, v_cache.data, k_cache.dtype, out.data, windowed, batch);
  return info.Env().Undefined();
}

}  // namespace

void register_attention(Napi::Env env, Napi::Object exports) {
  exports.Set("ropeAndCacheWrite", Napi::Function::New(env, rope_and_cache_write_js));
  exports.Set("pagedAttention", Napi::Function::New(env, paged_attention_js));
}

}  // namespace loraplex::binding
