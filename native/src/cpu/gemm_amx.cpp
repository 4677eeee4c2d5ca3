// AMX-BF16 GEMM for bf16 weights. x is rounded to bf16 once per call into A tiles (16 rows × 32 k, 1 KiB
// each, contiguous per 32 k so a tile load reads one block); B tiles come straight from the packed panels
// ([k/2][32][2]: the pairs of 16 columns are a B tile at stride 128 bytes, two per panel per 32 k); C tiles
// are 16 × 16 f32. One step is 2 A × 2 B → 4 C: 32 rows × one panel, C carried in the tile registers over
// all of k (a block whose A tiles fit in 1 MiB) or over a chunk of k and in an f32 block buffer between chunks
// (stores and loads of f32 are exact, so both give the same bits).
// Measured on the 2-core Xeon here (14336 × 4096, M = 128 / 512): 1.1-1.7 TFLOP/s, 3-5× the f32 FMA peak
// and 37-64 % of the TDPBF16PS peak of the same run (that peak itself reads 1.9-4.5 TFLOP/s run to run).
#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "amx_tiles.h"
#include "cpu_scratch.h"
#include "gemm_amx.h"
#include "gemm_tiles.h"
#include "loraplex/cpu_features.h"
#include "loraplex/thread_pool.h"

namespace loraplex {
namespace {

constexpr int64_t kTileRows = 16;                         // rows of an A or C tile
constexpr int64_t kStepK = 32;                            // k per TDPBF16PS (16 pairs)
constexpr int64_t kATileBytes = kTileRows * kStepK * 2;   // 1 KiB
constexpr int64_t kPanelStepBytes = kStepK * kGemmPanel * 2;  // a panel's 32 k: two B tiles, 2 KiB
constexpr int64_t kPairRowBytes = kGemmPanel * 4;         // one k pair of a panel: the B tiles' stride
constexpr int64_t kChunkSteps = 8;          // 256 k: a panel chunk (16 KiB) stays in L1 across row groups
// A block whose A tiles take at most this runs all of k with C in the tiles (no chunk reloads C); the A tiles
// and the panel then share L2. Measured against 256-k chunks (docs/figures/native-ab.md, both builds in one
// process): M = 32-512 +4-36 %; longer k at 256 rows (2 and 4 MiB of A) was 5-14 % slower whole, so it chunks.
constexpr int64_t kWholeKABytes = 1 << 20;
// Where a row group's A for all of k fits in L1 beside the tiles in flight (2 tiles × steps ≤ 40 KiB: K ≤ 640) and
// a block's many panels fit in L2, each group runs over every panel in turn: A from L1, B from L2, rather than
// panel by panel with A from L2 each time. Measured (both builds in one process, docs/figures/native-ab-amx-groups-
// outer.md): SmolLM2's q|k|v and gate|up (15-16 panels a block) ×1.51 and ×1.10 at M = 512 over 30 layers' weights
// (×1.12 / ×1.10 in an earlier run), ×1.3-2.0 at M = 2048; its o (9 panels) ×0.95; at 1B's K = 2048 the panels
// pass L2 and every group re-reads them from L3 (×0.7-0.8). Those keep panels outer.
constexpr int64_t kGroupAInL1Bytes = 40 << 10;
constexpr int64_t kBlockPanelsInL2Bytes = 1 << 20;
constexpr int64_t kMinPanelsGroupsOuter = 12;
constexpr int64_t kBlockTiles = 16;  // A tiles (16 rows) per row block: weights are read once per 256 rows
constexpr int64_t kMaxPanelsPerBlock = 16;  // C block (256 rows × 512 columns, 512 KiB) stays in L2
constexpr int64_t kTasksPerThread = 2;
constexpr int64_t kParallelPackElements = 1 << 16;  // below this, x is packed by the caller alone
constexpr double kSerialMacs = 1 << 18;             // below this, one thread: waking the pool costs more

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }


}  // namespace

#pragma GCC push_options
#pragma GCC target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")

namespace {

// A tile t of x: rows [16t, 16t + 16) at out[s][r][32] bf16 for each 32-k step s; rows ≥ `rows` and
// k ≥ k_valid are zero (amx_bf16_pairs' rounding).
void pack_a_tile(const float* x, int64_t ldx, int64_t rows, int64_t k_valid, int64_t steps, uint8_t* out) {
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t k0 = s * kStepK;
    uint8_t* o = out + s * kATileBytes;
    for (int64_t r = 0; r < kTileRows; ++r, o += 64)
      _mm512_store_si512(o, r < rows ? amx_bf16_pairs(x + r * ldx + k0, k_valid - k0) : _mm512_setzero_si512());
  }
}

// Where a row group's C tiles live: tile (row tile i, half h) at c + i · down + h · right floats, rows
// `stride` bytes apart (the block buffer, a pair buffer, or y itself).
struct CTiles {
  float* c;
  int64_t right, down, stride;
};

// C (+)= A · B for one row group (G = 1 or 2 A tiles) and one panel over k steps [s0, s1). a: the group's
// first A tile at step 0 (the second is `steps` tiles on). b: the panel at step 0; `last`: its final step
// (a zero-padded copy when K is short). pf: a weight stream to prefetch into L2 (2 KiB a step), or null.
template <int G>
void run_steps(const CTiles& ct, const uint8_t* a, int64_t steps, const uint8_t* b, const uint8_t* last, int64_t s0,
               int64_t s1, const char* pf, bool from_zero) {
  float* const c = ct.c;
  if (from_zero) {
    _tile_zero(0);
    _tile_zero(1);
    if constexpr (G == 2) {
      _tile_zero(2);
      _tile_zero(3);
    }
  } else {
    _tile_loadd(0, c, ct.stride);
    _tile_loadd(1, c + ct.right, ct.stride);
    if constexpr (G == 2) {
      _tile_loadd(2, c + ct.down, ct.stride);
      _tile_loadd(3, c + ct.down + ct.right, ct.stride);
    }
  }
  for (int64_t s = s0; s < s1; ++s) {
    const uint8_t* bs = s == steps - 1 ? last : b + s * kPanelStepBytes;
    if (pf) {
      for (int l = 0; l < kPanelStepBytes; l += 64) _mm_prefetch(pf + l, _MM_HINT_T1);
      pf += kPanelStepBytes;
    }
    _tile_loadd(6, bs, kPairRowBytes);
    _tile_loadd(7, bs + 64, kPairRowBytes);
    _tile_loadd(4, a + s * kATileBytes, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    if constexpr (G == 2) {
      _tile_loadd(5, a + (steps + s) * kATileBytes, 64);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, c, ct.stride);
  _tile_stored(1, c + ct.right, ct.stride);
  if constexpr (G == 2) {
    _tile_stored(2, c + ct.down, ct.stride);
    _tile_stored(3, c + ct.down + ct.right, ct.stride);
  }
}

struct AmxJob {
  const PackedWeight* w;
  const uint8_t* a;  // A tiles: tile t, step s at (t · steps + s) · 1 KiB
  float* y;
  const float* bias;
  bool accumulate;
  int64_t m, n, steps, tail_pairs;  // tail_pairs: k pairs the panels hold in their last step (1..16)
  int64_t row_tiles, panels, tiles_per_block, panels_per_block, col_blocks;

  // The panel's final k step as TDPBF16PS reads it: where the panel ends before the step does, a copy in
  // `tail` with zero pairs after its own (never the next panel's, or no, memory).
  const uint8_t* last_step(const uint8_t* b, uint8_t* tail) const {
    const uint8_t* last = b + (steps - 1) * kPanelStepBytes;
    if (tail_pairs == 16) return last;
    std::memcpy(tail, last, tail_pairs * kPairRowBytes);
    std::memset(tail + tail_pairs * kPairRowBytes, 0, (16 - tail_pairs) * kPairRowBytes);
    return tail;
  }

  void run_block(int64_t block) const {
    const int64_t rb = block / col_blocks, cb = block % col_blocks;
    const int64_t t0 = rb * tiles_per_block, t1 = t0 + tiles_per_block < row_tiles ? t0 + tiles_per_block : row_tiles;
    const int64_t p0 = cb * panels_per_block, p1 = p0 + panels_per_block < panels ? p0 + panels_per_block : panels;
    // One row group, or a block whose A tiles fit in L2 beside a panel: each panel runs its whole k with C
    // in the tiles (decode streams panel after panel). Larger blocks: k in chunks, so a panel chunk stays in
    // L1 while every row group uses it.
    const bool whole_k = steps > 0 && (t1 - t0 <= 2 || (t1 - t0) * steps * kATileBytes <= kWholeKABytes);
    if (whole_k) {
      run_whole_k(t0, t1, p0, p1);
    } else {
      run_chunked(t0, t1, p0, p1);
    }
  }

  // Each row group × panel runs all of k with C in the tiles. Its C tiles load from and store to y itself
  // where they lie inside y and no bias follows (no copy of C at all); else they go through a 32 × 32 buffer.
  // Panels outer (a panel's B stays in L2 while every group uses it), or groups outer where a group's A fits in L1.
  void run_whole_k(int64_t t0, int64_t t1, int64_t p0, int64_t p1) const {
    AmxTileScope tiles;
    alignas(64) uint8_t tail[kPanelStepBytes];
    alignas(64) float pair[2 * kTileRows * kGemmPanel];
    const CTiles buffered{pair, 16, kTileRows * kGemmPanel, kGemmPanel * sizeof(float)};
    // Row group of g A tiles from tile t × panel p. The first group streams each panel from memory, prefetching a
    // little ahead; the others find it in L2. Measured: decode from memory 14 -> 22 GB/s (as vdpbf16ps).
    auto group_panel = [&](int64_t t, int64_t g, int64_t p) {
      const uint8_t* b = static_cast<const uint8_t*>(w->panel(p));
      const uint8_t* last = last_step(b, tail);
      const int64_t j0 = p * kGemmPanel, cols = n - j0 < kGemmPanel ? n - j0 : kGemmPanel;
      const int64_t group_rows = g * kTileRows;
      const int64_t r0 = t * kTileRows, rows = m - r0 < group_rows ? m - r0 : group_rows;
      const bool direct = !bias && cols == kGemmPanel && rows == group_rows;
      float* yt = y + r0 * n + j0;
      if (!direct && accumulate) {
        for (int64_t r = 0; r < group_rows; ++r) {
          float* pr = pair + r * kGemmPanel;
          const int64_t valid = r < rows ? cols : 0;
          if (valid) std::memcpy(pr, yt + r * n, valid * sizeof(float));
          std::memset(pr + valid, 0, (kGemmPanel - valid) * sizeof(float));
        }
      }
      const CTiles ct = direct ? CTiles{yt, 16, kTileRows * n, n * static_cast<int64_t>(sizeof(float))} : buffered;
      const char* pf = t == t0 ? reinterpret_cast<const char*>(b) + kGemmPrefetchBytes : nullptr;
      const uint8_t* at = a + t * steps * kATileBytes;
      if (g == 2) {
        run_steps<2>(ct, at, steps, b, last, 0, steps, pf, !accumulate);
      } else {
        run_steps<1>(ct, at, steps, b, last, 0, steps, pf, !accumulate);
      }
      if (direct) return;
      for (int64_t r = 0; r < rows; ++r) {
        const float* pr = pair + r * kGemmPanel;
        float* yr = yt + r * n;
        if (bias) {
          for (int64_t i = 0; i < cols; ++i) yr[i] = pr[i] + bias[j0 + i];
        } else {
          std::memcpy(yr, pr, cols * sizeof(float));
        }
      }
    };
    const bool groups_outer = t1 - t0 > 2 && 2 * steps * kATileBytes <= kGroupAInL1Bytes &&
                              p1 - p0 >= kMinPanelsGroupsOuter &&
                              (p1 - p0) * steps * kPanelStepBytes <= kBlockPanelsInL2Bytes;
    // Groups of two A tiles (the last may have one), except a block of two tiles (decode, M = 17-32): one group
    // each, the second on the panel the first just brought in. Measured on a decode step's GEMMs from memory:
    // ×1.14-1.20 against one group of two, whose four products a step hold up the stream. Either way every C tile
    // gets the same products in the same order.
    const int64_t per_group = t1 - t0 == 2 ? 1 : 2;
    auto tiles_of = [&](int64_t t) { return t + per_group <= t1 ? per_group : t1 - t; };
    if (groups_outer) {
      for (int64_t t = t0; t < t1; t += per_group)
        for (int64_t p = p0; p < p1; ++p) group_panel(t, tiles_of(t), p);
    } else {
      for (int64_t p = p0; p < p1; ++p)
        for (int64_t t = t0; t < t1; t += per_group) group_panel(t, tiles_of(t), p);
    }
  }

  // k in chunks of kChunkSteps, C between chunks in an f32 block buffer (in L2); also K = 0 (bias or y only).
  void run_chunked(int64_t t0, int64_t t1, int64_t p0, int64_t p1) const {
    const int64_t r0 = t0 * kTileRows, rows = (m < t1 * kTileRows ? m : t1 * kTileRows) - r0;
    const int64_t j0 = p0 * kGemmPanel, cols = (n < p1 * kGemmPanel ? n : p1 * kGemmPanel) - j0;
    // The block's C tile by tile, so a tile load reads 1 KiB in a row (row tile rt, panel q, half h at
    // ((rt · np + q) · 2 + h) · 256 floats): y's values (accumulate) or zero; padding stays zero, dropped.
    const int64_t np = p1 - p0, crows = (t1 - t0) * kTileRows, c_down = np * 2 * kTileRows * 16;
    const size_t c_bytes = static_cast<size_t>(crows * np * kGemmPanel) * sizeof(float);
    float* c = reinterpret_cast<float*>(thread_scratch<struct AmxCBlock>(c_bytes));
    auto segment = [&](int64_t r, int64_t j) {  // row r, columns [j, j + 16) of the block
      return c + (r / kTileRows) * c_down + (j / 16) * kTileRows * 16 + (r % kTileRows) * 16;
    };
    // Without accumulate, the first chunk starts its C tiles from zero and stores every one of them.
    const bool from_zero = !accumulate && steps > 0;
    for (int64_t r = 0; r < (from_zero ? 0 : crows); ++r) {
      for (int64_t j = 0; j < np * kGemmPanel; j += 16) {
        float* cs = segment(r, j);
        const int64_t valid = accumulate && r < rows && j < cols ? (cols - j < 16 ? cols - j : 16) : 0;
        if (valid) std::memcpy(cs, y + (r0 + r) * n + j0 + j, valid * sizeof(float));
        std::memset(cs + valid, 0, (16 - valid) * sizeof(float));
      }
    }
    if (steps > 0) {
      AmxTileScope tiles;
      alignas(64) uint8_t tail[kPanelStepBytes];
      for (int64_t s0 = 0; s0 < steps; s0 += kChunkSteps) {
        const int64_t s1 = s0 + kChunkSteps < steps ? s0 + kChunkSteps : steps;
        for (int64_t p = p0; p < p1; ++p) {
          const uint8_t* b = static_cast<const uint8_t*>(w->panel(p));
          const uint8_t* last = s1 == steps ? last_step(b, tail) : nullptr;  // read only in the last chunk
          // The first row group prefetches the chunk that comes next (the next panel's, or the next k), so
          // memory stays busy while the other groups compute on this one (prefill M = 128 / 512 +10-30 %).
          const int64_t pn = p + 1 < p1 ? p + 1 : p0, sn = p + 1 < p1 ? s0 : s1;
          const char* pf = sn < steps ? static_cast<const char*>(w->panel(pn)) + sn * kPanelStepBytes : nullptr;
          for (int64_t t = t0; t < t1; t += 2) {
            const CTiles ct{c + (t - t0) * c_down + (p - p0) * 2 * kTileRows * 16, kTileRows * 16, c_down, 64};
            const uint8_t* at = a + t * steps * kATileBytes;
            const char* tpf = t == t0 ? pf : nullptr;
            if (t + 1 < t1) {
              run_steps<2>(ct, at, steps, b, last, s0, s1, tpf, from_zero && s0 == 0);
            } else {
              run_steps<1>(ct, at, steps, b, last, s0, s1, tpf, from_zero && s0 == 0);
            }
          }
        }
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      float* yr = y + (r0 + r) * n + j0;
      for (int64_t j = 0; j < cols; j += 16) {
        const float* cs = segment(r, j);
        const int64_t valid = cols - j < 16 ? cols - j : 16;
        if (bias) {
          for (int64_t i = 0; i < valid; ++i) yr[j + i] = cs[i] + bias[j0 + j + i];
        } else {
          std::memcpy(yr + j, cs, valid * sizeof(float));
        }
      }
    }
  }
};

void run_gemm(const float* x, int64_t m, const PackedWeight& w, float* y, const float* bias, bool accumulate) {
  const int64_t n = w.rows(), k = w.cols();
  AmxJob job;
  job.w = &w;
  job.y = y;
  job.bias = bias;
  job.accumulate = accumulate;
  job.m = m;
  job.n = n;
  job.steps = ceil_div(k, kStepK);
  const int64_t pairs = (k + 1) / 2;  // what the packed panels hold
  job.tail_pairs = pairs - (job.steps - 1) * (kStepK / 2);
  job.row_tiles = ceil_div(m, kTileRows);
  job.panels = w.panels();

  const int64_t tile_bytes = job.steps * kATileBytes;
  uint8_t* a = thread_scratch<struct AmxATiles>(static_cast<size_t>(job.row_tiles * tile_bytes));
  job.a = a;
  auto pack = [&](int64_t t, int) {
    const int64_t left = m - t * kTileRows;
    pack_a_tile(x + t * kTileRows * k, k, left < kTileRows ? left : kTileRows, k, job.steps, a + t * tile_bytes);
  };
  const bool serial = pool_threads() == 1 || static_cast<double>(m) * n * k < kSerialMacs;
  if (!serial && m * k >= kParallelPackElements) {
    parallel_for(job.row_tiles, pack);
  } else {
    for (int64_t t = 0; t < job.row_tiles; ++t) pack(t, 0);
  }

  const int64_t row_blocks = ceil_div(job.row_tiles, kBlockTiles);
  job.tiles_per_block = ceil_div(job.row_tiles, row_blocks);
  job.panels_per_block = panels_per_block(job.panels, row_blocks, serial ? 1 : pool_threads(), kMaxPanelsPerBlock,
                                          kTasksPerThread);
  job.col_blocks = ceil_div(job.panels, job.panels_per_block);
  const int64_t blocks = row_blocks * job.col_blocks;
  if (serial) {
    for (int64_t b = 0; b < blocks; ++b) job.run_block(b);
  } else {
    parallel_for(blocks, [&](int64_t block, int) { job.run_block(block); });
  }
}

}  // namespace
#pragma GCC pop_options

bool amx_bf16_usable() {
  // A refusal of the tile state leaves vdpbf16ps in use.
  static const bool usable = cpu_features().amx_bf16 && amx_tile_data_granted();
  return usable;
}

void gemm_amx_bf16(const float* x, int64_t m, const PackedWeight& w, float* y, const float* bias, bool accumulate) {
  if (m <= 0 || w.rows() <= 0) return;
  run_gemm(x, m, w, y, bias, accumulate);
}

}  // namespace loraplex
