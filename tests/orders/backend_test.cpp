// The simulated provisioning backend and the JSON an operator's
// provisioning system receives (DESIGN.md §3).

#include "orders/backend.hpp"
#include "orders/scheduler.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <vector>

using namespace imeilock;
using namespace imeilock::orders;

namespace {

order sample_order() {
  order o;
  o.id = 42;
  o.iccid = "8944110000000000042";
  o.imsis = {234150000000042, 901280000000042};
  o.network = "multinet";
  o.type = lock::order_type::unbar;
  o.reason = lock::bar_reason::imei_lock;
  o.mode = lock::unbar_mode::update_to_last_seen;
  o.created_at_ms = 1'764'038'764'123; // 2025-11-25T02:46:04.123Z
  return o;
}

} // namespace

TEST_CASE("the order JSON carries every field the provisioning system needs", "[orders][json]") {
  auto j = nlohmann::json::parse(to_json(sample_order()));
  CHECK(j["order_id"] == 42);
  CHECK(j["iccid"] == "8944110000000000042");
  CHECK(j["imsis"] == nlohmann::json::array({"234150000000042", "901280000000042"}));
  CHECK(j["network"] == "multinet");
  CHECK(j["type"] == "unbar");
  CHECK(j["reason"] == "imei_lock");
  CHECK(j["unbar_mode"] == "update_to_last_seen");
  CHECK(j["with_lock"] == false);
  CHECK(j["created_at"] == "2025-11-25T02:46:04.123Z");
  CHECK(j.size() == 9);
}

TEST_CASE("activation with lock and a short IMSI in the JSON", "[orders][json]") {
  auto o = sample_order();
  o.type = lock::order_type::activate;
  o.reason = lock::bar_reason::none;
  o.mode = lock::unbar_mode::none;
  o.with_lock = true;
  o.imsis = {1234};
  o.created_at_ms = 0;
  auto j = nlohmann::json::parse(to_json(o));
  CHECK(j["type"] == "activate");
  CHECK(j["with_lock"] == true);
  CHECK(j["reason"] == "none");
  CHECK(j["imsis"][0] == "000000000001234");
  CHECK(j["created_at"] == "1970-01-01T00:00:00.000Z");
}

TEST_CASE("simulated backend accepts at once by default", "[orders][simulated]") {
  simulated_backend b{backend_config{}};
  std::vector<submit_result> results;
  b.submit(sample_order(), [&](submit_result r) { results.push_back(std::move(r)); });
  REQUIRE(results.size() == 1); // called before submit() returned
  CHECK(results[0].accepted);
  CHECK(results[0].reason.empty());
  CHECK(b.submissions() == 1);
  CHECK(b.describe() == "simulated");
}

TEST_CASE("simulated backend: fail_first refuses the first N", "[orders][simulated]") {
  backend_config cfg;
  cfg.fail_first = 2;
  simulated_backend b{cfg};
  std::vector<bool> accepted;
  for (int i = 0; i < 4; ++i)
    b.submit(sample_order(), [&](submit_result r) { accepted.push_back(r.accepted); });
  CHECK(accepted == std::vector<bool>{false, false, true, true});
}

TEST_CASE("simulated backend: failure_probability is honoured", "[orders][simulated]") {
  backend_config cfg;
  cfg.failure_probability = 0.25;
  simulated_backend b{cfg, 1234};
  int failures = 0;
  constexpr int n = 10'000;
  for (int i = 0; i < n; ++i)
    b.submit(sample_order(), [&](submit_result r) {
      if (!r.accepted) {
        ++failures;
        CHECK(r.reason == "simulated failure (failure_probability)");
      }
    });
  CHECK(failures == Approx(n / 4).epsilon(0.05));
}

TEST_CASE("scheduler + simulated backend: a flaky network still gets every order through",
          "[orders][simulated]") {
  orders_config cfg;
  cfg.networks.clear(); // every network uses `defaults`
  cfg.defaults.retry =
      retry_policy{5, std::chrono::milliseconds{100}, std::chrono::milliseconds{1000}, 2.0};
  backend_config bc;
  bc.fail_first = 3;
  simulated_backend backend{bc};
  scheduler s{cfg, 9};
  const std::int64_t t0 = 1'000'000;
  REQUIRE(s.add(sample_order(), t0) == ec::ok);

  // The actor's loop, minus the actor: results come back synchronously here.
  std::int64_t now = t0;
  std::vector<action> log;
  for (int guard = 0; guard < 100 && s.size() > 0; ++guard) {
    for (auto& a : s.poll(now)) {
      log.push_back(a);
      if (a.what == action::kind::send)
        backend.submit(a.o, [&, id = a.o.id](submit_result r) {
          auto next = r.accepted ? s.on_submitted(id, now) : s.on_submit_failed(id, r.reason, now);
          REQUIRE(next);
          log.push_back(*next);
        });
    }
    if (auto wake = s.next_wakeup(now))
      now = *wake;
  }
  REQUIRE(s.size() == 0);
  REQUIRE(log.back().what == action::kind::completed);
  CHECK(log.back().o.attempts == 4);
  CHECK(backend.submissions() == 4);
  // 100 + 200 + 400 ms of backoff, then the unbar's 5 s lead time.
  CHECK(log.back().o.finished_at_ms == t0 + 700 + 5'000);
}
