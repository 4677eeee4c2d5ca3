// The LoRA shrink on AMX tiles (semantics in lora_amx.h) for a block of up to 16 rows: x^T is packed once per
// block as the B operand ([16 k pairs][16 rows][2] bf16 per 32 k), so A's rows are tile-loaded where the bank
// keeps them, and every (module, 16-rank tile) of the call is its own C tile (h^T), up to four chains at once.
// (The expand stays on the row kernels: at rank 16 it is bound by reading and writing y, which tiles do not
// change; measured on AMX it ran 1.3-1.6× slower through the stores and loads around its C tiles.)
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "amx_tiles.h"
#include "cpu_scratch.h"
#include "lora_amx.h"
#include "loraplex/gemm.h"

namespace loraplex {
namespace {

constexpr int kRows = 16;             // rows of a block: the columns of x^T (a B tile) and of h^T (a C tile)
constexpr int64_t kStepK = 32;        // k (or rank) per TDPBF16PS
constexpr int64_t kTileBytes = 1024;  // one 16 × 64-byte tile
// How far ahead each of A's rows is fetched while a shrink streams it (a decode's A comes from memory, 16
// short rows at once: more streams than the hardware prefetchers follow early).
constexpr int64_t kAheadBytes = 512;

}  // namespace

#pragma GCC push_options
#pragma GCC target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")

namespace {

// out row p (64 bytes) = element p of every v[r], r ascending: a 16 × 16 transpose of 32-bit elements.
void store_transposed(const __m512i (&v)[16], uint8_t* out) {
  constexpr __mmask16 all = 0xffff;  // the maskz forms: GCC 12 warns spuriously on the plain shuffles
  constexpr __mmask8 all8 = 0xff;
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_maskz_unpacklo_epi32(all, v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm512_maskz_unpackhi_epi32(all, v[2 * i], v[2 * i + 1]);
  }
  // u[4i + c], 128-bit lane L: element 4L + c of rows 4i .. 4i + 3
  for (int i = 0; i < 4; ++i) {
    u[4 * i] = _mm512_maskz_unpacklo_epi64(all8, t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_maskz_unpackhi_epi64(all8, t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_maskz_unpacklo_epi64(all8, t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_maskz_unpackhi_epi64(all8, t[4 * i + 1], t[4 * i + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i v0 = _mm512_maskz_shuffle_i32x4(all, u[c], u[4 + c], 0x44), v1 = _mm512_maskz_shuffle_i32x4(all, u[c], u[4 + c], 0xee);
    const __m512i v2 = _mm512_maskz_shuffle_i32x4(all, u[8 + c], u[12 + c], 0x44);
    const __m512i v3 = _mm512_maskz_shuffle_i32x4(all, u[8 + c], u[12 + c], 0xee);
    _mm512_store_si512(out + (c) * 64, _mm512_maskz_shuffle_i32x4(all, v0, v2, 0x88));
    _mm512_store_si512(out + (4 + c) * 64, _mm512_maskz_shuffle_i32x4(all, v0, v2, 0xdd));
    _mm512_store_si512(out + (8 + c) * 64, _mm512_maskz_shuffle_i32x4(all, v1, v3, 0x88));
    _mm512_store_si512(out + (12 + c) * 64, _mm512_maskz_shuffle_i32x4(all, v1, v3, 0xdd));
  }
}

// x^T of a block as B tiles, one per 32 k: step s at xt + s KiB, [k pair][row][2]; rows ≥ count and k ≥ K zero.
// One row: step s at xt + 64 s, [k pair][2] (a B tile one column wide).
void pack_xt(const float* const* x, int count, int64_t k, int64_t steps, uint8_t* xt) {
  if (count == 1) {  // a decode row: a one-column B tile, the row's own pairs at a 4-byte stride (64 bytes a step)
    for (int64_t s = 0; s < steps; ++s) _mm512_store_si512(xt + s * 64, amx_bf16_pairs(x[0] + s * kStepK, k - s * kStepK));
    return;
  }
  for (int64_t s = 0; s < steps; ++s) {
    __m512i v[16];
    for (int r = 0; r < kRows; ++r)
      v[r] = r < count ? amx_bf16_pairs(x[r] + s * kStepK, k - s * kStepK) : _mm512_setzero_si512();
    store_transposed(v, xt + s * kTileBytes);
  }
}

// A's tile for ranks [j0, j0 + 16) and k step s, as TDPBF16PS's A operand: A's rows in place, or, where the
// tile would reach past a row's k or past the last rank, a zero-padded copy in `pad`. Sets the tile's stride.
const void* a_tile(const uint16_t* a, int rank, int64_t k, int j0, int64_t s, uint8_t* pad, int64_t* stride) {
  const int jr = std::min(kRows, rank - j0);
  const int64_t k0 = s * kStepK, kv = std::min(kStepK, k - k0);
  const uint16_t* src = a + j0 * k + k0;
  for (int j = 0; j < jr; ++j) _mm_prefetch(reinterpret_cast<const char*>(src + j * k) + kAheadBytes, _MM_HINT_T0);
  if (jr == kRows && kv == kStepK) {
    *stride = k * 2;
    return src;
  }
  const __mmask32 cols = kv >= 32 ? ~0u : (1u << kv) - 1;
  for (int j = 0; j < kRows; ++j)
    _mm512_store_si512(pad + j * 64, _mm512_maskz_loadu_epi16(j < jr ? cols : 0, src + j * k));
  *stride = 64;
  return pad;
}

// One rank tile of one module: its C tile holds h^T [j][r] for ranks [j0, j0 + 16).
struct ShrinkJob {
  int64_t module;
  const uint16_t* a;
  int rank, j0;
};

// Up to 4 jobs at once, each its own C tile (tiles 0-3) over every k step: the chains are independent, so the
// tile unit overlaps them; x^T's step (tile 6) is loaded once for all, A tiles rotate through 4, 5 and 7.
template <int J>
void shrink_jobs(const ShrinkJob* jobs, const uint8_t* xt, int64_t xt_step, int64_t xt_stride, int64_t steps, int64_t k,
                 uint8_t (*pad)[kTileBytes], float (*c)[kRows * kRows]) {
  _tile_zero(0);
  if constexpr (J > 1) _tile_zero(1);
  if constexpr (J > 2) _tile_zero(2);
  if constexpr (J > 3) _tile_zero(3);
  for (int64_t s = 0; s < steps; ++s) {
    _tile_loadd(6, xt + s * xt_step, xt_stride);
    int64_t stride;
    const void* t = a_tile(jobs[0].a, jobs[0].rank, k, jobs[0].j0, s, pad[0], &stride);
    _tile_loadd(4, t, stride);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (J > 1) {
      t = a_tile(jobs[1].a, jobs[1].rank, k, jobs[1].j0, s, pad[1], &stride);
      _tile_loadd(5, t, stride);
      _tile_dpbf16ps(1, 5, 6);
    }
    if constexpr (J > 2) {
      t = a_tile(jobs[2].a, jobs[2].rank, k, jobs[2].j0, s, pad[2], &stride);
      _tile_loadd(7, t, stride);
      _tile_dpbf16ps(2, 7, 6);
    }
    if constexpr (J > 3) {
      t = a_tile(jobs[3].a, jobs[3].rank, k, jobs[3].j0, s, pad[3], &stride);
      _tile_loadd(4, t, stride);
      _tile_dpbf16ps(3, 4, 6);
    }
  }
  _tile_stored(0, c[0], 64);
  if constexpr (J > 1) _tile_stored(1, c[1], 64);
  if constexpr (J > 2) _tile_stored(2, c[2], 64);
  if constexpr (J > 3) _tile_stored(3, c[3], 64);
}

void shrink(const float* const* x, int rows, int64_t k, const LoraAmxShrink* modules, int count) {
  // One row: C and x^T's B tile are one column (4 bytes) wide, so x^T is the row itself (not 16 × its size).
  const bool one = rows == 1;
  AmxTileScope tiles(6, one ? 4 : 64);
  const int64_t steps = (k + kStepK - 1) / kStepK;
  const int64_t xt_step = one ? 64 : kTileBytes, xt_stride = one ? 4 : 64;
  uint8_t* xt = thread_scratch<struct LoraAmxXt>(static_cast<size_t>(steps * xt_step));
  pack_xt(x, rows, k, steps, xt);
  ShrinkJob jobs[4];
  int pending = 0;
  alignas(64) uint8_t pad[4][kTileBytes];
  alignas(64) float c[4][kRows * kRows];
  const auto flush = [&] {
    switch (pending) {
      case 1: shrink_jobs<1>(jobs, xt, xt_step, xt_stride, steps, k, pad, c); break;
      case 2: shrink_jobs<2>(jobs, xt, xt_step, xt_stride, steps, k, pad, c); break;
      case 3: shrink_jobs<3>(jobs, xt, xt_step, xt_stride, steps, k, pad, c); break;
      case 4: shrink_jobs<4>(jobs, xt, xt_step, xt_stride, steps, k, pad, c); break;
      default: return;
    }
    for (int i = 0; i < pending; ++i) {
      const LoraAmxShrink& m = modules[jobs[i].module];
      const int jr = std::min(kRows, m.rank - jobs[i].j0);
      for (int r = 0; r < rows; ++r)
        for (int j = 0; j < jr; ++j) m.h[r * m.ldh + jobs[i].j0 + j] = c[i][j * kRows + r];
    }
    pending = 0;
  };
  for (int o = 0; o < count; ++o)
    for (int j0 = 0; j0 < modules[o].rank; j0 += kRows) {
      jobs[pending++] = {o, modules[o].a, modules[o].rank, j0};
      if (pending == 4) flush();
    }
  flush();
}

}  // namespace
#pragma GCC pop_options

bool lora_amx_applies(const LoraBank& bank) {
  return bank.dtype() == LoraDtype::Bf16 && gemm_bf16_dot_path() == Bf16DotPath::Amx;
}

void lora_amx_shrink(const float* const* x, int rows, int64_t k, const LoraAmxShrink* modules, int count) {
  if (rows > 0 && count > 0) shrink(x, rows, k, modules, count);
}

}  // namespace loraplex
