#pragma once
// Shared by the load generators (bench/radius_load.cpp, bench/diameter_load.cpp).

#include <algorithm>
#include <cstdint>

namespace imeilock::bench {

/// Draws from a xorshift64 state: true with probability percent/100, exactly
/// so for 0 and 100 (a 53-bit comparison, no float-to-integer overflow).
struct chance {
  std::uint64_t threshold; ///< out of 2^53
  explicit chance(double percent) :
      threshold(static_cast<std::uint64_t>(std::clamp(percent, 0.0, 100.0) / 100.0 *
                                           9007199254740992.0)) {}
  bool draw(std::uint64_t& rng) const {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (rng >> 11) < threshold;
  }
};

} // namespace imeilock::bench
