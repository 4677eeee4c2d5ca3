// QuantWeight: ggml Q8_0 / Q4_K blocks re-laid out once for the kernels (layout in qgemm.h): values of a row
// contiguous, f16 scales widened to f32 exactly, Q4_K's packed 6-bit scales and mins unpacked to bytes.
#include <cstdlib>
#include <cstring>
#include <new>

#include "loraplex/qgemm.h"
#include "loraplex/thread_pool.h"
#include "lora_rows.h"

namespace loraplex {
namespace {

template <typename T>
T* allocate(size_t count) {
  void* p = nullptr;
  const size_t bytes = (count * sizeof(T) + 63) / 64 * 64;
  if (posix_memalign(&p, 64, bytes == 0 ? 64 : bytes) != 0) throw std::bad_alloc();
  return static_cast<T*>(p);
}

float half_at(const uint8_t* p) { return f16_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

// get_scale_min_k4: the j-th 6-bit scale and min of a Q4_K block from its 12 packed bytes.
void scale_min(const uint8_t* s, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

}  // namespace

QuantWeight::QuantWeight(QuantType type, int64_t rows, int64_t cols, const uint8_t* src)
    : type_(type), rows_(rows), cols_(cols) {
  const int64_t blocks = cols / block();
  const size_t row_bytes = static_cast<size_t>(blocks) * block_bytes(type);
  if (type == QuantType::Q8_0) {
    qs_ = allocate<uint8_t>(static_cast<size_t>(rows * cols));
    scales_ = allocate<float>(static_cast<size_t>(rows * blocks));
    bytes_ = static_cast<size_t>(rows * cols) + static_cast<size_t>(rows * blocks) * 4;
    parallel_for(rows, [&](int64_t n, int) {
      const uint8_t* row = src + n * row_bytes;
      for (int64_t b = 0; b < blocks; ++b) {
        scales_[n * blocks + b] = half_at(row + b * 34);
        std::memcpy(qs_ + n * cols + b * 32, row + b * 34 + 2, 32);
      }
    });
  } else {
    qs_ = allocate<uint8_t>(static_cast<size_t>(rows * cols / 2));
    scales_ = allocate<float>(static_cast<size_t>(rows * blocks * 2));
    sm_ = allocate<uint8_t>(static_cast<size_t>(rows * blocks * 16));
    bytes_ = static_cast<size_t>(rows * cols / 2) + static_cast<size_t>(rows * blocks) * (8 + 16);
    parallel_for(rows, [&](int64_t n, int) {
      const uint8_t* row = src + n * row_bytes;
      for (int64_t b = 0; b < blocks; ++b) {
        const uint8_t* blk = row + b * 144;
        scales_[(n * blocks + b) * 2] = half_at(blk);
        scales_[(n * blocks + b) * 2 + 1] = half_at(blk + 2);
        uint8_t* sm = sm_ + (n * blocks + b) * 16;
        for (int j = 0; j < 8; ++j) scale_min(blk + 4, j, sm + j, sm + 8 + j);
        std::memcpy(qs_ + n * (cols / 2) + b * 128, blk + 16, 128);
      }
    });
  }
}

QuantWeight::~QuantWeight() {
  std::free(qs_);
  std::free(scales_);
  std::free(sm_);
}

const float* QuantWeight::scales(int64_t n) const {
  return scales_ + n * (cols_ / block()) * (type_ == QuantType::Q8_0 ? 1 : 2);
}

}  // namespace loraplex
