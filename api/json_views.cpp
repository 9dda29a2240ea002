#include "api/json_views.hpp"

#include "lock/inventory.hpp"

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

std::string_view to_string(actors::order_status s) {
  switch (s) {
    case actors::order_status::queued: return "queued";
    case actors::order_status::submitted: return "submitted";
    case actors::order_status::completed: return "completed";
    case actors::order_status::failed: return "failed";
  }
  return "unknown";
}

namespace {

json optional_enum(std::string_view text, bool present) {
  return present ? json(text) : json(nullptr);
}

} // namespace

json state_json(const lock::sim_state& s) {
  return {
    {"status", lock::to_string(s.status)},
    {"lock",
     {{"state", lock::to_string(s.lock)},
      {"imei", imei_json(s.lock == lock::lock_state::locked ? s.lock_imei : lock::no_device)}}},
    {"last_seen_imei", imei_json(s.last_seen_imei)},
    {"bar",
     {{"state", lock::to_string(s.bar)},
      {"reason", optional_enum(lock::to_string(s.reason), s.reason != lock::bar_reason::none)},
      {"trigger_imei", imei_json(s.trigger_imei)}}},
  };
}

json sim_json(const actors::sim_info& sim) {
  json imsis = json::array();
  for (auto imsi : sim.imsis)
    imsis.push_back(lock::format_imsi(imsi));
  json j = state_json(sim.state);
  j["iccid"] = sim.iccid;
  j["imsis"] = std::move(imsis);
  j["msisdn"] = sim.msisdn.empty() ? json(nullptr) : json(sim.msisdn);
  j["network"] = sim.network;
  // False once a reload removed the network: the SIM keeps working (api/README.md).
  j["network_configured"] = sim.network_configured;
  j["pending_order"] =
    sim.state.pending_order_id == 0
      ? json(nullptr)
      : json{{"id", sim.state.pending_order_id},
             {"type", lock::to_string(sim.state.pending_order)},
             {"unbar_mode", optional_enum(lock::to_string(sim.state.pending_unbar),
                                          sim.state.pending_unbar != lock::unbar_mode::none)}};
  j["updated_at"] = time_json(sim.state.updated_at_ms);
  // What the configured lists allow on this network (R1, R13), so clients
  // (the dashboard's activation tick box) need not guess.
  j["eligibility"] = {{"imei_lock", sim.policy.lock_eligible},
                      {"lock_on_activation", sim.policy.lock_on_activation_eligible}};
  return j;
}

json order_json(const actors::order_info& o) {
  return {
    {"id", o.id},
    {"iccid", o.iccid},
    {"type", lock::to_string(o.type)},
    {"status", to_string(o.status)},
    {"unbar_mode", optional_enum(lock::to_string(o.mode), o.mode != lock::unbar_mode::none)},
    {"enable_imei_lock",
     o.type == lock::order_type::activate ? json(o.with_lock) : json(nullptr)},
    {"bar_reason", optional_enum(lock::to_string(o.reason), o.reason != lock::bar_reason::none)},
    {"network", o.network},
    {"created_at", time_json(o.created_at_ms)},
    {"due_at", time_json(o.due_at_ms)},
    {"completed_at", time_json(o.completed_at_ms)},
    {"attempts", o.attempts},
    {"failure_reason", o.failure_reason.empty() ? json(nullptr) : json(o.failure_reason)},
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

} // namespace imeilock::api
