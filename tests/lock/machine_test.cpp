// The lock rules, one test case per rule of DESIGN §2 (R1-R14), then the
// decisions documented in lock/machine.hpp.

#include "harness.hpp"

#include <catch2/catch.hpp>

using namespace imeilock::lock;
using namespace imeilock::lock::testing;

namespace {

/// A live SIM locked to device A (enable with A last seen).
sim locked_to_a(policy pol = sim::eligible()) {
  sim s{pol};
  s.seen(imei_a);
  s.order(order_type::enable_imei_lock);
  REQUIRE(s.state.lock == lock_state::locked);
  REQUIRE(s.state.lock_imei == dev(imei_a));
  return s;
}

/// Locked to A, moved to B, IMEI-lock bar completed.
sim barred_in_b(policy pol = sim::eligible()) {
  auto s = locked_to_a(pol);
  s.seen(imei_b);
  s.complete();
  REQUIRE(s.state.bar == bar_state::barred);
  REQUIRE(s.state.reason == bar_reason::imei_lock);
  return s;
}

} // namespace

TEST_CASE("R1 eligibility: enable only on eligible networks, refused with the reason",
          "[machine][R1]") {
  sim s{sim::ineligible()};
  s.seen(imei_a);
  auto before = s.state;
  const auto& o = s.place(order_type::enable_imei_lock);
  CHECK(o.rejected == rejection::network_not_eligible);
  CHECK_FALSE(o.changed);
  CHECK(o.next == before);
  CHECK(o.effects.empty());
  CHECK(o.audits.empty());
  CHECK(explain(o.rejected).find("not available") != std::string::npos);

  sim ok{sim::eligible()};
  CHECK(ok.place(order_type::enable_imei_lock).rejected == rejection::none);
}

TEST_CASE("R1 R13 lock on activation only where configured", "[machine][R1][R13]") {
  sim ee{sim::eligible(), sim_status::inactive};
  CHECK(ee.place(order_type::activate, unbar_mode::none, true).rejected ==
        rejection::activation_lock_not_eligible);
  CHECK(ee.state.pending_order == order_type::none);
  // Activation without the lock is fine on the same network.
  CHECK(ee.place(order_type::activate).rejected == rejection::none);

  sim rn{sim::roamnet901(), sim_status::inactive};
  CHECK(rn.place(order_type::activate, unbar_mode::none, true).rejected == rejection::none);
  CHECK(rn.state.activate_with_lock);
}

TEST_CASE("R3 no IMEI, no event", "[machine][R3]") {
  auto s = locked_to_a();
  auto before = s.state;
  const auto& o = s.seen_without_imei();
  CHECK_FALSE(o.changed);
  CHECK(o.effects.empty());
  CHECK(o.audits.empty());
  CHECK(s.state == before);
  // A malformed IMEI counts as no IMEI (R2).
  CHECK_FALSE(s.seen("12345").changed);
  CHECK_FALSE(
      s.apply_event(observed{imei_value{imei_status::malformed, no_device, std::nullopt}}).changed);
  CHECK(s.bars_submitted() == 0);
}

TEST_CASE("R4 enable on a live SIM locks to last seen, else awaits the first IMEI",
          "[machine][R4]") {
  SECTION("with a known last seen IMEI") {
    sim s;
    s.seen(imei_a);
    const auto& placed = s.place(order_type::enable_imei_lock);
    CHECK(placed.rejected == rejection::none);
    CHECK(s.state.lock == lock_state::off); // two-phase: nothing until completion
    CHECK(s.state.pending_order == order_type::enable_imei_lock);
    REQUIRE(placed.effects.size() == 1);
    CHECK(std::get<submit_order>(placed.effects[0]).type == order_type::enable_imei_lock);
    s.complete();
    CHECK(s.state.lock == lock_state::locked);
    CHECK(s.state.lock_imei == dev(imei_a));
    CHECK(s.count(notice::lock_enabled) == 1);
  }
  SECTION("without one") {
    sim s;
    s.order(order_type::enable_imei_lock);
    CHECK(s.state.lock == lock_state::awaiting_first_imei);
    CHECK(s.state.lock_imei == no_device);
  }
  SECTION("refused on an inactive SIM and when already enabled") {
    sim inactive{sim::eligible(), sim_status::inactive};
    CHECK(inactive.place(order_type::enable_imei_lock).rejected == rejection::not_active);
    auto s = locked_to_a();
    CHECK(s.place(order_type::enable_imei_lock).rejected == rejection::lock_already_enabled);
  }
}

TEST_CASE("R5 a different IMEI is a change event and becomes last seen", "[machine][R5]") {
  sim s; // lock off: change events still tracked
  s.seen(imei_a);
  CHECK(s.state.last_seen_imei == dev(imei_a));
  CHECK(s.count(notice::change_event) == 1);
  const auto& same = s.seen(imei_a);
  CHECK_FALSE(same.changed);
  CHECK(same.effects.empty());
  s.seen(imei_b);
  CHECK(s.state.last_seen_imei == dev(imei_b));
  CHECK(s.count(notice::change_event) == 2);
  CHECK(s.bars_submitted() == 0); // no lock, no bar
}

TEST_CASE("R6 the first IMEI seen while awaiting becomes the lock, no bar", "[machine][R6]") {
  sim s;
  s.order(order_type::enable_imei_lock);
  REQUIRE(s.state.lock == lock_state::awaiting_first_imei);
  s.seen(imei_b);
  CHECK(s.state.lock == lock_state::locked);
  CHECK(s.state.lock_imei == dev(imei_b));
  CHECK(s.state.last_seen_imei == dev(imei_b));
  CHECK(s.count(notice::lock_set_first_imei) == 1);
  CHECK(s.bars_submitted() == 0);
  CHECK(s.state.bar == bar_state::none);
}

TEST_CASE("R7 violation raises exactly one bar", "[machine][R7]") {
  auto s = locked_to_a();
  const auto& o = s.seen(imei_b);
  CHECK(o.changed);
  CHECK(s.bars_submitted() == 1);
  CHECK(s.submitted.back().reason == bar_reason::imei_lock);
  CHECK(s.state.bar == bar_state::bar_pending);
  CHECK(s.state.reason == bar_reason::imei_lock);
  CHECK(s.state.trigger_imei == dev(imei_b));
  CHECK(s.state.pending_order == order_type::bar);
  CHECK(s.state.pending_order_id == s.submitted.back().order_id); // note_order_id
  CHECK(s.count(notice::violation) == 1);
  CHECK(s.notices.back().order_id == s.state.pending_order_id); // note_order_id(outcome&)
  CHECK(o.audits.at(0).after.pending_order_id == s.state.pending_order_id);
  // Further violations while pending and after completion: no second order.
  s.seen(imei_c);
  s.seen(imei_b);
  s.seen(imei_d);
  s.complete();
  s.seen(imei_c);
  CHECK(s.bars_submitted() == 1);
  CHECK(s.count(notice::violation) == 1);
}

TEST_CASE("R7 returning to the locked device is no violation", "[machine][R7]") {
  auto s = locked_to_a();
  s.seen(imei_a);
  CHECK(s.bars_submitted() == 0);
}

TEST_CASE("R8 the SIM keeps working until the bar completes", "[machine][R8]") {
  auto s = locked_to_a();
  s.seen(imei_b);
  // Traffic keeps arriving during the lead time: accepted, still only pending.
  for (int i = 0; i < 5; ++i) {
    const auto& o = s.seen(imei_b);
    CHECK(o.rejected == rejection::none);
    CHECK(s.state.bar == bar_state::bar_pending);
  }
  s.complete();
  CHECK(s.state.bar == bar_state::barred);
  CHECK(s.count(notice::bar_completed) == 1);
}

TEST_CASE("R9 last seen stays frozen at the trigger while the bar is pending or in force",
          "[machine][R9]") {
  auto s = locked_to_a();
  s.seen(imei_b);
  const auto& o = s.seen(imei_c);
  CHECK_FALSE(o.changed); // another device changes nothing while frozen
  CHECK(o.effects.empty());
  CHECK(s.state.last_seen_imei == dev(imei_b));
  s.complete();
  s.seen(imei_d);
  s.seen(imei_a); // even the locked device does not move it
  CHECK(s.state.last_seen_imei == dev(imei_b));
  CHECK(s.state.trigger_imei == dev(imei_b));
  REQUIRE(s.place(order_type::unbar, unbar_mode::keep_lock).rejected == rejection::none);
  s.seen(imei_c); // still frozen while the unbar is pending
  CHECK(s.state.last_seen_imei == dev(imei_b));
}

TEST_CASE("R10 unbar keeping the lock: lock unchanged, warning when not in the original device",
          "[machine][R10]") {
  SECTION("SIM still in the 2nd device: accepted with the caveat") {
    auto s = barred_in_b();
    const auto& o = s.place(order_type::unbar, unbar_mode::keep_lock);
    CHECK(o.rejected == rejection::none);
    REQUIRE(o.warnings.size() == 1);
    const auto& w = o.warnings[0];
    CHECK(w.find("will not be barred again unless it is used in another (3rd) device") !=
          std::string::npos);
    CHECK(w.find(imei_a) != std::string::npos);
    CHECK(w.find(imei_b) != std::string::npos);
    CHECK(w.find("Move the SIM back into the original device") != std::string::npos);
    CHECK(o.audits.at(0).detail.find("3rd") != std::string::npos);
    s.complete();
    CHECK(s.state.bar == bar_state::none);
    CHECK(s.state.lock_imei == dev(imei_a));
    CHECK(s.state.trigger_imei == no_device);
    CHECK(s.state.last_seen_imei == dev(imei_b));
  }
  SECTION("SIM back in the original device: no warning") {
    auto s = locked_to_a();
    s.seen(imei_b);
    s.complete();
    // last seen is frozen at B, so the warning still applies: the R10 caveat.
    CHECK(s.place(order_type::unbar, unbar_mode::keep_lock).warnings.size() == 1);
  }
  SECTION("a manual bar with last seen == lock: no warning") {
    auto s = locked_to_a();
    s.order(order_type::bar);
    const auto& o = s.place(order_type::unbar);
    CHECK(o.rejected == rejection::none);
    CHECK(o.warnings.empty());
  }
}

TEST_CASE("R11 unbar updating to last seen locks to the first device after the bar",
          "[machine][R11]") {
  auto s = locked_to_a();
  s.seen(imei_b);
  s.seen(imei_c);
  s.complete();
  s.seen(imei_d);
  REQUIRE(s.place(order_type::unbar, unbar_mode::update_to_last_seen).rejected == rejection::none);
  CHECK(s.state.lock_imei == dev(imei_a)); // two-phase
  s.complete();
  CHECK(s.state.lock == lock_state::locked);
  CHECK(s.state.lock_imei == dev(imei_b));
  CHECK(s.state.bar == bar_state::none);
  CHECK(s.count(notice::unbar_completed) == 1);
}

TEST_CASE("R12 disable clears the lock, a bar in force stays", "[machine][R12]") {
  SECTION("no bar: SIM moves freely") {
    auto s = locked_to_a();
    s.order(order_type::disable_imei_lock);
    CHECK(s.state.lock == lock_state::off);
    CHECK(s.state.lock_imei == no_device);
    CHECK(s.count(notice::lock_disabled) == 1);
    s.seen(imei_b);
    s.seen(imei_c);
    CHECK(s.bars_submitted() == 0);
  }
  SECTION("with an IMEI-lock bar in force") {
    auto s = barred_in_b();
    s.order(order_type::disable_imei_lock);
    CHECK(s.state.lock == lock_state::off);
    CHECK(s.state.bar == bar_state::barred);
    CHECK(s.state.reason == bar_reason::imei_lock);
    // The unbar needs no lock option now; one given has no effect, with a warning.
    const auto& o = s.place(order_type::unbar, unbar_mode::update_to_last_seen);
    CHECK(o.rejected == rejection::none);
    REQUIRE(o.warnings.size() == 1);
    CHECK(o.warnings[0].find("no effect") != std::string::npos);
    s.complete();
    CHECK(s.state.bar == bar_state::none);
    CHECK(s.state.lock == lock_state::off);
    CHECK(s.state.lock_imei == no_device);
  }
  SECTION("refused when not enabled") {
    sim s;
    CHECK(s.place(order_type::disable_imei_lock).rejected == rejection::lock_not_enabled);
  }
}

TEST_CASE("R13 activation with lock awaits the first IMEI", "[machine][R13]") {
  sim s{sim::roamnet901(), sim_status::inactive};
  REQUIRE(s.place(order_type::activate, unbar_mode::none, true).rejected == rejection::none);
  CHECK(s.submitted.back().with_lock);
  CHECK(s.state.status == sim_status::inactive);
  s.complete();
  CHECK(s.state.status == sim_status::active);
  CHECK(s.state.lock == lock_state::awaiting_first_imei);
  CHECK_FALSE(s.state.activate_with_lock);
  CHECK(s.count(notice::activated) == 1);
  CHECK(s.count(notice::lock_enabled) == 1);
  s.seen(imei_c);
  CHECK(s.state.lock == lock_state::locked);
  CHECK(s.state.lock_imei == dev(imei_c));
  // Activating an active SIM is refused.
  CHECK(s.place(order_type::activate).rejected == rejection::already_active);
}

TEST_CASE("R14 every transition is audited with cause, before, after", "[machine][R14]") {
  auto s = locked_to_a();
  auto before = s.state;
  const auto& o = s.seen(imei_b);
  REQUIRE(o.audits.size() == 1);
  const auto& a = o.audits[0];
  CHECK(a.cause == "observation");
  CHECK(a.before == before);
  CHECK(a.after == o.next);
  CHECK(a.imei == dev(imei_b));
  CHECK(a.detail.find("R7") != std::string::npos);
  CHECK(o.next.updated_at_ms == s.now_ms);

  const auto& placed = s.place(order_type::disable_imei_lock); // refused: bar in flight
  CHECK(placed.rejected == rejection::order_in_flight);
  CHECK(placed.audits.empty());

  s.complete();
  CHECK(s.last.audits.at(0).cause == "order_completed:bar");
  // Every change in this SIM's life left exactly one record.
  // seen A, enable placed, enable completed, seen B, bar completed.
  CHECK(s.audit_log.size() == 5);
}

TEST_CASE("orders are two-phase and one at a time", "[machine][orders]") {
  auto s = locked_to_a();
  REQUIRE(s.place(order_type::bar).rejected == rejection::none);
  CHECK(s.state.bar == bar_state::bar_pending);
  CHECK(s.state.reason == bar_reason::manual);
  CHECK(s.submitted.back().reason == bar_reason::manual);
  CHECK(s.place(order_type::disable_imei_lock).rejected == rejection::order_in_flight);
  CHECK(s.place(order_type::bar).rejected == rejection::already_barred);
  CHECK(s.place(order_type::unbar).rejected == rejection::order_in_flight);
  s.complete();
  CHECK(s.state.bar == bar_state::barred);
  CHECK(s.place(order_type::unbar, unbar_mode::keep_lock).rejected ==
        rejection::unbar_mode_not_applicable);
  CHECK(s.place(order_type::unbar).rejected == rejection::none);
  s.complete();
  CHECK(s.state.bar == bar_state::none);
  CHECK(s.state.reason == bar_reason::none);
  CHECK(s.place(order_type::unbar).rejected == rejection::nothing_to_unbar);
}

TEST_CASE("unbar of an IMEI-lock bar requires a lock option", "[machine][R10][R11]") {
  auto s = barred_in_b();
  CHECK(s.place(order_type::unbar).rejected == rejection::unbar_mode_required);
  CHECK(s.state.bar == bar_state::barred);
}

TEST_CASE("invalid orders are refused", "[machine][orders]") {
  sim s;
  CHECK(s.apply_event(order_placed{0, order_type::bar, unbar_mode::none, false}).rejected ==
        rejection::invalid_order);
  CHECK(s.apply_event(order_placed{5, order_type::none, unbar_mode::none, false}).rejected ==
        rejection::invalid_order);
  sim inactive{sim::eligible(), sim_status::inactive};
  CHECK(inactive.place(order_type::bar).rejected == rejection::not_active);
}

TEST_CASE("failed orders revert the pending state and are audited", "[machine][orders]") {
  SECTION("manual bar") {
    auto s = locked_to_a();
    s.place(order_type::bar);
    const auto& o = s.fail("HLR timeout");
    CHECK(s.state.bar == bar_state::none);
    CHECK(s.state.reason == bar_reason::none);
    CHECK(s.state.pending_order == order_type::none);
    CHECK(o.audits.at(0).cause == "order_failed:bar");
    CHECK(o.audits.at(0).detail.find("HLR timeout") != std::string::npos);
    CHECK(s.count(notice::order_failed) == 1);
  }
  SECTION("IMEI-lock bar: the lock keeps being enforced") {
    auto s = locked_to_a();
    s.seen(imei_b);
    s.fail();
    CHECK(s.state.bar == bar_state::none);
    CHECK(s.state.trigger_imei == no_device);
    CHECK(s.state.last_seen_imei == dev(imei_a));
    s.seen(imei_b); // still in the foreign device: a new bar
    CHECK(s.bars_submitted() == 2);
    CHECK(s.state.bar == bar_state::bar_pending);
  }
  SECTION("unbar") {
    auto s = barred_in_b();
    s.place(order_type::unbar, unbar_mode::update_to_last_seen);
    s.fail();
    CHECK(s.state.bar == bar_state::barred);
    CHECK(s.state.pending_unbar == unbar_mode::none);
    CHECK(s.state.lock_imei == dev(imei_a));
  }
  SECTION("enable, disable, activate") {
    sim s;
    s.seen(imei_a);
    s.place(order_type::enable_imei_lock);
    s.fail();
    CHECK(s.state.lock == lock_state::off);
    s.order(order_type::enable_imei_lock);
    s.place(order_type::disable_imei_lock);
    s.fail();
    CHECK(s.state.lock == lock_state::locked);
    sim r{sim::roamnet901(), sim_status::inactive};
    r.place(order_type::activate, unbar_mode::none, true);
    r.fail();
    CHECK(r.state.status == sim_status::inactive);
    CHECK_FALSE(r.state.activate_with_lock);
    CHECK(r.state.lock == lock_state::off);
  }
}

TEST_CASE("an unexpected order outcome is ignored and audited", "[machine][R14]") {
  auto s = locked_to_a();
  auto before = s.state;
  const auto& o = s.apply_event(order_completed{424242});
  CHECK_FALSE(o.changed);
  CHECK(o.next == before);
  REQUIRE(o.audits.size() == 1);
  CHECK(o.audits[0].detail.find("424242") != std::string::npos);
  CHECK(o.effects.empty());
  CHECK_FALSE(s.apply_event(order_failed{0, "x"}).changed);
}

TEST_CASE("a violation during a manual bar makes it the IMEI-lock bar", "[machine][R7]") {
  SECTION("manual bar pending") {
    auto s = locked_to_a();
    s.place(order_type::bar);
    s.seen(imei_b);
    CHECK(s.bars_submitted() == 1); // the manual one only
    CHECK(s.state.reason == bar_reason::imei_lock);
    CHECK(s.state.trigger_imei == dev(imei_b));
    CHECK(s.count(notice::violation) == 1);
    s.complete();
    CHECK(s.state.bar == bar_state::barred);
    CHECK(s.place(order_type::unbar).rejected == rejection::unbar_mode_required);
  }
  SECTION("manual bar being lifted: barred again when the unbar completes") {
    auto s = locked_to_a();
    s.order(order_type::bar);
    s.place(order_type::unbar);
    s.seen(imei_b);
    CHECK(s.state.bar == bar_state::unbar_pending);
    CHECK(s.state.reason == bar_reason::imei_lock);
    s.complete();
    CHECK(s.state.bar == bar_state::bar_pending);
    CHECK(s.bars_submitted() == 2);
    CHECK(s.submitted.back().reason == bar_reason::imei_lock);
    CHECK(s.state.pending_order_id == s.submitted.back().order_id);
    CHECK(s.state.last_seen_imei == dev(imei_b));
    s.complete();
    CHECK(s.state.bar == bar_state::barred);
  }
}

TEST_CASE("a violation while a disable is in flight raises no bar", "[machine][R7][R12]") {
  auto s = locked_to_a();
  s.place(order_type::disable_imei_lock);
  const auto& o = s.seen(imei_b);
  CHECK_FALSE(o.changed);
  CHECK(s.bars_submitted() == 0);
  SECTION("disable completes: free") {
    s.complete();
    s.seen(imei_b);
    CHECK(s.state.last_seen_imei == dev(imei_b));
    CHECK(s.bars_submitted() == 0);
  }
  SECTION("disable fails: the next use in B is a violation") {
    s.fail();
    s.seen(imei_b);
    CHECK(s.bars_submitted() == 1);
  }
}

TEST_CASE("strict mode bars on any other device, closing the R10 caveat",
          "[machine][strict][R10]") {
  policy strict{true, false, true};
  auto s = barred_in_b(strict);
  const auto& o = s.place(order_type::unbar, unbar_mode::keep_lock);
  REQUIRE(o.warnings.size() == 1);
  CHECK(o.warnings[0].find("Strict enforcement") != std::string::npos);
  CHECK(o.warnings[0].find("barred again") != std::string::npos);
  s.complete();
  s.seen(imei_b); // no change event (last seen is B), but B is not the lock
  CHECK(s.bars_submitted() == 2);
  CHECK(s.state.trigger_imei == dev(imei_b));
}

TEST_CASE("note_order_id only fills a pending order without an id", "[machine]") {
  sim_state st;
  note_order_id(st, 7);
  CHECK(st.pending_order_id == 0);
  st.pending_order = order_type::bar;
  note_order_id(st, 7);
  CHECK(st.pending_order_id == 7);
  note_order_id(st, 8);
  CHECK(st.pending_order_id == 7);
}
