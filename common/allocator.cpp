#include "common/allocator.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace imeilock {

bool tune_allocator() {
  if constexpr (!glibc_malloc)
    return true;
#if defined(__GLIBC__)
  // mallopt returns 1 on success, 0 on error.
  bool ok = mallopt(M_TRIM_THRESHOLD, static_cast<int>(allocator_trim_threshold)) == 1;
  ok = mallopt(M_MMAP_THRESHOLD, static_cast<int>(allocator_mmap_threshold)) == 1 && ok;
  return ok;
#else
  return true;
#endif
}

void release_free_memory() {
#if defined(__GLIBC__)
  if constexpr (glibc_malloc)
    malloc_trim(0);
#endif
}

} // namespace imeilock
