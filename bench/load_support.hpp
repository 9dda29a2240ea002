#pragma once
// Shared by the load generators (bench/radius_load.cpp, bench/diameter_load.cpp).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

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

/// The options both generators take alike: IMEI changes, their seed, interval
/// lines, recording the acknowledged changes, a fixed request count.
struct change_options {
  double imei_change_percent = 0;
  std::uint64_t seed = 1;
  double interval = 0;        ///< seconds between interval lines; 0 = none
  std::string record_acked;   ///< file for the acknowledged changes; empty = none
  std::uint64_t requests = 0; ///< send exactly this many, then stop; 0 = run for a duration

  /// Takes option `k` with its value `v` if it is one of these; false otherwise.
  bool take(const std::string& k, const std::string& v) {
    if (k == "--imei-change-percent")
      imei_change_percent = std::stod(v);
    else if (k == "--seed")
      seed = std::stoull(v);
    else if (k == "--interval")
      interval = std::stod(v);
    else if (k == "--record-acked")
      record_acked = v;
    else if (k == "--requests")
      requests = std::stoull(v);
    else
      return false;
    return true;
  }
};

/// The value at quantile `p` (0 to 1) of `v`, which it reorders; 0 when empty.
inline double percentile(std::vector<std::uint32_t>& v, double p) {
  if (v.empty())
    return 0;
  const std::size_t k =
      std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

} // namespace imeilock::bench
