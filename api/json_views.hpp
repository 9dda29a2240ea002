#pragma once
// The JSON forms of SIMs, orders and audit events, exactly as the API
// documents them (api/openapi.json). IMEIs are 15 digits with the computed
// Luhn digit, null where unknown; times are RFC 3339 UTC, null where unknown.
// Generated from the field lists (lock/sim.hpp, orders/order.hpp): each
// field's `api` view says where and how it appears.

#include "actors/ports.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace imeilock::api {

/// "2026-11-25T02:46:04.123Z"; null for 0.
nlohmann::json time_json(std::int64_t unix_ms);
/// The 15-digit IMEI, or null for no_device.
nlohmann::json imei_json(lock::device_id device);
/// The lock part of a SIM: status, lock, last_seen_imei, bar.
nlohmann::json state_json(const lock::sim_state& s);
/// GET /v1/sims/{iccid} (without its `caveats`) and each item of GET /v1/sims.
nlohmann::json sim_json(const actors::sim_info& sim);
/// GET /v1/sims/{iccid}'s `caveats`: the product text's caveats for this SIM
/// by key (lock/caveats.hpp), the bar ones with its network's lead time, the
/// keep-lock one as strict mode words it when on. The dashboard shows them.
nlohmann::json caveats_json(const actors::sim_info& sim);
/// GET /v1/orders/{id}.
nlohmann::json order_json(const orders::order& order);
/// GET /v1/jobs/{id}: a bulk job and its progress.
nlohmann::json job_json(const actors::job_info& job);
/// One item of GET /v1/sims/{iccid}/events.
nlohmann::json event_json(const actors::event_info& event);
/// GET /v1/fleet: the fleet overview.
nlohmann::json fleet_json(const actors::fleet_info& fleet);

} // namespace imeilock::api
