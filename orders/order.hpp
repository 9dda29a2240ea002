#pragma once
// One order as the order layer sees it: what to ask the network (identity)
// and where it is in its lifecycle queued -> submitted -> completed | failed
// (DESIGN.md §3). The one order type from the API through the scheduler to
// the store (STYLE.md §10); order_fields lists what the store persists and
// how the operator sees it. Pure data.

#include "common/fields.hpp"
#include "lock/types.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace imeilock::orders {

/// Durable lifecycle of an order. Stored as its integer value (keep them).
enum class order_status : std::uint8_t {
  queued = 0,    ///< accepted, waiting for a token / an in-flight slot / a retry
  submitted = 1, ///< the backend took it; completes when its lead time has run out
  completed = 2, ///< took effect on the network
  failed = 3,    ///< gave up (retries exhausted); failure_reason says why
};

/// The API spelling: the enumerator's name.
constexpr std::string_view to_string(order_status s) {
  switch (s) {
    case order_status::queued:
      return "queued";
    case order_status::submitted:
      return "submitted";
    case order_status::completed:
      return "completed";
    case order_status::failed:
      return "failed";
  }
  return "unknown";
}

/// One order. The identity fields are set by whoever creates the order and
/// never change; the lifecycle fields belong to the scheduler (and are what
/// the store must persist to resume after a restart). `imsis` is not
/// persisted: it is the SIM's, read with it.
struct order {
  // -- identity ---------------------------------------------------------------
  std::uint64_t id = 0; ///< unique, > 0
  std::string iccid;
  std::vector<std::uint64_t> imsis; ///< the SIM's IMSIs (MultiNet: several), may be empty
  std::string network;              ///< network name; selects the network_config
  lock::order_type type = lock::order_type::none;
  lock::bar_reason reason = lock::bar_reason::none; ///< for bar
  lock::unbar_mode mode = lock::unbar_mode::none;   ///< for unbar
  bool with_lock = false;                           ///< for activate (R13)
  std::int64_t created_at_ms = 0;                   ///< unix ms
  /// What the lock it enables holds the SIM to (R16): enable_imei_lock and
  /// activate with lock.
  lock::lock_scope scope = lock::lock_scope::imei;

  // -- lifecycle (owned by the scheduler) ------------------------------------
  order_status status = order_status::queued;
  std::uint32_t attempts = 0;       ///< submissions started so far
  std::int64_t submitted_at_ms = 0; ///< when the backend accepted it, 0 before
  std::int64_t due_at_ms = 0;       ///< submitted: when the lead time runs out; 0 unknown
  std::int64_t retry_at_ms = 0;     ///< queued after a failure: not before this; 0 none
  std::int64_t finished_at_ms = 0;  ///< completed/failed time, 0 while open
  std::string failure_reason;       ///< last failure (kept across a successful retry)

  friend bool operator==(const order&, const order&) = default;
};

namespace detail {
inline bool is_activation(const order& o) {
  return o.type == lock::order_type::activate;
}
inline bool enables_lock(const order& o) {
  return o.type == lock::order_type::enable_imei_lock ||
         (o.type == lock::order_type::activate && o.with_lock);
}
} // namespace detail

/// The persisted columns of an order (the id, first, is the key) and the
/// operator view of each.
inline constexpr auto order_fields = std::make_tuple(
    fields::field<order, std::uint64_t>{"id", &order::id, {fields::shape::number, "/id"}},
    fields::field<order, std::string>{"iccid", &order::iccid, {fields::shape::text, "/iccid"}},
    fields::field<order, std::string>{
        "network", &order::network, {fields::shape::text, "/network"}},
    fields::field<order, lock::order_type>{"type", &order::type, {fields::shape::name, "/type"}},
    fields::field<order, lock::bar_reason>{
        "reason", &order::reason, {fields::shape::name_or_null, "/bar_reason"}},
    fields::field<order, lock::unbar_mode>{
        "mode", &order::mode, {fields::shape::name_or_null, "/unbar_mode"}},
    fields::field<order, bool>{
        "with_lock",
        &order::with_lock,
        {fields::shape::boolean, "/enable_imei_lock", &detail::is_activation}},
    fields::field<order, order_status>{"status", &order::status, {fields::shape::name, "/status"}},
    fields::field<order, std::int64_t>{
        "created_at_ms", &order::created_at_ms, {fields::shape::time_or_null, "/created_at"}},
    fields::field<order, std::int64_t>{
        "due_at_ms", &order::due_at_ms, {fields::shape::time_or_null, "/due_at"}},
    fields::field<order, std::int64_t>{"submitted_at_ms", &order::submitted_at_ms},
    fields::field<order, std::int64_t>{
        "completed_at_ms", &order::finished_at_ms, {fields::shape::time_or_null, "/completed_at"}},
    fields::field<order, std::int64_t>{"retry_at_ms", &order::retry_at_ms},
    fields::field<order, std::uint32_t>{
        "attempts", &order::attempts, {fields::shape::number, "/attempts"}},
    fields::field<order, std::string>{
        "failure_reason", &order::failure_reason, {fields::shape::text_or_null, "/failure_reason"}},
    // Schema 4 (R16), last: the list is in table order.
    fields::field<order, lock::lock_scope>{
        "lock_scope", &order::scope, {fields::shape::name, "/lock_scope", &detail::enables_lock}});

} // namespace imeilock::orders
