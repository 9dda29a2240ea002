// tune_allocator(): glibc keeps the thresholds it is given, whatever the
// program frees (without it, freeing a large mmap'ed block raises them).

#include "common/allocator.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

TEST_CASE("tune_allocator fixes the mmap threshold: blocks above it stay mmap'ed after a big free",
          "[allocator]") {
  if constexpr (!imeilock::glibc_malloc) {
    WARN("not glibc's malloc (a sanitizer's allocator): nothing to check");
    return;
  }
#if defined(__GLIBC__)
  REQUIRE(imeilock::tune_allocator());
  // A 4 MiB block is mmap'ed; freeing it would raise a dynamic threshold to 4 MiB.
  void* big = std::malloc(4u << 20);
  REQUIRE(big != nullptr);
  std::free(big);
  // Twice the threshold: mmap'ed (its own mapping, counted in hblks) with the
  // threshold fixed, taken from the arena with a raised one.
  auto mapped_before = mallinfo2().hblks;
  void* mid = std::malloc(2 * imeilock::allocator_mmap_threshold);
  REQUIRE(mid != nullptr);
  CHECK(mallinfo2().hblks == mapped_before + 1);
  std::free(mid);
  CHECK(mallinfo2().hblks == mapped_before);
  // Harmless at any time, and again.
  imeilock::release_free_memory();
  CHECK(imeilock::tune_allocator());
#endif
}
