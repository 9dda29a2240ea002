#include "orders/network.hpp"

#include "common/assert.hpp"
#include "config/section.hpp"
#include "config/tls.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

namespace imeilock::orders {

namespace {

/// The standard normal's 95% quantile, Phi^-1(0.95).
constexpr double z95 = 1.6448536269514722;

/// Uniform double in [0, 1) from the top 53 bits of one draw (our own
/// transform, so the sequence does not depend on the standard library).
double unit_interval(rng& gen) {
  return static_cast<double>(gen() >> 11) * 0x1.0p-53;
}

/// Standard normal draw by Box-Muller (one of the pair; simplicity over speed).
double standard_normal(rng& gen) {
  constexpr double two_pi = 6.283185307179586;
  double u1 = 0;
  do
    u1 = unit_interval(gen);
  while (u1 <= 0.0);
  double u2 = unit_interval(gen);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(two_pi * u2);
}

std::string format_duration(milliseconds d) {
  auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0)
    return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0)
    return std::to_string(ms / 60'000) + "m";
  if (ms % 1'000 == 0)
    return std::to_string(ms / 1'000) + "s";
  return std::to_string(ms) + "ms";
}

constexpr std::array<std::string_view, order_type_count> lead_time_keys{
    "activate", "enable_imei_lock", "disable_imei_lock", "bar", "unbar"};

/// Reads one lead-time model: "5s" (fixed), {min, max} (uniform) or
/// {median, p95} (lognormal).
void load_lead_time(lead_time& out, config::section parent, std::string_view key) {
  if (!parent.has(key))
    return;
  std::string text;
  bool scalar = true;
  try {
    parent.read(key, text);
  } catch (const config::error&) {
    scalar = false; // not a scalar: must be the mapping form, read below
  }
  if (scalar) {
    auto parsed = config::parse_duration(text);
    if (!parsed)
      parent.fail(key, "expected a duration such as 5s, or {min: 10s, max: 60s}, or "
                       "{median: 30s, p95: 2m}; got '" +
                           text + "'");
    auto value = *parsed;
    if (value > max_duration)
      parent.fail(key, "must be at most 1d, got " + text);
    out = lead_time::constant(value);
    return;
  }
  auto s = parent.child(key);
  const bool uniform = s.has("min") || s.has("max");
  const bool lognormal = s.has("median") || s.has("p95");
  if (uniform == lognormal)
    s.fail({}, "give either min and max (uniform) or median and p95 (lognormal)");
  if (uniform) {
    if (!s.has("min") || !s.has("max"))
      s.fail({}, "a uniform lead time needs both min and max");
    milliseconds lo{}, hi{};
    s.read_duration("min", lo, milliseconds{0}, max_duration);
    s.read_duration("max", hi, milliseconds{0}, max_duration);
    s.finish();
    if (lo > hi)
      s.fail("min",
             "min (" + format_duration(lo) + ") must not exceed max (" + format_duration(hi) + ")");
    out = lead_time::uniform(lo, hi);
  } else {
    if (!s.has("median") || !s.has("p95"))
      s.fail({}, "a median/p95 lead time needs both median and p95");
    milliseconds median{}, p95{};
    s.read_duration("median", median, milliseconds{1}, max_duration);
    s.read_duration("p95", p95, milliseconds{1}, max_duration);
    s.finish();
    if (p95 < median)
      s.fail("p95", "p95 (" + format_duration(p95) + ") must not be below the median (" +
                        format_duration(median) + ")");
    out = lead_time::from_median_p95(median, p95);
  }
}

} // namespace

// -- lead_time ---------------------------------------------------------------

lead_time lead_time::constant(milliseconds value) {
  lead_time lt;
  lt.model = kind::fixed;
  lt.fixed = value;
  return lt;
}

lead_time lead_time::uniform(milliseconds lo, milliseconds hi) {
  lead_time lt;
  lt.model = kind::uniform;
  lt.min = lo;
  lt.max = hi;
  return lt;
}

lead_time lead_time::from_median_p95(milliseconds median_value, milliseconds p95_value) {
  lead_time lt;
  lt.model = kind::lognormal;
  lt.median = median_value;
  lt.p95 = p95_value;
  return lt;
}

milliseconds lead_time::sample(rng& gen) const {
  auto clamp = [](double ms) {
    ms = std::clamp(ms, 0.0, static_cast<double>(max_duration.count()));
    return milliseconds{std::llround(ms)};
  };
  switch (model) {
    case kind::fixed:
      return std::clamp(fixed, milliseconds{0}, max_duration);
    case kind::uniform: {
      if (max <= min)
        return std::clamp(min, milliseconds{0}, max_duration);
      // Whole milliseconds in [min, max], both inclusive.
      auto span = static_cast<double>((max - min).count() + 1);
      auto offset = std::floor(unit_interval(gen) * span);
      return clamp(static_cast<double>(min.count()) + std::min(offset, span - 1));
    }
    case kind::lognormal: {
      if (median.count() <= 0)
        return milliseconds{0};
      if (p95 <= median)
        return clamp(static_cast<double>(median.count()));
      const double mu = std::log(static_cast<double>(median.count()));
      const double sigma =
          std::log(static_cast<double>(p95.count()) / static_cast<double>(median.count())) / z95;
      const double value = std::exp(mu + sigma * standard_normal(gen));
      return clamp(std::min(value, 10.0 * static_cast<double>(p95.count())));
    }
  }
  return milliseconds{0};
}

expected<void> lead_time::validate() const {
  auto invalid = [](std::string why) { return error{config::ec::invalid, std::move(why)}; };
  switch (model) {
    case kind::fixed:
      if (fixed < milliseconds{0} || fixed > max_duration)
        return invalid("must be between 0s and 1d");
      return {};
    case kind::uniform:
      if (min < milliseconds{0} || max > max_duration)
        return invalid("min and max must be between 0s and 1d");
      if (min > max)
        return invalid("min must not exceed max");
      return {};
    case kind::lognormal:
      if (median <= milliseconds{0} || p95 > max_duration)
        return invalid("median must be positive and p95 at most 1d");
      if (p95 < median)
        return invalid("p95 must not be below the median");
      return {};
  }
  return invalid("unknown lead-time model");
}

std::string lead_time::describe() const {
  switch (model) {
    case kind::fixed:
      return format_duration(fixed);
    case kind::uniform:
      return "uniform(" + format_duration(min) + ".." + format_duration(max) + ")";
    case kind::lognormal:
      return "lognormal(median " + format_duration(median) + ", p95 " + format_duration(p95) + ")";
  }
  return "?";
}

// -- retry_policy --------------------------------------------------------------

milliseconds retry_policy::backoff(std::uint32_t failed_attempts) const {
  const auto exponent = failed_attempts > 0 ? failed_attempts - 1 : 0;
  const double cap = static_cast<double>(max_backoff.count());
  double wait = static_cast<double>(initial_backoff.count()) *
                std::pow(multiplier, static_cast<double>(exponent));
  if (!std::isfinite(wait) || wait > cap)
    wait = cap;
  return milliseconds{std::llround(std::max(wait, 0.0))};
}

expected<void> retry_policy::validate() const {
  auto invalid = [](const std::string& key, std::string why) {
    return error{config::ec::invalid, std::move(why), "retry." + key};
  };
  if (max_attempts < 1 || max_attempts > 1000)
    return invalid("max_attempts", "must be between 1 and 1000");
  if (initial_backoff < milliseconds{0} || initial_backoff > max_duration)
    return invalid("initial_backoff", "must be between 0s and 1d");
  if (max_backoff < initial_backoff || max_backoff > max_duration)
    return invalid("max_backoff", "must be between initial_backoff and 1d");
  if (!(multiplier >= 1.0 && multiplier <= 10.0))
    return invalid("multiplier", "must be between 1 and 10");
  return {};
}

// -- backend_config -------------------------------------------------------------

std::string_view to_string(backend_config::kind k) {
  switch (k) {
    case backend_config::kind::simulated:
      return "simulated";
    case backend_config::kind::webhook:
      return "webhook";
  }
  return "unknown";
}

expected<void> backend_config::validate() const {
  auto invalid = [](const std::string& key, std::string why) {
    return error{config::ec::invalid, std::move(why), "backend." + key};
  };
  if (type == kind::webhook) {
    if (url.empty())
      return invalid("url", "a webhook needs an http:// or https:// URL");
    if (auto parsed = http::parse_url(url); !parsed)
      return invalid("url", parsed.error().message());
    if (timeout <= milliseconds{0} || timeout > max_duration)
      return invalid("timeout", "must be between 1ms and 1d");
  }
  if (!(failure_probability >= 0.0 && failure_probability <= 1.0))
    return invalid("failure_probability", "must be between 0 and 1");
  return {};
}

// -- network_config --------------------------------------------------------------

std::size_t lead_time_index(lock::order_type type) {
  // Callers pass types the scheduler accepted (check_new refuses none and
  // values outside the enum, e.g. from a damaged store).
  IMEILOCK_ASSERT(type != lock::order_type::none, "no lead time for order type none");
  const auto index = static_cast<std::size_t>(type) - 1;
  IMEILOCK_ASSERT(index < order_type_count,
                  "order type " + std::to_string(static_cast<int>(type)) + " outside the enum");
  return index;
}

bool goes_to_network(lock::order_type type) {
  switch (type) {
    case lock::order_type::activate:
    case lock::order_type::bar:
    case lock::order_type::unbar:
      return true;
    case lock::order_type::none:
    case lock::order_type::enable_imei_lock:
    case lock::order_type::disable_imei_lock:
      return false;
  }
  return false;
}

const lead_time& network_config::lead_time_for(lock::order_type type) const {
  return lead_times[lead_time_index(type)];
}

lead_time& network_config::lead_time_for(lock::order_type type) {
  return lead_times[lead_time_index(type)];
}

expected<void> network_config::validate() const {
  auto invalid = [](std::string key, std::string why) {
    return error{config::ec::invalid, std::move(why), std::move(key)};
  };
  if (!(rate_per_second >= 0.001 && rate_per_second <= 100'000.0))
    return invalid("rate_per_second", "must be between 0.001 and 100000");
  if (burst < 1 || burst > 1'000'000)
    return invalid("burst", "must be between 1 and 1000000");
  if (max_in_flight < 1 || max_in_flight > 1'000'000)
    return invalid("max_in_flight", "must be between 1 and 1000000");
  if (max_queue < 1 || max_queue > 10'000'000)
    return invalid("max_queue", "must be between 1 and 10000000");
  for (std::size_t i = 0; i < lead_times.size(); ++i)
    if (auto valid = lead_times[i].validate(); !valid)
      return std::move(valid.error().within("lead_times." + std::string{lead_time_keys[i]}));
  if (auto valid = retry.validate(); !valid)
    return valid;
  return backend.validate();
}

// -- orders_config -----------------------------------------------------------------

namespace {
constexpr std::array<std::string_view, 4> built_in_networks{"multinet", "roamnet901", "ee",
                                                            "ee_big_data"};
}

orders_config::orders_config() {
  for (auto name : built_in_networks)
    networks.emplace(std::string{name}, defaults);
}

const network_config& orders_config::network(std::string_view name) const {
  auto it = networks.find(name);
  return it == networks.end() ? defaults : it->second;
}

expected<void> orders_config::validate() const {
  if (auto valid = defaults.validate(); !valid)
    return std::move(valid.error().within("defaults"));
  for (const auto& [name, net] : networks)
    if (auto valid = net.validate(); !valid)
      return std::move(valid.error().within("networks." + name));
  return {};
}

void load(network_config& cfg, config::section s) {
  s.read("rate_per_second", cfg.rate_per_second, 0.001, 100'000.0);
  s.read("burst", cfg.burst, 1u, 1'000'000u);
  s.read("max_in_flight", cfg.max_in_flight, 1u, 1'000'000u);
  s.read("max_queue", cfg.max_queue, 1u, 10'000'000u);

  auto lt = s.child("lead_times");
  for (std::size_t i = 0; i < lead_time_keys.size(); ++i)
    load_lead_time(cfg.lead_times[i], lt, lead_time_keys[i]);
  lt.finish();

  auto r = s.child("retry");
  r.read("max_attempts", cfg.retry.max_attempts, 1u, 1000u);
  r.read_duration("initial_backoff", cfg.retry.initial_backoff, milliseconds{0}, max_duration);
  r.read_duration("max_backoff", cfg.retry.max_backoff, milliseconds{0}, max_duration);
  r.read("multiplier", cfg.retry.multiplier, 1.0, 10.0);
  r.finish();
  if (cfg.retry.max_backoff < cfg.retry.initial_backoff)
    r.fail(r.has("max_backoff") ? "max_backoff" : "initial_backoff",
           "max_backoff (" + format_duration(cfg.retry.max_backoff) +
               ") must not be below initial_backoff (" +
               format_duration(cfg.retry.initial_backoff) + ")");

  auto b = s.child("backend");
  std::string type{to_string(cfg.backend.type)};
  b.read("type", type);
  if (type == "simulated")
    cfg.backend.type = backend_config::kind::simulated;
  else if (type == "webhook")
    cfg.backend.type = backend_config::kind::webhook;
  else
    b.fail("type", "expected simulated or webhook, got '" + type + "'");
  b.read("url", cfg.backend.url);
  b.read_duration("timeout", cfg.backend.timeout, milliseconds{1}, max_duration);
  b.read("bearer_token_file", cfg.backend.bearer_token_file);
  config::load(cfg.backend.tls, b.child("tls"));
  b.read("failure_probability", cfg.backend.failure_probability, 0.0, 1.0);
  b.read("fail_first", cfg.backend.fail_first, 0u, 1'000'000u);
  b.finish();
  if (auto valid = cfg.backend.validate(); !valid)
    b.fail(b.has("url") ? "url" : "type", valid.error().message());

  s.finish();
}

void load(orders_config& cfg, config::section s) {
  long long seed = static_cast<long long>(cfg.seed);
  s.read("seed", seed, 0LL, std::numeric_limits<long long>::max());
  cfg.seed = static_cast<std::uint64_t>(seed);

  const auto old_defaults = cfg.defaults;
  load(cfg.defaults, s.child("defaults"));
  if (s.has("networks")) {
    auto listed = s.named_children("networks");
    std::map<std::string, network_config, std::less<>> networks;
    for (auto& [name, ns] : listed) {
      if (name.empty())
        ns.fail({}, "network name must not be empty");
      auto net = cfg.defaults;
      load(net, ns);
      networks.emplace(name, std::move(net));
    }
    cfg.networks = std::move(networks);
  } else {
    // Networks that merely mirrored the old defaults follow the new ones.
    for (auto& [name, net] : cfg.networks)
      if (net == old_defaults)
        net = cfg.defaults;
  }
  s.finish();
}

} // namespace imeilock::orders
