// Machine peaks (see peak.h): FMA, vdpbf16ps and AMX TDPBF16PS throughput on register-resident chains, the f32
// GEMM's register tile on L1-resident operands, and memory bandwidth over a buffer much larger than the caches, all
// threads at once.
#include "loraplex/peak.h"

#include <immintrin.h>
#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "gemm_amx.h"
#include "gemm_tiles.h"
#include "loraplex/cpu_features.h"
#include "loraplex/thread_pool.h"

// GCC 12 flags the deliberately undefined vector inside _mm512_reduce_add_ps.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace loraplex {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::atomic<uint64_t> g_sink{0};  // keeps results alive

void keep(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  g_sink.fetch_add(bits, std::memory_order_relaxed);
}

// Each kernel runs `iters` rounds of `kChains` independent accumulator updates; returns FLOP done.
constexpr int kChains = 24;

__attribute__((target("avx512f,fma"))) double fma_avx512(int64_t iters) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 24
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  keep(_mm512_reduce_add_ps(s));
  return static_cast<double>(iters) * kChains * 16 * 2;
}

__attribute__((target("avx2,fma"))) double fma_avx2(int64_t iters) {
  constexpr int kYmmChains = 12;
  __m256 acc[kYmmChains];
  for (int i = 0; i < kYmmChains; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kYmmChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  __m256 s = acc[0];
  for (int i = 1; i < kYmmChains; ++i) s = _mm256_add_ps(s, acc[i]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  keep(lanes[0] + lanes[7]);
  return static_cast<double>(iters) * kYmmChains * 8 * 2;
}

double fma_scalar(int64_t iters) {
  float acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = static_cast<float>(i);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * 0.999999f + 1e-6f;
  float s = 0;
  for (int i = 0; i < kChains; ++i) s += acc[i];
  keep(s);
  return static_cast<double>(iters) * kChains * 2;
}

__attribute__((target("avx512f,avx512bf16"))) double dot_bf16(int64_t iters) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80);  // (1.0, 1.0)
  const __m512bh b = (__m512bh)_mm512_set1_epi32(0x33803380);  // (2^-24, 2^-24)
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 24
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  keep(_mm512_reduce_add_ps(s));
  return static_cast<double>(iters) * kChains * 16 * 4;
}

}  // namespace

#pragma GCC push_options
#pragma GCC target("amx-tile,amx-bf16")

namespace {

// TDPBF16PS on six independent C tiles (16 × 16 × 32 MACs: 16384 FLOP each) from one A and one B tile.
double dot_amx(int64_t iters) {
  struct {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
  } cfg{};
  cfg.palette = 1;
  for (int i = 0; i < 8; ++i) cfg.colsb[i] = 64, cfg.rows[i] = 16;
  _tile_loadconfig(&cfg);
  alignas(64) uint16_t a[16 * 32], b[16 * 32];
  alignas(64) float c[16 * 16];
  for (int i = 0; i < 16 * 32; ++i) a[i] = 0x3f80, b[i] = 0x3380;  // 1.0 and 2^-24, as dot_bf16
  _tile_loadd(6, a, 64);
  _tile_loadd(7, b, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_zero(4);
  _tile_zero(5);
  for (int64_t it = 0; it < iters; ++it) {
    _tile_dpbf16ps(0, 6, 7);
    _tile_dpbf16ps(1, 6, 7);
    _tile_dpbf16ps(2, 6, 7);
    _tile_dpbf16ps(3, 6, 7);
    _tile_dpbf16ps(4, 6, 7);
    _tile_dpbf16ps(5, 6, 7);
  }
  _tile_stored(5, c, 64);
  _tile_release();
  keep(c[0]);
  return static_cast<double>(iters) * 6 * 16 * 16 * 32 * 2;
}

}  // namespace
#pragma GCC pop_options

namespace {

// Runs `kernel` on every thread for about `seconds`: calibrates on one thread, then times all at once.
PeakFigure compute_peak(double (*kernel)(int64_t), double seconds, const char* isa) {
  int64_t iters = 1 << 14;
  for (;;) {
    const auto t0 = Clock::now();
    kernel(iters);
    const double dt = seconds_since(t0);
    if (dt > 0.02) {
      iters = static_cast<int64_t>(iters * (seconds / 3) / dt) + 1;
      break;
    }
    iters *= 4;
  }
  const int threads = pool_threads();
  double best = 0;
  for (int pass = 0; pass < 3; ++pass) {
    std::atomic<int64_t> flop_bits{0};
    const auto t0 = Clock::now();
    parallel_for(threads, [&](int64_t, int) { flop_bits.fetch_add(static_cast<int64_t>(kernel(iters))); });
    const double gflops = static_cast<double>(flop_bits.load()) / seconds_since(t0) / 1e9;
    if (gflops > best) best = gflops;
  }
  return {best, isa};
}

// A large buffer on huge pages, first touched by all threads (so its pages are spread like the reads).
struct Buffer {
  explicit Buffer(size_t bytes) : bytes(bytes) {
    constexpr size_t kAlign = size_t{2} << 20;
    const size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
    void* p = nullptr;
    if (posix_memalign(&p, kAlign, rounded) != 0) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    madvise(p, rounded, MADV_HUGEPAGE);
#endif
    data = static_cast<uint8_t*>(p);
    parallel_for(chunks(), [&](int64_t c, int) { std::memset(data + c * kChunk, 1, chunk_bytes(c)); });
  }
  ~Buffer() { std::free(data); }
  static constexpr size_t kChunk = size_t{4} << 20;
  int64_t chunks() const { return static_cast<int64_t>((bytes + kChunk - 1) / kChunk); }
  size_t chunk_bytes(int64_t c) const {
    const size_t left = bytes - static_cast<size_t>(c) * kChunk;
    return left < kChunk ? left : kChunk;
  }
  size_t bytes;
  uint8_t* data;
};

__attribute__((target("avx512f"))) float sum_avx512(const uint8_t* p, size_t bytes) {
  __m512 s[8];
  for (auto& v : s) v = _mm512_setzero_ps();
  const float* f = reinterpret_cast<const float*>(p);
  const size_t n = bytes / 4;
  for (size_t i = 0; i + 128 <= n; i += 128)
    for (int j = 0; j < 8; ++j) s[j] = _mm512_add_ps(s[j], _mm512_load_ps(f + i + 16 * j));
  for (int j = 1; j < 8; ++j) s[0] = _mm512_add_ps(s[0], s[j]);
  return _mm512_reduce_add_ps(s[0]);
}

__attribute__((target("avx2"))) float sum_avx2(const uint8_t* p, size_t bytes) {
  __m256 s[8];
  for (auto& v : s) v = _mm256_setzero_ps();
  const float* f = reinterpret_cast<const float*>(p);
  const size_t n = bytes / 4;
  for (size_t i = 0; i + 64 <= n; i += 64)
    for (int j = 0; j < 8; ++j) s[j] = _mm256_add_ps(s[j], _mm256_load_ps(f + i + 8 * j));
  for (int j = 1; j < 8; ++j) s[0] = _mm256_add_ps(s[0], s[j]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s[0]);
  return lanes[0] + lanes[7];
}

float sum_scalar(const uint8_t* p, size_t bytes) {
  const uint64_t* q = reinterpret_cast<const uint64_t*>(p);
  uint64_t s[4] = {0, 0, 0, 0};
  for (size_t i = 0; i + 4 <= bytes / 8; i += 4)
    for (int j = 0; j < 4; ++j) s[j] += q[i + j];
  return static_cast<float>(s[0] + s[1] + s[2] + s[3]);
}

// The active ISA's f32 GEMM tile (its most rows × one 32-column panel) over k = 256, on this thread's own x, panel
// and y: 12 + 32 KiB of operands and the tile's y, which stay in L1 from one call to the next.
constexpr int64_t kTileK = 256;

const GemmTiles* f32_tiles() {
  const Isa isa = active_isa();
  if (isa >= Isa::Avx512) return gemm_tiles_avx512(WeightDType::F32);
  if (isa == Isa::Avx2) return gemm_tiles_avx2(WeightDType::F32);
  return gemm_tiles_scalar(WeightDType::F32);
}

double f32_tile_in_l1(int64_t iters) {
  const GemmTiles* tiles = f32_tiles();
  const int rows = tiles->max_rows;
  alignas(64) static thread_local float x[kTileK * kGemmMaxRows];
  alignas(64) static thread_local float w[kTileK * kGemmPanel];
  alignas(64) static thread_local float y[kGemmMaxRows * kGemmPanel];
  for (int64_t i = 0; i < kTileK * rows; ++i) x[i] = 1e-3f * static_cast<float>(i % 7);
  for (int64_t i = 0; i < kTileK * kGemmPanel; ++i) w[i] = 1e-3f * static_cast<float>(i % 5);
  TileArgs a{};
  a.x = x;
  a.w = w;
  a.k = kTileK;
  a.y = y;
  a.ldy = kGemmPanel;
  a.load_y = false;
  for (int64_t it = 0; it < iters; ++it) tiles->tile[rows](a);
  keep(y[0]);
  return static_cast<double>(iters) * 2 * rows * kGemmPanel * kTileK;
}

}  // namespace

PeakFigure measure_f32_tile_in_l1(double seconds) {
  const Isa isa = active_isa();
  return compute_peak(f32_tile_in_l1, seconds, isa >= Isa::Avx512 ? "avx512" : isa == Isa::Avx2 ? "avx2" : "scalar");
}

PeakFigure measure_fma_peak(double seconds) {
  const Isa isa = active_isa();
  if (isa >= Isa::Avx512) return compute_peak(fma_avx512, seconds, "avx512");
  if (isa == Isa::Avx2) return compute_peak(fma_avx2, seconds, "avx2");
  return compute_peak(fma_scalar, seconds, "scalar");
}

PeakFigure measure_bf16_dot_peak(double seconds) {
  if (active_isa() != Isa::Avx512Bf16) return {0, "none"};
  return compute_peak(dot_bf16, seconds, "avx512bf16");
}

PeakFigure measure_amx_bf16_peak(double seconds) {
  if (active_isa() != Isa::Avx512Bf16 || !amx_bf16_usable()) return {0, "none"};
  return compute_peak(dot_amx, seconds, "amx-bf16");
}

PeakFigure measure_read_bandwidth(size_t bytes, int passes) {
  const Isa isa = active_isa();
  float (*sum)(const uint8_t*, size_t) = isa >= Isa::Avx512 ? sum_avx512 : isa == Isa::Avx2 ? sum_avx2 : sum_scalar;
  Buffer buf(bytes);
  double best = 0;
  for (int pass = 0; pass < passes; ++pass) {
    const auto t0 = Clock::now();
    parallel_for(buf.chunks(), [&](int64_t c, int) { keep(sum(buf.data + c * Buffer::kChunk, buf.chunk_bytes(c))); });
    const double gbs = static_cast<double>(bytes) / seconds_since(t0) / 1e9;
    if (gbs > best) best = gbs;
  }
  return {best, isa_name(isa)};
}

PeakFigure measure_copy_bandwidth(size_t bytes, int passes) {
  Buffer src(bytes), dst(bytes);
  double best = 0;
  for (int pass = 0; pass < passes; ++pass) {
    const auto t0 = Clock::now();
    parallel_for(src.chunks(), [&](int64_t c, int) {
      std::memcpy(dst.data + c * Buffer::kChunk, src.data + c * Buffer::kChunk, src.chunk_bytes(c));
    });
    const double gbs = 2.0 * static_cast<double>(bytes) / seconds_since(t0) / 1e9;
    if (gbs > best) best = gbs;
  }
  return {best, "memcpy"};
}

}  // namespace loraplex
