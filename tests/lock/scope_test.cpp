// R16 device-model scope (issue 13): a SIM locked by model (the TAC, the
// IMEI's first 8 digits) moves between devices of that model without a bar
// and is barred in a device of another model; the default scope `imei` keeps
// the product text's rules exactly. As lock/machine.hpp documents it.

#include "harness.hpp"

#include <catch2/catch.hpp>

using namespace imeilock::lock;
using namespace imeilock::lock::testing;

namespace {

/// imei_a's model (TAC 35209900), two other devices of it.
const std::string same_model_1 = "352099001234562";
const std::string same_model_2 = "352099006543215";

/// A live SIM seen in device A, then locked with `scope` (R4).
sim locked_to_a(lock_scope scope, policy pol = sim::eligible()) {
  sim s{pol};
  s.seen(imei_a);
  REQUIRE(
      s.apply_event(order_placed{1, order_type::enable_imei_lock, unbar_mode::none, false, scope})
          .rejected == rejection::none);
  REQUIRE(s.complete().changed);
  REQUIRE(s.state.lock == lock_state::locked);
  REQUIRE(s.state.lock_imei == dev(imei_a));
  REQUIRE(s.state.scope == scope);
  return s;
}

} // namespace

TEST_CASE("R16: the TAC is the first 8 digits of the device", "[machine][scope]") {
  CHECK(tac_of(dev(imei_a)) == 35209900u);
  CHECK(tac_of(dev(same_model_1)) == 35209900u);
  CHECK(tac_of(dev(imei_b)) == 35693803u);
  CHECK(same_lock_device(lock_scope::device_model, dev(imei_a), dev(same_model_1)));
  CHECK_FALSE(same_lock_device(lock_scope::imei, dev(imei_a), dev(same_model_1)));
  CHECK(same_lock_device(lock_scope::imei, dev(imei_a), dev(imei_a)));
  CHECK_FALSE(same_lock_device(lock_scope::device_model, dev(imei_a), dev(imei_b)));
}

TEST_CASE("R16: scope imei (the default) is R7 unchanged: another device of the same model bars",
          "[machine][scope]") {
  auto s = locked_to_a(lock_scope::imei);
  s.seen(same_model_1);
  CHECK(s.bars_submitted() == 1);
  CHECK(s.state.bar == bar_state::bar_pending);
  CHECK(s.state.trigger_imei == dev(same_model_1));
}

TEST_CASE("R16: locked by model, a move to another device of the same model is no violation",
          "[machine][scope]") {
  auto s = locked_to_a(lock_scope::device_model);
  const auto& o = s.seen(same_model_1);
  CHECK(o.changed);
  CHECK(s.bars_submitted() == 0);
  CHECK(s.count(notice::violation) == 0);
  CHECK(s.count(notice::change_event) >= 1); // R5: still a change event
  CHECK(s.state.last_seen_imei == dev(same_model_1));
  CHECK(s.state.lock_imei == dev(imei_a)); // the lock keeps its device
  CHECK(s.state.bar == bar_state::none);
  s.seen(same_model_2);
  CHECK(s.bars_submitted() == 0);
  CHECK(s.state.last_seen_imei == dev(same_model_2));
}

TEST_CASE("R16: locked by model, a device of another model is a violation (R7)",
          "[machine][scope]") {
  auto s = locked_to_a(lock_scope::device_model);
  s.seen(same_model_1);
  s.seen(imei_b);
  CHECK(s.bars_submitted() == 1);
  CHECK(s.count(notice::violation) == 1);
  CHECK(s.state.bar == bar_state::bar_pending);
  CHECK(s.state.trigger_imei == dev(imei_b));
  // R9: frozen at the trigger while the bar is pending, whatever the device.
  s.seen(same_model_2);
  CHECK(s.state.last_seen_imei == dev(imei_b));
  CHECK(s.bars_submitted() == 1);
}

TEST_CASE("R16 with strict mode: another device of the same model is still allowed",
          "[machine][scope]") {
  policy pol = sim::eligible();
  pol.strict = true;
  auto s = locked_to_a(lock_scope::device_model, pol);
  s.seen(same_model_1);
  s.seen(same_model_1);
  CHECK(s.bars_submitted() == 0);
  s.seen(imei_c);
  CHECK(s.bars_submitted() == 1);
}

TEST_CASE("R16: R10's warning compares models for a SIM locked by model", "[machine][scope]") {
  auto s = locked_to_a(lock_scope::device_model);
  s.seen(imei_b); // violation: barred, trigger B
  REQUIRE(s.complete().changed);
  REQUIRE(s.state.bar == bar_state::barred);
  // Last seen B (another model): keep_lock warns as R10 says.
  CHECK_FALSE(s.place(order_type::unbar, unbar_mode::keep_lock).warnings.empty());
}

TEST_CASE("R16: activation with lock by model, then the first device sets the lock (R13, R6)",
          "[machine][scope]") {
  sim s{sim::roamnet901(), sim_status::inactive};
  REQUIRE(s.apply_event(order_placed{1, order_type::activate, unbar_mode::none, true,
                                     lock_scope::device_model})
              .rejected == rejection::none);
  REQUIRE(s.submitted.back().scope == lock_scope::device_model);
  REQUIRE(s.complete().changed);
  CHECK(s.state.lock == lock_state::awaiting_first_imei);
  CHECK(s.state.scope == lock_scope::device_model);
  s.seen(imei_a); // R6
  CHECK(s.state.lock == lock_state::locked);
  CHECK(s.state.lock_imei == dev(imei_a));
  s.seen(same_model_2);
  CHECK(s.bars_submitted() == 0);
  s.seen(imei_d);
  CHECK(s.bars_submitted() == 1);
}

TEST_CASE("R16: the order carries the scope only when it enables the lock", "[machine][scope]") {
  sim s;
  s.seen(imei_a);
  s.apply_event(order_placed{1, order_type::enable_imei_lock, unbar_mode::none, false,
                             lock_scope::device_model});
  REQUIRE(s.submitted.size() == 1);
  CHECK(s.submitted.back().scope == lock_scope::device_model);
  REQUIRE(s.complete().changed);
  s.apply_event(
      order_placed{2, order_type::bar, unbar_mode::none, false, lock_scope::device_model});
  CHECK(s.submitted.back().scope == lock_scope::imei);
  REQUIRE(s.complete().changed);
  // Disabled, then enabled again with the default scope: locked by IMEI again.
  s.order(order_type::disable_imei_lock);
  s.order(order_type::enable_imei_lock);
  CHECK(s.state.scope == lock_scope::imei);
  s.seen(same_model_1);
  CHECK(s.state.bar == bar_state::barred);        // the manual bar stays (R12); and
  CHECK(s.state.reason == bar_reason::imei_lock); // the violation made it the IMEI-lock bar
}
