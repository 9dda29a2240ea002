#include "lock/machine.hpp"

#include <algorithm>
#include <string>
#include <utility>

namespace imeilock::lock {

namespace {

std::string show(device_id d) {
  return d == no_device ? std::string{"none"} : format_imei(d);
}

/// A device's TAC as its 8 digits (R17).
std::string tac_text(device_id d) {
  auto digits = std::to_string(tac_of(d));
  return std::string(8 - std::min<std::size_t>(8, digits.size()), '0') + digits;
}

/// One application of one event: the working copy of the state, the outcome
/// being built, and what the audit record will say.
class step {
public:
  step(const policy& pol, const sim_state& before, std::int64_t now_ms) :
      pol_(pol), before_(before), now_(now_ms) {
    out_.next = before;
  }

  void on(const observed& e);
  void on(const order_placed& e);
  void on(const order_completed& e);
  void on(const order_failed& e);

  outcome finish() {
    if (out_.next != before_) {
      out_.next.updated_at_ms = now_;
      out_.changed = true;
    }
    if (out_.changed || keep_audit_)
      out_.audits.push_back(
          audit{std::move(cause_), before_, out_.next, imei_, std::move(detail_)});
    return std::move(out_);
  }

private:
  sim_state& s() { return out_.next; }

  void tell(notice what, device_id imei, std::uint64_t order_id = 0) {
    out_.effects.emplace_back(
        notify{what, imei, out_.next.lock_imei, order_id,
               what == notice::violation ? pol_.action : violation_action::bar});
  }

  void submit(std::uint64_t id, order_type type, bar_reason reason, unbar_mode mode, bool with_lock,
              lock_scope scope = lock_scope::imei) {
    out_.effects.emplace_back(submit_order{id, type, reason, mode, with_lock, scope});
  }

  void reject(rejection r) {
    out_.rejected = r;
    out_.next = before_;
    out_.warnings.clear();
    out_.effects.clear();
  }

  /// True when `id` is the order in flight; otherwise the outcome is ignored
  /// but audited, so an operator can see it arrived.
  bool matches_pending(std::uint64_t id, std::string_view what) {
    if (id != 0 && s().pending_order != order_type::none && s().pending_order_id == id)
      return true;
    cause_ = std::string{what} + ":unexpected";
    detail_ =
        "ignored: order " + std::to_string(id) + " is not the order in flight (" +
        (s().pending_order == order_type::none ? std::string{"none"}
                                               : std::string{to_string(s().pending_order)} + " " +
                                                     std::to_string(s().pending_order_id)) +
        ")";
    keep_audit_ = true;
    return false;
  }

  /// R7: raise the IMEI-lock bar now (the caller assigns the id).
  void raise_imei_lock_bar() {
    s().bar = bar_state::bar_pending;
    s().reason = bar_reason::imei_lock;
    s().pending_order = order_type::bar;
    s().pending_order_id = 0;
    s().pending_unbar = unbar_mode::none;
    submit(0, order_type::bar, bar_reason::imei_lock, unbar_mode::none, false);
  }

  void violation(device_id d, bool change);

  const policy& pol_;
  const sim_state& before_;
  std::int64_t now_;
  outcome out_;
  std::string cause_;
  std::string detail_;
  device_id imei_ = no_device;
  bool keep_audit_ = false;
};

void step::on(const observed& e) {
  if (!is_lock_event(e)) // R2/R3
    return;
  const device_id d = e.imei.device;
  imei_ = d;
  cause_ = "observation";
  const bool frozen = imei_lock_bar_active(s());
  const bool change = d != s().last_seen_imei; // R5

  const bool allowed = allowed_device(pol_, d); // R17
  if (s().lock == lock_state::awaiting_first_imei && allowed) {
    // R6: the first (allowed) device seen becomes the lock; no bar.
    s().lock = lock_state::locked;
    s().lock_imei = d;
    detail_ = "R6: first device seen, locked to " + show(d);
    if (change && !frozen) {
      s().last_seen_imei = d;
      tell(notice::change_event, d);
    }
    tell(notice::lock_set_first_imei, d);
    return;
  }

  if (frozen)
    return; // R9: last seen stays at the trigger; R7: no second bar

  const bool other_device =
      (s().lock == lock_state::locked && !same_lock_device(s().scope, s().lock_imei, d)) || // R16
      (s().lock != lock_state::off && !allowed);                                            // R17
  // R7 needs a change event; strict mode bars on any other device (in
  // monitor mode: reports it once, then only when the device changes).
  const bool strict_hit = pol_.strict && !(pol_.action == violation_action::alert && s().alerted);
  if (other_device && (change || strict_hit)) {
    violation(d, change);
    return;
  }
  if (change) {
    detail_ = "R5: change event, last seen " + show(s().last_seen_imei) + " -> " + show(d);
    s().last_seen_imei = d;
    tell(notice::change_event, d);
  }
}

void step::violation(device_id d, bool change) {
  const bool bar_order_possible = s().pending_order == order_type::none;
  if (s().bar == bar_state::none && !bar_order_possible) {
    // A disable in flight (enable/activate cannot be while locked): the
    // operator is removing the lock, so no bar; last seen does not move, so
    // if the disable fails the next use of this device is a violation again.
    return;
  }
  const device_id locked_to = s().lock_imei;
  const std::string what =
      allowed_device(pol_, d)
          ? "R7: violation, locked to " + show(locked_to) + " but seen in " + show(d)
          : "R17: violation, seen in " + show(d) + " whose model (TAC " + tac_text(d) +
                ") the network does not allow";
  if (pol_.action == violation_action::alert) {
    // Monitor mode: record, count and notify what enforcing would do, but
    // raise no order and leave any bar as it is; last seen moves (R5).
    if (change)
      tell(notice::change_event, d);
    s().last_seen_imei = d;
    s().alerted = true;
    tell(notice::violation, d);
    detail_ = what + "; monitor mode: no Bar order";
    return;
  }
  if (change)
    tell(notice::change_event, d);
  // R5 then R9: the first device after the violation is the trigger, and
  // last seen stays there while the bar is pending or in force.
  s().last_seen_imei = d;
  s().trigger_imei = d;
  if (pol_.action == violation_action::disconnect_and_bar)
    out_.effects.emplace_back(disconnect_session{d});
  tell(notice::violation, d);

  if (s().bar == bar_state::none) {
    raise_imei_lock_bar();
    detail_ = what + (pol_.action == violation_action::disconnect_and_bar
                          ? "; Disconnect requested, Bar order raised"
                          : "; Bar order raised");
    return;
  }
  // A manual bar is pending, in force or being lifted: no second order; it
  // becomes the IMEI-lock bar so that R9-R11 apply to it.
  s().reason = bar_reason::imei_lock;
  if (s().bar == bar_state::unbar_pending) {
    s().pending_unbar = unbar_mode::none; // marks: bar again once this unbar completes
    detail_ = what + "; the manual bar being lifted becomes the IMEI-lock bar and the SIM is "
                     "barred again when the unbar completes";
  } else {
    detail_ = what + "; the manual bar becomes the IMEI-lock bar, no second order";
  }
}

void step::on(const order_placed& e) {
  cause_ = "order_placed:" + std::string{to_string(e.type)};
  if (e.order_id == 0 || e.type == order_type::none)
    return reject(rejection::invalid_order);

  unbar_mode mode = unbar_mode::none;
  bar_reason reason = bar_reason::none;
  switch (e.type) {
    case order_type::activate:
      if (s().status == sim_status::active)
        return reject(rejection::already_active);
      if (e.with_lock && !pol_.lock_on_activation_eligible)
        return reject(rejection::activation_lock_not_eligible); // R1/R13
      if (e.with_lock && s().lock != lock_state::off)
        return reject(rejection::lock_already_enabled);
      break;
    case order_type::enable_imei_lock:
      if (!pol_.lock_eligible)
        return reject(rejection::network_not_eligible); // R1
      if (s().status != sim_status::active)
        return reject(rejection::not_active);
      if (s().lock != lock_state::off)
        return reject(rejection::lock_already_enabled);
      break;
    case order_type::disable_imei_lock:
      if (s().lock == lock_state::off)
        return reject(rejection::lock_not_enabled);
      break;
    case order_type::bar:
      if (s().status != sim_status::active)
        return reject(rejection::not_active);
      if (s().bar == bar_state::bar_pending || s().bar == bar_state::barred)
        return reject(rejection::already_barred);
      reason = bar_reason::manual;
      break;
    case order_type::unbar:
      if (s().bar == bar_state::none)
        return reject(rejection::nothing_to_unbar);
      if (s().pending_order != order_type::none)
        return reject(rejection::order_in_flight); // e.g. the bar has not completed yet
      if (s().bar != bar_state::barred)
        return reject(rejection::nothing_to_unbar);
      reason = s().reason;
      if (s().reason == bar_reason::imei_lock) {
        if (s().lock != lock_state::off) {
          if (e.mode == unbar_mode::none)
            return reject(rejection::unbar_mode_required); // R10/R11: the operator chooses
          mode = e.mode;
        } else {
          // R12: the lock was disabled after the bar; there is no lock to keep
          // or update, and the lock stays off whatever the option.
          if (e.mode != unbar_mode::none)
            out_.warnings.emplace_back("IMEI locking is disabled on this SIM: the unbar option (" +
                                       std::string{to_string(e.mode)} +
                                       ") has no effect and the SIM stays unlocked");
          mode = unbar_mode::keep_lock;
        }
      } else if (e.mode != unbar_mode::none) {
        return reject(rejection::unbar_mode_not_applicable);
      }
      break;
    case order_type::none:
      return reject(rejection::invalid_order);
  }
  if (s().pending_order != order_type::none)
    return reject(rejection::order_in_flight);

  s().pending_order = e.type;
  s().pending_order_id = e.order_id;
  switch (e.type) {
    case order_type::activate:
      s().activate_with_lock = e.with_lock;
      if (e.with_lock)
        s().scope = e.scope; // R16
      detail_ = e.with_lock ? "activation with IMEI locking (R13)" : "activation";
      if (e.with_lock && e.scope == lock_scope::device_model)
        detail_ += ", locking to the device model (R16)";
      break;
    case order_type::enable_imei_lock:
      s().scope = e.scope; // R16
      if (e.scope == lock_scope::device_model)
        detail_ = "R16: locking to the device model";
      break;
    case order_type::bar:
      s().bar = bar_state::bar_pending;
      s().reason = bar_reason::manual;
      break;
    case order_type::unbar:
      s().bar = bar_state::unbar_pending;
      s().pending_unbar = mode;
      if (mode == unbar_mode::keep_lock && s().lock == lock_state::locked &&
          !same_lock_device(s().scope, s().lock_imei, s().last_seen_imei)) {
        out_.warnings.push_back(keep_lock_warning(s(), pol_.strict)); // R10
      } else if (mode == unbar_mode::update_to_last_seen) {
        detail_ = "R11: the lock will become " + show(s().last_seen_imei);
      }
      break;
    default:
      break;
  }
  for (const auto& w : out_.warnings)
    detail_ += (detail_.empty() ? "" : "; ") + w;
  const bool locking =
      e.type == order_type::enable_imei_lock || (e.type == order_type::activate && e.with_lock);
  submit(e.order_id, e.type, reason, mode, e.with_lock, locking ? e.scope : lock_scope::imei);
}

void step::on(const order_completed& e) {
  if (!matches_pending(e.order_id, "order_completed"))
    return;
  const order_type type = s().pending_order;
  const std::uint64_t id = s().pending_order_id;
  cause_ = "order_completed:" + std::string{to_string(type)};
  s().pending_order = order_type::none;
  s().pending_order_id = 0;

  switch (type) {
    case order_type::activate:
      s().status = sim_status::active;
      tell(notice::activated, no_device, id);
      if (s().activate_with_lock) {
        // R13: the first device the SIM is used in becomes the lock (R6).
        s().lock = lock_state::awaiting_first_imei;
        s().lock_imei = no_device;
        detail_ = "R13: locking to the next seen IMEI";
        tell(notice::lock_enabled, no_device, id);
      }
      s().activate_with_lock = false;
      break;
    case order_type::enable_imei_lock:
      // R4: lock to the last seen device if one is known, else to the next one.
      if (s().last_seen_imei != no_device) {
        s().lock = lock_state::locked;
        s().lock_imei = s().last_seen_imei;
        detail_ = "R4: locked to last seen " + show(s().lock_imei);
      } else {
        s().lock = lock_state::awaiting_first_imei;
        s().lock_imei = no_device;
        detail_ = "R4: no IMEI seen yet, locking to the next seen IMEI";
      }
      tell(notice::lock_enabled, s().lock_imei, id);
      break;
    case order_type::disable_imei_lock:
      // R12: the SIM may move freely; a bar in force stays until unbarred.
      tell(notice::lock_disabled, s().lock_imei, id);
      s().lock = lock_state::off;
      s().lock_imei = no_device;
      s().alerted = false; // the operator acted on the lock
      detail_ = "R12: lock cleared";
      break;
    case order_type::bar:
      s().bar = bar_state::barred;
      s().alerted = false; // barred: nothing left to bar by hand
      tell(notice::bar_completed, s().trigger_imei, id);
      break;
    case order_type::unbar:
      tell(notice::unbar_completed, no_device, id);
      if (s().reason == bar_reason::imei_lock && s().pending_unbar == unbar_mode::none) {
        // A violation happened while this manual bar was being lifted: the
        // SIM is in a device it is not locked to, so bar it again (R7).
        raise_imei_lock_bar();
        detail_ =
            "R7: unbarred, and barred again for the violation seen while the unbar was pending (" +
            show(s().trigger_imei) + ")";
        break;
      }
      if (s().pending_unbar == unbar_mode::update_to_last_seen && s().lock != lock_state::off &&
          s().last_seen_imei != no_device) {
        // R11: last seen is, by R9, the first device seen after the violation.
        s().lock = lock_state::locked;
        s().lock_imei = s().last_seen_imei;
        s().alerted = false; // the lock moved to the device seen
        detail_ = "R11: lock updated to last seen " + show(s().lock_imei);
      } else if (s().pending_unbar == unbar_mode::keep_lock) {
        detail_ = "R10: lock kept at " + show(s().lock_imei);
      }
      s().bar = bar_state::none;
      s().reason = bar_reason::none;
      s().trigger_imei = no_device;
      s().pending_unbar = unbar_mode::none;
      break;
    case order_type::none:
      break;
  }
}

void step::on(const order_failed& e) {
  if (!matches_pending(e.order_id, "order_failed"))
    return;
  const order_type type = s().pending_order;
  const std::uint64_t id = s().pending_order_id;
  cause_ = "order_failed:" + std::string{to_string(type)};
  detail_ = "failed: " + (e.reason.empty() ? std::string{"no reason given"} : e.reason);
  s().pending_order = order_type::none;
  s().pending_order_id = 0;

  switch (type) {
    case order_type::activate:
      s().activate_with_lock = false;
      break;
    case order_type::bar:
      if (s().reason == bar_reason::imei_lock && s().lock == lock_state::locked) {
        // The lock is still on: compare the next observation with the
        // locked device again, so any other device raises a new bar (R7).
        s().last_seen_imei = s().lock_imei;
        detail_ += "; the SIM is not barred: its next use in a device other than " +
                   show(s().lock_imei) + " raises a new Bar order";
      }
      s().bar = bar_state::none;
      s().reason = bar_reason::none;
      s().trigger_imei = no_device;
      break;
    case order_type::unbar:
      s().bar = bar_state::barred;
      s().pending_unbar = unbar_mode::none;
      break;
    case order_type::enable_imei_lock:
    case order_type::disable_imei_lock:
    case order_type::none:
      break; // nothing took effect yet
  }
  tell(notice::order_failed, no_device, id);
}

} // namespace

outcome apply(const policy& pol, const sim_state& state, const event& ev, std::int64_t now_ms) {
  step st{pol, state, now_ms};
  std::visit([&st](const auto& e) { st.on(e); }, ev);
  return st.finish();
}

void note_order_id(sim_state& state, std::uint64_t order_id) {
  if (state.pending_order != order_type::none && state.pending_order_id == 0)
    state.pending_order_id = order_id;
}

void note_order_id(outcome& o, std::uint64_t order_id) {
  bool asked = false;
  for (auto& eff : o.effects) {
    if (auto* so = std::get_if<submit_order>(&eff); so != nullptr && so->order_id == 0) {
      so->order_id = order_id;
      asked = true;
    }
  }
  if (!asked)
    return;
  note_order_id(o.next, order_id);
  for (auto& a : o.audits)
    note_order_id(a.after, order_id);
  for (auto& eff : o.effects)
    if (auto* n = std::get_if<notify>(&eff);
        n != nullptr && n->what == notice::violation && n->order_id == 0)
      n->order_id = order_id;
}

bool imei_lock_bar_active(const sim_state& state) {
  return state.reason == bar_reason::imei_lock && state.bar != bar_state::none;
}

std::string keep_lock_warning(const sim_state& state, bool strict) {
  const std::string locked = show(state.lock_imei);
  const std::string seen = show(state.last_seen_imei);
  if (strict)
    return "The SIM was last seen in IMEI " + seen + ", not in IMEI " + locked +
           " it is locked to. Strict enforcement is on: it will be barred again at its next use in "
           "any "
           "device other than IMEI " +
           locked + ".";
  return "The SIM was last seen in IMEI " + seen + ", not in IMEI " + locked +
         " it is locked to (while barred, last seen stays at the first device used after the bar "
         "triggered). Keeping the existing lock, it will not be barred again unless it is used in "
         "another (3rd) device: it can use data in IMEI " +
         seen + " while showing as locked to IMEI " + locked +
         ". Move the SIM back into the original device before unbarring with this option.";
}

std::string_view to_string(notice n) {
  switch (n) {
    case notice::change_event:
      return "change_event";
    case notice::violation:
      return "violation";
    case notice::lock_set_first_imei:
      return "lock_set_first_imei";
    case notice::lock_enabled:
      return "lock_enabled";
    case notice::lock_disabled:
      return "lock_disabled";
    case notice::bar_completed:
      return "bar_completed";
    case notice::unbar_completed:
      return "unbar_completed";
    case notice::order_failed:
      return "order_failed";
    case notice::activated:
      return "activated";
  }
  return "unknown";
}

std::string_view to_string(rejection r) {
  switch (r) {
    case rejection::none:
      return "none";
    case rejection::network_not_eligible:
      return "network_not_eligible";
    case rejection::activation_lock_not_eligible:
      return "activation_lock_not_eligible";
    case rejection::not_active:
      return "not_active";
    case rejection::already_active:
      return "already_active";
    case rejection::order_in_flight:
      return "order_in_flight";
    case rejection::nothing_to_unbar:
      return "nothing_to_unbar";
    case rejection::unbar_mode_required:
      return "unbar_mode_required";
    case rejection::unbar_mode_not_applicable:
      return "unbar_mode_not_applicable";
    case rejection::already_barred:
      return "already_barred";
    case rejection::lock_already_enabled:
      return "lock_already_enabled";
    case rejection::lock_not_enabled:
      return "lock_not_enabled";
    case rejection::invalid_order:
      return "invalid_order";
  }
  return "unknown";
}

std::string_view explain(rejection r) {
  switch (r) {
    case rejection::none:
      return "The order was accepted.";
    case rejection::network_not_eligible:
      return "IMEI locking is not available on this SIM's network.";
    case rejection::activation_lock_not_eligible:
      return "IMEI locking on activation is not available on this SIM's network: activate without "
             "it, "
             "then enable IMEI locking if the network allows it.";
    case rejection::not_active:
      return "The SIM is not active: activate it first.";
    case rejection::already_active:
      return "The SIM is already active.";
    case rejection::order_in_flight:
      return "Another order for this SIM is in progress: wait until it completes or fails.";
    case rejection::nothing_to_unbar:
      return "The SIM is not barred, so there is nothing to unbar.";
    case rejection::unbar_mode_required:
      return "The SIM was barred by IMEI locking: choose to keep the existing lock or to update it "
             "to "
             "the last seen IMEI.";
    case rejection::unbar_mode_not_applicable:
      return "The SIM was barred manually, not by IMEI locking: unbar it without a lock option.";
    case rejection::already_barred:
      return "The SIM is already barred or a Bar order is pending.";
    case rejection::lock_already_enabled:
      return "IMEI locking is already enabled on this SIM.";
    case rejection::lock_not_enabled:
      return "IMEI locking is not enabled on this SIM.";
    case rejection::invalid_order:
      return "The order has no id or no type.";
  }
  return "Unknown reason.";
}

} // namespace imeilock::lock
