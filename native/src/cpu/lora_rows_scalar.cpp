// Portable LoRA row kernels (no SIMD intrinsics). One row at a time through one function each, so every
// caller runs the same machine code whatever the compiler does with contraction or vectorization.
#include <cstring>

#include "lora_rows.h"

namespace loraplex {
namespace {

constexpr int64_t kColumnTile = 256;

inline float widen(const float* p) { return *p; }
inline float widen(const uint16_t* p) {
  const uint32_t wide = static_cast<uint32_t>(*p) << 16;
  float v;
  std::memcpy(&v, &wide, sizeof v);
  return v;
}
inline float widen(const Half* p) { return f16_to_f32(p); }
inline float widen(const int8_t* p) { return static_cast<float>(*p); }

// Semantics: h[r][j] = Σ_k x[r][k] · a[j, k], k ascending (W: float or int8, or bf16 / f16 bits widened).
template <typename W>
void shrink_scalar(const float* const* x, int rows, const StoredAs<W>* a_stored, int rank, int64_t k,
                   float* const* h) {
  const W* a = as_weights<W>(a_stored);
  for (int r = 0; r < rows; ++r) {
    const float* xr = x[r];
    for (int j = 0; j < rank; ++j) {
      const W* aj = a + j * k;
      float acc = 0.0f;
      for (int64_t i = 0; i < k; ++i) acc += xr[i] * widen(aj + i);
      h[r][j] = acc;
    }
  }
}

// Semantics: y[r][n] += c_n · Σ_j h[r][j] · bt[j, n], j ascending; c_n = column_scale[n], or scale without one.
template <typename W>
void expand_scalar(const float* const* h, int rows, const StoredAs<W>* bt_stored, int rank, int64_t ldb,
                   int64_t n_begin, int64_t n_end, float scale, const float* column_scale, float* const* y) {
  const W* bt = as_weights<W>(bt_stored);
  float acc[kColumnTile];
  for (int r = 0; r < rows; ++r) {
    for (int64_t n0 = n_begin; n0 < n_end; n0 += kColumnTile) {
      const int64_t width = n_end - n0 < kColumnTile ? n_end - n0 : kColumnTile;
      for (int64_t c = 0; c < width; ++c) acc[c] = 0.0f;
      for (int j = 0; j < rank; ++j) {
        const float hj = h[r][j];
        const W* bj = bt + j * ldb + n0;
        for (int64_t c = 0; c < width; ++c) acc[c] += hj * widen(bj + c);
      }
      float* yr = y[r] + n0;
      if (column_scale) {
        const float* cs = column_scale + n0;
        for (int64_t c = 0; c < width; ++c) yr[c] += cs[c] * acc[c];
      } else {
        for (int64_t c = 0; c < width; ++c) yr[c] += scale * acc[c];
      }
    }
  }
}

}  // namespace

const LoraRowKernels& lora_rows_scalar() {
  static const LoraRowKernels kernels{shrink_scalar<float>, expand_scalar<float>,    shrink_scalar<uint16_t>,
                                      expand_scalar<uint16_t>, shrink_scalar<Half>, expand_scalar<Half>,
                                      shrink_scalar<int8_t>,  expand_scalar<int8_t>};
  return kernels;
}

}  // namespace loraplex
