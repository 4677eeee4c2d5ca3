// SGMV and BGMV: both turn their rows into groups of rows sharing one slot, then run the same per-row
// kernels (lora_rows.h) on blocks of up to 16 rows. How rows are grouped, blocked or spread over threads
// never changes a row's arithmetic, which is what makes the two kernels batch invariant.
// bf16 banks run the bf16 row kernels, which widen weights as they load them. (Widening a shared adapter
// once into an f32 copy for many rows measured slower with 2 threads: the copy has to cross cores.)
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "lora_rows.h"
#include "loraplex/lora.h"
#include "loraplex/thread_pool.h"

namespace loraplex {
namespace {

// Below this many multiply-adds a call runs on the caller alone: waking the pool would cost more.
constexpr int64_t kSerialWork = 1 << 17;
constexpr int64_t kColumnChunk = 64;  // expand splits N in multiples of the kernels' column tile

struct Group {
  const LoraModuleWeights* w;
  int64_t first;  // rows[first .. first + count) use this slot's module
  int64_t count;
};

struct Block {
  int32_t group;
  int32_t rows;   // ≤ kLoraRowBlock
  int64_t first;  // into Plan::rows
};

// Scratch reused across calls on the same JS thread (the pool only reads it during a call).
struct Plan {
  std::vector<int32_t> rows;  // row indices, grouped by slot
  std::vector<Group> groups;
  std::vector<Block> blocks;
  std::vector<float> h;  // [rows.size(), h_stride]: the shrink's output per row
  std::vector<float> task_h;  // per (block, column chunk) task when columns are split: its own shrink rows
  int64_t h_stride = 0;
  std::vector<std::pair<int32_t, int32_t>> by_slot;  // BGMV: (slot, row)

  void reset() {
    rows.clear();
    groups.clear();
    blocks.clear();
    h_stride = 0;
  }
  void add_group(const LoraModuleWeights* w, int64_t count) {
    groups.push_back({w, static_cast<int64_t>(rows.size()) - count, count});
    h_stride = std::max<int64_t>(h_stride, w->rank);
  }
};

Plan& scratch_plan() {
  thread_local Plan plan;
  return plan;
}

class Executor {
 public:
  Executor(Plan& plan, LoraDtype dtype, const float* x, int64_t k, LoraOutputRows out, int64_t n)
      : plan_(plan), bf16_(dtype == LoraDtype::Bf16), x_(x), k_(k), out_(out), n_(n),
        kernels_(lora_rows_for(active_isa())) {}

  // One pool dispatch per call (a dispatch costs as much as a small block's arithmetic): row blocks sized so
  // the threads get equal shares, each doing its block's shrink then expand; with too few rows for that
  // (decode of one or two sequences), tasks split the columns and each recomputes its block's small shrink.
  void run() {
    Plan& p = plan_;
    int64_t work = 0;
    int64_t total_rows = 0;
    for (const Group& g : p.groups) {
      work += g.count * g.w->rank * (k_ + n_);
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
        p.blocks.push_back({static_cast<int32_t>(&g - p.groups.data()), static_cast<int32_t>(last - first), g.first + first});
      }
    }
    p.h.resize(p.rows.size() * static_cast<size_t>(p.h_stride));

    const int64_t blocks = static_cast<int64_t>(p.blocks.size());
    if (serial) {
      for (const Block& b : p.blocks) shrink_and_expand(b, 0, n_);
    } else if (blocks >= threads) {
      parallel_for(blocks, [&](int64_t i, int) { shrink_and_expand(p.blocks[i], 0, n_); });
    } else {
      // Fewer blocks than threads: split the columns too; every task of a block computes the same shrink
      // into its own h rows (scratch per task), so no task waits for another.
      const int64_t want = (2 * threads + blocks - 1) / blocks;
      const int64_t chunk =
          std::max<int64_t>(kColumnChunk, (n_ / want + kColumnChunk - 1) / kColumnChunk * kColumnChunk);
      const int64_t chunks = (n_ + chunk - 1) / chunk;
      const int64_t per_task = kLoraRowBlock * p.h_stride;
      p.task_h.resize(static_cast<size_t>(blocks * chunks * per_task));
      parallel_for(blocks * chunks, [&](int64_t i, int) {
        const int64_t n0 = (i % chunks) * chunk;
        const Block& b = p.blocks[i / chunks];
        Rows r = rows_of(b);
        for (int j = 0; j < b.rows; ++j) r.h[j] = p.task_h.data() + i * per_task + j * p.h_stride;
        shrink_rows(b, r);
        expand_rows(b, r, n0, std::min(n_, n0 + chunk));
      });
    }
  }

 private:
  struct Rows {
    const float* x[kLoraRowBlock];
    float* y[kLoraRowBlock];
    float* h[kLoraRowBlock];
  };

  Rows rows_of(const Block& b) const {
    Rows r;
    for (int i = 0; i < b.rows; ++i) {
      const int64_t t = plan_.rows[b.first + i];
      r.x[i] = x_ + t * k_;
      r.y[i] = out_.y + t * out_.stride + out_.offset;
      r.h[i] = plan_.h.data() + (b.first + i) * plan_.h_stride;
    }
    return r;
  }

  void shrink_rows(const Block& b, const Rows& r) const {
    const LoraModuleWeights& w = *plan_.groups[b.group].w;
    if (bf16_) kernels_.shrink_bf16(r.x, b.rows, static_cast<const uint16_t*>(w.a), w.rank, k_, r.h);
    else kernels_.shrink(r.x, b.rows, static_cast<const float*>(w.a), w.rank, k_, r.h);
  }

  void expand_rows(const Block& b, const Rows& r, int64_t n0, int64_t n1) const {
    const LoraModuleWeights& w = *plan_.groups[b.group].w;
    if (bf16_) kernels_.expand_bf16(r.h, b.rows, static_cast<const uint16_t*>(w.bt), w.rank, n_, n0, n1, w.scale, r.y);
    else kernels_.expand(r.h, b.rows, static_cast<const float*>(w.bt), w.rank, n_, n0, n1, w.scale, r.y);
  }

  void shrink_and_expand(const Block& b, int64_t n0, int64_t n1) const {
    const Rows r = rows_of(b);
    shrink_rows(b, r);
    expand_rows(b, r, n0, n1);
  }

  Plan& plan_;
  bool bf16_;  // the bank stores weights as bf16
  const float* x_;
  int64_t k_;
  LoraOutputRows out_;
  int64_t n_;
  const LoraRowKernels& kernels_;
};

}  // namespace

void lora_sgmv(const LoraBank& bank, int32_t module, const float* x, int64_t k, LoraOutputRows out, int64_t n,
               const int32_t* seg_start, const int32_t* seg_slot, int64_t num_segments) {
  Plan& plan = scratch_plan();
  plan.reset();
  for (int64_t s = 0; s < num_segments; ++s) {
    const int32_t slot = seg_slot[s];
    if (slot < 0 || seg_start[s + 1] == seg_start[s]) continue;
    const LoraModuleWeights& w = bank.module(slot, module);
    if (w.rank == 0) continue;
    for (int32_t t = seg_start[s]; t < seg_start[s + 1]; ++t) plan.rows.push_back(t);
    plan.add_group(&w, seg_start[s + 1] - seg_start[s]);
  }
  Executor(plan, bank.dtype(), x, k, out, n).run();
}

void lora_bgmv(const LoraBank& bank, int32_t module, const float* x, int64_t k, LoraOutputRows out, int64_t n,
               const int32_t* token_slot, int64_t num_tokens) {
  Plan& plan = scratch_plan();
  plan.reset();
  plan.by_slot.clear();
  for (int64_t t = 0; t < num_tokens; ++t) {
    const int32_t slot = token_slot[t];
    if (slot >= 0 && bank.module(slot, module).rank > 0) plan.by_slot.emplace_back(slot, static_cast<int32_t>(t));
  }
  // Tokens of one slot become one group, so they share reads of A and Bt.
  std::stable_sort(plan.by_slot.begin(), plan.by_slot.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < plan.by_slot.size();) {
    const int32_t slot = plan.by_slot[i].first;
    size_t end = i;
    while (end < plan.by_slot.size() && plan.by_slot[end].first == slot)
      plan.rows.push_back(plan.by_slot[end++].second);
    plan.add_group(&bank.module(slot, module), static_cast<int64_t>(end - i));
    i = end;
  }
  Executor(plan, bank.dtype(), x, k, out, n).run();
}

}  // namespace loraplex
