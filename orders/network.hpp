#pragma once
// What the order layer knows about each mobile network (DESIGN.md §3): how
// fast it accepts orders (token bucket), how many it works on at once, how
// long each order type takes to take effect (lead time), how failed
// submissions are retried, and which provisioning backend receives them.
//
// Pure data plus the lead-time sampler; no clocks, no I/O. Random draws take
// an explicit, seeded generator so tests and replays are deterministic.
//
// Configuration (`orders:` in imeilockd.yaml; config/imeilockd.yaml
// shows every key with its default and is tested to match this code):
//
//   orders:
//     seed: 0                     # lead-time RNG seed; 0 = from std::random_device
//     defaults: { ...network settings... }
//     networks:                   # each starts from `defaults`, overrides what it sets
//       multinet: {}
//       roamnet901: { lead_times: { bar: { median: 5s, p95: 20s } } }
//
// A network setting block:
//
//     rate_per_second: 10         # token bucket refill, orders/s (0.001..100000)
//     burst: 20                   # token bucket size (1..1000000)
//     max_in_flight: 100          # submitted and not yet completed (1..1000000)
//     max_queue: 10000            # waiting orders before add() says overloaded
//     lead_times:                 # per order type: "5s" | {min, max} | {median, p95}
//       activate: 10s
//       bar: 5s
//       unbar: 5s
//       enable_imei_lock: 0s
//       disable_imei_lock: 0s
//     retry: { max_attempts: 5, initial_backoff: 1s, max_backoff: 1m, multiplier: 2 }
//     backend:
//       type: simulated           # simulated | webhook
//       url: http://127.0.0.1:8080/orders   # webhook only; http:// or https://
//       timeout: 5s               # webhook: whole request (connect+send+answer)
//       bearer_token_file: ""     # webhook: "Authorization: Bearer <file content>"
//       tls: { ca_file: "", client_cert: "", client_key: "" }   # https webhook
//       failure_probability: 0    # simulated: share of submissions refused (tests, demos)
//       fail_first: 0             # simulated: refuse the first N submissions

#include "common/http_url.hpp"
#include "config/error.hpp"
#include "lock/types.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace imeilock::config {
class section;
}

namespace imeilock::orders {

using std::chrono::milliseconds;

/// The random generator every sampler takes. mt19937_64's output sequence is
/// fixed by the C++ standard, and the transforms below are our own, so a seed
/// gives the same lead times on every platform.
using rng = std::mt19937_64;

/// Largest lead time, backoff or timeout accepted anywhere (one day).
inline constexpr milliseconds max_duration{86'400'000};

/// How long an order of one type takes on the network once submitted.
///
/// - fixed:     always `fixed`.
/// - uniform:   uniformly distributed in [min, max] (whole milliseconds).
/// - lognormal: given by its median and 95th percentile. A lognormal X has
///              ln X ~ N(mu, sigma^2), so median = e^mu and
///              p95 = e^(mu + z95 * sigma) with z95 = 1.6448536 (the standard
///              normal's 95% quantile); hence mu = ln(median) and
///              sigma = ln(p95 / median) / z95. p95 == median degenerates to
///              fixed. Draws are capped at 10 * p95 (and max_duration) so one
///              unlucky draw cannot park an order for days; the cap moves the
///              median and p95 by nothing measurable.
struct lead_time {
  enum class kind : std::uint8_t { fixed, uniform, lognormal };

  kind model = kind::fixed;
  milliseconds fixed{0};  ///< kind::fixed
  milliseconds min{0};    ///< kind::uniform, inclusive
  milliseconds max{0};    ///< kind::uniform, inclusive, >= min
  milliseconds median{0}; ///< kind::lognormal, > 0
  milliseconds p95{0};    ///< kind::lognormal, >= median

  /// A constant lead time.
  static lead_time constant(milliseconds value);
  /// Uniform in [lo, hi].
  static lead_time uniform(milliseconds lo, milliseconds hi);
  /// Lognormal fitted to a median and a 95th percentile (see above).
  static lead_time from_median_p95(milliseconds median_value, milliseconds p95_value);

  /// Draws one lead time; always within [0, max_duration].
  milliseconds sample(rng& gen) const;

  /// Succeeds when consistent, else config::ec::invalid saying what is wrong
  /// ("min must not exceed max"; where() is empty: the caller knows the key).
  expected<void> validate() const;

  /// "5s", "uniform(10s..60s)", "lognormal(median 30s, p95 2m)" for logs.
  std::string describe() const;

  friend bool operator==(const lead_time&, const lead_time&) = default;
};

/// Retry policy for submissions the backend refused or that timed out.
/// Attempt n (1-based) that fails is retried after
/// min(max_backoff, initial_backoff * multiplier^(n-1)); after max_attempts
/// failed attempts the order fails for good with the last reason.
struct retry_policy {
  std::uint32_t max_attempts = 5;      ///< total attempts including the first, 1..1000
  milliseconds initial_backoff{1'000}; ///< wait after the first failure
  milliseconds max_backoff{60'000};    ///< cap on any wait, >= initial_backoff
  double multiplier = 2.0;             ///< growth per failure, 1.0..10.0

  /// Wait after the `failed_attempts`-th failure (1-based).
  milliseconds backoff(std::uint32_t failed_attempts) const;
  /// Succeeds when consistent, else config::ec::invalid at "retry.<key>".
  expected<void> validate() const;
  friend bool operator==(const retry_policy&, const retry_policy&) = default;
};

/// Which provisioning system receives a network's orders.
struct backend_config {
  enum class kind : std::uint8_t { simulated, webhook };

  kind type = kind::simulated;
  /// webhook: "http://host[:port][/path]" or "https://...". Required for webhook.
  std::string url;
  /// webhook: limit on one whole request (resolve, connect, send, answer).
  milliseconds timeout{5'000};
  /// webhook: file whose content (trimmed) is sent as "Authorization: Bearer ...";
  /// empty = no Authorization header. Read when the backend is created.
  std::string bearer_token_file;
  /// webhook over https: CA file (empty: the system store), optional client
  /// certificate and key. Read when the backend is created.
  http::tls_files tls;
  /// simulated: probability that a submission is refused, 0..1 (tests, demos).
  double failure_probability = 0.0;
  /// simulated: refuse the first N submissions, then accept (tests, demos).
  std::uint32_t fail_first = 0;

  /// Succeeds when consistent, else config::ec::invalid at "backend.<key>".
  expected<void> validate() const;
  friend bool operator==(const backend_config&, const backend_config&) = default;
};

std::string_view to_string(backend_config::kind k);

/// Number of order types with a lead time (lock::order_type without `none`).
inline constexpr std::size_t order_type_count = 5;

/// Everything about one network's order handling. Defaults are for the
/// embedded simulated network: small bar/unbar lead times (5 s) so the demo
/// shows "barred only after the lead time" without waiting long.
struct network_config {
  double rate_per_second = 10.0;     ///< token bucket refill, orders per second
  std::uint32_t burst = 20;          ///< token bucket capacity (starts full)
  std::uint32_t max_in_flight = 100; ///< submitting + submitted, not yet completed
  std::uint32_t max_queue = 10'000;  ///< queued + waiting to retry; beyond: overloaded
  /// Lead time per order type, indexed by lead_time_index().
  /// Defaults: activate 10s, bar 5s, unbar 5s, enable/disable_imei_lock 0s.
  std::array<lead_time, order_type_count> lead_times{
      lead_time::constant(milliseconds{10'000}), // activate
      lead_time::constant(milliseconds{0}),      // enable_imei_lock
      lead_time::constant(milliseconds{0}),      // disable_imei_lock
      lead_time::constant(milliseconds{5'000}),  // bar
      lead_time::constant(milliseconds{5'000}),  // unbar
  };
  retry_policy retry;
  backend_config backend;

  /// The lead-time model of `type` (type must not be order_type::none).
  const lead_time& lead_time_for(lock::order_type type) const;
  lead_time& lead_time_for(lock::order_type type);

  /// Succeeds when consistent, else config::ec::invalid whose where() is the
  /// key within the network ("lead_times.bar", "retry.max_backoff").
  expected<void> validate() const;
  friend bool operator==(const network_config&, const network_config&) = default;
};

/// Index into network_config::lead_times (activate 0 ... unbar 4); type != none.
std::size_t lead_time_index(lock::order_type type);

/// True for order types carried out by the network (activate, bar, unbar):
/// they go through the token bucket, the in-flight limit and the backend.
/// enable/disable_imei_lock are internal to the lock service: no backend, no
/// rate limit, they only wait their lead time (default 0).
bool goes_to_network(lock::order_type type);

/// The `orders:` section.
struct orders_config {
  /// Per network name (the SIM's `network` field). Built in: multinet,
  /// roamnet901, ee, ee_big_data, each equal to `defaults`. A `networks:`
  /// section in the file replaces this list.
  std::map<std::string, network_config, std::less<>> networks;
  /// Used for networks not listed, and the base every listed network starts from.
  network_config defaults;
  /// Seed of the lead-time generator; 0 = seed from std::random_device.
  std::uint64_t seed = 0;

  /// The built-in configuration described above.
  orders_config();

  /// The settings of network `name` (defaults when not listed).
  const network_config& network(std::string_view name) const;

  /// Succeeds when consistent, else config::ec::invalid whose where() is
  /// "networks.<name>.<key>" or "defaults.<key>".
  expected<void> validate() const;
};

/// Reads the `orders:` section strictly (unknown keys, bad values and
/// inconsistent pairs throw config::error with the key path and line).
/// Absent keys keep the values already in `cfg`.
void load(orders_config& cfg, config::section s);
/// Reads one network block into `cfg` (which holds the values to start from).
void load(network_config& cfg, config::section s);

} // namespace imeilock::orders
