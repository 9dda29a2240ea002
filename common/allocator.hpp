#pragma once
// The process's heap allocator (glibc malloc) as a long-running daemon needs
// it. main() of the daemon and of every benchmark that reports memory calls
// tune_allocator() first thing, so a benchmark measures what the daemon does.
// Elsewhere (another C library) both functions do nothing.

#include <cstddef>

namespace imeilock {

/// Whether malloc is glibc's: not under AddressSanitizer nor ThreadSanitizer,
/// whose own allocators replace it (tune_allocator() then does nothing).
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
inline constexpr bool glibc_malloc = true;
#else
inline constexpr bool glibc_malloc = false;
#endif

/// The thresholds tune_allocator() fixes: glibc's defaults (128 KiB), which
/// glibc would otherwise raise itself (see tune_allocator()).
inline constexpr std::size_t allocator_trim_threshold = 128 * 1024;
inline constexpr std::size_t allocator_mmap_threshold = 128 * 1024;

/// Fixes glibc's trim and mmap thresholds at allocator_trim_threshold and
/// allocator_mmap_threshold. Left dynamic (glibc's default), freeing a block
/// that was mmap'ed (a vector grown past 128 KiB, as the inventory load's
/// are) raises the mmap threshold to that block's size and the trim threshold
/// to twice that, up to 32 and 64 MiB: from then on blocks that size come from
/// the threads' arenas, and the free memory at the top of an arena other than
/// the main one is given back only beyond the raised trim threshold (malloc_trim
/// does not trim those tops at all), so it stays resident: 5 to 10 MB after a
/// 1M-SIM load (bench/README.md). Returns false when glibc refused a setting
/// (true without glibc_malloc: nothing to set).
bool tune_allocator();

/// Gives the heap's free memory back to the kernel (malloc_trim(0): the main
/// arena's top, and the whole free pages inside free blocks of every arena).
/// Takes each arena's lock while it walks its free blocks (milliseconds for a
/// heap of hundreds of MB): after a one-off burst (the inventory load), never
/// on a hot path.
void release_free_memory();

} // namespace imeilock
