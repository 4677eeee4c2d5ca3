// apply_adapters: takes the step's rows grouped by slot from a LoraRowLayout (built once per step), then
// runs the per-row kernels (lora_rows.h) on blocks of up to 16 rows, every module of the call in turn. How
// rows are grouped, blocked or spread over threads, and which modules share the call, never changes a row's
// arithmetic, which is what makes the kernel batch invariant.
// bf16, f16 and int8 banks run their row kernels, which widen weights as they load them, or (AVX-512, blocks of
// more than 4 rows) once per weight tile into a buffer of the calling thread. (Widening a shared adapter
// once into an f32 copy for many rows measured slower with 2 threads: the copy has to cross cores.)
// With the bf16 dot mode on AMX, a bf16 bank's shrinks run on tiles instead (lora_amx.h), a block's modules at once.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "lora_amx.h"
#include "lora_rows.h"
#include "loraplex/lora.h"
#include "loraplex/thread_pool.h"

namespace loraplex {
namespace {

// Below this many multiply-adds a call runs on the caller alone: waking the pool would cost more.
constexpr int64_t kSerialWork = 1 << 17;
constexpr int64_t kColumnChunk = 64;  // expand splits N in multiples of the kernels' column tile

struct Group {
  int64_t first;    // rows[first .. first + count) use one slot
  int64_t count;
  int64_t weights;  // into Plan::weights: the slot's weights for each output module
};

struct Block {
  int32_t group;
  int32_t rows;   // ≤ kLoraRowBlock
  int64_t first;  // into Plan::rows
};

// A task of the column-split path: one block's rows, one output module, its columns [n0, n1).
struct ColumnTask {
  int32_t block;
  int32_t output;
  int64_t n0, n1;
};

// Scratch reused across calls on the same JS thread (the pool only reads it during a call).
struct Plan {
  const int32_t* index = nullptr;  // the row indices groups point into (a LoraRowLayout's)
  int64_t indexed = 0;
  std::vector<Group> groups;
  std::vector<const LoraModuleWeights*> weights;  // [groups, outputs]; nullptr where the slot has rank 0
  std::vector<Block> blocks;
  std::vector<ColumnTask> column_tasks;
  std::vector<float> h;       // [indexed, h_stride]: the shrink's output per row, reused by each module
  std::vector<float> task_h;  // per column task: its own shrink rows
  int64_t h_stride = 0;

  void reset() {
    groups.clear();
    weights.clear();
    blocks.clear();
    column_tasks.clear();
    h_stride = 0;
  }

  // index[first .. first + count) use `slot`; records the slot's weights for each output.
  void add_group_at(const LoraBank& bank, int32_t slot, const LoraOutputs& out, int64_t first, int64_t count) {
    groups.push_back({first, count, static_cast<int64_t>(weights.size())});
    for (int64_t o = 0; o < out.num_modules; ++o) {
      const LoraModuleWeights& w = bank.module(slot, out.modules[o].module);
      weights.push_back(w.rank > 0 ? &w : nullptr);
      h_stride = std::max<int64_t>(h_stride, w.rank);
    }
  }
};

Plan& scratch_plan() {
  thread_local Plan plan;
  return plan;
}

// Whether the slot's adapter targets at least one module of the call (else its rows are left out).
bool targets_any(const LoraBank& bank, int32_t slot, const LoraOutputs& out) {
  for (int64_t o = 0; o < out.num_modules; ++o)
    if (bank.module(slot, out.modules[o].module).rank > 0) return true;
  return false;
}

class Executor {
 public:
  Executor(Plan& plan, LoraDtype dtype, bool amx, const float* x, int64_t k, const LoraOutputs& out)
      : plan_(plan), dtype_(dtype), amx_(amx), x_(x), k_(k), out_(out),
        kernels_(lora_rows_for(active_isa())) {}

  // One pool dispatch per call (a dispatch costs as much as a small block's arithmetic): row blocks sized so
  // the threads get equal shares, each doing every module's shrink then expand on its rows; with too few
  // rows for that (decode of one or two sequences), tasks take one module of a block, or a column chunk of
  // one (then each recomputes the block's small shrink).
  void run() {
    Plan& p = plan_;
    int64_t work = 0;
    int64_t total_rows = 0;
    for (const Group& g : p.groups) {
      for (int64_t o = 0; o < out_.num_modules; ++o)
        if (const LoraModuleWeights* w = p.weights[g.weights + o])
          work += g.count * w->rank * (k_ + out_.modules[o].n);
      total_rows += g.count;
    }
    if (total_rows == 0) return;
    const int threads = pool_threads();
    const bool serial = threads == 1 || work < kSerialWork;
    // Rows per block: at most kLoraRowBlock, small enough for 2 blocks per thread, never below the
    // kernels' 4-row register tile unless a group is smaller.
    const int64_t balanced = (total_rows + 2 * threads - 1) / (2 * threads);
    const int64_t block_rows = serial ? kLoraRowBlock : std::clamp<int64_t>(balanced, 4, kLoraRowBlock);
    for (const Group& g : p.groups) {
      const int64_t pieces = (g.count + block_rows - 1) / block_rows;
      for (int64_t piece = 0; piece < pieces; ++piece) {
        // Even split of the group: sizes differ by at most one row.
        const int64_t first = g.count * piece / pieces;
        const int64_t last = g.count * (piece + 1) / pieces;
        p.blocks.push_back(
            {static_cast<int32_t>(&g - p.groups.data()), static_cast<int32_t>(last - first), g.first + first});
      }
    }

    const int64_t blocks = static_cast<int64_t>(p.blocks.size());
    if (serial || blocks >= threads) {
      p.h.resize(static_cast<size_t>(p.indexed * p.h_stride));
      if (serial) {
        for (const Block& b : p.blocks) run_block(b);
      } else {
        parallel_for(blocks, [&](int64_t i, int) { run_block(p.blocks[i]); });
      }
    } else {
      split_columns(threads);
    }
  }

 private:
  struct Rows {
    const float* x[kLoraRowBlock];
    float* y[kLoraRowBlock];  // the start of each output row (column 0, before any module's offset)
    float* h[kLoraRowBlock];
  };

  // The block's rows, with their shrink outputs at h[i * h_stride].
  Rows rows_of(const Block& b, float* h) const {
    Rows r;
    for (int i = 0; i < b.rows; ++i) {
      const int64_t t = plan_.index[b.first + i];
      r.x[i] = x_ + t * k_;
      r.y[i] = out_.y + t * out_.stride;
      r.h[i] = h + i * plan_.h_stride;
    }
    return r;
  }

  // Every module on the block's rows while they are in cache; h is reused from one module to the next. On AMX
  // the modules' shrinks run first, together (independent tile chains), each into its own h rows.
  void run_block(const Block& b) const {
    const Rows r = rows_of(b, plan_.h.data() + b.first * plan_.h_stride);
    if (!amx_) {
      for (int64_t o = 0; o < out_.num_modules; ++o) run_module(b, r, o, 0, out_.modules[o].n);
      return;
    }
    thread_local std::vector<float> module_h;  // [module][row][h_stride]
    const int64_t per_module = kLoraRowBlock * plan_.h_stride;
    module_h.resize(static_cast<size_t>(out_.num_modules * per_module));
    thread_local std::vector<LoraAmxShrink> shrinks;
    shrinks.clear();
    for (int64_t o = 0; o < out_.num_modules; ++o)
      if (const LoraModuleWeights* w = plan_.weights[plan_.groups[b.group].weights + o])
        shrinks.push_back({static_cast<const uint16_t*>(w->a), w->rank, module_h.data() + o * per_module,
                           plan_.h_stride});
    lora_amx_shrink(r.x, b.rows, k_, shrinks.data(), static_cast<int>(shrinks.size()));
    for (int64_t o = 0; o < out_.num_modules; ++o) {
      Rows shrunk = r;
      for (int i = 0; i < b.rows; ++i) shrunk.h[i] = module_h.data() + o * per_module + i * plan_.h_stride;
      run_module(b, shrunk, o, 0, out_.modules[o].n, true);
    }
  }

  // Fewer blocks than threads: one task per (block, module) when that gives every thread a task; else
  // each module's columns split into chunks sized for about 2 tasks per thread. Every task of a (block,
  // module) computes the same shrink into its own h rows (scratch per task), so no task waits for another;
  // whole modules avoid computing a shrink twice.
  void split_columns(int threads) {
    Plan& p = plan_;
    const int64_t blocks = static_cast<int64_t>(p.blocks.size());
    int64_t module_tasks = 0;
    int64_t columns = 0, widest = 0;
    for (const Block& b : p.blocks)
      for (int64_t o = 0; o < out_.num_modules; ++o)
        module_tasks += p.weights[p.groups[b.group].weights + o] != nullptr;
    for (int64_t o = 0; o < out_.num_modules; ++o) {
      columns += out_.modules[o].n;
      widest = std::max(widest, out_.modules[o].n);
    }
    const int64_t want = (2 * threads + blocks - 1) / blocks;
    const int64_t chunk =
        module_tasks >= threads
            ? widest
            : std::max<int64_t>(kColumnChunk, (columns / want + kColumnChunk - 1) / kColumnChunk * kColumnChunk);
    for (int64_t b = 0; b < blocks; ++b) {
      const Group& g = p.groups[p.blocks[b].group];
      for (int64_t o = 0; o < out_.num_modules; ++o) {
        if (!p.weights[g.weights + o]) continue;
        const int64_t n = out_.modules[o].n;
        for (int64_t n0 = 0; n0 < n; n0 += chunk)
          p.column_tasks.push_back({static_cast<int32_t>(b), static_cast<int32_t>(o), n0, std::min(n, n0 + chunk)});
      }
    }
    const int64_t tasks = static_cast<int64_t>(p.column_tasks.size());
    const int64_t per_task = kLoraRowBlock * p.h_stride;
    p.task_h.resize(static_cast<size_t>(tasks * per_task));
    parallel_for(tasks, [&](int64_t i, int) {
      const ColumnTask& task = p.column_tasks[i];
      const Block& b = p.blocks[task.block];
      const Rows r = rows_of(b, p.task_h.data() + i * per_task);
      if (amx_) {
        const LoraModuleWeights* w = p.weights[p.groups[b.group].weights + task.output];
        const LoraAmxShrink shrink{static_cast<const uint16_t*>(w->a), w->rank, r.h[0], p.h_stride};
        lora_amx_shrink(r.x, b.rows, k_, &shrink, 1);
      }
      run_module(b, r, task.output, task.n0, task.n1, amx_);
    });
  }

  // Output `o`'s shrink on the block's rows (unless `shrunk`: h already holds it), then VeRA's rank scale, then
  // its expand over columns [n0, n1) (with the column scale, if any); nothing when the block's slot does not
  // target that module.
  void run_module(const Block& b, const Rows& r, int64_t o, int64_t n0, int64_t n1, bool shrunk = false) const {
    const LoraModuleWeights* w = plan_.weights[plan_.groups[b.group].weights + o];
    if (!w) return;
    const LoraModuleOutput& m = out_.modules[o];
    float* y[kLoraRowBlock];
    for (int i = 0; i < b.rows; ++i) y[i] = r.y[i] + m.offset;
    if (!shrunk) switch (dtype_) {
      case LoraDtype::F32:
        kernels_.shrink(r.x, b.rows, static_cast<const float*>(w->a), w->rank, k_, r.h);
        break;
      case LoraDtype::Bf16:
        kernels_.shrink_bf16(r.x, b.rows, static_cast<const uint16_t*>(w->a), w->rank, k_, r.h);
        break;
      case LoraDtype::F16:
        kernels_.shrink_f16(r.x, b.rows, static_cast<const uint16_t*>(w->a), w->rank, k_, r.h);
        break;
      case LoraDtype::Int8:
        kernels_.shrink_i8(r.x, b.rows, static_cast<const int8_t*>(w->a), w->rank, k_, r.h);
        break;
    }
    // One f32 product per h element for each factor, in this order (elementwise, so portable code gives every
    // ISA the same bits): an int8 bank's A row scales, VeRA's λd, an int8 bank's Bt row scales.
    const auto scale_h = [&](const float* f) {
      if (f)
        for (int i = 0; i < b.rows; ++i)
          for (int j = 0; j < w->rank; ++j) r.h[i][j] *= f[j];
    };
    scale_h(w->a_scale);
    scale_h(w->rank_scale);
    scale_h(w->bt_scale);
    const float* cs = w->column_scale;
    switch (dtype_) {
      case LoraDtype::F32:
        kernels_.expand(r.h, b.rows, static_cast<const float*>(w->bt), w->rank, m.n, n0, n1, w->scale, cs, y);
        break;
      case LoraDtype::Bf16:
        kernels_.expand_bf16(r.h, b.rows, static_cast<const uint16_t*>(w->bt), w->rank, m.n, n0, n1, w->scale, cs, y);
        break;
      case LoraDtype::F16:
        kernels_.expand_f16(r.h, b.rows, static_cast<const uint16_t*>(w->bt), w->rank, m.n, n0, n1, w->scale, cs, y);
        break;
      case LoraDtype::Int8:
        kernels_.expand_i8(r.h, b.rows, static_cast<const int8_t*>(w->bt), w->rank, m.n, n0, n1, w->scale, cs, y);
        break;
    }
    // DoRA: y = s · (y + delta), one rounding after the expand's (an elementwise product: any vector width
    // gives the same bits, so this is portable code).
    if (const float* s = w->out_scale)
      for (int i = 0; i < b.rows; ++i)
        for (int64_t c = n0; c < n1; ++c) y[i][c] *= s[c];
  }

  Plan& plan_;
  LoraDtype dtype_;  // how the bank stores weights
  bool amx_;         // bf16 weights shrunk on AMX tiles (lora_amx.h), every module of a block in one call
  const float* x_;
  int64_t k_;
  const LoraOutputs& out_;
  const LoraRowKernels& kernels_;
};

}  // namespace

void apply_adapters(const LoraBank& bank, const LoraRowLayout& rows, const float* x, int64_t k,
                    const LoraOutputs& out) {
  Plan& plan = scratch_plan();
  plan.reset();
  for (const LoraRowLayout::Group& g : rows.groups())
    if (targets_any(bank, g.slot, out)) plan.add_group_at(bank, g.slot, out, g.first, g.count);
  plan.index = rows.rows().data();
  plan.indexed = static_cast<int64_t>(rows.rows().size());
  Executor(plan, bank.dtype(), lora_amx_applies(bank), x, k, out).run();
}

}  // namespace loraplex
