// Thousands of random event sequences (fixed seed) through lock::apply,
// checking after every step the invariants the rules promise.

#include "lock/imei.hpp"
#include "lock/machine.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

using namespace imeilock::lock;

namespace {

constexpr std::array<device_id, 4> devices{35209900176148ULL, 35693803564380ULL, 49015420323751ULL,
                                           35349001234567ULL};

struct order_in_flight {
  std::uint64_t id = 0;
  order_type type = order_type::none;
  bar_reason reason = bar_reason::none;
};

/// One random SIM life: a policy, a state, and the orders the order actor
/// would hold for it.
class run {
public:
  run(std::mt19937_64& rng, policy pol, sim_state initial) :
      rng_(rng), pol_(pol), state_(initial) {}

  void step_once() {
    const event ev = random_event();
    now_ += 1 + static_cast<std::int64_t>(rng_() % 5000);
    const sim_state before = state_;
    outcome o = apply(pol_, before, ev, now_);
    check_outcome(before, ev, o);
    for (const auto& eff : o.effects) {
      if (const auto* so = std::get_if<submit_order>(&eff); so != nullptr && so->order_id == 0) {
        note_order_id(o, next_id_++);
        break;
      }
    }
    track_orders(ev, o);
    state_ = o.next;
    check_state(before, ev);
  }

  std::size_t imei_lock_bars() const { return imei_lock_bars_; }
  std::size_t violations() const { return violations_; }

private:
  event random_event() {
    const auto roll = rng_() % 100;
    if (roll < 55)
      return observed{random_imei()};
    if (roll < 75) {
      order_placed p;
      p.order_id = rng_() % 50 == 0 ? 0 : next_id_++;
      p.type = static_cast<order_type>(rng_() % 6);
      p.mode = static_cast<unbar_mode>(rng_() % 3);
      p.with_lock = rng_() % 2 == 0;
      return p;
    }
    // Outcomes: mostly for the order in flight, sometimes stray ones.
    std::uint64_t id = in_flight_ ? in_flight_->id : 0;
    if (rng_() % 10 == 0)
      id = rng_() % 3 == 0 ? 0 : 1'000'000 + rng_() % 100;
    if (roll < 90)
      return order_completed{id};
    return order_failed{id, "random failure"};
  }

  imei_value random_imei() {
    const auto roll = rng_() % 10;
    if (roll == 0)
      return imei_value{};
    if (roll == 1)
      return decode_imei("12345");
    const device_id d = devices[rng_() % devices.size()];
    imei_value v{imei_status::ok, d, std::nullopt};
    if (rng_() % 2 == 0)
      v.svn = static_cast<std::uint8_t>(rng_() % 100); // a new SVN is the same device
    return v;
  }

  void check_outcome(const sim_state& before, const event& ev, const outcome& o) {
    INFO("event index " << ev.index());
    // The outcome says truthfully whether anything changed.
    REQUIRE(o.changed == (o.next != before));
    if (o.changed) {
      REQUIRE(o.next.updated_at_ms == now_);
      REQUIRE(o.audits.size() == 1); // R14: every change, exactly one record
      REQUIRE(o.audits[0].before == before);
      REQUIRE(o.audits[0].after == o.next);
    }
    REQUIRE(o.audits.size() <= 1);
    if (o.rejected != rejection::none) {
      REQUIRE(std::holds_alternative<order_placed>(ev));
      REQUIRE_FALSE(o.changed);
      REQUIRE(o.effects.empty());
      REQUIRE(o.audits.empty());
    }
    std::size_t submits = 0;
    for (const auto& eff : o.effects)
      submits += std::holds_alternative<submit_order>(eff) ? 1 : 0;
    REQUIRE(submits <= 1);

    if (const auto* obs = std::get_if<observed>(&ev)) {
      if (obs->imei.status != imei_status::ok) {
        REQUIRE_FALSE(o.changed); // R2/R3
        REQUIRE(o.effects.empty());
      }
      if (imei_lock_bar_active(before) && before.lock != lock_state::awaiting_first_imei) {
        REQUIRE_FALSE(o.changed); // R9: frozen
      }
      if (obs->imei.status == imei_status::ok && before.lock == lock_state::awaiting_first_imei) {
        REQUIRE(o.next.lock == lock_state::locked); // R6
        REQUIRE(o.next.lock_imei == obs->imei.device);
      }
      for (const auto& eff : o.effects) {
        if (const auto* so = std::get_if<submit_order>(&eff)) {
          // R7: only a locked SIM seen in another device raises a bar.
          REQUIRE(so->type == order_type::bar);
          REQUIRE(so->reason == bar_reason::imei_lock);
          REQUIRE(so->order_id == 0);
          REQUIRE(before.lock == lock_state::locked);
          REQUIRE(obs->imei.device != before.lock_imei);
          REQUIRE((pol_.strict || obs->imei.device != before.last_seen_imei));
        }
        if (const auto* n = std::get_if<notify>(&eff); n != nullptr && n->what == notice::violation)
          ++violations_;
      }
    }
    if (const auto* p = std::get_if<order_placed>(&ev);
        p != nullptr && o.rejected == rejection::none) {
      REQUIRE(p->order_id != 0);
      REQUIRE(before.pending_order == order_type::none); // one order at a time
      REQUIRE(submits == 1);
      REQUIRE(o.next.pending_order == p->type);
      REQUIRE(o.next.pending_order_id == p->order_id);
      if (p->type == order_type::enable_imei_lock)
        REQUIRE(pol_.lock_eligible); // R1
      if (p->type == order_type::activate && p->with_lock)
        REQUIRE(pol_.lock_on_activation_eligible); // R1/R13
    }
  }

  void track_orders(const event& ev, const outcome& o) {
    std::uint64_t finished = 0;
    if (const auto* c = std::get_if<order_completed>(&ev))
      finished = c->order_id;
    if (const auto* f = std::get_if<order_failed>(&ev))
      finished = f->order_id;
    if (finished != 0 && in_flight_ && in_flight_->id == finished) {
      REQUIRE(o.changed);
      in_flight_.reset();
    } else if (finished != 0 || std::holds_alternative<order_completed>(ev) ||
               std::holds_alternative<order_failed>(ev)) {
      REQUIRE_FALSE(o.changed); // a stray outcome changes nothing
    }
    for (const auto& eff : o.effects) {
      if (const auto* so = std::get_if<submit_order>(&eff)) {
        REQUIRE(so->order_id != 0); // noted
        // Never two orders outstanding for one SIM, so never two IMEI-lock bars.
        REQUIRE_FALSE(in_flight_.has_value());
        in_flight_ = order_in_flight{so->order_id, so->type, so->reason};
        if (so->type == order_type::bar && so->reason == bar_reason::imei_lock)
          ++imei_lock_bars_;
      }
    }
  }

  void check_state(const sim_state& before, const event& ev) {
    const sim_state& s = state_;
    // lock.imei is set exactly when locked.
    REQUIRE((s.lock_imei != no_device) == (s.lock == lock_state::locked));
    // R9: while an IMEI-lock bar is pending or in force, last seen is the trigger.
    if (imei_lock_bar_active(s)) {
      REQUIRE(s.trigger_imei != no_device);
      REQUIRE(s.last_seen_imei == s.trigger_imei);
    } else {
      REQUIRE(s.trigger_imei == no_device);
    }
    // The order in flight is the one the order actor holds.
    REQUIRE((s.pending_order == order_type::none) == (s.pending_order_id == 0));
    if (in_flight_) {
      REQUIRE(s.pending_order_id == in_flight_->id);
      REQUIRE(s.pending_order == in_flight_->type);
    } else {
      REQUIRE(s.pending_order == order_type::none);
    }
    if (s.bar == bar_state::bar_pending)
      REQUIRE(s.pending_order == order_type::bar);
    if (s.bar == bar_state::unbar_pending)
      REQUIRE(s.pending_order == order_type::unbar);
    if (s.bar == bar_state::none)
      REQUIRE(s.reason == bar_reason::none);
    else
      REQUIRE(s.reason != bar_reason::none);
    if (s.activate_with_lock)
      REQUIRE(s.pending_order == order_type::activate);
    if (s.pending_unbar != unbar_mode::none)
      REQUIRE(s.bar == bar_state::unbar_pending);
    // Locks and bars only exist on SIMs that were activated.
    if (s.lock != lock_state::off || s.bar != bar_state::none)
      REQUIRE(s.status == sim_status::active);
    // Nothing but an observation moves last seen, except a failed
    // IMEI-lock bar sending it back to the lock (documented).
    if (s.last_seen_imei != before.last_seen_imei && !std::holds_alternative<observed>(ev)) {
      REQUIRE(std::holds_alternative<order_failed>(ev));
      REQUIRE(s.last_seen_imei == s.lock_imei);
    }
  }

  std::mt19937_64& rng_;
  policy pol_;
  sim_state state_;
  std::optional<order_in_flight> in_flight_;
  std::uint64_t next_id_ = 1;
  std::int64_t now_ = 1'700'000'000'000;
  std::size_t imei_lock_bars_ = 0;
  std::size_t violations_ = 0;
};

} // namespace

TEST_CASE("property: random event sequences keep the lock invariants", "[machine][property]") {
  std::mt19937_64 rng{20261125};
  constexpr int sequences = 4000;
  constexpr int steps = 80;
  std::size_t bars = 0;
  std::size_t violations = 0;
  for (int i = 0; i < sequences; ++i) {
    policy pol;
    pol.lock_eligible = rng() % 5 != 0;
    pol.lock_on_activation_eligible = pol.lock_eligible && rng() % 2 == 0;
    pol.strict = rng() % 4 == 0;
    sim_state initial;
    initial.status = rng() % 4 == 0 ? sim_status::inactive : sim_status::active;
    run r{rng, pol, initial};
    for (int j = 0; j < steps; ++j)
      r.step_once();
    bars += r.imei_lock_bars();
    violations += r.violations();
  }
  // The generator must actually reach the interesting states.
  CHECK(bars > 1000);
  CHECK(violations >= bars);
}
