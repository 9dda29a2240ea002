#pragma once
// One order as the order layer sees it: what to ask the network (identity)
// and where it is in its lifecycle queued -> submitted -> completed | failed
// (DESIGN.md §3). Pure data.

#include "lock/types.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace imeilock::orders {

/// Durable lifecycle of an order. Same values and spelling as
/// actors::order_status, which the actor maps to one by one.
enum class order_status : std::uint8_t {
  queued,    ///< accepted, waiting for a token / an in-flight slot / a retry
  submitted, ///< the backend took it; completes when its lead time has run out
  completed, ///< took effect on the network
  failed,    ///< gave up (retries exhausted); failure_reason says why
};

std::string_view to_string(order_status s);

/// One order. The identity fields are set by whoever creates the order and
/// never change; the lifecycle fields belong to the scheduler (and are what
/// the store must persist to resume after a restart).
struct order {
  // -- identity ---------------------------------------------------------------
  std::uint64_t id = 0;              ///< unique, > 0
  std::string iccid;
  std::vector<std::uint64_t> imsis;  ///< the SIM's IMSIs (MultiNet: several), may be empty
  std::string network;               ///< network name; selects the network_config
  lock::order_type type = lock::order_type::none;
  lock::bar_reason reason = lock::bar_reason::none; ///< for bar
  lock::unbar_mode mode = lock::unbar_mode::none;   ///< for unbar
  bool with_lock = false;            ///< for activate (R13)
  std::int64_t created_at_ms = 0;    ///< unix ms

  // -- lifecycle (owned by the scheduler) ------------------------------------
  order_status status = order_status::queued;
  std::uint32_t attempts = 0;        ///< submissions started so far
  std::int64_t submitted_at_ms = 0;  ///< when the backend accepted it, 0 before
  std::int64_t due_at_ms = 0;        ///< submitted: when the lead time runs out; 0 unknown
  std::int64_t retry_at_ms = 0;      ///< queued after a failure: not before this; 0 none
  std::int64_t finished_at_ms = 0;   ///< completed/failed time, 0 while open
  std::string failure_reason;        ///< last failure (kept across a successful retry)

  friend bool operator==(const order&, const order&) = default;
};

} // namespace imeilock::orders
