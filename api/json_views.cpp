#include "api/json_views.hpp"

#include "common/fields.hpp"
#include "lock/identifiers.hpp"

#include <cstdio>
#include <ctime>

namespace imeilock::api {

using nlohmann::json;

json time_json(std::int64_t unix_ms) {
  if (unix_ms == 0)
    return nullptr;
  std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  auto ms = unix_ms % 1000;
  if (ms < 0) {
    ms += 1000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return std::string{buf};
}

json imei_json(lock::device_id device) {
  if (device == lock::no_device)
    return nullptr;
  return lock::format_imei(device);
}

namespace {

/// Writes the view of every field of `list` that has one into `j`.
/// `top_level`: the owner is shown on its own (not as part of something else).
template <class List, class Owner>
void write_view(json& j, const List& list, const Owner& o, bool top_level) {
  fields::for_each_field(list, [&](const auto& f) {
    using T = typename std::remove_cvref_t<decltype(f)>::value_type;
    const auto& v = f.api;
    if (v.how == fields::shape::hidden || (v.top_level_only && !top_level))
      return;
    if (v.shown != nullptr && !v.shown(o)) {
      j[json::json_pointer(std::string(v.null_at.empty() ? v.path : v.null_at))] = nullptr;
      return;
    }
    auto& out = j[json::json_pointer(std::string(v.path))];
    const T& value = f.get(o);
    using fields::shape;
    if constexpr (std::is_enum_v<T>) {
      if (v.how == shape::name_or_null && value == T{})
        out = nullptr;
      else
        out = to_string(value); // lock:: or orders:: spelling, found by ADL
    } else if constexpr (fields::is_text<T>) {
      out = v.how == shape::text_or_null && value.empty() ? json(nullptr) : json(value);
    } else if constexpr (std::is_same_v<T, bool>) {
      out = value;
    } else {
      if (v.how == shape::imei_or_null)
        out = imei_json(static_cast<lock::device_id>(value));
      else if (v.how == shape::time_or_null)
        out = time_json(static_cast<std::int64_t>(value));
      else if (v.how == shape::seconds_or_null)
        out = time_json(static_cast<std::int64_t>(value) * 1000);
      else
        out = value;
    }
  });
}

} // namespace

json state_json(const lock::sim_state& s) {
  json j = json::object();
  write_view(j, lock::sim_state_fields, s, false);
  return j;
}

json sim_json(const actors::sim_info& sim) {
  json j = json::object();
  write_view(j, lock::sim_identity_fields, static_cast<const lock::sim_record&>(sim), true);
  write_view(j, lock::sim_state_fields, sim.state, true);
  write_view(j, lock::sim_activity_fields, sim.activity, true);
  json imsis = json::array();
  for (auto imsi : sim.imsis)
    imsis.push_back(lock::format_imsi(imsi));
  j["imsis"] = std::move(imsis);
  // False once a reload removed the network: the SIM keeps working (api/README.md).
  j["network_configured"] = sim.network_configured;
  // What the configured lists allow on this network (R1, R13), so clients
  // (the dashboard's activation tick box) need not guess.
  j["eligibility"] = {{"imei_lock", sim.policy.lock_eligible},
                      {"lock_on_activation", sim.policy.lock_on_activation_eligible}};
  // What a violation does on this network now (imei_lock.action/actions).
  j["violation_action"] = lock::to_string(sim.policy.action);
  return j;
}

json order_json(const orders::order& o) {
  json j = json::object();
  write_view(j, orders::order_fields, o, true);
  return j;
}

json event_json(const actors::event_info& e) {
  return {
      {"id", e.id},
      {"at", time_json(e.at_ms)},
      {"cause", e.cause},
      {"imei", imei_json(e.imei)},
      {"detail", e.detail.empty() ? json(nullptr) : json(e.detail)},
      {"before", state_json(e.before)},
      {"after", state_json(e.after)},
  };
}

json job_json(const actors::job_info& job) {
  json selector;
  if (job.by_list) {
    selector = {{"iccids", job.total}};
  } else {
    json f = json::object();
    if (job.filter.network)
      f["network"] = *job.filter.network;
    if (job.filter.lock)
      f["lock_state"] = lock::to_string(*job.filter.lock);
    if (job.filter.bar)
      f["bar_state"] = lock::to_string(*job.filter.bar);
    if (job.filter.alerted)
      f["alerted"] = *job.filter.alerted;
    selector = {{"filter", std::move(f)}};
  }
  json reasons = json::array();
  for (const auto& [reason, n] : job.reasons)
    reasons.push_back({{"reason", reason}, {"count", n}});
  json refusals = json::array();
  for (const auto& r : job.refusals)
    refusals.push_back({{"iccid", r.iccid}, {"reason", r.reason}});
  return {
      {"id", job.id},
      {"state", actors::to_string(job.state)},
      {"type", lock::to_string(job.order.type)},
      {"unbar_mode", job.order.mode == lock::unbar_mode::none
                         ? json(nullptr)
                         : json(lock::to_string(job.order.mode))},
      {"enable_imei_lock",
       job.order.type == lock::order_type::activate ? json(job.order.with_lock) : json(nullptr)},
      {"selector", std::move(selector)},
      {"total", job.total},
      {"processed", job.processed},
      {"placed", job.placed},
      {"refused", job.refused},
      {"refused_reasons", std::move(reasons)},
      {"refusals", std::move(refusals)},
      {"orders",
       {{"open", job.orders_open},
        {"completed", job.orders_completed},
        {"failed", job.orders_failed}}},
      {"created_at", time_json(job.created_at_ms)},
      {"updated_at", time_json(job.updated_at_ms)},
      {"finished_at", time_json(job.finished_at_ms)},
  };
}

} // namespace imeilock::api
