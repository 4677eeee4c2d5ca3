// QuantWeight: ggml Q8_0 / Q4_K / Q6_K blocks re-laid out once for the kernels (layout in qgemm.h): 8 weight
// rows interleaved 4 values at a time, f16 scales widened to f32 exactly, Q4_K's packed 6-bit scales and mins
// unpacked to bytes in the order the AVX2 kernel's madd wants them, Q6_K's bits left packed as in the file.
#include <cstdlib>
#include <cstring>
#include <new>

#include "loraplex/qgemm.h"
#include "loraplex/thread_pool.h"
#include "qgemm_kernels.h"

namespace loraplex {
namespace {

template <typename T>
T* allocate(size_t count) {
  void* p = nullptr;
  const size_t bytes = (count * sizeof(T) + 63) / 64 * 64;
  if (posix_memalign(&p, 64, bytes == 0 ? 64 : bytes) != 0) throw std::bad_alloc();
  return static_cast<T*>(p);
}

}  // namespace

QuantWeight::QuantWeight(QuantType type, int64_t rows, int64_t cols, const uint8_t* src)
    : type_(type), rows_(rows), cols_(cols) {
  const int64_t blocks = cols / block();
  const int64_t g_count = groups();
  const size_t row_bytes = static_cast<size_t>(blocks) * block_bytes(type);
  const size_t padded = static_cast<size_t>(g_count * kQGroup);
  if (type == QuantType::Q8_0) {
    qs_ = allocate<uint8_t>(padded * cols);
    scales_ = allocate<float>(padded * blocks);
    bytes_ = padded * cols + padded * blocks * 4;
  } else if (type == QuantType::Q4_K) {
    qs_ = allocate<uint8_t>(padded * cols / 2);
    scales_ = allocate<float>(padded * blocks * 2);
    sm_ = allocate<uint8_t>(static_cast<size_t>(g_count * blocks) * kQ4KSmBytes);
    bytes_ = padded * cols / 2 + padded * blocks * 8 + static_cast<size_t>(g_count * blocks) * kQ4KSmBytes;
  } else {
    qs_ = allocate<uint8_t>(padded * cols / 2);
    scales_ = allocate<float>(padded * blocks);
    sm_ = allocate<uint8_t>(static_cast<size_t>(g_count * blocks) * kQ6KSmBytes);
    bytes_ = padded * cols / 2 + padded * blocks * 4 + static_cast<size_t>(g_count * blocks) * kQ6KSmBytes;
  }
  const int scales_per_block = type == QuantType::Q4_K ? 2 : 1;
  const size_t sm_bytes = type == QuantType::Q4_K ? kQ4KSmBytes : kQ6KSmBytes;
  parallel_for(g_count, [&](int64_t g, int) {
    uint8_t* qs = const_cast<uint8_t*>(this->qs(g));
    float* sc = const_cast<float*>(scales(g));
    const size_t qs_bytes = static_cast<size_t>(kQGroup * (type == QuantType::Q8_0 ? cols : cols / 2));
    std::memset(qs, 0, qs_bytes);  // padding rows: zero values and scales
    std::memset(sc, 0, static_cast<size_t>(kQGroup * blocks) * scales_per_block * 4);
    uint8_t* sm = type != QuantType::Q8_0 ? const_cast<uint8_t*>(this->sm(g)) : nullptr;
    if (sm) std::memset(sm, 0, static_cast<size_t>(blocks) * sm_bytes);
    for (int c = 0; c < kQGroup && g * kQGroup + c < rows; ++c) {
      const uint8_t* row = src + (g * kQGroup + c) * row_bytes;
      for (int64_t b = 0; b < blocks; ++b) {
        if (type == QuantType::Q8_0) {
          const uint8_t* blk = row + b * 34;
          sc[b * kQGroup + c] = half_at(blk);
          for (int q = 0; q < 8; ++q) std::memcpy(qs + ((b * 8 + q) * kQGroup + c) * 4, blk + 2 + 4 * q, 4);
        } else if (type == QuantType::Q6_K) {
          const uint8_t* blk = row + b * 210;  // ql[128], qh[64], sc[16], d
          sc[b * kQGroup + c] = half_at(blk + 208);
          uint8_t* s = sm + b * kQ6KSmBytes;
          for (int q = 0; q < 8; ++q) {
            for (int p = 0; p < 4; ++p) std::memcpy(qs + b * 1024 + p * 256 + (q * kQGroup + c) * 4, blk + p * 32 + 4 * q, 4);
            for (int h = 0; h < 2; ++h) std::memcpy(s + h * 256 + (q * kQGroup + c) * 4, blk + 128 + h * 32 + 4 * q, 4);
          }
          for (int t = 0; t < 8; ++t) {
            s[512 + t * 16 + c * 2] = blk[192 + 2 * t];
            s[512 + t * 16 + c * 2 + 1] = blk[192 + 2 * t + 1];
          }
        } else {
          const uint8_t* blk = row + b * 144;
          sc[b * 16 + c] = half_at(blk);
          sc[b * 16 + 8 + c] = half_at(blk + 2);
          uint8_t* s = sm + b * kQ4KSmBytes;
          for (int j = 0; j < 8; ++j) {
            uint8_t scale, min;
            q4k_scale_min(blk + 4, j, &scale, &min);
            s[j * 16 + c * 2] = s[j * 16 + c * 2 + 1] = scale;
            s[128 + (j / 2) * 16 + c * 2 + (j & 1)] = min;
          }
          for (int p = 0; p < 4; ++p)
            for (int q = 0; q < 8; ++q)
              std::memcpy(qs + b * 1024 + p * 256 + (q * kQGroup + c) * 4, blk + 16 + p * 32 + 4 * q, 4);
        }
      }
    }
  });
}

QuantWeight::~QuantWeight() {
  std::free(qs_);
  std::free(scales_);
  std::free(sm_);
}

const float* QuantWeight::scales(int64_t g) const {
  return scales_ + g * kQGroup * (cols_ / block()) * (type_ == QuantType::Q4_K ? 2 : 1);
}

}  // namespace loraplex
