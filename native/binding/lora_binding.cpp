// The LoRA bank and kernels as seen from JavaScript (wrapped by src/kernels/native/lora.ts).
// Everything is validated here, before any native code reads memory: bad types throw TypeError, bad
// values (ranges, shapes, bounds, empty slots) throw RangeError. A bank is an External registered in
// a process-wide set, so a stale or foreign handle is refused instead of dereferenced.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <new>
#include <string>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include "common.h"
#include "loraplex/lora.h"

namespace loraplex::binding {
namespace {

constexpr int64_t kMaxSlots = 1 << 16;
constexpr int64_t kMaxModules = 1 << 20;
constexpr int64_t kMaxFeatures = 1 << 24;
constexpr uint32_t kMaxOutputs = 1024;  // modules in one call

std::mutex g_banks_mutex;
std::unordered_set<const LoraBank*> g_banks;  // live banks (Externals may be finalized on any env)
std::unordered_set<const LoraRowLayout*> g_layouts;  // live row layouts, likewise

bool range_fail(const Napi::Env& env, const std::string& msg) {
  Napi::RangeError::New(env, msg).ThrowAsJavaScriptException();
  return false;
}

std::string range_text(int64_t lo, int64_t hi) {
  return "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
}

// An integer in [lo, hi], else a RangeError naming it (name() is called only then: building messages on
// every call would cost more than a small kernel).
template <typename Name>
bool int_in_range(const Napi::Env& env, double v, const char* fn, Name name, int64_t lo, int64_t hi, int64_t* out) {
  if (!(v >= static_cast<double>(lo) && v <= static_cast<double>(hi)) || std::floor(v) != v)
    return range_fail(env, std::string(fn) + ": '" + name() + "' must be an integer in " + range_text(lo, hi) +
                               ", got " + Napi::Number::New(env, v).ToString().Utf8Value());
  *out = static_cast<int64_t>(v);
  return true;
}

// An integer argument in [lo, hi]: TypeError if not a number, RangeError if not an integer in range.
bool int_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, int64_t lo, int64_t hi,
             int64_t* out) {
  if (i >= info.Length() || !info[i].IsNumber())
    return fail(info.Env(), std::string(fn) + ": '" + name + "' must be a number");
  return int_in_range(
      info.Env(), info[i].As<Napi::Number>().DoubleValue(), fn, [&] { return std::string(name); }, lo, hi, out);
}

template <typename T>
bool array_arg(const Napi::CallbackInfo& info, size_t i, const char* name, Span<T>* out) {
  if constexpr (std::is_same_v<T, float>) *out = f32(info, i, name);
  else *out = i32(info, i, name);
  return !info.Env().IsExceptionPending();
}

LoraBank* bank_arg(const Napi::CallbackInfo& info, const char* fn) {
  if (info.Length() > 0 && info[0].IsExternal()) {
    LoraBank* bank = info[0].As<Napi::External<LoraBank>>().Data();
    std::lock_guard<std::mutex> lock(g_banks_mutex);
    if (g_banks.count(bank)) return bank;
  }
  fail(info.Env(), std::string(fn) + ": the first argument must be a LoRA bank made by loraBankCreate");
  return nullptr;
}

LoraRowLayout* layout_arg(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  if (info.Length() > i && info[i].IsExternal()) {
    LoraRowLayout* rows = info[i].As<Napi::External<LoraRowLayout>>().Data();
    std::lock_guard<std::mutex> lock(g_banks_mutex);
    if (g_layouts.count(rows)) return rows;
  }
  fail(info.Env(), std::string(fn) + ": 'rows' must be a row layout made by createLoraRows");
  return nullptr;
}

// The bank's storage: 'f32' (also when absent), 'bf16', 'f16' or 'int8'.
bool dtype_arg(const Napi::CallbackInfo& info, size_t i, LoraDtype* out) {
  if (i >= info.Length() || info[i].IsUndefined()) return true;
  if (!info[i].IsString())
    return fail(info.Env(), "createLoraBank: 'dtype' must be a string ('f32', 'bf16', 'f16' or 'int8')");
  const std::string name = info[i].As<Napi::String>().Utf8Value();
  if (name == "f32") *out = LoraDtype::F32;
  else if (name == "bf16") *out = LoraDtype::Bf16;
  else if (name == "f16") *out = LoraDtype::F16;
  else if (name == "int8") *out = LoraDtype::Int8;
  else
    return range_fail(info.Env(), "createLoraBank: 'dtype' must be 'f32', 'bf16', 'f16' or 'int8', got '" + name + "'");
  return true;
}

void adjust_memory(Napi::Env env, int64_t delta) {
  if (delta != 0) Napi::MemoryManagement::AdjustExternalMemory(env, delta);
}

Napi::Value bank_create(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  int64_t slots = 0, modules = 0;
  if (!int_arg(info, 0, "createLoraBank", "numSlots", 1, kMaxSlots, &slots) ||
      !int_arg(info, 1, "createLoraBank", "numModules", 1, kMaxModules, &modules))
    return env.Undefined();
  LoraDtype dtype = LoraDtype::F32;
  if (!dtype_arg(info, 2, &dtype)) return env.Undefined();
  auto* bank = new LoraBank(static_cast<int32_t>(slots), static_cast<int32_t>(modules), dtype);
  {
    std::lock_guard<std::mutex> lock(g_banks_mutex);
    g_banks.insert(bank);
  }
  return Napi::External<LoraBank>::New(env, bank, [](Napi::Env env, LoraBank* b) {
    {
      std::lock_guard<std::mutex> lock(g_banks_mutex);
      g_banks.erase(b);
    }
    adjust_memory(env, -static_cast<int64_t>(b->bytes()));
    delete b;
  });
}

// One optional pair of per-module vectors of PackedAdapter (values, offsets) at arguments i, i + 1.
struct VectorPair {
  const char* values;     // "outScale"
  const char* offsets;    // "offsetOutScale"
  const char* noun;       // "an output scale"
  const char* why;        // "(DoRA)": why the two come together
  bool per_rank;          // module m's vector has rank[m] entries, else out_features[m]
};

constexpr VectorPair kOutScale{"outScale", "offsetOutScale", "an output scale", "(DoRA)", false};
constexpr VectorPair kRankScale{"rankScale", "offsetRankScale", "a rank scale", "(VeRA's λd)", true};
constexpr VectorPair kColumnScale{"columnScale", "offsetColumnScale", "a column scale", "(VeRA's λb)", false};

// Both or neither; offsets[m] is -1 (none) or where module m's [N] (or [rank]) values start, only for a
// targeted module; finite values.
bool vector_args(const Napi::CallbackInfo& info, size_t i, const VectorPair& pair, const Span<int32_t>& rank,
                 const Span<int32_t>& out_features, size_t modules, Span<float>* values, Span<int32_t>* offsets) {
  auto env = info.Env();
  const std::string values_name = std::string("adapter.") + pair.values;
  const std::string offsets_name = std::string("adapter.") + pair.offsets;
  const bool has_values = info.Length() > i && !info[i].IsUndefined();
  const bool has_offsets = info.Length() > i + 1 && !info[i + 1].IsUndefined();
  if (!has_values && !has_offsets) return true;
  if (has_values != has_offsets)
    return fail(env, "setLoraSlot: " + values_name + " and " + offsets_name + " come together " + pair.why +
                         " or not at all");
  if (!array_arg(info, i, values_name.c_str(), values) || !array_arg(info, i + 1, offsets_name.c_str(), offsets))
    return false;
  if (offsets->length != modules)
    return range_fail(env, "setLoraSlot: " + offsets_name + " has " + std::to_string(offsets->length) +
                               " entries but the bank has " + std::to_string(modules) + " modules");
  for (size_t m = 0; m < modules; ++m) {
    const int64_t at = offsets->data[m];
    if (at == -1) continue;
    const std::string where = "setLoraSlot: module " + std::to_string(m) + ": ";
    if (at < -1)
      return range_fail(env, where + pair.offsets + " " + std::to_string(at) + " must be ≥ -1 (-1 = none)");
    if (rank.data[m] == 0) return range_fail(env, where + pair.noun + " on a module the adapter does not target");
    const int64_t n = pair.per_rank ? rank.data[m] : out_features.data[m];
    if (at + n > static_cast<int64_t>(values->length))
      return range_fail(env, where + pair.values + " [" + std::to_string(n) + "] at " + pair.offsets + " " +
                                 std::to_string(at) + " does not fit in " + values_name + " (length " +
                                 std::to_string(values->length) + ")");
    for (int64_t c = 0; c < n; ++c)
      if (!std::isfinite(values->data[at + c])) return range_fail(env, where + pair.values + " values must be finite");
  }
  return true;
}

// bankSet(bank, slot, weights, rank, offsetA, offsetB, scale, inFeatures, outFeatures[, outScale,
// offsetOutScale[, rankScale, offsetRankScale[, columnScale, offsetColumnScale]]]): each optional pair both
// present or both undefined (DoRA's output scales; VeRA's λd per rank and λb per column).
Napi::Value bank_set(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  LoraBank* bank = bank_arg(info, "setLoraSlot");
  if (!bank) return env.Undefined();
  int64_t slot = 0;
  if (!int_arg(info, 1, "setLoraSlot", "slot", 0, bank->num_slots() - 1, &slot)) return env.Undefined();
  Span<float> weights, scale;
  Span<int32_t> rank, offset_a, offset_b, in_features, out_features;
  if (!array_arg(info, 2, "adapter.weights", &weights) || !array_arg(info, 3, "adapter.rank", &rank) ||
      !array_arg(info, 4, "adapter.offsetA", &offset_a) || !array_arg(info, 5, "adapter.offsetB", &offset_b) ||
      !array_arg(info, 6, "adapter.scale", &scale) || !array_arg(info, 7, "adapter.inFeatures", &in_features) ||
      !array_arg(info, 8, "adapter.outFeatures", &out_features))
    return env.Undefined();
  const size_t modules = static_cast<size_t>(bank->num_modules());
  const std::pair<const char*, size_t> lengths[] = {
      {"rank", rank.length},   {"offsetA", offset_a.length},          {"offsetB", offset_b.length},
      {"scale", scale.length}, {"inFeatures", in_features.length}, {"outFeatures", out_features.length}};
  for (const auto& [name, length] : lengths)
    if (length != modules) {
      range_fail(env, std::string("setLoraSlot: adapter.") + name + " has " + std::to_string(length) +
                          " entries but the bank has " + std::to_string(modules) + " modules");
      return env.Undefined();
    }
  const int64_t total = static_cast<int64_t>(weights.length);
  for (size_t m = 0; m < modules; ++m) {
    const int64_t r = rank.data[m];
    const std::string where = "setLoraSlot: module " + std::to_string(m) + ": ";
    if (r < 0 || r > kMaxLoraRank) {
      range_fail(env, where + "rank " + std::to_string(r) + " is outside " + range_text(0, kMaxLoraRank));
      return env.Undefined();
    }
    if (r == 0) continue;  // not targeted: its other fields are ignored
    const int64_t kf = in_features.data[m], nf = out_features.data[m];
    if (kf < 1 || kf > kMaxFeatures || nf < 1 || nf > kMaxFeatures) {
      range_fail(env, where + "inFeatures " + std::to_string(kf) + " / outFeatures " + std::to_string(nf) +
                          " must be in " + range_text(1, kMaxFeatures));
      return env.Undefined();
    }
    const int64_t oa = offset_a.data[m], ob = offset_b.data[m];
    if (oa < 0 || oa + r * kf > total || ob < 0 || ob + r * nf > total) {
      range_fail(env, where + "A [" + std::to_string(r) + ", " + std::to_string(kf) + "] at offsetA " +
                          std::to_string(oa) + " or Bt [" + std::to_string(r) + ", " + std::to_string(nf) +
                          "] at offsetB " + std::to_string(ob) + " does not fit in adapter.weights (length " +
                          std::to_string(total) + ")");
      return env.Undefined();
    }
    if (!std::isfinite(scale.data[m])) {
      range_fail(env, where + "scale must be finite");
      return env.Undefined();
    }
  }
  Span<float> out_scale, rank_scale, column_scale;
  Span<int32_t> offset_out_scale, offset_rank_scale, offset_column_scale;
  if (!vector_args(info, 9, kOutScale, rank, out_features, modules, &out_scale, &offset_out_scale) ||
      !vector_args(info, 11, kRankScale, rank, out_features, modules, &rank_scale, &offset_rank_scale) ||
      !vector_args(info, 13, kColumnScale, rank, out_features, modules, &column_scale, &offset_column_scale))
    return env.Undefined();
  LoraAdapterView view;
  view.weights = weights.data;
  view.weights_length = weights.length;
  view.rank = rank.data;
  view.offset_a = offset_a.data;
  view.offset_b = offset_b.data;
  view.scale = scale.data;
  view.in_features = in_features.data;
  view.out_features = out_features.data;
  view.out_scale = out_scale.data;
  view.offset_out_scale = offset_out_scale.data;
  view.rank_scale = rank_scale.data;
  view.offset_rank_scale = offset_rank_scale.data;
  view.column_scale = column_scale.data;
  view.offset_column_scale = offset_column_scale.data;
  const int64_t before = static_cast<int64_t>(bank->bytes());
  try {
    bank->set_slot(static_cast<int32_t>(slot), view);
  } catch (const std::bad_alloc&) {
    range_fail(env, "setLoraSlot: out of memory copying the adapter into slot " + std::to_string(slot));
    return env.Undefined();
  }
  adjust_memory(env, static_cast<int64_t>(bank->bytes()) - before);
  return env.Undefined();
}

// bankBytes(bank): the bytes the bank's slots hold (what it reports to the GC; a shared region counts once).
Napi::Value bank_bytes(const Napi::CallbackInfo& info) {
  const LoraBank* bank = bank_arg(info, "loraBankBytes");
  if (!bank) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), static_cast<double>(bank->bytes()));
}

Napi::Value bank_clear(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  LoraBank* bank = bank_arg(info, "clearLoraSlot");
  int64_t slot = 0;
  if (!bank || !int_arg(info, 1, "clearLoraSlot", "slot", 0, bank->num_slots() - 1, &slot)) return env.Undefined();
  const int64_t before = static_cast<int64_t>(bank->bytes());
  bank->clear_slot(static_cast<int32_t>(slot));
  adjust_memory(env, static_cast<int64_t>(bank->bytes()) - before);
  return env.Undefined();
}

// applyAdapters' arguments but the row layout.
struct KernelArgs {
  const char* fn = nullptr;
  LoraBank* bank = nullptr;
  int64_t k = 0, y_stride = 0;
  Span<float> x, y;
  std::vector<LoraModuleOutput> outputs;

  // How the call names a field of output i: "out.modules[i].field".
  std::string field(size_t i, const char* name) const { return "out.modules[" + std::to_string(i) + "]." + name; }
};

// (bank, x, k, y, yStride, modules, numModules, ...), modules a Float64Array of
// numModules (module, yOffset, n) triples (flattened by the wrapper, which checked they are numbers); the
// modules' columns must not overlap.
bool module_args(const Napi::CallbackInfo& info, const char* fn, KernelArgs* a) {
  a->fn = fn;
  a->bank = bank_arg(info, fn);
  if (!a->bank) return false;
  int64_t count = 0;
  if (!array_arg(info, 1, "x", &a->x) || !int_arg(info, 2, fn, "k", 1, kMaxFeatures, &a->k) ||
      !array_arg(info, 3, "out.y", &a->y) || !int_arg(info, 4, fn, "out.yStride", 1, INT32_MAX, &a->y_stride))
    return false;
  const Span<double> triples = typed_array<double>(info, 5, napi_float64_array, "out.modules");
  if (info.Env().IsExceptionPending() || !int_arg(info, 6, fn, "out.modules.length", 0, kMaxOutputs, &count))
    return false;
  if (triples.length < static_cast<size_t>(3 * count))
    return range_fail(info.Env(), std::string(fn) + ": " + std::to_string(count) + " modules need " +
                                      std::to_string(3 * count) + " packed values, got " +
                                      std::to_string(triples.length));
  a->outputs.resize(static_cast<size_t>(count));
  for (size_t i = 0; i < a->outputs.size(); ++i) {
    const double* t = triples.data + 3 * i;
    int64_t module = 0, offset = 0, n = 0;
    if (!int_in_range(info.Env(), t[0], fn, [&] { return a->field(i, "module"); }, 0, a->bank->num_modules() - 1,
                      &module) ||
        !int_in_range(info.Env(), t[1], fn, [&] { return a->field(i, "yOffset"); }, 0, INT32_MAX, &offset) ||
        !int_in_range(info.Env(), t[2], fn, [&] { return a->field(i, "n"); }, 1, kMaxFeatures, &n))
      return false;
    a->outputs[i] = {static_cast<int32_t>(module), offset, n};
  }
  // Disjoint columns: sorted by offset, each range ends before the next begins.
  std::vector<size_t> order(a->outputs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t l, size_t r) { return a->outputs[l].offset < a->outputs[r].offset; });
  for (size_t i = 1; i < order.size(); ++i) {
    const LoraModuleOutput& prev = a->outputs[order[i - 1]];
    if (prev.offset + prev.n > a->outputs[order[i]].offset)
      return range_fail(info.Env(), std::string(fn) + ": the columns of out.modules[" + std::to_string(order[i - 1]) +
                                        "] and out.modules[" + std::to_string(order[i]) +
                                        "] overlap (each module needs its own yOffset .. yOffset + n - 1)");
  }
  return true;
}

// A slot of the step's rows: -1 (base) or an occupied slot whose modules match K and their N when targeted.
bool check_slot(const Napi::Env& env, const KernelArgs& a, int32_t slot) {
  if (slot == -1) return true;
  const auto where = [&] { return std::string(a.fn) + ": slot " + std::to_string(slot); };
  if (slot < -1 || slot >= a.bank->num_slots())
    return range_fail(env, where() + " is outside [-1, " + std::to_string(a.bank->num_slots() - 1) +
                               "] (-1 = base model)");
  if (!a.bank->occupied(slot))
    return range_fail(env, where() + " is empty (never set, or cleared): load an adapter with setLoraSlot, " +
                               "or use -1 for the base model");
  for (const LoraModuleOutput& o : a.outputs) {
    const LoraModuleWeights& w = a.bank->module(slot, o.module);
    if (w.rank > 0 && (w.in_features != a.k || w.out_features != o.n))
      return range_fail(env, where() + ", module " + std::to_string(o.module) + ": the adapter has K=" +
                                 std::to_string(w.in_features) + ", N=" + std::to_string(w.out_features) +
                                 " but the call passes K=" + std::to_string(a.k) + ", N=" + std::to_string(o.n) +
                                 " (wrong module index?)");
  }
  return true;
}

// Rows [first, end) must lie inside x and y (every module's columns), and x must not overlap the y rows
// it feeds.
bool check_rows(const Napi::Env& env, const KernelArgs& a, int64_t first, int64_t end) {
  if (end <= first) return true;
  const std::string fn = a.fn;
  if (end * a.k > static_cast<int64_t>(a.x.length))
    return range_fail(env, fn + ": x has " + std::to_string(a.x.length) + " elements, rows up to " +
                               std::to_string(end) + " of K=" + std::to_string(a.k) + " need " +
                               std::to_string(end * a.k));
  for (size_t i = 0; i < a.outputs.size(); ++i) {
    const LoraModuleOutput& o = a.outputs[i];
    if (o.offset + o.n > a.y_stride)
      return range_fail(env, fn + ": " + a.field(i, "yOffset") + " + " + a.field(i, "n") + " (" +
                                 std::to_string(o.offset + o.n) + ") exceeds out.yStride (" +
                                 std::to_string(a.y_stride) + ")");
    const int64_t y_end = (end - 1) * a.y_stride + o.offset + o.n;
    if (y_end > static_cast<int64_t>(a.y.length))
      return range_fail(env, fn + ": out.y has " + std::to_string(a.y.length) + " elements, row " +
                                 std::to_string(end - 1) + " needs " + std::to_string(y_end));
    const auto x0 = reinterpret_cast<uintptr_t>(a.x.data + first * a.k);
    const auto x1 = reinterpret_cast<uintptr_t>(a.x.data + end * a.k);
    const auto y0 = reinterpret_cast<uintptr_t>(a.y.data + first * a.y_stride + o.offset);
    const auto y1 = reinterpret_cast<uintptr_t>(a.y.data + y_end);
    if (x0 < y1 && y0 < x1) return fail(env, fn + ": x and out.y must not overlap");
  }
  return true;
}

LoraOutputs outputs_of(const KernelArgs& a) {
  return {a.y.data, a.y_stride, a.outputs.data(), static_cast<int64_t>(a.outputs.size())};
}

Napi::Value rows_create(const Napi::CallbackInfo& info) {
  auto* rows = new LoraRowLayout();
  {
    std::lock_guard<std::mutex> lock(g_banks_mutex);
    g_layouts.insert(rows);
  }
  return Napi::External<LoraRowLayout>::New(info.Env(), rows, [](Napi::Env, LoraRowLayout* r) {
    {
      std::lock_guard<std::mutex> lock(g_banks_mutex);
      g_layouts.erase(r);
    }
    delete r;
  });
}

// rowsSet(rows, rowSlot, numRows): row t uses slot rowSlot[t] (-1: base). Slots are checked against the
// bank of each call that uses the layout.
Napi::Value rows_set(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const char* fn = "setLoraRows";
  LoraRowLayout* rows = layout_arg(info, 0, fn);
  Span<int32_t> row_slot;
  int64_t count = 0;
  if (!rows || !array_arg(info, 1, "rowSlot", &row_slot) || !int_arg(info, 2, fn, "numRows", 0, INT32_MAX, &count))
    return env.Undefined();
  if (static_cast<int64_t>(row_slot.length) < count) {
    range_fail(env, std::string(fn) + ": rowSlot has " + std::to_string(row_slot.length) + " entries, numRows is " +
                        std::to_string(count));
    return env.Undefined();
  }
  for (int64_t t = 0; t < count; ++t)
    if (row_slot.data[t] < -1 || row_slot.data[t] >= kMaxSlots) {
      range_fail(env, std::string(fn) + ": rowSlot[" + std::to_string(t) + "] = " + std::to_string(row_slot.data[t]) +
                          " is outside [-1, " + std::to_string(kMaxSlots - 1) + "] (-1 = base model)");
      return env.Undefined();
    }
  rows->set(row_slot.data, count);
  return env.Undefined();
}

// apply(bank, x, k, y, yStride, modules, numModules, rows)
Napi::Value apply(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  KernelArgs a;
  if (!module_args(info, "applyAdapters", &a)) return env.Undefined();
  const LoraRowLayout* rows = layout_arg(info, 7, "applyAdapters");
  if (!rows || a.outputs.empty()) return env.Undefined();
  for (const LoraRowLayout::Group& g : rows->groups())
    if (!check_slot(env, a, g.slot)) return env.Undefined();
  if (!check_rows(env, a, 0, rows->num_rows())) return env.Undefined();
  apply_adapters(*a.bank, *rows, a.x.data, a.k, outputs_of(a));
  return env.Undefined();
}

}  // namespace

void register_lora(Napi::Env env, Napi::Object exports) {
  exports.Set("loraBankCreate", Napi::Function::New(env, bank_create));
  exports.Set("loraBankSet", Napi::Function::New(env, bank_set));
  exports.Set("loraBankClear", Napi::Function::New(env, bank_clear));
  exports.Set("loraBankBytes", Napi::Function::New(env, bank_bytes));
  exports.Set("loraRowsCreate", Napi::Function::New(env, rows_create));
  exports.Set("loraRowsSet", Napi::Function::New(env, rows_set));
  exports.Set("loraApply", Napi::Function::New(env, apply));
}

}  // namespace loraplex::binding
