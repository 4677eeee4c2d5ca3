// The GEMM driver: packs x into row tiles, splits the output into (row block × panel block) tasks for the
// thread pool and walks each task's tiles over k chunks. Only the loop order and block sizes adapt to the
// shape; every element's arithmetic is the tile's one chain (see gemm_tiles.h), so results never depend
// on M, on the other rows or on the thread count.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "cpu_scratch.h"
#include "gemm_amx.h"
#include "gemm_tiles.h"
#include "loraplex/cpu_features.h"
#include "loraplex/gemm.h"
#include "loraplex/thread_pool.h"

namespace loraplex {
namespace {

constexpr int64_t kChunkK = 256;                    // k per chunk: a panel chunk (32 KiB f32) stays in L1
constexpr int64_t kBlockRowsTarget = 192;           // rows per block: its x chunk stays in L2 across panels
constexpr int64_t kPanelOuterXBytes = 512 << 10;    // a block's whole packed x fits in half of L2: panels outermost
constexpr int64_t kMaxPanelsPerBlock = 16;          // y block (rows × 512 columns) stays in L2 across chunks
constexpr int64_t kTasksPerThread = 2;              // enough tasks to even out threads' speeds (more cost decode)
constexpr int64_t kParallelPackElements = 1 << 16;  // below this, x is packed by the caller alone
constexpr double kSerialMacs = 1 << 18;             // below this, one thread: waking the pool costs more

std::atomic<bool> g_bf16_dot{false};  // set from TypeScript (gemmSetBf16Dot)
std::atomic<bool> g_allow_amx{true};

const GemmTiles* select_tiles(WeightDType dtype) {
  const GemmTiles* t = nullptr;
  switch (active_isa()) {
    case Isa::Avx512Bf16:
      if (g_bf16_dot.load(std::memory_order_relaxed) && (t = gemm_tiles_avx512bf16(dtype))) return t;
      [[fallthrough]];
    case Isa::Avx512:
      if ((t = gemm_tiles_avx512(dtype))) return t;
      [[fallthrough]];
    case Isa::Avx2:
      if ((t = gemm_tiles_avx2(dtype))) return t;
      [[fallthrough]];
    case Isa::Scalar:
      break;
  }
  return gemm_tiles_scalar(dtype);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }


struct Job {
  const GemmTiles* tiles;
  const PackedWeight* w;
  const uint8_t* xp;  // packed x: tile t at t · tile_bytes, [kx][rows] (f32) or [kx/2][rows] (bf16 pairs)
  float* y;
  const float* bias;
  bool accumulate;
  int64_t m, n, kx, tile_bytes;
  int64_t row_tiles, panels, tiles_per_block, panels_per_block, col_blocks;
  bool panel_outer;

  int rows_of(int64_t t) const {
    const int64_t r = m - t * tiles->max_rows;
    return static_cast<int>(r < tiles->max_rows ? r : tiles->max_rows);
  }

  // The weights of panel p at k0, as packed.
  const void* chunk(int64_t p, int64_t k0) const {
    const size_t welem = w->dtype() == WeightDType::F32 ? 4 : 2;
    return static_cast<const uint8_t*>(w->panel(p)) + k0 * kGemmPanel * welem;
  }

  // One tile × one panel over k in [k0, k0 + steps), with tile set `ts` on weights `wk` (panel p at k0).
  // prefetch: a stream for the tile to prefetch as it goes (then the prefetching variant runs), or null.
  void run(const GemmTiles* ts, const void* wk, int64_t t, int64_t p, int64_t k0, int64_t steps,
           const char* prefetch) const {
    const int rows = rows_of(t);
    const int64_t n0 = p * kGemmPanel;
    const int cols = static_cast<int>(n - n0 < kGemmPanel ? n - n0 : kGemmPanel);
    TileArgs a;
    a.x = xp + t * tile_bytes + k0 * rows * tiles->x_bytes_per_k;
    a.w = wk;
    a.k = steps;
    a.prefetch = prefetch;
    a.load_y = k0 > 0 || accumulate;
    const bool last = k0 + steps >= kx;
    float* y0 = y + t * tiles->max_rows * n + n0;
    TileFn fn = (prefetch ? ts->tile_prefetch : ts->tile)[rows];
    if (cols == kGemmPanel) {
      a.y = y0;
      a.ldy = n;
      a.bias = last && bias ? bias + n0 : nullptr;
      fn(a);
      return;
    }
    // The last, partial panel: run the full tile on a staged copy (padding columns are zero).
    alignas(64) float stage[kGemmMaxRows * kGemmPanel] = {};
    alignas(64) float stage_bias[kGemmPanel] = {};
    if (a.load_y)
      for (int r = 0; r < rows; ++r) std::memcpy(stage + r * kGemmPanel, y0 + r * n, cols * sizeof(float));
    if (last && bias) std::memcpy(stage_bias, bias + n0, cols * sizeof(float));
    a.y = stage;
    a.ldy = kGemmPanel;
    a.bias = last && bias ? stage_bias : nullptr;
    fn(a);
    for (int r = 0; r < rows; ++r) std::memcpy(y0 + r * n, stage + r * kGemmPanel, cols * sizeof(float));
  }

  void run_block(int64_t block) const {
    const int64_t rb = block / col_blocks, cb = block % col_blocks;
    const int64_t t0 = rb * tiles_per_block, t1 = t0 + tiles_per_block < row_tiles ? t0 + tiles_per_block : row_tiles;
    const int64_t p0 = cb * panels_per_block, p1 = p0 + panels_per_block < panels ? p0 + panels_per_block : panels;
    const int64_t chunks = kx > 0 ? ceil_div(kx, kChunkK) : 1;  // K = 0 still writes bias / zeros
    // Several row tiles share each panel chunk: widen it to f32 once rather than in every tile.
    const bool widen = tiles->widen && t1 - t0 >= 2;
    alignas(64) float wide[kChunkK * kGemmPanel];  // 32 KiB: stays in L1 across the tiles
    // The first tile prefetches as it goes: with one tile (decode), a little ahead in the panel, which
    // panel order streams straight through; with several, the block's next chunk (`next`), so memory
    // stays busy while the other tiles compute on this one.
    const bool stream = t1 - t0 == 1 && panel_outer;
    auto chunk_tiles = [&](int64_t p, int64_t c, const char* next) {
      const int64_t k0 = c * kChunkK, steps = kx - k0 < kChunkK ? kx - k0 : kChunkK;
      const char* pf = stream ? static_cast<const char*>(chunk(p, k0)) + kGemmPrefetchBytes : next;
      if (widen) {
        tiles->widen(chunk(p, k0), steps, wide);
        for (int64_t t = t0; t < t1; ++t) run(tiles->widened, wide, t, p, k0, steps, t == t0 ? pf : nullptr);
      } else {
        for (int64_t t = t0; t < t1; ++t) run(tiles, chunk(p, k0), t, p, k0, steps, t == t0 ? pf : nullptr);
      }
    };
    auto at = [&](int64_t p, int64_t c) { return static_cast<const char*>(chunk(p, c * kChunkK)); };
    if (panel_outer) {
      for (int64_t p = p0; p < p1; ++p)
        for (int64_t c = 0; c < chunks; ++c)
          chunk_tiles(p, c, c + 1 < chunks ? at(p, c + 1) : p + 1 < p1 ? at(p + 1, 0) : nullptr);
    } else {
      for (int64_t c = 0; c < chunks; ++c)
        for (int64_t p = p0; p < p1; ++p)
          chunk_tiles(p, c, p + 1 < p1 ? at(p + 1, c) : c + 1 < chunks ? at(p0, c + 1) : nullptr);
    }
  }
};

}  // namespace

void set_gemm_bf16_dot(bool enabled, bool allow_amx) {
  g_bf16_dot.store(enabled, std::memory_order_relaxed);
  g_allow_amx.store(allow_amx, std::memory_order_relaxed);
}

bool gemm_bf16_dot_active() { return g_bf16_dot.load(std::memory_order_relaxed) && active_isa() == Isa::Avx512Bf16; }

Bf16DotPath gemm_bf16_dot_path() {
  if (!gemm_bf16_dot_active()) return Bf16DotPath::Off;
  return g_allow_amx.load(std::memory_order_relaxed) && amx_bf16_usable() ? Bf16DotPath::Amx : Bf16DotPath::Vdpbf16ps;
}

const char* bf16_dot_path_name(Bf16DotPath path) {
  switch (path) {
    case Bf16DotPath::Off: return "off";
    case Bf16DotPath::Vdpbf16ps: return "vdpbf16ps";
    case Bf16DotPath::Amx: return "amx";
  }
  return "unknown";
}

void gemm(const float* x, int64_t m, const PackedWeight& w, float* y, const float* bias, bool accumulate) {
  const int64_t n = w.rows(), k = w.cols();
  if (m <= 0 || n <= 0) return;
  if (w.dtype() == WeightDType::Bf16 && gemm_bf16_dot_path() == Bf16DotPath::Amx)
    return gemm_amx_bf16(x, m, w, y, bias, accumulate);
  Job job;
  job.tiles = select_tiles(w.dtype());
  job.w = &w;
  job.y = y;
  job.bias = bias;
  job.accumulate = accumulate;
  job.m = m;
  job.n = n;
  job.kx = w.dtype() == WeightDType::Bf16 ? (k + 1) / 2 * 2 : k;
  const int mr = job.tiles->max_rows;
  job.tile_bytes = mr * job.kx * job.tiles->x_bytes_per_k;
  job.row_tiles = ceil_div(m, mr);
  job.panels = w.panels();

  // Pack x, tile by tile.
  uint8_t* xp = thread_scratch<struct PackedX>(static_cast<size_t>(job.row_tiles * job.tile_bytes));
  job.xp = xp;
  auto pack = [&](int64_t t, int) {
    job.tiles->pack_x(x + t * mr * k, k, job.rows_of(t), k, job.kx, xp + t * job.tile_bytes);
  };
  const bool serial = pool_threads() == 1 || static_cast<double>(m) * n * k < kSerialMacs;
  if (!serial && m * k >= kParallelPackElements) {
    parallel_for(job.row_tiles, pack);
  } else {
    for (int64_t t = 0; t < job.row_tiles; ++t) pack(t, 0);
  }

  // Blocks: rows first (bounded so x chunks stay in L2), then panels until every thread has several tasks.
  const int64_t row_blocks_min = ceil_div(job.row_tiles * mr, kBlockRowsTarget);
  job.tiles_per_block = ceil_div(job.row_tiles, row_blocks_min);
  const int64_t row_blocks = ceil_div(job.row_tiles, job.tiles_per_block);
  job.panels_per_block = panels_per_block(job.panels, row_blocks, serial ? 1 : pool_threads(), kMaxPanelsPerBlock,
                                          kTasksPerThread);
  job.col_blocks = ceil_div(job.panels, job.panels_per_block);
  job.panel_outer = job.tiles_per_block * mr * job.kx * job.tiles->x_bytes_per_k <= kPanelOuterXBytes;

  if (serial) {
    for (int64_t b = 0; b < row_blocks * job.col_blocks; ++b) job.run_block(b);
  } else {
    parallel_for(row_blocks * job.col_blocks, [&](int64_t block, int) { job.run_block(block); });
  }
}

}  // namespace loraplex
