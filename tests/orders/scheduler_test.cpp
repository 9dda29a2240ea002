// The order scheduler (DESIGN.md §3): token buckets, in-flight limits, lead
// times, retries with backoff, resume after a restart, overload. Time is
// passed in, so every test runs instantly and exactly.

#include "orders/scheduler.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

using namespace imeilock;
using namespace imeilock::orders;
using namespace std::chrono_literals;
using kind = action::kind;

namespace {

constexpr std::int64_t t0 = 1'700'000'000'000; // an arbitrary unix ms

/// One network "net" with the given bucket and in-flight limit, fixed lead times.
orders_config one_network(double rate, std::uint32_t burst, std::uint32_t in_flight = 1000,
                          std::uint32_t max_queue = 1000) {
  orders_config cfg;
  cfg.networks.clear();
  network_config n;
  n.rate_per_second = rate;
  n.burst = burst;
  n.max_in_flight = in_flight;
  n.max_queue = max_queue;
  n.lead_time_for(lock::order_type::bar) = lead_time::constant(5s);
  n.lead_time_for(lock::order_type::unbar) = lead_time::constant(3s);
  n.retry = retry_policy{3, 1s, 10s, 2.0};
  cfg.networks.emplace("net", n);
  return cfg;
}

order make_order(std::uint64_t id, lock::order_type type = lock::order_type::bar,
                 std::string network = "net") {
  order o;
  o.id = id;
  o.iccid = "8944" + std::to_string(id);
  o.imsis = {234150000000000 + id};
  o.network = std::move(network);
  o.type = type;
  o.reason = type == lock::order_type::bar ? lock::bar_reason::imei_lock : lock::bar_reason::none;
  o.created_at_ms = t0;
  return o;
}

std::vector<std::uint64_t> ids_of(const std::vector<action>& actions, kind k) {
  std::vector<std::uint64_t> out;
  for (const auto& a : actions)
    if (a.what == k)
      out.push_back(a.o.id);
  return out;
}

/// Sends that poll() returned; the backend accepts each at `now`.
std::size_t accept_all(scheduler& s, const std::vector<action>& actions, std::int64_t now) {
  std::size_t n = 0;
  for (const auto& a : actions)
    if (a.what == kind::send) {
      REQUIRE(s.on_submitted(a.o.id, now));
      ++n;
    }
  return n;
}

} // namespace

TEST_CASE("token bucket: starts full, refills at its rate, never above burst", "[orders][bucket]") {
  token_bucket b{10.0, 3, t0}; // 10/s = one token per 100 ms
  CHECK(b.try_take(t0));
  CHECK(b.try_take(t0));
  CHECK(b.try_take(t0));
  CHECK_FALSE(b.try_take(t0));
  CHECK(b.next_token_at(t0) == t0 + 100);
  CHECK_FALSE(b.try_take(t0 + 99));
  CHECK(b.try_take(t0 + 100));
  // A long idle period refills to burst, not beyond.
  CHECK(b.available(t0 + 60'000) == Approx(3.0));
  int taken = 0;
  while (b.try_take(t0 + 60'000))
    ++taken;
  CHECK(taken == 3);
  // A clock step back neither refills nor drains.
  CHECK_FALSE(b.try_take(t0));
}

TEST_CASE("rate limit: burst at once, then the configured rate", "[orders][bucket]") {
  scheduler s{one_network(2.0, 5), 1}; // 2 orders/s, burst 5
  for (std::uint64_t id = 1; id <= 20; ++id)
    REQUIRE(s.add(make_order(id), t0) == ec::ok);

  auto first = s.poll(t0);
  CHECK(ids_of(first, kind::send) == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
  accept_all(s, first, t0);
  CHECK(s.stats("net").queued == 15);

  // The next token arrives after 500 ms; the scheduler says so.
  CHECK(s.next_wakeup(t0) == t0 + 500);
  CHECK(ids_of(s.poll(t0 + 499), kind::send).empty());

  // Over 5 more seconds exactly 10 more are sent, evenly.
  std::size_t sent = 0;
  for (std::int64_t t = t0 + 1; t <= t0 + 5'000; ++t) {
    auto a = s.poll(t);
    auto sends = ids_of(a, kind::send);
    if (!sends.empty())
      CHECK((t - t0) % 500 == 0);
    sent += accept_all(s, a, t);
  }
  CHECK(sent == 10);
}

TEST_CASE("in-flight limit: no more than max_in_flight submitted at once", "[orders][in_flight]") {
  scheduler s{one_network(1000.0, 1000, 3), 1};
  for (std::uint64_t id = 1; id <= 7; ++id)
    REQUIRE(s.add(make_order(id), t0) == ec::ok);

  auto a = s.poll(t0);
  CHECK(ids_of(a, kind::send).size() == 3); // sending counts as in flight
  CHECK(s.stats("net").in_flight() == 3);
  // While the backend has not answered, nothing else goes and no timer is needed
  // for it (the answer is outside input).
  CHECK(ids_of(s.poll(t0 + 1), kind::send).empty());
  accept_all(s, a, t0);
  CHECK(s.stats("net").submitted == 3);
  CHECK(s.next_wakeup(t0) == t0 + 5'000); // the first completion

  // Completions free slots in the same poll.
  auto b = s.poll(t0 + 5'000);
  CHECK(ids_of(b, kind::completed) == std::vector<std::uint64_t>{1, 2, 3});
  CHECK(ids_of(b, kind::send) == std::vector<std::uint64_t>{4, 5, 6});
  CHECK(s.stats("net").completed == 3);
  CHECK(s.stats("net").queued == 1);
}

TEST_CASE("lifecycle: queued -> submitted -> completed after the lead time",
          "[orders][lead_time]") {
  scheduler s{one_network(10.0, 10), 1};
  REQUIRE(s.add(make_order(1), t0) == ec::ok);
  CHECK(s.find(1)->status == order_status::queued);

  auto a = s.poll(t0);
  REQUIRE(a.size() == 1);
  CHECK(a[0].what == kind::send);
  CHECK(a[0].o.attempts == 1);
  CHECK(a[0].o.iccid == "89441");

  auto sub = s.on_submitted(1, t0 + 20);
  REQUIRE(sub);
  CHECK(sub->what == kind::submitted);
  CHECK(sub->o.status == order_status::submitted);
  CHECK(sub->o.submitted_at_ms == t0 + 20);
  CHECK(sub->o.due_at_ms == t0 + 20 + 5'000); // bar: 5 s after submission
  CHECK_FALSE(s.on_submitted(1, t0 + 21));    // a duplicate answer is ignored

  CHECK(s.next_wakeup(t0 + 20) == t0 + 5'020);
  CHECK(s.poll(t0 + 5'019).empty());
  auto done = s.poll(t0 + 5'020);
  REQUIRE(done.size() == 1);
  CHECK(done[0].what == kind::completed);
  CHECK(done[0].o.status == order_status::completed);
  CHECK(done[0].o.finished_at_ms == t0 + 5'020);
  CHECK(s.find(1) == nullptr);
  CHECK(s.size() == 0);
  CHECK_FALSE(s.next_wakeup(t0 + 5'020));
}

TEST_CASE("lead time per order type", "[orders][lead_time]") {
  scheduler s{one_network(10.0, 10), 1};
  REQUIRE(s.add(make_order(1, lock::order_type::bar), t0) == ec::ok);
  REQUIRE(s.add(make_order(2, lock::order_type::unbar), t0) == ec::ok);
  accept_all(s, s.poll(t0), t0);
  CHECK(s.find(1)->due_at_ms == t0 + 5'000);
  CHECK(s.find(2)->due_at_ms == t0 + 3'000);
}

TEST_CASE("median/p95 lead times through the scheduler are deterministic per seed",
          "[orders][lead_time]") {
  auto cfg = one_network(1000.0, 1000);
  cfg.networks["net"].lead_time_for(lock::order_type::bar) = lead_time::from_median_p95(5s, 30s);
  auto run = [&](std::uint64_t seed) {
    scheduler s{cfg, seed};
    std::vector<std::int64_t> due;
    for (std::uint64_t id = 1; id <= 50; ++id)
      REQUIRE(s.add(make_order(id), t0) == ec::ok);
    accept_all(s, s.poll(t0), t0);
    for (std::uint64_t id = 1; id <= 50; ++id)
      due.push_back(s.find(id)->due_at_ms);
    return due;
  };
  CHECK(run(5) == run(5));
  CHECK(run(5) != run(6));
}

TEST_CASE("internal orders skip the backend and the rate limit", "[orders][internal]") {
  auto cfg = one_network(1.0, 1);
  cfg.networks["net"].lead_time_for(lock::order_type::enable_imei_lock) = lead_time::constant(0s);
  cfg.networks["net"].lead_time_for(lock::order_type::disable_imei_lock) = lead_time::constant(2s);
  scheduler s{cfg, 1};
  REQUIRE(s.add(make_order(1, lock::order_type::bar), t0) == ec::ok);
  REQUIRE(s.add(make_order(2, lock::order_type::enable_imei_lock), t0) == ec::ok);
  REQUIRE(s.add(make_order(3, lock::order_type::disable_imei_lock), t0) == ec::ok);
  CHECK(s.next_wakeup(t0) == t0);

  auto a = s.poll(t0);
  CHECK(ids_of(a, kind::send) == std::vector<std::uint64_t>{1}); // the one token
  CHECK(ids_of(a, kind::submitted) == std::vector<std::uint64_t>{2, 3});
  CHECK(ids_of(a, kind::completed) == std::vector<std::uint64_t>{2}); // lead time 0
  CHECK(s.next_wakeup(t0) == t0 + 2'000);
  CHECK(ids_of(s.poll(t0 + 2'000), kind::completed) == std::vector<std::uint64_t>{3});
  CHECK(s.stats("net").in_flight() == 1);
}

TEST_CASE("failed submissions are retried with backoff, then fail with the reason",
          "[orders][retry]") {
  scheduler s{one_network(1000.0, 1000), 1}; // max 3 attempts, 1s, 2s, ... cap 10s
  REQUIRE(s.add(make_order(1), t0) == ec::ok);

  auto a = s.poll(t0);
  REQUIRE(ids_of(a, kind::send) == std::vector<std::uint64_t>{1});
  auto r1 = s.on_submit_failed(1, "http 503", t0 + 10);
  REQUIRE(r1);
  CHECK(r1->what == kind::retry);
  CHECK(r1->o.status == order_status::queued);
  CHECK(r1->o.attempts == 1);
  CHECK(r1->o.failure_reason == "http 503");
  CHECK(r1->o.retry_at_ms == t0 + 10 + 1'000);
  CHECK(s.stats("net").retrying == 1);
  CHECK(s.stats("net").depth() == 1);
  CHECK_FALSE(s.on_submit_failed(1, "again", t0 + 11)); // not being sent: ignored

  CHECK(s.next_wakeup(t0 + 10) == t0 + 1'010);
  CHECK(s.poll(t0 + 1'009).empty());
  auto b = s.poll(t0 + 1'010);
  REQUIRE(ids_of(b, kind::send) == std::vector<std::uint64_t>{1});
  CHECK(b[0].o.attempts == 2);

  auto r2 = s.on_submit_failed(1, "timeout after 5000ms", t0 + 1'020);
  REQUIRE(r2);
  CHECK(r2->what == kind::retry);
  CHECK(r2->o.retry_at_ms == t0 + 1'020 + 2'000); // doubled

  auto c = s.poll(t0 + 3'020);
  REQUIRE(ids_of(c, kind::send) == std::vector<std::uint64_t>{1});
  auto f = s.on_submit_failed(1, "connect: Connection refused", t0 + 3'030);
  REQUIRE(f);
  CHECK(f->what == kind::failed);
  CHECK(f->o.status == order_status::failed);
  CHECK(f->o.attempts == 3);
  CHECK(f->o.finished_at_ms == t0 + 3'030);
  CHECK(f->o.failure_reason == "connect: Connection refused (after 3 attempts)");
  CHECK(s.find(1) == nullptr);
  CHECK(s.stats("net").failed == 1);
  CHECK(s.stats("net").retries == 2);
  CHECK_FALSE(s.next_wakeup(t0 + 3'030));
}

TEST_CASE("a retry that succeeds completes normally and goes ahead of newer orders",
          "[orders][retry]") {
  scheduler s{one_network(1000.0, 1000, 1), 1}; // one in flight at a time
  REQUIRE(s.add(make_order(1), t0) == ec::ok);
  REQUIRE(ids_of(s.poll(t0), kind::send) == std::vector<std::uint64_t>{1});
  REQUIRE(s.add(make_order(2), t0 + 1) == ec::ok);
  REQUIRE(s.on_submit_failed(1, "http 500", t0 + 5)->what == kind::retry);
  // The slot is free while 1 waits: 2 goes now.
  auto a = s.poll(t0 + 5);
  REQUIRE(ids_of(a, kind::send) == std::vector<std::uint64_t>{2});
  REQUIRE(s.on_submit_failed(2, "http 500", t0 + 6)->what == kind::retry);
  // 1 became due first, so it goes first.
  auto b = s.poll(t0 + 1'006);
  CHECK(ids_of(b, kind::send) == std::vector<std::uint64_t>{1});
  auto sub = s.on_submitted(1, t0 + 1'010);
  REQUIRE(sub);
  CHECK(sub->o.failure_reason == "http 500"); // history kept
  CHECK(ids_of(s.poll(t0 + 6'010), kind::completed) == std::vector<std::uint64_t>{1});
}

TEST_CASE("overload: a full queue refuses new orders, nothing changes", "[orders][overload]") {
  scheduler s{one_network(1.0, 1, 1000, 3), 1};
  for (std::uint64_t id = 1; id <= 3; ++id)
    REQUIRE(s.add(make_order(id), t0) == ec::ok);
  CHECK(s.add(make_order(4), t0) == ec::overloaded);
  CHECK(s.find(4) == nullptr);
  CHECK(s.stats("net").depth() == 3);
  // Once one is sent the queue has room again.
  REQUIRE(ids_of(s.poll(t0), kind::send).size() == 1);
  CHECK(s.add(make_order(4), t0) == ec::ok);
  CHECK(s.add(make_order(5), t0) == ec::overloaded);
  // Other networks have their own queue.
  CHECK(s.add(make_order(6, lock::order_type::bar, "other"), t0) == ec::ok);
}

TEST_CASE("bad and duplicate orders are refused", "[orders]") {
  scheduler s{one_network(1.0, 1), 1};
  CHECK(s.add(make_order(0), t0) == ec::invalid);
  CHECK(s.add(make_order(1, lock::order_type::none), t0) == ec::invalid);
  CHECK(s.add(make_order(1), t0) == ec::ok);
  CHECK(s.add(make_order(1), t0) == ec::conflict);
  auto done = make_order(2);
  done.status = order_status::completed;
  CHECK(s.restore(done, t0) == ec::invalid);
  CHECK(s.restore(make_order(1), t0) == ec::conflict);
}

TEST_CASE("an order type outside the enum (a damaged store row) is refused, not indexed",
          "[orders]") {
  scheduler s{one_network(1.0, 1), 1};
  auto bad = make_order(7, static_cast<lock::order_type>(9));
  bad.status = order_status::submitted;
  CHECK(s.restore(bad, t0) == ec::invalid);
  CHECK(s.add(make_order(8, static_cast<lock::order_type>(6)), t0) == ec::invalid);
  CHECK(s.find(7) == nullptr);
  CHECK(s.add(make_order(9, lock::order_type::unbar), t0) == ec::ok);
}

TEST_CASE("resume: a submitted order completes with its remaining lead time", "[orders][resume]") {
  scheduler s{one_network(1.0, 1), 1};
  auto o = make_order(1);
  o.status = order_status::submitted;
  o.attempts = 1;
  o.submitted_at_ms = t0;
  o.due_at_ms = t0 + 5'000;
  // The daemon comes back 2 s into the 5 s lead time.
  REQUIRE(s.restore(o, t0 + 2'000) == ec::ok);
  CHECK(s.find(1)->due_at_ms == t0 + 5'000);
  CHECK(s.stats("net").submitted == 1);
  CHECK(s.next_wakeup(t0 + 2'000) == t0 + 5'000); // 3 s remaining, not 5
  CHECK(s.poll(t0 + 4'999).empty());
  auto a = s.poll(t0 + 5'000);
  CHECK(ids_of(a, kind::completed) == std::vector<std::uint64_t>{1});
}

TEST_CASE("resume: a submitted order whose due time passed completes at once", "[orders][resume]") {
  scheduler s{one_network(1.0, 1), 1};
  auto o = make_order(1);
  o.status = order_status::submitted;
  o.submitted_at_ms = t0;
  o.due_at_ms = t0 + 5'000;
  REQUIRE(s.restore(o, t0 + 60'000) == ec::ok);
  CHECK(s.next_wakeup(t0 + 60'000) == t0 + 60'000);
  auto a = s.poll(t0 + 60'000);
  REQUIRE(a.size() == 1);
  CHECK(a[0].what == kind::completed);
  CHECK(a[0].o.finished_at_ms == t0 + 60'000);
}

TEST_CASE("resume: queued orders are sent again, pending retries keep their time",
          "[orders][resume]") {
  scheduler s{one_network(1000.0, 1000), 1};
  auto queued = make_order(1);
  queued.attempts = 1; // was being sent when the daemon stopped: at least once
  auto retrying = make_order(2);
  retrying.attempts = 2;
  retrying.retry_at_ms = t0 + 4'000;
  retrying.failure_reason = "http 503";
  auto fresh_due = make_order(3);
  fresh_due.status = order_status::submitted;
  fresh_due.due_at_ms = 0; // unknown: a fresh draw from now
  REQUIRE(s.restore(queued, t0) == ec::ok);
  REQUIRE(s.restore(retrying, t0) == ec::ok);
  REQUIRE(s.restore(fresh_due, t0) == ec::ok);
  CHECK(s.find(3)->due_at_ms == t0 + 5'000);

  auto a = s.poll(t0);
  REQUIRE(ids_of(a, kind::send) == std::vector<std::uint64_t>{1});
  CHECK(a[0].o.attempts == 2);
  CHECK(s.next_wakeup(t0) == t0 + 4'000);
  auto b = s.poll(t0 + 4'000);
  REQUIRE(ids_of(b, kind::send) == std::vector<std::uint64_t>{2});
  // Attempt 3 of 3: one more failure is final.
  auto f = s.on_submit_failed(2, "http 503", t0 + 4'001);
  REQUIRE(f);
  CHECK(f->what == kind::failed);
}

TEST_CASE("restore ignores the queue bound: durable orders are never dropped",
          "[orders][resume][overload]") {
  scheduler s{one_network(1.0, 1, 1000, 2), 1};
  for (std::uint64_t id = 1; id <= 5; ++id)
    REQUIRE(s.restore(make_order(id), t0) == ec::ok);
  CHECK(s.stats("net").depth() == 5);
  CHECK(s.add(make_order(6), t0) == ec::overloaded);
}

TEST_CASE("unknown networks use the defaults, stats list every network", "[orders][stats]") {
  orders_config cfg; // built-in: multinet, roamnet901, ee, ee_big_data
  cfg.defaults.burst = 2;
  scheduler s{cfg, 1};
  for (std::uint64_t id = 1; id <= 3; ++id)
    REQUIRE(s.add(make_order(id, lock::order_type::bar, "nowhere"), t0) == ec::ok);
  CHECK(ids_of(s.poll(t0), kind::send).size() == 2);
  auto all = s.all_stats();
  std::vector<std::string> names;
  for (const auto& [name, st] : all)
    names.push_back(name);
  CHECK(names ==
        std::vector<std::string>{"ee", "ee_big_data", "multinet", "nowhere", "roamnet901"});
  CHECK(s.stats("nowhere").queued == 1);
  CHECK(s.stats("nowhere").sending == 2);
  CHECK(s.stats("ee").depth() == 0);
}

TEST_CASE("next_wakeup is nullopt when only outside input can change anything",
          "[orders][wakeup]") {
  scheduler s{one_network(1.0, 1, 1), 1};
  CHECK_FALSE(s.next_wakeup(t0));
  REQUIRE(s.add(make_order(1), t0) == ec::ok);
  REQUIRE(s.add(make_order(2), t0) == ec::ok);
  CHECK(s.next_wakeup(t0) == t0); // a token is there now
  REQUIRE(ids_of(s.poll(t0), kind::send).size() == 1);
  // 1 is with the backend, the window (1) is full: wait for its answer.
  CHECK_FALSE(s.next_wakeup(t0 + 10));
}

TEST_CASE("a long run: every order completes exactly once, limits hold", "[orders][soak]") {
  auto cfg = one_network(50.0, 10, 20, 100'000);
  cfg.networks["net"].lead_time_for(lock::order_type::bar) = lead_time::uniform(100ms, 2s);
  cfg.networks["net"].retry = retry_policy{10, 10ms, 200ms, 2.0};
  scheduler s{cfg, 3};
  rng fail{11};
  constexpr std::uint64_t n = 2'000;
  for (std::uint64_t id = 1; id <= n; ++id)
    REQUIRE(s.add(make_order(id), t0) == ec::ok);

  std::vector<int> completed(n + 1, 0);
  std::int64_t now = t0;
  std::size_t sends = 0;
  while (s.size() > 0) {
    auto wake = s.next_wakeup(now);
    REQUIRE(wake);
    now = *wake;
    auto actions = s.poll(now);
    for (const auto& a : actions) {
      if (a.what == kind::send) {
        ++sends;
        // One submission in five fails.
        if (fail() % 5 == 0)
          REQUIRE(s.on_submit_failed(a.o.id, "flaky", now));
        else
          REQUIRE(s.on_submitted(a.o.id, now));
      } else if (a.what == kind::completed) {
        ++completed[a.o.id];
      }
      REQUIRE(a.what != kind::failed);
    }
    REQUIRE(s.stats("net").in_flight() <= 20);
  }
  CHECK(std::count(completed.begin() + 1, completed.end(), 1) == static_cast<long>(n));
  // 50/s with burst 10: ~sends/50 s of virtual time at least.
  CHECK(now - t0 >= static_cast<std::int64_t>((sends - 10) * 20) - 1);
}

TEST_CASE("reconfigure: new rate and limits apply to open orders from now on", "[orders][reload]") {
  scheduler s{one_network(1.0, 2, 1000), 1};
  for (std::uint64_t id = 1; id <= 10; ++id)
    REQUIRE(s.add(make_order(id), t0) == ec::ok);
  accept_all(s, s.poll(t0), t0); // the burst of 2
  const auto due_before = s.find(1)->due_at_ms;

  auto faster = one_network(10.0, 3, 1000);
  faster.networks["net"].lead_time_for(lock::order_type::bar) = lead_time::constant(1s);
  s.reconfigure(faster, t0 + 50);
  CHECK(s.find(1)->due_at_ms == due_before); // drawn due times stay
  // 0.05 token gathered at 1/s; the missing 0.95 comes at 10/s in 95 ms.
  CHECK(s.next_wakeup(t0 + 50) == t0 + 145);
  auto a = s.poll(t0 + 145);
  REQUIRE(ids_of(a, kind::send) == std::vector<std::uint64_t>{3});
  accept_all(s, a, t0 + 145);
  CHECK(s.find(3)->due_at_ms == t0 + 145 + 1'000); // the new lead time
  // The new burst caps a long idle refill: 3 completions, then 3 sends.
  auto b = s.poll(t0 + 60'000);
  CHECK(ids_of(b, kind::completed).size() == 3);
  CHECK(ids_of(b, kind::send).size() == 3);
  CHECK(s.stats("net").tokens == Approx(0.0));
}

TEST_CASE("forget_if: orders handed to another node leave every queue and free their slots",
          "[orders][cluster]") {
  // In-flight window of 2: order 1 submitted, 2 sending, 3 and 4 queued.
  scheduler s{one_network(100.0, 100, 2), 1};
  for (std::uint64_t id = 1; id <= 4; ++id)
    REQUIRE(s.add(make_order(id), t0) == ec::ok);
  auto sends = ids_of(s.poll(t0), kind::send);
  REQUIRE(sends == std::vector<std::uint64_t>{1, 2});
  REQUIRE(s.on_submitted(1, t0));
  CHECK(s.forget_if([](const order& o) { return o.id != 4; }) == 3);
  CHECK(s.size() == 1);
  CHECK(s.find(1) == nullptr);
  CHECK_FALSE(s.on_submitted(2, t0 + 1)); // a late backend answer is stale
  // Both in-flight slots are free again: order 4 goes out at once, and no
  // completion comes for the forgotten order 1.
  auto next = s.poll(t0 + 10);
  CHECK(ids_of(next, kind::send) == std::vector<std::uint64_t>{4});
  REQUIRE(s.on_submitted(4, t0 + 10));
  CHECK(ids_of(s.poll(t0 + 5'000), kind::completed).empty());
  CHECK(ids_of(s.poll(t0 + 5'010), kind::completed) == std::vector<std::uint64_t>{4});
  CHECK(s.forget_if([](const order&) { return true; }) == 0);
}
