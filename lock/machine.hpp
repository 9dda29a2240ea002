#pragma once
// The IMEI lock rules R1-R13 (DESIGN.md §2) as a pure state machine:
//
//   outcome o = lock::apply(policy, state, event, now_ms);
//
// No actors, no I/O, no clock reads: time comes in with the event. The caller
// (the SIM actor) persists o.next when o.changed, carries out o.effects, and
// records o.audits (R14).
//
// Decisions beyond the text of DESIGN §2 (each is tested in tests/lock/):
//
//  - Orders are two-phase. order_placed validates (R1 and the SIM's state)
//    and either refuses with a `rejection` (nothing changes) or accepts: the
//    order becomes the SIM's one order in flight (pending_order_id /
//    pending_order) and the machine asks for it with a submit_order effect.
//    bar -> bar_pending and unbar -> unbar_pending at once; enable, disable
//    and activate change nothing else until order_completed. order_failed
//    reverts the pending state, is audited and notified (notice::order_failed).
//  - One order in flight per SIM, the machine's own R7 bar included: an
//    operator order placed while any order is in flight is refused
//    (order_in_flight). The R7 bar is asked for with order_id 0; the caller
//    assigns the id and calls note_order_id(outcome&, id) before persisting.
//  - A violation (R7) while an operator order is in flight:
//      * manual bar pending or in force (no order or its bar order in
//        flight): no second order; that bar becomes the IMEI-lock bar
//        (reason imei_lock, trigger_imei set, R9 from then on), so lifting it
//        needs an unbar mode;
//      * manual bar being lifted (unbar in flight): the same, and when that
//        unbar completes the machine raises the IMEI-lock bar at once (the
//        SIM must not end up free in the device that violated the lock);
//      * disable in flight: no bar (the operator is removing the lock) and
//        last_seen_imei does not move to the new device, so if the disable
//        fails the next observation there is a violation as before.
//  - A failed IMEI-lock bar reverts to no bar and sets last_seen_imei back to
//    lock.imei: the lock is still on, so the SIM's next use in any other
//    device raises a new bar (an anti-theft lock must not give up after one
//    provisioning failure). A failed disable keeps the lock as it was.
//  - R9 while frozen: another device changes nothing (no audit, no notice).
//  - Unbar of an IMEI-lock bar needs keep_lock or update_to_last_seen while
//    the lock is on. After the lock was disabled (R12: the bar stays) the
//    mode has no effect: it may be omitted, and one given gets a warning.
//  - Strict mode (policy.strict): any observation of a device other than
//    lock.imei while locked and not frozen is a violation, change event or
//    not; R10's warning then says the SIM will be barred again instead.
//  - Violation actions (policy.action). `bar` is R7 as above.
//    `disconnect_and_bar` is the same with a disconnect_session effect first
//    (RFC 5176, RADIUS sessions only; the caller knows the session).
//    `alert` (monitor mode): the violation is audited ("monitor mode: no Bar
//    order") and notified, last seen moves as for any change event (R5),
//    no order is raised and the bar state is left alone (a manual bar stays
//    manual); the SIM is marked `alerted`. Strict mode in monitor mode
//    reports the first observation in another device and then only change
//    events (once per new device, not every observation). `alerted` is
//    cleared when the operator acts: a bar completes, the lock is disabled
//    or updated to last seen (R11). Switching a network from alert to bar
//    bars nobody retroactively: the next violation bars.
//  - R16 device-model scope (issue 13, beyond the product text): an order
//    enabling the lock (enable_imei_lock, activate with lock) carries a
//    scope, `imei` (the default: R4-R11 as written) or `device_model`. With
//    device_model the lock is still set to one device (R4, R6, R11) but holds
//    the SIM to that device's model, its TAC (first 8 digits): a change event
//    to another device of the same TAC is no violation (R5 only: last seen
//    moves), one to another TAC is (R7). Strict mode, R10's warning and the
//    violation actions compare models instead of devices the same way
//    (same_lock_device()). The scope is set when the order is placed (the
//    lock is off then, so it changes nothing until the order completes).
//  - R17 allowed device models (issue 13, beyond the product text): a
//    network may list the TACs (device models) its SIMs may be used in
//    (policy::allowed_tacs; none listed: any device). A SIM whose lock is on
//    that makes a change event into a device outside the list violates its
//    lock (R7's consequences: trigger, bar or the network's action), also
//    while it awaits its first IMEI: such a device never becomes the lock
//    (R6 takes the first allowed device). As with R7 it takes a change event,
//    or strict mode; a device the operator locked to by R11 is not barred again.
//  - Observations follow the same rules whatever the SIM's status; enable,
//    bar and activate check the status, disable and unbar do not.
//  - Every accepted order and every state change yields exactly one audit
//    record; updated_at_ms = now_ms on every change.

#include "lock/imei.hpp"
#include "lock/tac_list.hpp"
#include "lock/types.hpp"

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace imeilock::lock {

/// What the configuration says about this SIM's network (R1) and the switches
/// beyond the seed (DESIGN §2, end).
struct policy {
  bool lock_eligible = false;               ///< R1: IMEI locking may be enabled
  bool lock_on_activation_eligible = false; ///< R1/R13: lock may be set at activation
  bool strict = false;                      ///< bar on any IMEI != lock (closes the R10 caveat)
  violation_action action = violation_action::bar; ///< what a violation does (R7)
  /// R17: the device models the network allows; null when it lists none (any
  /// device). Points into the eligibility_config, which outlives every policy.
  const tac_list* allowed_tacs = nullptr;
};

// -- Events ------------------------------------------------------------------

/// An accounting observation (RADIUS/Diameter) for this SIM.
struct observed {
  imei_value imei;
};

/// R2/R3: whether an observation is a lock event at all. No IMEI, or one we
/// could not read (counted by the caller, then treated as absent), is not:
/// apply() returns the state unchanged, and callers may answer at once.
constexpr bool is_lock_event(const observed& e) {
  return e.imei.status == imei_status::ok && e.imei.device != no_device;
}

/// An operator places an order (DESIGN §3). `order_id` (non-zero) is assigned
/// by the caller before apply() so the machine can remember it as pending.
struct order_placed {
  std::uint64_t order_id = 0;
  order_type type = order_type::none;
  unbar_mode mode = unbar_mode::none;  ///< for unbar
  bool with_lock = false;              ///< for activate (R13)
  lock_scope scope = lock_scope::imei; ///< for enable_imei_lock and activate with lock (R16)
};

/// The order actor reports that an order completed on the network.
struct order_completed {
  std::uint64_t order_id = 0;
};

/// The order actor reports that an order failed for good (retries exhausted).
struct order_failed {
  std::uint64_t order_id = 0;
  std::string reason;
};

/// Everything that can happen to a SIM, as apply() takes it.
using event = std::variant<observed, order_placed, order_completed, order_failed>;

// -- Effects -----------------------------------------------------------------

/// Hand a new order to the order actor: every accepted operator order (with
/// its id; enable/disable too, they go through the order actor's lead-time
/// model), and the bars the machine raises itself (R7, and the re-bar after a
/// manual unbar overtaken by a violation) with `order_id == 0`: the caller
/// assigns the id and feeds it back with note_order_id(outcome&, id).
struct submit_order {
  std::uint64_t order_id = 0;
  order_type type = order_type::none;
  bar_reason reason = bar_reason::none;
  unbar_mode mode = unbar_mode::none;
  bool with_lock = false;
  lock_scope scope = lock_scope::imei; ///< for enable_imei_lock and activate with lock (R16)
};

/// Something an operator's systems may want to hear about (webhooks, metrics).
enum class notice : std::uint8_t {
  change_event,        ///< R5: an IMEI different from last seen (not sent while frozen, R9)
  violation,           ///< R7: a change while locked to another device; order_id = the bar
  lock_set_first_imei, ///< R6: imei = the device the SIM is now locked to
  lock_enabled,        ///< R4/R13 took effect (imei = lock, none while awaiting)
  lock_disabled,       ///< R12: locked_imei = the lock that was cleared
  bar_completed,       ///< the SIM is barred now (imei = trigger for an IMEI-lock bar)
  unbar_completed,     ///< the SIM is unbarred (or, if a violation overtook it, barred again)
  order_failed,        ///< an order failed for good; its pending state was reverted
  activated,           ///< the SIM is active
};

/// The text of a notice ("change_event", "violation", ...), for webhooks and logs.
std::string_view to_string(notice n);

/// Tell listeners about something that happened (after the change is durable).
struct notify {
  notice what = notice::change_event;
  device_id imei = no_device;        ///< the device observed / concerned
  device_id locked_imei = no_device; ///< lock.imei at the time
  std::uint64_t order_id = 0;
  /// For a violation: what was done about it (policy.action).
  violation_action action = violation_action::bar;
};

/// Ask the NAS to end the session the observation came in on (RFC 5176
/// Disconnect-Request), before the Bar order of the same outcome is handed
/// on. Only with violation_action::disconnect_and_bar.
struct disconnect_session {
  device_id imei = no_device; ///< the device that violated the lock
};

/// What the caller must do after persisting: disconnect, submit orders,
/// notify listeners.
using effect = std::variant<submit_order, notify, disconnect_session>;

/// Why an order was refused. The text says what to do about it.
enum class rejection : std::uint8_t {
  none,
  network_not_eligible,         ///< R1
  activation_lock_not_eligible, ///< R1/R13
  not_active,                   ///< the SIM must be active (enable, bar)
  already_active,               ///< activate on an active SIM
  order_in_flight,              ///< one order at a time per SIM (the machine's R7 bar included)
  nothing_to_unbar,             ///< unbar without a bar in force
  unbar_mode_required,          ///< unbar of an IMEI-lock bar needs keep_lock/update_to_last_seen
  unbar_mode_not_applicable,    ///< a mode given for a manual bar
  already_barred,               ///< bar while barred or bar pending
  lock_already_enabled,         ///< enable while locked/awaiting
  lock_not_enabled,             ///< disable while off
  invalid_order,                ///< order id 0 or order type none (a caller bug)
};

/// The API spelling of a rejection ("network_not_eligible").
std::string_view to_string(rejection r);
/// One sentence an operator can act on.
std::string_view explain(rejection r);

/// The audit record of one transition (R14): cause, before, after. The time
/// is after.updated_at_ms (now_ms of the event).
struct audit {
  std::string cause; ///< e.g. "observation", "order_placed:bar", "order_completed:unbar"
  sim_state before;
  sim_state after;
  device_id imei = no_device; ///< the IMEI observed, if the cause was an observation
  std::string detail;         ///< free text (warnings, failure reasons)
};

/// The result of one event.
struct outcome {
  sim_state next;
  bool changed = false;                 ///< next != the state passed in (persist when true)
  rejection rejected = rejection::none; ///< for order_placed: refused, nothing changed
  std::vector<std::string> warnings;    ///< e.g. the R10 caveat
  std::vector<effect> effects;
  /// One record per accepted order or state change (R14). Also one, with
  /// before == after and changed == false, for an order outcome that matches
  /// no order in flight (ignored, but kept so it can be read back).
  std::vector<audit> audits;
};

/// Applies one event to one SIM's state. Total: any event in any state yields
/// an outcome (an unexpected order completion is ignored and audited).
outcome apply(const policy& pol, const sim_state& state, const event& ev, std::int64_t now_ms);

/// After the caller assigned an id to a machine-raised bar (submit_order with
/// order_id 0), records it as the pending order. Does nothing unless an order
/// is pending without an id.
void note_order_id(sim_state& state, std::uint64_t order_id);

/// The same for a whole outcome, which is what the caller should use: assigns
/// `order_id` to the submit_order with id 0, to the pending order in `next`
/// and in the audit's `after`, and to the violation notice, so everything
/// persisted and published names the order. Does nothing if no order asks for
/// an id. At most one order per outcome ever does.
void note_order_id(outcome& o, std::uint64_t order_id);

/// R16: whether device `d` is one a lock to `lock_imei` with `scope` allows:
/// the same device (scope imei, R2), or one of the same model, the same TAC
/// (scope device_model).
constexpr bool same_lock_device(lock_scope scope, device_id lock_imei, device_id d) {
  return scope == lock_scope::device_model ? tac_of(lock_imei) == tac_of(d) : lock_imei == d;
}

/// R17: whether the network of `p` allows device `d` (any device when it
/// lists no models).
inline bool allowed_device(const policy& p, device_id d) {
  return p.allowed_tacs == nullptr || p.allowed_tacs->allows(tac_of(d));
}

/// True while an IMEI-lock bar is pending, in force or being lifted: the time
/// during which last_seen_imei is frozen at trigger_imei (R9) and no further
/// bar is raised (R7).
bool imei_lock_bar_active(const sim_state& state);

/// The R10 warning for an unbar keeping the lock while the SIM was last seen
/// in another device (strict: the warning that it will be barred again).
std::string keep_lock_warning(const sim_state& state, bool strict);

} // namespace imeilock::lock
