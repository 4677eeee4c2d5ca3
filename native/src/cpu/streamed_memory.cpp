#include "streamed_memory.h"

#include <sys/mman.h>

#include <cstdlib>
#include <new>

namespace loraplex {

void* allocate_streamed(size_t bytes) {
  constexpr size_t kHugePage = size_t{2} << 20;
  const size_t align = bytes >= 2 * kHugePage ? kHugePage : 64;
  const size_t rounded = (bytes + align - 1) / align * align;
  void* p = nullptr;
  if (posix_memalign(&p, align, rounded == 0 ? align : rounded) != 0) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  if (align == kHugePage) madvise(p, rounded, MADV_HUGEPAGE);
#endif
  return p;
}

}  // namespace loraplex
