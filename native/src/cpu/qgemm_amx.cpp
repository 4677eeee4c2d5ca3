// AMX-INT8 Q4_K GEMM for batches of x rows (prefill): the same integers and the same f32 steps as the VNNI
// kernels (qgemm.h's Semantics), so results equal them bit for bit; only where the products are summed changes.
//
// A super-block's integer sum isum = Σ_j sc_j · Σ_i q4 · qx needs each sub-block's 6-bit scale inside the sum.
// sc · q4 (≤ 945) is no byte, but sc = 8 · sh + sl with sh, sl ≤ 7 makes sh · q4 and sl · q4 (≤ 105) two u8
// weights, so isum = 8 · Σ qx · (sh · q4) + Σ qx · (sl · q4): two TDPBSUD chains over the super-block's 256 k
// (4 steps of 64), then the f32 steps once per super-block as the VNNI kernel does them. A panel of 16 weight
// rows is unpacked that way once per call (8 KiB per super-block, kept in L2) and x runs over it in blocks of
// 128 rows, super-block by super-block, two 16-row tiles at a time; below kQAmxMinRows rows the VNNI kernels
// stream W once instead (qgemm.cpp chooses).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "amx_tiles.h"
#include "cpu_scratch.h"
#include "loraplex/cpu_features.h"
#include "loraplex/thread_pool.h"
#include "qgemm_amx.h"
#include "qgemm_kernels.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,amx-tile,amx-int8")
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace loraplex {
namespace {

constexpr int64_t kTileBytes = 1024;                 // 16 rows × 64 bytes
constexpr int64_t kMetaBytes = 2 * 16 * 4 + 4 * 64;  // d, dmin [16] f32; m pairs [4 t][16] int32
constexpr int64_t kSuperBytes = 8 * kTileBytes + kMetaBytes;  // 4 steps of 64 k × (sh, sl)
constexpr int64_t kBlockRows = 128;  // x rows a panel runs super-block by super-block: acc and mins 16 KiB

// 32 bytes of group g at `offset` into its qs (or zeros past the last group) beside the same of g + 1.
inline __m512i two_groups(const QuantWeight& w, int64_t g, int64_t offset) {
  const auto half = [&](int64_t gg) {
    return gg < w.groups() ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs(gg) + offset))
                           : _mm256_setzero_si256();
  };
  return _mm512_inserti64x4(_mm512_castsi256_si512(half(g)), half(g + 1), 1);
}

// 16 bytes of sm (group g, then g + 1) widened to 32 words: the doubled sc bytes of 16 columns, or m pairs.
inline __m512i two_groups_sm(const QuantWeight& w, int64_t g, int64_t offset) {
  const auto half = [&](int64_t gg) {
    return gg < w.groups() ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.sm(gg) + offset)) : _mm_setzero_si128();
  };
  return _mm512_cvtepu8_epi16(_mm256_inserti128_si256(_mm256_castsi128_si256(half(g)), half(g + 1), 1));
}

// Panel (groups g, g + 1: 16 weight rows) unpacked: per super-block B at out + B · kSuperBytes, the B tile of
// step p and part at (2p + part) KiB: rows r < 8 the low nibbles of quad r (k = 64p + 4r + i, sub-block 2p),
// rows 8 + r the high ones (k = 64p + 32 + 4r + i, sub-block 2p + 1); column c's 4 bytes sh · q4 (part 0) or
// sl · q4 (part 1). Each byte product ≤ 105, so one 16-bit multiply of a byte pair never carries into the high
// byte. Then d and dmin of the 16 rows, and the m pairs (m_2t, m_2t+1) as int16 pairs for vpdpwssd.
void unpack_panel(const QuantWeight& w, int64_t g, uint8_t* out) {
  const int64_t supers = w.cols() / kQ4KBlock;
  const __m512i low4 = _mm512_set1_epi8(0x0f), seven = _mm512_set1_epi16(7);
  for (int64_t B = 0; B < supers; ++B) {
    uint8_t* sb = out + B * kSuperBytes;
    for (int p = 0; p < 4; ++p) {
      const __m512i sc_lo = two_groups_sm(w, g, B * kQ4KSmBytes + 2 * p * 16);
      const __m512i sc_hi = two_groups_sm(w, g, B * kQ4KSmBytes + (2 * p + 1) * 16);
      const __m512i sh_lo = _mm512_srli_epi16(sc_lo, 3), sl_lo = _mm512_and_si512(sc_lo, seven);
      const __m512i sh_hi = _mm512_srli_epi16(sc_hi, 3), sl_hi = _mm512_and_si512(sc_hi, seven);
      uint8_t* t_sh = sb + (2 * p) * kTileBytes;
      uint8_t* t_sl = sb + (2 * p + 1) * kTileBytes;
      for (int r = 0; r < 8; ++r) {
        const __m512i v = two_groups(w, g, B * 1024 + p * 256 + r * 32);
        const __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
        _mm512_store_si512(t_sh + r * 64, _mm512_mullo_epi16(lo, sh_lo));
        _mm512_store_si512(t_sl + r * 64, _mm512_mullo_epi16(lo, sl_lo));
        _mm512_store_si512(t_sh + (8 + r) * 64, _mm512_mullo_epi16(hi, sh_hi));
        _mm512_store_si512(t_sl + (8 + r) * 64, _mm512_mullo_epi16(hi, sl_hi));
      }
    }
    float* dm = reinterpret_cast<float*>(sb + 8 * kTileBytes);
    int32_t* mp = reinterpret_cast<int32_t*>(sb + 8 * kTileBytes + 128);
    for (int c = 0; c < 16; ++c) {
      const int64_t gg = g + c / 8;
      const bool real = gg < w.groups();
      dm[c] = real ? w.scales(gg)[B * 16 + c % 8] : 0.0f;
      dm[16 + c] = real ? w.scales(gg)[B * 16 + 8 + c % 8] : 0.0f;
    }
    for (int t = 0; t < 4; ++t)
      _mm512_store_si512(mp + t * 16, two_groups_sm(w, g, B * kQ4KSmBytes + 128 + t * 16));
  }
}

// x's int8 rows as A tiles: tile t (rows 16t …, zero past m), 64 k from 64s at a + (t · K/64 + s) KiB, so a
// tile load reads one contiguous KiB (rows K apart would touch 16 lines on up to 16 pages).
void pack_a_tiles(const QuantizedX& qx, int64_t m, int8_t* a) {
  const int64_t chunks = qx.k / 64, tiles = (m + 15) / 16;
  parallel_for(tiles, [&](int64_t t, int) {
    for (int64_t s = 0; s < chunks; ++s) {
      int8_t* tile = a + (t * chunks + s) * kTileBytes;
      for (int64_t r = 0; r < 16; ++r) {
        const int64_t row = 16 * t + r;
        if (row < m) std::memcpy(tile + r * 64, qx.qs_row(row) + s * 64, 64);
        else std::memset(tile + r * 64, 0, 64);
      }
    }
  });
}

// Super-block B of x rows 16t … 16t + 31 (the second tile only when `two`) against the unpacked super-block sb:
// C tiles 0, 1 (the first tile's rows: sh, sl parts) and 2, 3 (the second's), stored to c [4][16][16].
template <bool two, typename Between>
inline void super_block_tiles(const int8_t* a_tiles, int64_t chunks, int64_t t, int64_t B, const uint8_t* sb,
                              int32_t* c, Between&& between) {
  const int8_t* a = a_tiles + (t * chunks + B * 4) * kTileBytes;
  _tile_zero(0);
  _tile_zero(1);
  if constexpr (two) {
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int p = 0; p < 4; ++p) {
    _tile_loadd(4, a + p * kTileBytes, 64);
    _tile_loadd(6, sb + 2 * p * kTileBytes, 64);
    _tile_loadd(7, sb + (2 * p + 1) * kTileBytes, 64);
    _tile_dpbsud(0, 4, 6);
    _tile_dpbsud(1, 4, 7);
    if constexpr (two) {
      _tile_loadd(5, a + (chunks + p) * kTileBytes, 64);
      _tile_dpbsud(2, 5, 6);
      _tile_dpbsud(3, 5, 7);
    }
    between(p);
  }
  _tile_stored(0, c, 64);
  _tile_stored(1, c + 256, 64);
  if constexpr (two) {
    _tile_stored(2, c + 512, 64);
    _tile_stored(3, c + 768, 64);
  }
}

// The f32 steps of super-block B for `rows` x rows from r0, their C tiles in c: acc and mins (rows from the
// block's first, 16 columns each) take isum · (d · dx) and msum · (dmin · dx), as the VNNI kernel adds them.
inline void super_block_steps(const QuantizedX& qx, int64_t r0, int row_begin, int row_end, int64_t B,
                              const uint8_t* sb, const int32_t* c, float* acc, float* mins) {
  const float* dm = reinterpret_cast<const float*>(sb + 8 * kTileBytes);
  const int32_t* mp = reinterpret_cast<const int32_t*>(sb + 8 * kTileBytes + 128);
  const __m512 vd = _mm512_load_ps(dm), vmin = _mm512_load_ps(dm + 16);
  const __m512i m0 = _mm512_load_si512(mp), m1 = _mm512_load_si512(mp + 16), m2 = _mm512_load_si512(mp + 32),
                m3 = _mm512_load_si512(mp + 48);
  // Row strides once (QuantizedX's row accessors divide by the block sizes).
  const int64_t bsum_stride = qx.k / 32, d_stride = qx.k / kQ4KBlock;
  const int16_t* bsum = qx.bsum_row(r0) + B * 8;
  const float* d = qx.d_row(r0) + B;
  for (int r = row_begin; r < row_end; ++r) {
    const int32_t* ct = c + (r / 16) * 512 + (r % 16) * 16;
    const __m512i isum = _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512(ct), 3), _mm512_load_si512(ct + 256));
    const int32_t* bs = reinterpret_cast<const int32_t*>(bsum + r * bsum_stride);
    __m512i msum = _mm512_dpwssd_epi32(_mm512_setzero_si512(), m0, _mm512_set1_epi32(bs[0]));
    msum = _mm512_dpwssd_epi32(msum, m1, _mm512_set1_epi32(bs[1]));
    msum = _mm512_dpwssd_epi32(msum, m2, _mm512_set1_epi32(bs[2]));
    msum = _mm512_dpwssd_epi32(msum, m3, _mm512_set1_epi32(bs[3]));
    const __m512 dx = _mm512_set1_ps(d[r * d_stride]);
    float* ar = acc + r * 16;
    float* mr = mins + r * 16;
    const __m512 isum_f = _mm512_mul_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(vd, dx));
    const __m512 msum_f = _mm512_mul_ps(_mm512_cvtepi32_ps(msum), _mm512_mul_ps(vmin, dx));
    _mm512_store_ps(ar, _mm512_add_ps(_mm512_load_ps(ar), isum_f));
    _mm512_store_ps(mr, _mm512_add_ps(_mm512_load_ps(mr), msum_f));
  }
}

// x rows [r0, r0 + rows) (rows ≤ kBlockRows) against one unpacked panel, super-block by super-block so each
// super-block's 8 KiB of B tiles stays in L1 across the row tiles. The f32 steps of one pair of row tiles run
// while the tiles work on the next (their C goes to the other half of cbuf). Writes columns n0 … n0 + 15.
void run_block(const QuantizedX& qx, const int8_t* a_tiles, int64_t r0, int64_t rows, const uint8_t* panel,
               int64_t supers, int64_t n0, int64_t n, float* y, const float* bias, bool accumulate, int32_t* cbuf,
               float* acc) {
  float* mins = acc + kBlockRows * 16;
  std::memset(acc, 0, 2 * kBlockRows * 16 * sizeof(float));
  struct Pending {
    int64_t t, B;  // first row (from r0) and super-block of C tiles waiting in cbuf's half `half`
    int rows, half;
  };
  Pending pending{0, 0, 0, 0};
  bool waiting = false;
  int next_half = 0;
  for (int64_t B = 0; B < supers; ++B) {
    const uint8_t* sb = panel + B * kSuperBytes;
    for (int64_t t = 0; t < rows; t += 32) {
      int32_t* c = cbuf + next_half * 1024;
      const int tile_rows = static_cast<int>(rows - t < 32 ? rows - t : 32);
      // The waiting f32 steps, a quarter after each 64-k step of the tiles, so the vector units work while
      // the tile unit does.
      const auto steps = [&](int p) {
        if (!waiting) return;
        const int quarter = (pending.rows + 3) / 4;
        const int begin = p * quarter, end = begin + quarter < pending.rows ? begin + quarter : pending.rows;
        super_block_steps(qx, r0 + pending.t, begin, end, pending.B, panel + pending.B * kSuperBytes,
                          cbuf + pending.half * 1024, acc + pending.t * 16, mins + pending.t * 16);
      };
      if (tile_rows > 16) super_block_tiles<true>(a_tiles, supers * 4, (r0 + t) / 16, B, sb, c, steps);
      else super_block_tiles<false>(a_tiles, supers * 4, (r0 + t) / 16, B, sb, c, steps);
      pending = {t, B, tile_rows, next_half};
      waiting = true;
      next_half ^= 1;
    }
  }
  if (waiting)
    super_block_steps(qx, r0 + pending.t, 0, pending.rows, pending.B, panel + pending.B * kSuperBytes,
                      cbuf + pending.half * 1024, acc + pending.t * 16, mins + pending.t * 16);
  for (int64_t r = 0; r < rows; ++r) {
    float* yr = y + (r0 + r) * n;
    for (int col = 0; col < 16 && n0 + col < n; ++col)
      store_output(yr + n0 + col, acc[r * 16 + col] - mins[r * 16 + col], bias, n0 + col, accumulate);
  }
}

}  // namespace

void qgemm_amx_q4k(const QuantizedX& qx, int64_t m, const QuantWeight& w, float* y, const float* bias,
                   bool accumulate) {
  const int64_t supers = w.cols() / kQ4KBlock, n = w.rows();
  const int64_t panels = (w.groups() + 1) / 2;
  auto* a_tiles = reinterpret_cast<int8_t*>(
      thread_scratch<struct QgemmAmxATiles>(static_cast<size_t>((m + 15) / 16 * supers * 4 * kTileBytes)));
  pack_a_tiles(qx, m, a_tiles);
  auto task = [&](int64_t panel, int) {
    uint8_t* unpacked = thread_scratch<struct QgemmAmxPanel>(static_cast<size_t>(supers * kSuperBytes));
    auto* cbuf = reinterpret_cast<int32_t*>(thread_scratch<struct QgemmAmxC>(8 * kTileBytes + 2 * kBlockRows * 16 * 4));
    auto* acc = reinterpret_cast<float*>(reinterpret_cast<uint8_t*>(cbuf) + 8 * kTileBytes);
    unpack_panel(w, panel * 2, unpacked);
    AmxTileScope tiles;
    for (int64_t r0 = 0; r0 < m; r0 += kBlockRows)
      run_block(qx, a_tiles, r0, m - r0 < kBlockRows ? m - r0 : kBlockRows, unpacked, supers, panel * 2 * kQGroup, n,
                y, bias, accumulate, cbuf, acc);
  };
  if (pool_threads() == 1) {
    for (int64_t p = 0; p < panels; ++p) task(p, 0);
  } else {
    parallel_for(panels, task);
  }
}

}  // namespace loraplex

#pragma GCC pop_options

namespace loraplex {

bool amx_int8_usable() {
  // The tile state is granted per process (gemm_amx.cpp asks the same way; a second request is harmless).
  static const bool usable = cpu_features().amx_int8 && amx_tile_data_granted();
  return usable;
}

}  // namespace loraplex
