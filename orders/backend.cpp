#include "orders/backend.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <ctime>
#include <random>

namespace imeilock::orders {

namespace {

// The spellings of lock::to_string (the API's), kept here so this pure
// library needs only lock/types.hpp and not the lock library.
std::string_view spell(lock::order_type t) {
  switch (t) {
    case lock::order_type::none:
      return "none";
    case lock::order_type::activate:
      return "activate";
    case lock::order_type::enable_imei_lock:
      return "enable_imei_lock";
    case lock::order_type::disable_imei_lock:
      return "disable_imei_lock";
    case lock::order_type::bar:
      return "bar";
    case lock::order_type::unbar:
      return "unbar";
  }
  return "none";
}

std::string_view spell(lock::bar_reason r) {
  switch (r) {
    case lock::bar_reason::none:
      return "none";
    case lock::bar_reason::imei_lock:
      return "imei_lock";
    case lock::bar_reason::manual:
      return "manual";
  }
  return "none";
}

std::string_view spell(lock::unbar_mode m) {
  switch (m) {
    case lock::unbar_mode::none:
      return "none";
    case lock::unbar_mode::keep_lock:
      return "keep_lock";
    case lock::unbar_mode::update_to_last_seen:
      return "update_to_last_seen";
  }
  return "none";
}

/// RFC 3339 UTC with milliseconds, e.g. 2026-11-25T02:46:04.123Z.
std::string rfc3339(std::int64_t unix_ms) {
  auto secs = static_cast<std::time_t>(unix_ms >= 0 ? unix_ms / 1000 : (unix_ms - 999) / 1000);
  auto ms = static_cast<int>(unix_ms - static_cast<std::int64_t>(secs) * 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

std::string imsi_text(std::uint64_t imsi) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%015llu", static_cast<unsigned long long>(imsi));
  return buf;
}

} // namespace

std::string to_json(const order& o) {
  nlohmann::json imsis = nlohmann::json::array();
  for (auto imsi : o.imsis)
    imsis.push_back(imsi_text(imsi));
  nlohmann::json body{
      {"order_id", o.id},
      {"iccid", o.iccid},
      {"imsis", std::move(imsis)},
      {"network", o.network},
      {"type", spell(o.type)},
      {"reason", spell(o.reason)},
      {"unbar_mode", spell(o.mode)},
      {"with_lock", o.with_lock},
      {"created_at", rfc3339(o.created_at_ms)},
  };
  // Replace invalid UTF-8 (an ICCID is digits, but a bad inventory row must
  // not throw here) instead of raising type_error.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

simulated_backend::simulated_backend(const backend_config& cfg, std::uint64_t seed) :
    fail_first_(cfg.fail_first),
    failure_probability_(cfg.failure_probability),
    gen_(seed != 0 ? seed : std::random_device{}()) {}

void simulated_backend::submit(const order& o, submit_done done) {
  (void)o;
  submit_result result{true, {}, 0};
  {
    std::lock_guard guard{mutex_};
    ++submissions_;
    if (fail_first_ > 0) {
      --fail_first_;
      result = {false, "simulated failure (fail_first)", 0};
    } else if (failure_probability_ > 0) {
      const double u = static_cast<double>(gen_() >> 11) * 0x1.0p-53;
      if (u < failure_probability_)
        result = {false, "simulated failure (failure_probability)", 0};
    }
  }
  // Outside the lock: `done` may call straight back into submit().
  done(std::move(result));
}

std::string simulated_backend::describe() const {
  return "simulated";
}

std::uint64_t simulated_backend::submissions() const {
  std::lock_guard guard{mutex_};
  return submissions_;
}

} // namespace imeilock::orders
