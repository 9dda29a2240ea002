#include "api/json_views.hpp"

#include "common/fields.hpp"
#include "lock/caveats.hpp"
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
  // The bar lead time of its network as configured now (null: not known).
  j["bar_lead_time"] = sim.bar_lead_time.empty() ? json(nullptr) : json(sim.bar_lead_time);
  return j;
}

json caveats_json(const actors::sim_info& sim) {
  json j = json::object();
  for (const auto& c : lock::caveats()) {
    // The keep-lock option's caveat as it applies under this SIM's policy.
    if (c.id == (sim.policy.strict ? lock::caveat::keep_lock : lock::caveat::keep_lock_strict))
      continue;
    if (c.id == lock::caveat::bar_lead_time || c.id == lock::caveat::imei_lock_bar)
      j[std::string{c.key}] = lock::bar_caveat(c.id, sim.network, sim.bar_lead_time);
    else
      j[std::string{c.key}] = c.text;
  }
  return j;
}

json order_json(const orders::order& o) {
  json j = json::object();
  write_view(j, orders::order_fields, o, true);
  return j;
}

json fleet_json(const actors::fleet_info& f) {
  constexpr std::int64_t hour_ms = 3'600'000;
  json networks = json::array();
  for (const auto& n : f.networks) {
    json by_lock = json::object();
    for (auto l :
         {lock::lock_state::off, lock::lock_state::awaiting_first_imei, lock::lock_state::locked})
      by_lock[std::string{lock::to_string(l)}] = 0;
    json by_bar = json::object();
    for (auto b : {lock::bar_state::none, lock::bar_state::bar_pending, lock::bar_state::barred,
                   lock::bar_state::unbar_pending})
      by_bar[std::string{lock::to_string(b)}] = 0;
    json states = json::array();
    std::uint64_t total = 0;
    for (const auto& s : n.sims) {
      total += s.sims;
      auto& l = by_lock[std::string{lock::to_string(s.lock)}];
      l = l.get<std::uint64_t>() + s.sims;
      auto& b = by_bar[std::string{lock::to_string(s.bar)}];
      b = b.get<std::uint64_t>() + s.sims;
      states.push_back({{"lock_state", lock::to_string(s.lock)},
                        {"bar_state", lock::to_string(s.bar)},
                        {"sims", s.sims}});
    }
    networks.push_back({{"network", n.name},
                        {"sims", total},
                        {"lock", std::move(by_lock)},
                        {"bar", std::move(by_bar)},
                        {"states", std::move(states)},
                        {"orders",
                         {{"queued", n.orders_queued},
                          {"in_flight", n.orders_in_flight},
                          {"max_queue", n.max_queue},
                          {"max_in_flight", n.max_in_flight},
                          {"rate_per_second", n.rate_per_second},
                          {"burst", n.burst}}}});
  }
  json hours = json::array();
  std::uint64_t violations = 0;
  for (std::size_t i = 0; i < f.violations_per_hour.size(); ++i) {
    violations += f.violations_per_hour[i];
    hours.push_back({{"hour", time_json(f.since_ms + static_cast<std::int64_t>(i) * hour_ms)},
                     {"violations", f.violations_per_hour[i]}});
  }
  auto events = [](const std::vector<actors::event_info>& list) {
    json out = json::array();
    for (const auto& e : list)
      out.push_back({{"iccid", e.iccid},
                     {"at", time_json(e.at_ms)},
                     {"imei", imei_json(e.imei)},
                     {"locked_imei", imei_json(e.before.lock_imei)},
                     {"bar_reason", e.after.reason == lock::bar_reason::none
                                        ? json(nullptr)
                                        : json(lock::to_string(e.after.reason))},
                     {"detail", e.detail.empty() ? json(nullptr) : json(e.detail)}});
    return out;
  };
  json jobs = json::array();
  for (const auto& j : f.running_jobs)
    jobs.push_back(job_json(j));
  return {
      {"at", time_json(f.at_ms)},
      {"networks", std::move(networks)},
      {"violations",
       {{"since", time_json(f.since_ms)}, {"total", violations}, {"per_hour", std::move(hours)}}},
      {"latest_violations", events(f.latest_violations)},
      {"latest_bars", events(f.latest_bars)},
      {"running_jobs", std::move(jobs)},
  };
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
      {"lock_scope", job.order.type == lock::order_type::enable_imei_lock ||
                             (job.order.type == lock::order_type::activate && job.order.with_lock)
                         ? json(lock::to_string(job.order.scope))
                         : json(nullptr)},
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
