// R17 allowed device models (issue 13): a network may list the TACs its SIMs
// may be used in; a SIM with IMEI locking on that makes a change event into a
// device of another model violates its lock, even before the lock has taken.
// As lock/machine.hpp documents it.

#include "harness.hpp"
#include "lock/eligibility.hpp"

#include <catch2/catch.hpp>

using namespace imeilock::lock;
using namespace imeilock::lock::testing;

namespace {

/// imei_a's model (TAC 35209900) and another device of it; imei_b and
/// imei_c are of other models (35693803, 49015420).
const std::string same_model_as_a = "352099001234562";

/// A network that allows only imei_a's model and the range 49015400-49015499
/// (imei_c's model).
const tac_list& allowed() {
  static const tac_list list{{{35209900, 35209900}, {49015400, 49015499}}};
  return list;
}

policy with_list(violation_action action = violation_action::bar, bool strict = false) {
  auto p = sim::eligible();
  p.allowed_tacs = &allowed();
  p.action = action;
  p.strict = strict;
  return p;
}

/// A live SIM whose lock is enabled with no device seen yet: awaiting its
/// first IMEI (R4).
sim awaiting(policy pol) {
  sim s{pol};
  REQUIRE(s.place(order_type::enable_imei_lock).rejected == rejection::none);
  REQUIRE(s.complete().changed);
  REQUIRE(s.state.lock == lock_state::awaiting_first_imei);
  return s;
}

} // namespace

TEST_CASE("R17: a TAC or a range of TACs parses, anything else says why", "[tac]") {
  CHECK(parse_tac_range("35209900").value() == tac_range{35209900, 35209900});
  CHECK(parse_tac_range("35209900-35209999").value() == tac_range{35209900, 35209999});
  CHECK(parse_tac_range("00000001").value() == tac_range{1, 1});
  for (const char* bad : {"", "3520990", "352099001", "3520990x", "35209900-", "-35209900",
                          "35209999-35209900", "35209900-3520999", "35209900 - 35209999"}) {
    auto r = parse_tac_range(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().message().find(std::string{"\""} + bad + "\"") != std::string::npos);
  }
}

TEST_CASE("R17: a list merges overlapping and adjacent ranges and finds every TAC in them",
          "[tac]") {
  tac_list list{{{30, 40}, {10, 20}, {21, 25}, {35, 50}, {60, 60}}};
  CHECK(list.ranges() == std::vector<tac_range>{{10, 25}, {30, 50}, {60, 60}});
  for (std::uint32_t t : {10u, 15u, 25u, 30u, 50u, 60u})
    CHECK(list.allows(t));
  for (std::uint32_t t : {0u, 9u, 26u, 29u, 51u, 59u, 61u, 99999999u})
    CHECK_FALSE(list.allows(t));
  CHECK_FALSE(tac_list{}.allows(10));
}

TEST_CASE("R17: no list allows any device (the product text's rules unchanged)", "[tac]") {
  auto p = sim::eligible();
  CHECK(allowed_device(p, dev(imei_b)));
  p.allowed_tacs = &allowed();
  CHECK(allowed_device(p, dev(imei_a)));
  CHECK(allowed_device(p, dev(imei_c)));
  CHECK_FALSE(allowed_device(p, dev(imei_b)));
}

TEST_CASE("R17: awaiting its first IMEI, a device of a model not allowed is a violation and "
          "does not become the lock",
          "[machine][tac][R6][R7]") {
  auto s = awaiting(with_list());
  s.seen(imei_b);
  CHECK(s.state.lock == lock_state::awaiting_first_imei);
  CHECK(s.state.lock_imei == no_device);
  CHECK(s.count(notice::violation) == 1);
  CHECK(s.bars_submitted() == 1);
  CHECK(s.state.bar == bar_state::bar_pending);
  CHECK(s.state.reason == bar_reason::imei_lock);
  CHECK(s.state.trigger_imei == dev(imei_b));
  REQUIRE_FALSE(s.audit_log.empty());
  CHECK(s.audit_log.back().detail.find("R17") != std::string::npos);
  CHECK(s.audit_log.back().detail.find("35693803") != std::string::npos);
  // R9: frozen at the trigger while the bar is pending; no second bar.
  s.seen(imei_c);
  CHECK(s.bars_submitted() == 1);
  CHECK(s.state.last_seen_imei == dev(imei_b));
}

TEST_CASE("R17: awaiting its first IMEI, the first allowed device becomes the lock (R6)",
          "[machine][tac][R6]") {
  auto s = awaiting(with_list());
  s.seen(imei_c); // in the range
  CHECK(s.state.lock == lock_state::locked);
  CHECK(s.state.lock_imei == dev(imei_c));
  CHECK(s.bars_submitted() == 0);
  CHECK(s.count(notice::violation) == 0);
}

TEST_CASE("R17: locked, a change to a device of a model not allowed is a violation naming R17",
          "[machine][tac][R7]") {
  auto s = awaiting(with_list());
  s.seen(imei_a);
  REQUIRE(s.state.lock_imei == dev(imei_a));
  s.seen(imei_b);
  CHECK(s.bars_submitted() == 1);
  CHECK(s.state.trigger_imei == dev(imei_b));
  CHECK(s.audit_log.back().detail.find("R17") != std::string::npos);
}

TEST_CASE("R17: lock off, the list changes nothing", "[machine][tac]") {
  sim s{with_list()};
  s.seen(imei_b);
  s.seen(imei_a);
  CHECK(s.bars_submitted() == 0);
  CHECK(s.count(notice::violation) == 0);
  CHECK(s.state.last_seen_imei == dev(imei_a));
}

TEST_CASE("R17: in monitor mode the violation is reported, no order, and the lock still waits "
          "for an allowed device",
          "[machine][tac][alert]") {
  auto s = awaiting(with_list(violation_action::alert));
  s.seen(imei_b);
  CHECK(s.bars_submitted() == 0);
  CHECK(s.count(notice::violation) == 1);
  CHECK(s.state.alerted);
  CHECK(s.state.lock == lock_state::awaiting_first_imei);
  CHECK(s.state.last_seen_imei == dev(imei_b));
  s.seen(same_model_as_a);
  CHECK(s.state.lock == lock_state::locked);
  CHECK(s.state.lock_imei == dev(same_model_as_a));
}

TEST_CASE("R17: after an unbar that updates the lock to the device (R11) it is not barred again "
          "without a change",
          "[machine][tac][R11]") {
  auto s = awaiting(with_list());
  s.seen(imei_b);
  REQUIRE(s.complete().changed); // the bar takes effect
  REQUIRE(s.state.bar == bar_state::barred);
  REQUIRE(s.place(order_type::unbar, unbar_mode::update_to_last_seen).rejected == rejection::none);
  REQUIRE(s.complete().changed);
  CHECK(s.state.bar == bar_state::none);
  CHECK(s.state.lock == lock_state::locked);
  CHECK(s.state.lock_imei == dev(imei_b)); // the operator's choice
  s.seen(imei_b);
  CHECK(s.bars_submitted() == 1);
  // Strict mode bars on any observation outside the list, as it does for R7.
  s.network_policy() = with_list(violation_action::bar, true);
  s.seen(imei_b);
  CHECK(s.bars_submitted() == 2);
}

TEST_CASE("R17: each listed network must be lockable, listed once and allow something",
          "[eligibility][tac]") {
  eligibility_config cfg;
  cfg.allowed_tacs.emplace_back("ee", allowed());
  CHECK(validate(cfg));
  CHECK(policy_for(cfg, "ee").allowed_tacs == &cfg.allowed_tacs[0].second);
  CHECK(policy_for(cfg, "multinet").allowed_tacs == nullptr);

  auto dup = cfg;
  dup.allowed_tacs.emplace_back("ee", allowed());
  REQUIRE_FALSE(validate(dup));
  CHECK(validate(dup).error().message().find("twice") != std::string::npos);

  auto unlockable = cfg;
  unlockable.allowed_tacs.emplace_back("three", allowed());
  REQUIRE_FALSE(validate(unlockable));
  CHECK(validate(unlockable).error().where() == "allowed_tacs.three");

  auto empty = cfg;
  empty.allowed_tacs.emplace_back("multinet", tac_list{});
  REQUIRE_FALSE(validate(empty));
  CHECK(validate(empty).error().message().find("empty") != std::string::npos);
}
