// Memory that kernels stream end to end every step (packed base weights, quantized blocks, adapter slots):
// 64-byte aligned, and for blocks of 4 MiB or more 2 MiB aligned and advised onto transparent huge pages
// (this kernel grants them on madvise only). On 4 KiB pages a 300 MB stream walks the page tables 75 000
// times a step and the hardware prefetchers stop at every page boundary.
#pragma once

#include <cstddef>

namespace loraplex {

// Freed with std::free. Throws std::bad_alloc.
void* allocate_streamed(size_t bytes);

}  // namespace loraplex
