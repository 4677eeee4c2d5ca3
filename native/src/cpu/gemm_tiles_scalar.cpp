// Scalar GEMM tiles: the portable fallback (and the reference point of the ISA tests). Plain f32 mul and
// add, no FMA, same per-element chain as the SIMD tiles.
#include <cstdint>
#include <cstring>

#include "gemm_pack_x.h"
#include "gemm_tiles.h"

namespace loraplex {
namespace {

constexpr int kRows = 4;

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    uint32_t e = 113;
    while (!(mant & 0x400u)) {
      mant <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline float bf16_to_f32(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Decodes the panel's 32 weights at step k.
template <WeightDType D>
inline void weights_at(const void* w, int64_t k, float* out) {
  if constexpr (D == WeightDType::F32) {
    std::memcpy(out, static_cast<const float*>(w) + k * kGemmPanel, kGemmPanel * sizeof(float));
  } else if constexpr (D == WeightDType::F16) {
    const uint16_t* p = static_cast<const uint16_t*>(w) + k * kGemmPanel;
    for (int j = 0; j < kGemmPanel; ++j) out[j] = f16_to_f32(p[j]);
  } else {
    const uint16_t* p = static_cast<const uint16_t*>(w) + (k / 2) * 2 * kGemmPanel + (k & 1);
    for (int j = 0; j < kGemmPanel; ++j) out[j] = bf16_to_f32(p[2 * j]);
  }
}

template <WeightDType D, int R>
void tile(const TileArgs& a) {
  const float* x = static_cast<const float*>(a.x);
  float acc[R][kGemmPanel];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < kGemmPanel; ++j) acc[r][j] = a.load_y ? a.y[r * a.ldy + j] : 0.0f;
  float w[kGemmPanel];
  for (int64_t k = 0; k < a.k; ++k) {
    weights_at<D>(a.w, k, w);
    for (int r = 0; r < R; ++r) {
      const float xv = x[k * R + r];
      for (int j = 0; j < kGemmPanel; ++j) acc[r][j] += xv * w[j];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < kGemmPanel; ++j) a.y[r * a.ldy + j] = a.bias ? acc[r][j] + a.bias[j] : acc[r][j];
}

template <WeightDType D>
void widen(const void* w, int64_t k, float* out) {
  for (int64_t i = 0; i < k; ++i) weights_at<D>(w, i, out + i * kGemmPanel);
}

template <WeightDType D>
GemmTiles make_tiles() {
  GemmTiles t{};
  t.max_rows = kRows;
  t.x_bytes_per_k = 4;
  t.pack_x = pack_x_f32;
  t.tile[1] = t.tile_prefetch[1] = tile<D, 1>;
  t.tile[2] = t.tile_prefetch[2] = tile<D, 2>;
  t.tile[3] = t.tile_prefetch[3] = tile<D, 3>;
  t.tile[4] = t.tile_prefetch[4] = tile<D, 4>;
  return t;
}

}  // namespace

const GemmTiles* gemm_tiles_scalar(WeightDType dtype) {
  static const GemmTiles f32 = make_tiles<WeightDType::F32>();
  static const GemmTiles f16 = with_widen(make_tiles<WeightDType::F16>(), widen<WeightDType::F16>, &f32);
  static const GemmTiles bf16 = with_widen(make_tiles<WeightDType::Bf16>(), widen<WeightDType::Bf16>, &f32);
  switch (dtype) {
    case WeightDType::F32: return &f32;
    case WeightDType::F16: return &f16;
    case WeightDType::Bf16: return &bf16;
  }
  return nullptr;
}

}  // namespace loraplex
