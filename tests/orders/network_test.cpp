// Network configuration of the order layer: lead-time models, retry
// backoff, and the strict `orders:` YAML section (DESIGN.md §3).

#include "config/section.hpp"
#include "orders/network.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

using namespace imeilock;
using namespace imeilock::orders;
using namespace std::chrono_literals;

namespace {

orders_config load_yaml(const std::string& text) {
  orders_config cfg;
  auto root = config::load_string(text);
  load(cfg, root.child("orders"));
  root.finish();
  return cfg;
}

std::string load_error(const std::string& text) {
  try {
    load_yaml(text);
  } catch (const config::error& e) {
    return e.what();
  }
  return "no error";
}

/// The q-quantile of `v` (sorted in place), nearest rank.
double quantile(std::vector<double>& v, double q) {
  std::sort(v.begin(), v.end());
  auto index = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
  return v[index];
}

} // namespace

TEST_CASE("fixed lead time is exact", "[orders][lead_time]") {
  rng gen{42};
  auto lt = lead_time::constant(5s);
  for (int i = 0; i < 100; ++i)
    CHECK(lt.sample(gen) == 5000ms);
  CHECK(lead_time::constant(0ms).sample(gen) == 0ms);
  CHECK(lt.describe() == "5s");
}

TEST_CASE("uniform lead time stays within its bounds and covers them", "[orders][lead_time]") {
  rng gen{7};
  auto lt = lead_time::uniform(10s, 12s);
  milliseconds lo = 1h, hi = 0ms;
  double sum = 0;
  constexpr int n = 20'000;
  for (int i = 0; i < n; ++i) {
    auto v = lt.sample(gen);
    REQUIRE(v >= 10s);
    REQUIRE(v <= 12s);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += static_cast<double>(v.count());
  }
  CHECK(lo < 10'010ms);
  CHECK(hi > 11'990ms);
  CHECK(sum / n == Approx(11'000).epsilon(0.01));
  // A degenerate range is a constant.
  CHECK(lead_time::uniform(3s, 3s).sample(gen) == 3s);
}

TEST_CASE("median/p95 lead time reproduces its median and p95", "[orders][lead_time]") {
  rng gen{2026};
  auto lt = lead_time::from_median_p95(30s, 120s);
  std::vector<double> draws;
  constexpr int n = 50'000;
  for (int i = 0; i < n; ++i) {
    auto v = lt.sample(gen);
    REQUIRE(v >= 0ms);
    REQUIRE(v <= 1'200s); // the 10 x p95 cap
    draws.push_back(static_cast<double>(v.count()));
  }
  CHECK(quantile(draws, 0.50) == Approx(30'000).epsilon(0.03));
  CHECK(quantile(draws, 0.95) == Approx(120'000).epsilon(0.04));
  CHECK(lt.describe() == "lognormal(median 30s, p95 2m)");
}

TEST_CASE("median == p95 degenerates to a fixed lead time", "[orders][lead_time]") {
  rng gen{1};
  CHECK(lead_time::from_median_p95(8s, 8s).sample(gen) == 8s);
}

TEST_CASE("lead-time draws are deterministic for a seed", "[orders][lead_time]") {
  auto lt = lead_time::from_median_p95(5s, 20s);
  rng a{99}, b{99};
  for (int i = 0; i < 100; ++i)
    CHECK(lt.sample(a) == lt.sample(b));
}

TEST_CASE("retry backoff grows by the multiplier up to the cap", "[orders][retry]") {
  retry_policy p;
  p.initial_backoff = 1s;
  p.max_backoff = 10s;
  p.multiplier = 2.0;
  CHECK(p.backoff(1) == 1s);
  CHECK(p.backoff(2) == 2s);
  CHECK(p.backoff(3) == 4s);
  CHECK(p.backoff(4) == 8s);
  CHECK(p.backoff(5) == 10s);
  CHECK(p.backoff(1000) == 10s);
}

TEST_CASE("built-in configuration: four networks, small bar lead time", "[orders][config]") {
  orders_config cfg;
  CHECK(cfg.validate());
  CHECK(cfg.networks.size() == 4);
  for (auto name : {"multinet", "roamnet901", "ee", "ee_big_data"})
    CHECK(cfg.networks.contains(name));
  const auto& d = cfg.defaults;
  CHECK(d.lead_time_for(lock::order_type::bar) == lead_time::constant(5s));
  CHECK(d.lead_time_for(lock::order_type::unbar) == lead_time::constant(5s));
  CHECK(d.lead_time_for(lock::order_type::activate) == lead_time::constant(10s));
  CHECK(d.lead_time_for(lock::order_type::enable_imei_lock) == lead_time::constant(0s));
  CHECK(d.lead_time_for(lock::order_type::disable_imei_lock) == lead_time::constant(0s));
  CHECK(d.backend.type == backend_config::kind::simulated);
  // An unlisted network gets the defaults.
  CHECK(&cfg.network("somewhere_else") == &cfg.defaults);
}

TEST_CASE("an empty orders section keeps the built-in configuration", "[orders][config]") {
  auto cfg = load_yaml("orders: {}\n");
  orders_config builtin;
  CHECK(cfg.networks == builtin.networks);
  CHECK(cfg.defaults == builtin.defaults);
}

TEST_CASE("defaults apply to built-in networks, listed networks override", "[orders][config]") {
  auto cfg = load_yaml(R"(
orders:
  seed: 17
  defaults:
    rate_per_second: 2.5
    burst: 3
    lead_times:
      bar: 2s
  )");
  CHECK(cfg.seed == 17);
  CHECK(cfg.network("ee").rate_per_second == 2.5);
  CHECK(cfg.network("ee").burst == 3);
  CHECK(cfg.network("multinet").lead_time_for(lock::order_type::bar) == lead_time::constant(2s));

  auto listed = load_yaml(R"(
orders:
  defaults:
    max_in_flight: 7
  networks:
    roamnet901:
      lead_times:
        bar: {median: 5s, p95: 20s}
        activate: {min: 10s, max: 60s}
      retry: {max_attempts: 3, initial_backoff: 500ms, max_backoff: 4s, multiplier: 1.5}
    ee:
      backend:
        type: webhook
        url: http://127.0.0.1:8080/orders
        timeout: 2s
  )");
  CHECK(listed.networks.size() == 2);
  const auto& r = listed.network("roamnet901");
  CHECK(r.max_in_flight == 7); // from defaults
  CHECK(r.lead_time_for(lock::order_type::bar) == lead_time::from_median_p95(5s, 20s));
  CHECK(r.lead_time_for(lock::order_type::activate) == lead_time::uniform(10s, 60s));
  CHECK(r.lead_time_for(lock::order_type::unbar) == lead_time::constant(5s)); // untouched
  CHECK(r.retry.max_attempts == 3);
  CHECK(r.retry.initial_backoff == 500ms);
  CHECK(r.retry.multiplier == 1.5);
  const auto& ee = listed.network("ee");
  CHECK(ee.backend.type == backend_config::kind::webhook);
  CHECK(ee.backend.url == "http://127.0.0.1:8080/orders");
  CHECK(ee.backend.timeout == 2s);
  CHECK(listed.validate());
}

TEST_CASE("configuration errors name the key and the line", "[orders][config]") {
  CHECK_THAT(load_error("orders:\n  defaults:\n    burts: 3\n"),
             Catch::Contains("line 3") && Catch::Contains("orders.defaults.burts: unknown key"));
  CHECK_THAT(load_error("orders:\n  defaults:\n    burst: 0\n"),
             Catch::Contains("orders.defaults.burst: must be between 1"));
  CHECK_THAT(load_error("orders:\n  defaults:\n    rate_per_second: -1\n"),
             Catch::Contains("orders.defaults.rate_per_second"));
  CHECK_THAT(load_error("orders:\n  networks:\n    ee:\n      lead_times:\n        bar: fast\n"),
             Catch::Contains("line 5") && Catch::Contains("orders.networks.ee.lead_times.bar") &&
                 Catch::Contains("expected a duration"));
  CHECK_THAT(load_error("orders:\n  defaults:\n    lead_times:\n      bar: {min: 9s, max: 2s}\n"),
             Catch::Contains("lead_times.bar.min: min (9s) must not exceed max (2s)"));
  CHECK_THAT(
      load_error("orders:\n  defaults:\n    lead_times:\n      bar: {median: 9s, p95: 2s}\n"),
      Catch::Contains("lead_times.bar.p95: p95 (2s) must not be below the median (9s)"));
  CHECK_THAT(load_error("orders:\n  defaults:\n    lead_times:\n      bar: {min: 1s, p95: 2s}\n"),
             Catch::Contains("either min and max"));
  CHECK_THAT(load_error("orders:\n  defaults:\n    lead_times:\n      bar: {min: 1s}\n"),
             Catch::Contains("needs both min and max"));
  CHECK_THAT(
      load_error("orders:\n  defaults:\n    lead_times:\n      bar: {median: 1s, p95: 2s, x: 1}\n"),
      Catch::Contains("lead_times.bar.x: unknown key"));
  CHECK_THAT(load_error("orders:\n  defaults:\n    lead_times:\n      barr: 1s\n"),
             Catch::Contains("lead_times.barr: unknown key"));
  CHECK_THAT(
      load_error("orders:\n  defaults:\n    retry: {initial_backoff: 10s, max_backoff: 1s}\n"),
      Catch::Contains("retry.max_backoff: max_backoff (1s) must not be below"));
  CHECK_THAT(load_error("orders:\n  defaults:\n    backend: {type: carrier_pigeon}\n"),
             Catch::Contains("backend.type: expected simulated or webhook"));
  CHECK_THAT(load_error("orders:\n  defaults:\n    backend: {type: webhook}\n"),
             Catch::Contains("backend.type: a webhook needs an http:// or https:// URL"));
  CHECK_THAT(load_error("orders:\n  defaults:\n    backend: {type: webhook, url: ftp://x}\n"),
             Catch::Contains("backend.url: expected an http:// or https:// URL"));
  CHECK_THAT(
      load_error("orders:\n  defaults:\n    backend:\n      tls: {client_cert: /etc/hostname}\n"),
      Catch::Contains("backend.tls.client_key"));
  CHECK_THAT(load_error("orders:\n  defaults:\n    backend: {failure_probability: 2}\n"),
             Catch::Contains("backend.failure_probability: must be between 0 and 1"));
  CHECK_THAT(load_error("orders:\n  sede: 1\n"), Catch::Contains("orders.sede: unknown key"));
}

TEST_CASE("validate() catches inconsistent programmatic configs", "[orders][config]") {
  orders_config cfg;
  cfg.networks["ee"].lead_time_for(lock::order_type::unbar) = lead_time::uniform(5s, 1s);
  auto invalid = cfg.validate();
  REQUIRE_FALSE(invalid);
  CHECK(invalid.error() == config::ec::invalid);
  CHECK(invalid.error().where() == "networks.ee.lead_times.unbar");
  CHECK(invalid.error().describe() == "networks.ee.lead_times.unbar: min must not exceed max");
  cfg = orders_config{};
  cfg.defaults.retry.max_attempts = 0;
  CHECK(cfg.validate().error().describe() ==
        "defaults.retry.max_attempts: must be between 1 and 1000");
  cfg = orders_config{};
  cfg.defaults.burst = 0;
  CHECK(cfg.validate().error().describe() == "defaults.burst: must be between 1 and 1000000");
}

TEST_CASE("only activate, bar and unbar go to the network", "[orders][config]") {
  CHECK(goes_to_network(lock::order_type::activate));
  CHECK(goes_to_network(lock::order_type::bar));
  CHECK(goes_to_network(lock::order_type::unbar));
  CHECK_FALSE(goes_to_network(lock::order_type::enable_imei_lock));
  CHECK_FALSE(goes_to_network(lock::order_type::disable_imei_lock));
}

TEST_CASE("config/imeilockd.yaml documents the built-in orders configuration exactly",
          "[orders][config]") {
  orders_config cfg;
  cfg.seed = 99; // the file must set it back to 0
  cfg.defaults.burst = 1;
  auto root = config::load_file(IMEILOCK_EXAMPLE_CONFIG);
  // Only the `orders:` section (the daemon's test checks the other sections).
  load(cfg, root.child("orders"));
  orders_config builtin;
  CHECK(cfg.seed == builtin.seed);
  CHECK(cfg.defaults == builtin.defaults);
  CHECK(cfg.networks == builtin.networks);
}
