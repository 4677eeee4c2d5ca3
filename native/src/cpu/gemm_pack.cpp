// PackedWeight: W [N, K] re-laid out once into 32-column panels (layout in gemm.h), in 64-byte aligned
// memory (2 MiB aligned, on transparent huge pages, when large: decode streams it end to end).
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "loraplex/gemm.h"
#include "loraplex/thread_pool.h"

namespace loraplex {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;

void* allocate(size_t bytes) {
  const size_t align = bytes >= 2 * kHugePage ? kHugePage : 64;
  const size_t rounded = (bytes + align - 1) / align * align;
  void* p = nullptr;
  if (posix_memalign(&p, align, rounded == 0 ? align : rounded) != 0) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  if (align == kHugePage) madvise(p, rounded, MADV_HUGEPAGE);
#endif
  return p;
}

// Panel p, f32/f16: dst[k·32 + j] = W[p·32 + j, k]   (T = float or uint16_t, a plain copy of the bits)
template <typename T>
void pack_panel_plain(const T* src, int64_t n_rows, int64_t k, int64_t p, T* dst) {
  constexpr int64_t kBlock = 64;  // k per block: the block's 32 × 64 outputs stay in L1
  for (int64_t k0 = 0; k0 < k; k0 += kBlock) {
    const int64_t k1 = k0 + kBlock < k ? k0 + kBlock : k;
    for (int j = 0; j < kGemmPanel; ++j) {
      const int64_t n = p * kGemmPanel + j;
      const T* row = n < n_rows ? src + n * k : nullptr;
      for (int64_t kk = k0; kk < k1; ++kk) dst[kk * kGemmPanel + j] = row ? row[kk] : T{0};
    }
  }
}

// Panel p, bf16: dst[(k/2)·64 + j·2 + (k & 1)] = W[p·32 + j, k], odd K padded with zero.
void pack_panel_pairs(const uint16_t* src, int64_t n_rows, int64_t k, int64_t p, uint16_t* dst) {
  const int64_t pairs = (k + 1) / 2;
  for (int j = 0; j < kGemmPanel; ++j) {
    const int64_t n = p * kGemmPanel + j;
    const uint16_t* row = n < n_rows ? src + n * k : nullptr;
    for (int64_t i = 0; i < pairs; ++i) {
      uint16_t* d = dst + i * 2 * kGemmPanel + 2 * j;
      d[0] = row ? row[2 * i] : 0;
      d[1] = row && 2 * i + 1 < k ? row[2 * i + 1] : 0;
    }
  }
}

}  // namespace

int64_t PackedWeight::panel_elements() const {
  return dtype_ == WeightDType::Bf16 ? (cols_ + 1) / 2 * 2 * kGemmPanel : cols_ * kGemmPanel;
}

const void* PackedWeight::panel(int64_t p) const {
  const size_t elem = dtype_ == WeightDType::F32 ? 4 : 2;
  return static_cast<const uint8_t*>(data_) + static_cast<size_t>(p * panel_elements()) * elem;
}

PackedWeight::PackedWeight(WeightDType dtype, int64_t rows, int64_t cols, const void* src)
    : dtype_(dtype), rows_(rows), cols_(cols) {
  const size_t elem = dtype == WeightDType::F32 ? 4 : 2;
  bytes_ = static_cast<size_t>(panels() * panel_elements()) * elem;
  data_ = allocate(bytes_);
  const int64_t per_panel = panel_elements();
  parallel_for(panels(), [&](int64_t p, int) {
    switch (dtype) {
      case WeightDType::F32:
        pack_panel_plain(static_cast<const float*>(src), rows, cols, p, static_cast<float*>(data_) + p * per_panel);
        break;
      case WeightDType::F16:
        pack_panel_plain(static_cast<const uint16_t*>(src), rows, cols, p,
                         static_cast<uint16_t*>(data_) + p * per_panel);
        break;
      case WeightDType::Bf16:
        pack_panel_pairs(static_cast<const uint16_t*>(src), rows, cols, p,
                         static_cast<uint16_t*>(data_) + p * per_panel);
        break;
    }
  });
}

PackedWeight::~PackedWeight() { std::free(data_); }

}  // namespace loraplex
