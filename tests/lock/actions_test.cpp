// Violation actions per network (issue 13): bar (R7 as in the product text),
// alert (monitor mode) and disconnect_and_bar, as lock/machine.hpp documents
// them, and how imei_lock.action/actions become a network's policy.

#include "harness.hpp"
#include "lock/eligibility.hpp"

#include <catch2/catch.hpp>

#include <algorithm>

using namespace imeilock::lock;
using namespace imeilock::lock::testing;

namespace {

policy with_action(violation_action a, bool strict = false) {
  policy p = sim::eligible();
  p.action = a;
  p.strict = strict;
  return p;
}

/// A live SIM locked to device A under `pol`.
sim locked_to_a(policy pol) {
  sim s{pol};
  s.seen(imei_a);
  s.order(order_type::enable_imei_lock);
  REQUIRE(s.state.lock == lock_state::locked);
  REQUIRE(s.state.lock_imei == dev(imei_a));
  return s;
}

const audit& last_audit(const sim& s) {
  REQUIRE_FALSE(s.audit_log.empty());
  return s.audit_log.back();
}

} // namespace

TEST_CASE("action bar is R7 unchanged: one Bar order, no disconnect", "[machine][actions]") {
  auto s = locked_to_a(with_action(violation_action::bar));
  s.seen(imei_b);
  CHECK(s.bars_submitted() == 1);
  CHECK(s.disconnects == 0);
  CHECK_FALSE(s.state.alerted);
  CHECK(s.state.bar == bar_state::bar_pending);
  REQUIRE(s.count(notice::violation) == 1);
  CHECK(s.notices.back().action == violation_action::bar);
  CHECK(last_audit(s).detail.find("Bar order raised") != std::string::npos);
}

TEST_CASE("action alert: audited, notified, no order, the SIM keeps working",
          "[machine][actions][alert]") {
  auto s = locked_to_a(with_action(violation_action::alert));
  const auto changes = s.count(notice::change_event);
  const auto& o = s.seen(imei_b);
  CHECK(o.changed);
  CHECK(s.bars_submitted() == 0);
  CHECK(s.disconnects == 0);
  CHECK(s.state.bar == bar_state::none);
  CHECK(s.state.reason == bar_reason::none);
  CHECK(s.state.pending_order == order_type::none);
  CHECK(s.state.trigger_imei == no_device);
  CHECK(s.state.alerted);
  // Last seen moves as for any change event (R5); the lock stays.
  CHECK(s.state.last_seen_imei == dev(imei_b));
  CHECK(s.state.lock_imei == dev(imei_a));
  CHECK(s.count(notice::change_event) == changes + 1);
  REQUIRE(s.count(notice::violation) == 1);
  CHECK(s.notices.back().action == violation_action::alert);
  CHECK(s.notices.back().order_id == 0);
  const auto& a = last_audit(s);
  CHECK(a.cause == "observation");
  CHECK(a.detail.find("monitor mode: no Bar order") != std::string::npos);
  CHECK_FALSE(a.before.alerted);
  CHECK(a.after.alerted);

  // Still in B: no change event, nothing new. In C: a new violation reported.
  CHECK_FALSE(s.seen(imei_b).changed);
  CHECK(s.count(notice::violation) == 1);
  s.seen(imei_c);
  CHECK(s.count(notice::violation) == 2);
  CHECK(s.bars_submitted() == 0);
  // Back in A: a change event, not a violation; the mark stays for the operator.
  s.seen(imei_a);
  CHECK(s.count(notice::violation) == 2);
  CHECK(s.state.alerted);
  // The operator can still bar by hand.
  CHECK(s.place(order_type::bar).rejected == rejection::none);
}

TEST_CASE("action alert leaves a manual bar manual", "[machine][actions][alert]") {
  auto s = locked_to_a(with_action(violation_action::alert));
  s.order(order_type::bar);
  REQUIRE(s.state.bar == bar_state::barred);
  s.seen(imei_b);
  CHECK(s.state.reason == bar_reason::manual);
  CHECK(s.state.trigger_imei == no_device);
  CHECK(s.state.alerted);
  CHECK(s.count(notice::violation) == 1);
  // A manual unbar needs no lock mode: it is not an IMEI-lock bar.
  CHECK(s.place(order_type::unbar).rejected == rejection::none);
}

TEST_CASE("alerted clears when the operator acts: bar, disable, update to last seen",
          "[machine][actions][alert]") {
  SECTION("a bar completes") {
    auto s = locked_to_a(with_action(violation_action::alert));
    s.seen(imei_b);
    REQUIRE(s.place(order_type::bar).rejected == rejection::none);
    CHECK(s.state.alerted); // pending: not barred yet
    s.complete();
    CHECK_FALSE(s.state.alerted);
  }
  SECTION("a failed bar keeps the mark") {
    auto s = locked_to_a(with_action(violation_action::alert));
    s.seen(imei_b);
    REQUIRE(s.place(order_type::bar).rejected == rejection::none);
    s.fail();
    CHECK(s.state.alerted);
  }
  SECTION("the lock is disabled") {
    auto s = locked_to_a(with_action(violation_action::alert));
    s.seen(imei_b);
    s.order(order_type::disable_imei_lock);
    CHECK_FALSE(s.state.alerted);
  }
  SECTION("the lock is updated to the last seen device (R11)") {
    auto s = locked_to_a(with_action(violation_action::alert));
    s.seen(imei_b);
    s.set_policy(with_action(violation_action::bar));
    s.seen(imei_c); // bars now
    s.complete();
    REQUIRE(s.state.bar == bar_state::barred);
    CHECK_FALSE(s.state.alerted); // the bar completed
    s.order(order_type::unbar, unbar_mode::update_to_last_seen);
    CHECK(s.state.lock_imei == dev(imei_c));
    CHECK_FALSE(s.state.alerted);
  }
}

TEST_CASE("alert then bar (SIGHUP): no retro-bar, the next violation bars",
          "[machine][actions][alert]") {
  auto s = locked_to_a(with_action(violation_action::alert));
  s.seen(imei_b);
  REQUIRE(s.state.alerted);
  s.set_policy(with_action(violation_action::bar));
  // Still in B: no change event, so no violation and no bar (not retro-barred).
  CHECK_FALSE(s.seen(imei_b).changed);
  CHECK(s.bars_submitted() == 0);
  CHECK(s.state.alerted);
  // The next device change while locked to A bars.
  s.seen(imei_c);
  CHECK(s.bars_submitted() == 1);
  CHECK(s.state.trigger_imei == dev(imei_c));
  CHECK(s.notices.back().action == violation_action::bar);
}

TEST_CASE("strict mode in alert: reported once per new device, not every observation",
          "[machine][actions][alert][strict]") {
  auto s = locked_to_a(with_action(violation_action::alert, true));
  s.seen(imei_b);
  CHECK(s.count(notice::violation) == 1);
  CHECK_FALSE(s.seen(imei_b).changed);
  CHECK(s.count(notice::violation) == 1);
  s.seen(imei_c);
  CHECK(s.count(notice::violation) == 2);
  CHECK(s.bars_submitted() == 0);

  // After the operator acted (the mark cleared) the R10 case reports again:
  // barred in B, unbar keeping the lock while still in B.
  auto t = locked_to_a(with_action(violation_action::bar, true));
  t.seen(imei_b);
  t.complete();
  t.order(order_type::unbar, unbar_mode::keep_lock);
  t.set_policy(with_action(violation_action::alert, true));
  const auto before = t.count(notice::violation);
  t.seen(imei_b); // no change event, strict: one report
  CHECK(t.count(notice::violation) == before + 1);
  CHECK(t.state.alerted);
  t.seen(imei_b);
  CHECK(t.count(notice::violation) == before + 1);
  CHECK(t.bars_submitted() == 1);
}

TEST_CASE("action disconnect_and_bar: the Disconnect effect first, then the bar",
          "[machine][actions][disconnect]") {
  auto s = locked_to_a(with_action(violation_action::disconnect_and_bar));
  const auto& o = s.seen(imei_b);
  CHECK(s.disconnects == 1);
  CHECK(s.bars_submitted() == 1);
  auto is_disconnect = [](const effect& e) {
    return std::holds_alternative<disconnect_session>(e);
  };
  auto is_submit = [](const effect& e) { return std::holds_alternative<submit_order>(e); };
  auto d = std::find_if(o.effects.begin(), o.effects.end(), is_disconnect);
  auto b = std::find_if(o.effects.begin(), o.effects.end(), is_submit);
  REQUIRE(d != o.effects.end());
  REQUIRE(b != o.effects.end());
  CHECK(d < b);
  CHECK(std::get<disconnect_session>(*d).imei == dev(imei_b));
  CHECK(s.notices.back().action == violation_action::disconnect_and_bar);
  CHECK(last_audit(s).detail.find("Disconnect requested, Bar order raised") != std::string::npos);
  // R7/R9: further devices while the bar is pending neither bar nor disconnect.
  s.seen(imei_c);
  CHECK(s.disconnects == 1);
  CHECK(s.bars_submitted() == 1);
}

TEST_CASE("imei_lock.action and actions become each network's policy", "[eligibility][actions]") {
  eligibility_config cfg;
  CHECK(policy_for(cfg, "ee").action == violation_action::bar);
  CHECK_FALSE(any_disconnect(cfg));
  cfg.action = violation_action::alert;
  cfg.actions = {{"roamnet901", violation_action::disconnect_and_bar},
                 {"multinet", violation_action::bar}};
  CHECK(validate(cfg));
  CHECK(policy_for(cfg, "ee").action == violation_action::alert);
  CHECK(policy_for(cfg, "roamnet901").action == violation_action::disconnect_and_bar);
  CHECK(policy_for(cfg, "multinet").action == violation_action::bar);
  CHECK(any_disconnect(cfg));

  auto dup = cfg;
  dup.actions.emplace_back("multinet", violation_action::alert);
  auto v = validate(dup);
  REQUIRE_FALSE(v);
  CHECK(v.error().where() == "actions");
  CHECK(v.error().message().find("twice") != std::string::npos);

  auto typo = cfg;
  typo.actions.emplace_back("eee", violation_action::alert);
  v = validate(typo);
  REQUIRE_FALSE(v);
  CHECK(v.error().message().find("not in lock_networks") != std::string::npos);
}

TEST_CASE("violation actions spell as in the configuration", "[types][actions]") {
  for (auto a :
       {violation_action::bar, violation_action::alert, violation_action::disconnect_and_bar}) {
    violation_action back{};
    REQUIRE(parse(to_string(a), back));
    CHECK(back == a);
  }
  violation_action out{};
  CHECK_FALSE(parse("block", out));
}
