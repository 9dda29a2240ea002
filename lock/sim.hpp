#pragma once
// A SIM of the inventory, the one type every layer uses for it (STYLE.md §10),
// and its field lists: the columns the store persists (in this order), the
// keys of the audit log's compact state JSON and the operator view's shape
// are all generated from sim_identity_fields and sim_state_fields. Adding a
// field to a SIM is one line here (and a schema migration). Pure data.

#include "common/fields.hpp"
#include "lock/types.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace imeilock::lock {

/// When a SIM was last seen in the accounting feeds, coarse (unix seconds,
/// 0: never since this was recorded). Not lock state: the rules never read
/// it. Kept in the registry shard's row (8 bytes) for every observation and
/// written to the store lazily, in batches (sim_layer.activity_flush); a
/// crash may lose the last seconds of it, never a lock state.
struct sim_activity {
  std::uint32_t observed_s = 0;  ///< any observation, with an IMEI or not
  std::uint32_t imei_seen_s = 0; ///< an observation that carried a usable IMEI (R2)

  /// Observed, but never with an IMEI: the lock can never take (R3, R6).
  bool never_with_imei() const { return observed_s != 0 && imei_seen_s == 0; }

  friend bool operator==(const sim_activity&, const sim_activity&) = default;
};

/// Records one observation at `now_s` (unix seconds) in `a`, with a usable
/// IMEI or not; true when `a` changed (then it needs writing again). Times
/// never go back (observations from peers with slower clocks).
inline bool note_observed(sim_activity& a, std::uint32_t now_s, bool with_imei) {
  bool changed = false;
  if (now_s > a.observed_s) {
    a.observed_s = now_s;
    changed = true;
  }
  if (with_imei && now_s > a.imei_seen_s) {
    a.imei_seen_s = now_s;
    changed = true;
  }
  return changed;
}

/// The warning for an order enabling the lock (enable_imei_lock, or activate
/// with lock) on a SIM that was observed but never with an IMEI (the product
/// text's caveat); empty when there is nothing to warn about.
std::string no_imei_warning(const sim_activity& a);

/// A SIM: identity and lock state.
struct sim_record {
  std::string iccid;
  std::vector<std::uint64_t> imsis; ///< every IMSI of the SIM (MultiNet: several), ascending
  std::string msisdn;               ///< E.164 digits, may be empty
  std::string network;              ///< configured network name
  sim_state state;
  sim_activity activity;

  friend bool operator==(const sim_record&, const sim_record&) = default;
};

/// Filter for listing SIMs; unset fields match everything.
struct sim_filter {
  std::optional<lock_state> lock;
  std::optional<bar_state> bar;
  std::optional<std::string> network;
  /// SIMs that violated their lock in monitor mode (sim_state::alerted).
  std::optional<bool> alerted;
  /// true: SIMs observed but never with an IMEI (sim_activity::never_with_imei);
  /// false: the others.
  std::optional<bool> never_with_imei;
  /// SIMs whose lock has been awaiting its first IMEI (R6) since at least
  /// this unix ms: lock awaiting_first_imei, last state change at or before it.
  std::optional<std::int64_t> awaiting_imei_since_ms;
};

namespace detail {
inline bool locked(const sim_state& s) {
  return s.lock == lock_state::locked;
}
inline bool lock_on(const sim_state& s) {
  return s.lock != lock_state::off;
}
inline bool has_pending_order(const sim_state& s) {
  return s.pending_order_id != 0;
}
} // namespace detail

/// The identity columns of a SIM (its IMSIs are a set of their own). The
/// ICCID, first, is the key.
inline constexpr auto sim_identity_fields = std::make_tuple(
    fields::field<sim_record, std::string>{
        "iccid", &sim_record::iccid, {fields::shape::text, "/iccid"}},
    fields::field<sim_record, std::string>{
        "msisdn", &sim_record::msisdn, {fields::shape::text_or_null, "/msisdn"}},
    fields::field<sim_record, std::string>{
        "network", &sim_record::network, {fields::shape::text, "/network"}});

/// The lock-state columns of a SIM (DESIGN §2), and how the operator sees
/// each: `lock.imei` only while locked, `pending_order` as one object or null.
inline constexpr auto sim_state_fields = std::make_tuple(
    fields::field<sim_state, sim_status>{
        "status", &sim_state::status, {fields::shape::name, "/status"}},
    fields::field<sim_state, lock_state>{
        "lock", &sim_state::lock, {fields::shape::name, "/lock/state"}},
    fields::field<sim_state, device_id>{
        "lock_imei",
        &sim_state::lock_imei,
        {fields::shape::imei_or_null, "/lock/imei", &detail::locked}},
    fields::field<sim_state, device_id>{"last_seen_imei",
                                        &sim_state::last_seen_imei,
                                        {fields::shape::imei_or_null, "/last_seen_imei"}},
    fields::field<sim_state, device_id>{"trigger_imei",
                                        &sim_state::trigger_imei,
                                        {fields::shape::imei_or_null, "/bar/trigger_imei"}},
    fields::field<sim_state, bar_state>{
        "bar", &sim_state::bar, {fields::shape::name, "/bar/state"}},
    fields::field<sim_state, bar_reason>{
        "reason", &sim_state::reason, {fields::shape::name_or_null, "/bar/reason"}},
    fields::field<sim_state, order_type>{"pending_order",
                                         &sim_state::pending_order,
                                         {fields::shape::name, "/pending_order/type",
                                          &detail::has_pending_order, "/pending_order", true}},
    fields::field<sim_state, std::uint64_t>{"pending_order_id",
                                            &sim_state::pending_order_id,
                                            {fields::shape::number, "/pending_order/id",
                                             &detail::has_pending_order, "/pending_order", true}},
    fields::field<sim_state, unbar_mode>{"pending_unbar",
                                         &sim_state::pending_unbar,
                                         {fields::shape::name_or_null, "/pending_order/unbar_mode",
                                          &detail::has_pending_order, "/pending_order", true}},
    fields::field<sim_state, bool>{"activate_with_lock", &sim_state::activate_with_lock},
    fields::field<sim_state, std::int64_t>{
        "updated_at_ms",
        &sim_state::updated_at_ms,
        {fields::shape::time_or_null, "/updated_at", nullptr, {}, true}},
    // Schema 2 (the column is added last: the list is in table order).
    fields::field<sim_state, bool>{
        "alerted", &sim_state::alerted, {fields::shape::boolean, "/alerted"}},
    // Schema 4: R16, `lock.scope` while the lock is on (null when off).
    fields::field<sim_state, lock_scope>{
        "lock_scope", &sim_state::scope, {fields::shape::name, "/lock/scope", &detail::lock_on}});

/// The activity columns of a SIM (sim_activity), after the state's. Written
/// only by the write-behind (store::activity_update), never by an upsert or a
/// state write, so a state change cannot take them back in time.
inline constexpr auto sim_activity_fields = std::make_tuple(
    fields::field<sim_activity, std::uint32_t>{
        "observed_s",
        &sim_activity::observed_s,
        {fields::shape::seconds_or_null, "/last_observed_at", nullptr, {}, true}},
    fields::field<sim_activity, std::uint32_t>{
        "imei_seen_s",
        &sim_activity::imei_seen_s,
        {fields::shape::seconds_or_null, "/last_imei_at", nullptr, {}, true}});

} // namespace imeilock::lock
