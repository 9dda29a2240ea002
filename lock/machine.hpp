#pragma once
// The IMEI lock rules R1-R13 (DESIGN.md §2) as a pure state machine:
//
//   outcome o = lock::apply(policy, state, event, now_ms);
//
// No actors, no I/O, no clock reads: time comes in with the event. The caller
// (the SIM actor) persists o.next when o.changed, carries out o.effects, and
// records o.audit (R14).

#include "lock/imei.hpp"
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
};

// -- Events ------------------------------------------------------------------

/// An accounting observation (RADIUS/Diameter) for this SIM.
struct observed {
  imei_value imei;
};

/// An operator places an order (DESIGN §3). `order_id` is assigned by the
/// caller before apply() so the machine can remember it as pending.
struct order_placed {
  std::uint64_t order_id = 0;
  order_type type = order_type::none;
  unbar_mode mode = unbar_mode::none; ///< for unbar
  bool with_lock = false;             ///< for activate (R13)
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

using event = std::variant<observed, order_placed, order_completed, order_failed>;

// -- Effects -----------------------------------------------------------------

/// Hand a new order to the order actor. For a bar raised by a violation (R7)
/// the machine asks for it with `order_id == 0`: the caller assigns the id and
/// feeds it back with note_order_id().
struct submit_order {
  std::uint64_t order_id = 0;
  order_type type = order_type::none;
  bar_reason reason = bar_reason::none;
  unbar_mode mode = unbar_mode::none;
  bool with_lock = false;
};

/// Something an operator's systems may want to hear about (webhooks, metrics).
enum class notice : std::uint8_t {
  change_event,          ///< R5: an IMEI different from last seen
  violation,             ///< R7: a change while locked to another device
  lock_set_first_imei,   ///< R6
  lock_enabled,          ///< R4/R13 took effect
  lock_disabled,         ///< R12
  bar_completed,
  unbar_completed,
  order_failed,
  activated,
};

struct notify {
  notice what;
  device_id imei = no_device;        ///< the device observed / concerned
  device_id locked_imei = no_device; ///< lock.imei at the time
  std::uint64_t order_id = 0;
};

using effect = std::variant<submit_order, notify>;

/// Why an order was refused. The text says what to do about it.
enum class rejection : std::uint8_t {
  none,
  network_not_eligible,       ///< R1
  activation_lock_not_eligible, ///< R1/R13
  not_active,                 ///< the SIM must be active (enable, bar, unbar)
  already_active,             ///< activate on an active SIM
  order_in_flight,            ///< one operator order at a time per SIM
  nothing_to_unbar,           ///< unbar without a bar in force
  unbar_mode_required,        ///< unbar of an IMEI-lock bar needs keep_lock/update_to_last_seen
  unbar_mode_not_applicable,  ///< a mode given for a manual bar
  already_barred,             ///< bar while barred or bar pending
  lock_already_enabled,       ///< enable while locked/awaiting
  lock_not_enabled,           ///< disable while off
};

std::string_view to_string(rejection r);
/// One sentence an operator can act on.
std::string_view explain(rejection r);

/// The audit record of one transition (R14): cause, before, after.
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
  bool changed = false;            ///< next != the state passed in (persist when true)
  rejection rejected = rejection::none; ///< for order_placed: refused, nothing changed
  std::vector<std::string> warnings;    ///< e.g. the R10 caveat
  std::vector<effect> effects;
  std::vector<audit> audits;            ///< empty when nothing changed
};

/// Applies one event to one SIM's state. Total: any event in any state yields
/// an outcome (an unexpected order completion is ignored and audited).
outcome apply(const policy& pol, const sim_state& state, const event& ev, std::int64_t now_ms);

/// After the caller assigned an id to a machine-raised bar (submit_order with
/// order_id 0), records it as the pending order.
void note_order_id(sim_state& state, std::uint64_t order_id);

} // namespace imeilock::lock
