// Argument checks shared by the float GEMM and the quantized GEMM bindings: integer shapes, buffer lengths, and
// the operands that follow the weight in gemm(x, w, y, m, bias?, accumulate?) — both calls take the same ones.
#pragma once

#include <cmath>
#include <string>

#include "common.h"

namespace loraplex::binding {

constexpr double kMaxDim = 2147483647.0;

// A non-negative integer no larger than `max`, else a TypeError (returns -1).
inline int64_t dimension(const Napi::CallbackInfo& info, size_t i, const char* name, double max = kMaxDim) {
  if (i >= info.Length() || !info[i].IsNumber()) {
    fail(info.Env(), std::string("argument '") + name + "' must be a number");
    return -1;
  }
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= max && std::floor(v) == v)) {
    fail(info.Env(), std::string("argument '") + name + "' must be an integer in [0, " +
                         std::to_string(static_cast<int64_t>(max)) + "], got " + std::to_string(v));
    return -1;
  }
  return static_cast<int64_t>(v);
}

inline bool check_length(const Napi::Env& env, const char* name, size_t have, int64_t need, const char* shape) {
  if (have >= static_cast<size_t>(need)) return true;
  return fail(env, std::string("argument '") + name + "' is too short: " + std::to_string(have) +
                       " elements, needs " + shape + " = " + std::to_string(need));
}

// x [m·K], y [m·N], bias [N] or none, accumulate: read and checked against a weight of `rows` N × `cols` K.
struct GemmOperands {
  Span<float> x, y, bias;
  int64_t m = 0;
  bool accumulate = false;
};

// Reads arguments 0 (x), 2 (y), 3 (m), 4 (bias), 5 (accumulate); argument 1, the weight, is the caller's.
// false (with a pending TypeError) when any is wrong or x and y overlap.
inline bool read_gemm_operands(const Napi::CallbackInfo& info, const char* op, int64_t rows, int64_t cols,
                               GemmOperands& out) {
  auto env = info.Env();
  out.x = f32(info, 0, "x");
  if (env.IsExceptionPending()) return false;
  out.y = f32(info, 2, "y");
  if (env.IsExceptionPending()) return false;
  out.m = dimension(info, 3, "m");
  if (out.m < 0) return false;
  if (info.Length() > 4 && !info[4].IsUndefined() && !info[4].IsNull()) {
    out.bias = f32(info, 4, "bias");
    if (env.IsExceptionPending()) return false;
    if (!check_length(env, "bias", out.bias.length, rows, "N")) return false;
  }
  if (info.Length() > 5 && !info[5].IsUndefined()) {
    if (!info[5].IsBoolean()) return fail(env, std::string(op) + ": argument 'accumulate' must be a boolean");
    out.accumulate = info[5].As<Napi::Boolean>().Value();
  }
  if (!check_length(env, "x", out.x.length, out.m * cols, "m · K")) return false;
  if (!check_length(env, "y", out.y.length, out.m * rows, "m · N")) return false;
  const size_t x_len = static_cast<size_t>(out.m * cols), y_len = static_cast<size_t>(out.m * rows);
  const bool overlap = x_len > 0 && y_len > 0 && out.x.data < out.y.data + y_len && out.y.data < out.x.data + x_len;
  if (overlap) return fail(env, std::string(op) + ": x and y must not overlap");
  return true;
}

}  // namespace loraplex::binding
