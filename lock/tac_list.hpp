#pragma once
// R17 (issue 13, beyond the product text): the device models a network
// allows. A model is a Type Allocation Code (TAC), the IMEI's first 8 digits
// (tac_of()). A list is given per network as single TACs or closed ranges;
// a SIM with IMEI locking on that is seen in a device outside its network's
// list violates its lock, even before the lock has taken (lock/machine.hpp).

#include "common/error.hpp"

#include <cstdint>
#include <string_view>
#include <vector>

namespace imeilock::lock {

/// TACs first..last, both included (8 digits each).
struct tac_range {
  std::uint32_t first = 0;
  std::uint32_t last = 0;

  friend bool operator==(const tac_range&, const tac_range&) = default;
};

/// Parses "35209900" (one TAC) or "35209900-35209999" (a range): exactly 8
/// digits on each side, first <= last. An error (config::ec::invalid) whose
/// message quotes `text` otherwise.
expected<tac_range> parse_tac_range(std::string_view text);

/// The TACs allowed on one network: ranges kept sorted and merged, so a
/// lookup is a binary search over at most as many ranges as were listed.
class tac_list {
public:
  tac_list() = default;
  explicit tac_list(std::vector<tac_range> ranges);

  /// Whether `tac` is in one of the ranges.
  bool allows(std::uint32_t tac) const;
  /// The merged ranges, ascending.
  const std::vector<tac_range>& ranges() const { return ranges_; }
  bool empty() const { return ranges_.empty(); }

private:
  std::vector<tac_range> ranges_;
};

} // namespace imeilock::lock
