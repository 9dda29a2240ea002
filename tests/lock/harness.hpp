#pragma once
// A stand-in for the SIM actor around lock::apply: keeps the state, gives
// machine-raised orders an id (note_order_id), and records effects so tests
// can read like the product text.

#include "lock/imei.hpp"
#include "lock/machine.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace imeilock::lock::testing {

/// Three devices as IMEIs (15 digits, Luhn) and their identities.
inline const std::string imei_a = "352099001761481";
inline const std::string imei_b = "356938035643809";
inline const std::string imei_c = "490154203237518";
inline const std::string imei_d = "353490012345670";
inline device_id dev(const std::string& imei) {
  return decode_imei(imei).device;
}

/// One SIM driven through apply() the way the SIM actor drives it.
class sim {
public:
  explicit sim(policy pol = eligible(), sim_status status = sim_status::active) : pol_(pol) {
    state.status = status;
  }

  /// The network's policy; a test may change it between events (a reload).
  policy& network_policy() { return pol_; }

  static policy eligible() { return policy{true, false, false}; }
  static policy roamnet901() { return policy{true, true, false}; }
  static policy ineligible() { return policy{false, false, false}; }

  /// Applies one event; persists the new state, assigns ids to bars the
  /// machine raised, collects notices and submitted orders.
  const outcome& apply_event(const event& ev) {
    now_ms += 1000;
    last = lock::apply(pol_, state, ev, now_ms);
    for (const auto& eff : last.effects)
      if (const auto* so = std::get_if<submit_order>(&eff); so != nullptr && so->order_id == 0)
        note_order_id(last, next_id_++);
    for (const auto& eff : last.effects) {
      if (const auto* so = std::get_if<submit_order>(&eff)) {
        submitted.push_back(*so);
      } else if (const auto* n = std::get_if<notify>(&eff)) {
        notices.push_back(*n);
      } else if (std::holds_alternative<disconnect_session>(eff)) {
        ++disconnects;
      }
    }
    for (const auto& a : last.audits)
      audit_log.push_back(a);
    state = last.next;
    return last;
  }

  /// The SIM is used in a device (an accounting message with this IMEI).
  const outcome& seen(const std::string& raw_imei) {
    return apply_event(observed{decode_imei(raw_imei)});
  }
  /// An accounting message without an IMEI.
  const outcome& seen_without_imei() { return apply_event(observed{}); }

  const outcome& place(order_type type, unbar_mode mode = unbar_mode::none,
                       bool with_lock = false) {
    return apply_event(order_placed{next_id_++, type, mode, with_lock});
  }
  /// The order in flight completes / fails.
  const outcome& complete() { return apply_event(order_completed{state.pending_order_id}); }
  const outcome& fail(std::string reason = "backend said no") {
    return apply_event(order_failed{state.pending_order_id, std::move(reason)});
  }

  /// Places and completes an order; REQUIREs that it was accepted.
  void order(order_type type, unbar_mode mode = unbar_mode::none, bool with_lock = false) {
    REQUIRE(place(type, mode, with_lock).rejected == rejection::none);
    REQUIRE(complete().changed);
  }

  std::size_t bars_submitted() const {
    std::size_t n = 0;
    for (const auto& s : submitted)
      n += s.type == order_type::bar ? 1 : 0;
    return n;
  }
  std::size_t count(notice what) const {
    std::size_t n = 0;
    for (const auto& x : notices)
      n += x.what == what ? 1 : 0;
    return n;
  }

  /// The configuration changed (a SIGHUP): events from now on see `pol`.
  void set_policy(policy pol) { pol_ = pol; }

  sim_state state;
  outcome last;
  std::size_t disconnects = 0; ///< disconnect_session effects so far
  std::vector<submit_order> submitted;
  std::vector<notify> notices;
  std::vector<audit> audit_log;
  std::int64_t now_ms = 1'700'000'000'000;

private:
  policy pol_;
  std::uint64_t next_id_ = 100;
};

} // namespace imeilock::lock::testing
