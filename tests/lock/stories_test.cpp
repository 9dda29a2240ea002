// The product text's stories (seed/imei-locking.txt, issue 3), end to end,
// through the decoded feed values and lock::apply only.

#include "harness.hpp"

#include <catch2/catch.hpp>

using namespace imeilock::lock;
using namespace imeilock::lock::testing;

TEST_CASE("story: enable on a live SIM with a known last-seen IMEI", "[story][R4]") {
  sim s;
  s.seen(imei_a);
  s.seen(imei_a);
  s.order(order_type::enable_imei_lock);
  CHECK(s.state.lock == lock_state::locked);
  CHECK(format_imei(s.state.lock_imei) == imei_a); // "displayed against the SIM"
  s.seen(imei_a);
  CHECK(s.bars_submitted() == 0);
}

TEST_CASE("story: enable on a live SIM never seen with an IMEI", "[story][R4][R6]") {
  sim s;
  s.seen_without_imei();
  s.order(order_type::enable_imei_lock);
  CHECK(s.state.lock == lock_state::awaiting_first_imei);
  s.seen(imei_b);
  CHECK(s.state.lock == lock_state::locked);
  CHECK(s.state.lock_imei == dev(imei_b));
  CHECK(s.bars_submitted() == 0);
}

TEST_CASE("story: SIM moved to a 2nd device -> exactly one Bar order, barred only after completion",
          "[story][R7][R8]") {
  sim s;
  s.seen(imei_a);
  s.order(order_type::enable_imei_lock);
  s.seen(imei_b);
  CHECK(s.bars_submitted() == 1);
  CHECK(s.state.bar == bar_state::bar_pending); // not barred yet: lead time
  // "some data usage may occur before the SIM is barred": traffic is accepted.
  for (int i = 0; i < 10; ++i) {
    const auto& o = s.seen(imei_b);
    CHECK(o.rejected == rejection::none);
    CHECK(o.effects.empty());
  }
  CHECK(s.state.bar == bar_state::bar_pending);
  CHECK(s.bars_submitted() == 1);
  s.complete();
  CHECK(s.state.bar == bar_state::barred);
  CHECK(s.bars_submitted() == 1);
}

TEST_CASE("story: unbar keeping the lock while still in the 2nd device", "[story][R10]") {
  sim s;
  s.seen(imei_a);
  s.order(order_type::enable_imei_lock);
  s.seen(imei_b);
  s.complete();
  const auto& o = s.place(order_type::unbar, unbar_mode::keep_lock);
  CHECK(o.rejected == rejection::none);
  REQUIRE(o.warnings.size() == 1);
  CHECK(o.warnings[0].find("will not be barred again unless it is used in another (3rd) device") !=
        std::string::npos);
  s.complete();
  CHECK(s.state.bar == bar_state::none);
  CHECK(format_imei(s.state.lock_imei) == imei_a); // "showing as locked to the original device"

  // Not barred again in the 2nd device.
  s.seen(imei_b);
  s.seen(imei_b);
  CHECK(s.bars_submitted() == 1);

  SECTION("barred again in a 3rd device") {
    s.seen(imei_c);
    CHECK(s.bars_submitted() == 2);
    CHECK(s.state.trigger_imei == dev(imei_c));
  }
  SECTION("not barred when moved back into the original device") {
    s.seen(imei_a);
    CHECK(s.bars_submitted() == 1);
    CHECK(s.state.bar == bar_state::none);
    CHECK(s.state.last_seen_imei == dev(imei_a));
  }
}

TEST_CASE("story: unbar updating to last seen after a 2nd and a 3rd device -> locked to the 2nd",
          "[story][R9][R11]") {
  sim s;
  s.seen(imei_a);
  s.order(order_type::enable_imei_lock);
  s.seen(imei_b); // the first device after the bar triggered
  s.seen(imei_c);
  s.complete();
  s.seen(imei_c);
  s.order(order_type::unbar, unbar_mode::update_to_last_seen);
  CHECK(s.state.lock == lock_state::locked);
  CHECK(format_imei(s.state.lock_imei) == imei_b);
  CHECK(s.state.bar == bar_state::none);
  CHECK(s.bars_submitted() == 1);
}

TEST_CASE("story: activation with lock on a RoamNet 901 SIM", "[story][R13]") {
  sim s{sim::roamnet901(), sim_status::inactive};
  s.order(order_type::activate, unbar_mode::none, true);
  CHECK(s.state.status == sim_status::active);
  CHECK(s.state.lock == lock_state::awaiting_first_imei); // "locking to the next seen IMEI"
  s.seen(imei_d);
  CHECK(s.state.lock == lock_state::locked);
  CHECK(format_imei(s.state.lock_imei) == imei_d);
  s.seen(imei_a);
  CHECK(s.bars_submitted() == 1);
}

TEST_CASE("story: activation with lock on an EE SIM is refused", "[story][R1][R13]") {
  sim s{sim::eligible(), sim_status::inactive}; // EE: lock yes, lock on activation no
  const auto& o = s.place(order_type::activate, unbar_mode::none, true);
  CHECK(o.rejected == rejection::activation_lock_not_eligible);
  CHECK_FALSE(o.changed);
  CHECK(s.submitted.empty());
  CHECK(s.state.status == sim_status::inactive);
}

TEST_CASE("story: enable on a network that is not eligible is refused with the reason",
          "[story][R1]") {
  sim s{sim::ineligible()};
  s.seen(imei_a);
  const auto& o = s.place(order_type::enable_imei_lock);
  CHECK(o.rejected == rejection::network_not_eligible);
  CHECK(to_string(o.rejected) == "network_not_eligible");
  CHECK_FALSE(explain(o.rejected).empty());
  CHECK(s.state.lock == lock_state::off);
  s.seen(imei_b);
  CHECK(s.bars_submitted() == 0);
}

TEST_CASE("story: disable -> IMEI cleared, SIM free, a bar in force stays until unbarred",
          "[story][R12]") {
  sim s;
  s.seen(imei_a);
  s.order(order_type::enable_imei_lock);
  s.seen(imei_b);
  s.complete();
  s.order(order_type::disable_imei_lock);
  CHECK(s.state.lock == lock_state::off);
  CHECK(s.state.lock_imei == no_device);
  CHECK(format_imei(s.state.lock_imei).empty());
  CHECK(s.state.bar == bar_state::barred); // the bar stays
  s.order(order_type::unbar);
  CHECK(s.state.bar == bar_state::none);
  // Free between devices.
  s.seen(imei_c);
  s.seen(imei_d);
  s.seen(imei_a);
  CHECK(s.bars_submitted() == 1);
}

TEST_CASE("story: no IMEI in the feed -> nothing happens", "[story][R3]") {
  sim s;
  s.seen(imei_a);
  s.order(order_type::enable_imei_lock);
  auto before = s.state;
  for (int i = 0; i < 3; ++i) {
    CHECK_FALSE(s.seen_without_imei().changed);
    CHECK_FALSE(s.seen("").changed);
  }
  CHECK(s.state == before);
  CHECK(s.bars_submitted() == 0);
}

TEST_CASE("story: a new software version (IMEISV digits 15-16) is the same device", "[story][R2]") {
  sim s;
  s.seen("3520990017614801");
  s.order(order_type::enable_imei_lock);
  const auto& o = s.seen("3520990017614802");
  CHECK_FALSE(o.changed);
  s.seen("352099001761481F"); // the same device from a TS 32.299 feed
  s.seen(imei_a);             // and as a plain IMEI
  CHECK(s.bars_submitted() == 0);
  CHECK(s.count(notice::change_event) == 1);
}

TEST_CASE("story: an IMEI with a spare 0 instead of the Luhn digit is the same device",
          "[story][R2]") {
  sim s;
  s.seen("352099001761481");
  s.order(order_type::enable_imei_lock);
  const auto& o = s.seen("352099001761480");
  CHECK_FALSE(o.changed);
  CHECK(s.bars_submitted() == 0);
  CHECK(format_imei(s.state.lock_imei) == "352099001761481");
}
