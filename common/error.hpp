#pragma once
// The project's error codes. Anything an untrusted peer, a config file or the
// environment can cause is one of these, returned (never thrown) across
// component boundaries on the packet path.

#include <cstdint>
#include <string_view>

namespace imeilock {

enum class ec : std::uint8_t {
  ok = 0,
  /// The IMSI/ICCID is not in the inventory (R15).
  unknown_sim,
  /// The request is well formed but not allowed in the SIM's current state.
  conflict,
  /// The request is invalid (bad value, ineligible network, missing option).
  invalid,
  /// The daemon is over capacity; the peer should retry or fail over.
  overloaded,
  /// The store could not make the change durable; nothing was acknowledged.
  store_failed,
  /// The component is shutting down.
  shutting_down,
  /// An order's provisioning backend failed.
  backend_failed,
};

constexpr std::string_view to_string(ec e) {
  switch (e) {
    case ec::ok: return "ok";
    case ec::unknown_sim: return "unknown_sim";
    case ec::conflict: return "conflict";
    case ec::invalid: return "invalid";
    case ec::overloaded: return "overloaded";
    case ec::store_failed: return "store_failed";
    case ec::shutting_down: return "shutting_down";
    case ec::backend_failed: return "backend_failed";
  }
  return "unknown";
}

} // namespace imeilock
