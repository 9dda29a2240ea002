// The HTTP API over loopback: a real server, a real HTTP client, the fake
// SIM layer behind. Every route, auth, and every kind of bad input.

#include "api/client.hpp"
#include "api/router.hpp"
#include "api/validate.hpp"
#include "server_fixture.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

using namespace imeilock;
using namespace imeilock::api;
using namespace imeilock::api::test;
using nlohmann::json;

namespace {

const std::string json_type = "application/json";

json body(const client_response& r) {
  INFO(r.body);
  return json::parse(r.body);
}

std::string error_code(const client_response& r) {
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.contains("error"))
    return "(no error body: " + r.body + ")";
  CHECK(j["error"]["message"].is_string());
  CHECK(!j["error"]["message"].get<std::string>().empty());
  return j["error"]["code"].get<std::string>();
}

std::string sim_body(const std::string& imsi, const std::string& network = "multinet",
                     const std::string& status = "active") {
  return json{
      {"imsis", {imsi}}, {"msisdn", "+447700900001"}, {"network", network}, {"status", status}}
      .dump();
}

bool luhn_ok(const std::string& digits) {
  int sum = 0;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    int d = digits[digits.size() - 1 - i] - '0';
    if (i % 2 == 1) {
      d *= 2;
      if (d > 9)
        d -= 9;
    }
    sum += d;
  }
  return sum % 10 == 0;
}

} // namespace

TEST_CASE("healthz and readyz follow the daemon's readiness", "[api]") {
  server_fixture f;
  http_client c{f.url()};
  auto r = c.request("GET", "/healthz");
  CHECK(r.status == 200);
  CHECK(body(r)["status"] == "ok");
  CHECK(c.request("GET", "/readyz").status == 200);
  f.server().set_ready(false);
  r = c.request("GET", "/readyz");
  CHECK(r.status == 503);
  CHECK(body(r)["status"] == "not_ready");
}

TEST_CASE("auth: 401 without or with a wrong token, 403 for a read-only token on a write",
          "[api]") {
  server_fixture f;
  http_client c{f.url()};
  auto r = c.request("GET", "/v1/sims");
  CHECK(r.status == 401);
  CHECK(error_code(r) == "unauthorized");
  CHECK(r.header("WWW-Authenticate").find("Bearer") == 0);
  r = c.request("GET", "/v1/sims", "not-the-token-0123456789");
  CHECK(r.status == 401);
  CHECK(r.header("WWW-Authenticate").find("invalid_token") != std::string::npos);
  r = c.request("GET", "/v1/sims", "", "", "", {{"Authorization", "Basic dXNlcjpwYXNz"}});
  CHECK(r.status == 401);
  CHECK(c.request("GET", "/v1/sims", ro_token).status == 200);
  CHECK(c.request("GET", "/v1/sims", rw_token).status == 200);

  auto writes = f.service.writes();
  r = c.request("PUT", std::string{"/v1/sims/"} + iccid_a, ro_token, sim_body("234100000000001"),
                json_type);
  CHECK(r.status == 403);
  CHECK(error_code(r) == "forbidden");
  r = c.request("POST", "/v1/sims:import", ro_token, "iccid,imsis,msisdn,network,status\n",
                "text/csv");
  CHECK(r.status == 403);
  CHECK(f.service.writes() == writes);
  // Open routes need no token.
  CHECK(c.request("GET", "/v1/openapi.json").status == 200);
  CHECK(c.request("GET", "/ui").status == 200);
}

TEST_CASE("no configured token: every /v1 request is refused with a hint", "[api]") {
  server_fixture f{[](api_config& cfg) {
    cfg.tokens.clear();
    cfg.read_only_tokens.clear();
  }};
  http_client c{f.url()};
  auto r = c.request("GET", "/v1/sims", rw_token);
  CHECK(r.status == 401);
  CHECK(body(r)["error"]["message"].get<std::string>().find("api.tokens") != std::string::npos);
}

TEST_CASE("reload swaps the tokens, a bad token file keeps the old ones", "[api]") {
  server_fixture f;
  http_client c{f.url()};
  api_config cfg;
  cfg.listen = {config::endpoint{"127.0.0.1", 0}};
  cfg.tokens = {"fresh-token-0123456789abcdef"};
  REQUIRE(f.server().reload(cfg));
  CHECK(c.request("GET", "/v1/sims", rw_token).status == 401);
  CHECK(c.request("GET", "/v1/sims", "fresh-token-0123456789abcdef").status == 200);
  cfg.token_file = "/nonexistent/tokens";
  auto refused = f.server().reload(cfg);
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == sys_ec::file_failed);
  CHECK(refused.error().describe().find("/nonexistent/tokens") != std::string::npos);
  CHECK(c.request("GET", "/v1/sims", "fresh-token-0123456789abcdef").status == 200);
}

TEST_CASE("PUT /v1/sims/{iccid} creates (201) then updates (200)", "[api]") {
  server_fixture f;
  http_client c{f.url()};
  auto path = std::string{"/v1/sims/"} + iccid_a;
  auto r = c.request("PUT", path, rw_token, sim_body("234100000000001"), json_type);
  REQUIRE(r.status == 201);
  CHECK(r.header("Location") == path);
  auto j = body(r);
  CHECK(j["iccid"] == iccid_a);
  CHECK(j["imsis"] == json::array({"234100000000001"}));
  CHECK(j["msisdn"] == "447700900001");
  CHECK(j["network"] == "multinet");
  CHECK(j["status"] == "active");
  CHECK(j["lock"]["state"] == "off");
  CHECK(j["lock"]["imei"].is_null());
  CHECK(j["last_seen_imei"].is_null());
  CHECK(j["bar"] == json{{"state", "none"}, {"reason", nullptr}, {"trigger_imei", nullptr}});
  CHECK(j["updated_at"].is_string());

  r = c.request("PUT", path, rw_token, sim_body("234100000000001", "ee", "inactive"), json_type);
  CHECK(r.status == 200);
  CHECK(body(r)["network"] == "ee");
  CHECK(f.service.snapshot(iccid_a)->state.status == lock::sim_status::inactive);
}

TEST_CASE("PUT /v1/sims/{iccid}: bad input gets the right status, a message, and changes nothing",
          "[api]") {
  server_fixture f;
  http_client c{f.url()};
  auto path = std::string{"/v1/sims/"} + iccid_a;
  REQUIRE(c.request("PUT", std::string{"/v1/sims/"} + iccid_b, rw_token,
                    sim_body("234100000000009"), json_type)
              .status == 201);
  auto writes = f.service.writes();

  struct bad_case {
    std::string name;
    std::string target;
    std::string body;
    std::string type;
    unsigned status;
    std::string code;
  };
  std::vector<bad_case> cases{
      {"malformed JSON", path, "{\"imsis\": [", json_type, 400, "malformed_json"},
      {"nested far too deep", path, std::string(100000, '['), json_type, 400, "malformed_json"},
      {"a number beyond double", path,
       R"({"imsis":[1e999],"network":"multinet","status":"active"})", json_type, 400,
       "malformed_json"},
      {"not an object", path, "[1,2]", json_type, 400, "wrong_type"},
      {"unknown field", path,
       R"({"imsis":["234100000000001"],"network":"multinet","status":"active","colour":"red"})",
       json_type, 400, "unknown_field"},
      {"wrong type", path, R"({"imsis":"234100000000001","network":"multinet","status":"active"})",
       json_type, 400, "wrong_type"},
      {"wrong item type", path,
       R"({"imsis":[234100000000001],"network":"multinet","status":"active"})", json_type, 400,
       "wrong_type"},
      {"missing field", path, R"({"imsis":["234100000000001"],"status":"active"})", json_type, 400,
       "missing_field"},
      {"invalid ICCID", "/v1/sims/8944100000000000001X", sim_body("234100000000001"), json_type,
       422, "invalid_value"},
      {"ICCID with a wrong check digit", "/v1/sims/89441000000000000019",
       sim_body("234100000000001"), json_type, 422, "invalid_value"},
      {"invalid IMSI", path, sim_body("23410"), json_type, 422, "invalid_value"},
      {"IMSI of another SIM", path, sim_body("234100000000009"), json_type, 422, "conflict"},
      {"unknown network", path, sim_body("234100000000001", "nowhere"), json_type, 422,
       "unknown_network"},
      {"bad status", path, sim_body("234100000000001", "multinet", "sleeping"), json_type, 422,
       "invalid_value"},
      {"bad MSISDN", path,
       R"({"imsis":["234100000000001"],"msisdn":"abc","network":"multinet","status":"active"})",
       json_type, 422, "invalid_value"},
      {"iccid in body differs", path,
       R"({"iccid":"89441000000000000026","imsis":["234100000000001"],"network":"multinet","status":"active"})",
       json_type, 422, "invalid_value"},
      {"wrong content type", path, sim_body("234100000000001"), "text/plain", 415,
       "unsupported_media_type"},
      {"no content type", path, sim_body("234100000000001"), "", 415, "unsupported_media_type"},
      // fuzz/api_request_body: a number beyond a double threw past the router.
      {"number out of range", path,
       R"({"imsis":["234100000000001"],"network":"multinet","status":"active","n":7777e77777})",
       json_type, 400, "malformed_json"},
      // nlohmann::json built every level of this before failing: 8 MiB cost 5 s and 600 MiB.
      {"nesting too deep", path, std::string(100000, '['), json_type, 400, "malformed_json"},
  };
  for (const auto& bc : cases) {
    SECTION(bc.name) {
      auto r = c.request("PUT", bc.target, rw_token, bc.body, bc.type);
      INFO(r.body);
      CHECK(r.status == bc.status);
      CHECK(error_code(r) == bc.code);
      CHECK(r.content_type == "application/json");
      CHECK(f.service.writes() == writes);
      CHECK_FALSE(f.service.snapshot(iccid_a));
      if (bc.code == "unknown_network")
        CHECK(body(r)["error"]["known_networks"] ==
              json::array({"ee", "ee_big_data", "multinet", "roamnet901"}));
    }
  }
}

TEST_CASE("an oversized body is refused with 413 and changes nothing", "[api]") {
  server_fixture f{[](api_config& cfg) { cfg.max_body_bytes = 2048; }};
  http_client c{f.url()};
  std::string big = "iccid,imsis,msisdn,network,status\n" + std::string(4096, '\n');
  auto r = c.request("POST", "/v1/sims:import", rw_token, big, "text/csv");
  CHECK(r.status == 413);
  CHECK(error_code(r) == "body_too_large");
  CHECK(body(r)["error"]["message"].get<std::string>().find("2048") != std::string::npos);
  CHECK(f.service.writes() == 0);
  // The server is still there for the next connection.
  http_client again{f.url()};
  CHECK(again.request("GET", "/healthz").status == 200);
}

TEST_CASE("an oversized request head is refused with 431", "[api]") {
  server_fixture f{[](api_config& cfg) { cfg.max_header_bytes = 1024; }};
  http_client c{f.url()};
  auto r = c.request("GET", "/healthz", "", "", "", {{"X-Padding", std::string(4000, 'x')}});
  CHECK(r.status == 431);
  CHECK(error_code(r) == "header_too_large");
}

TEST_CASE("GET /v1/sims/{iccid}: 15-digit IMEIs with the computed Luhn digit, null where unknown",
          "[api]") {
  server_fixture f;
  f.seed_barred_sim();
  http_client c{f.url()};
  auto r = c.request("GET", std::string{"/v1/sims/"} + iccid_a, ro_token);
  REQUIRE(r.status == 200);
  auto j = body(r);
  CHECK(j["lock"]["state"] == "locked");
  CHECK(j["lock"]["imei"] == "353490012345670");
  CHECK(j["last_seen_imei"] == "352099001761481");
  CHECK(j["bar"]["state"] == "barred");
  CHECK(j["bar"]["reason"] == "imei_lock");
  CHECK(j["bar"]["trigger_imei"] == "352099001761481");
  for (const auto* key : {"last_seen_imei"}) {
    auto imei = j[key].get<std::string>();
    CHECK(imei.size() == 15);
    CHECK(luhn_ok(imei));
  }
  CHECK(luhn_ok(j["lock"]["imei"].get<std::string>()));

  r = c.request("GET", std::string{"/v1/sims/"} + iccid_b, ro_token);
  CHECK(r.status == 404);
  CHECK(error_code(r) == "unknown_sim");
  r = c.request("GET", "/v1/sims/123", ro_token);
  CHECK(r.status == 422);
}

TEST_CASE("GET /v1/sims?alerted=true lists the SIMs that violated in monitor mode", "[api]") {
  server_fixture f;
  f.seed_barred_sim();
  actors::sim_info sim;
  sim.iccid = "89441000000000000026";
  sim.imsis = {234100000000026};
  sim.network = "ee";
  sim.state.status = lock::sim_status::active;
  sim.state.lock = lock::lock_state::locked;
  sim.state.lock_imei = device_a;
  sim.state.last_seen_imei = device_b;
  sim.state.alerted = true;
  f.service.add(sim);
  http_client c{f.url()};
  auto r = c.request("GET", "/v1/sims?alerted=true", ro_token);
  REQUIRE(r.status == 200);
  auto j = body(r);
  REQUIRE(j["items"].size() == 1);
  CHECK(j["items"][0]["iccid"] == "89441000000000000026");
  CHECK(j["items"][0]["alerted"] == true);
  CHECK(j["items"][0]["violation_action"] == "bar"); // the network's action now
  j = body(c.request("GET", "/v1/sims?alerted=false", ro_token));
  REQUIRE(j["items"].size() == 1);
  CHECK(j["items"][0]["iccid"] == iccid_a);
  CHECK(j["items"][0]["alerted"] == false);
  CHECK(error_code(c.request("GET", "/v1/sims?alerted=yes", ro_token)) == "bad_parameter");
}

TEST_CASE("GET /v1/sims shows when SIMs were last observed and filters those never with an IMEI",
          "[api]") {
  server_fixture f;
  f.seed_barred_sim(); // never observed: both times null
  auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  actors::sim_info quiet;
  quiet.iccid = "89441000000000000034";
  quiet.imsis = {234100000000034};
  quiet.network = "ee";
  quiet.state.status = lock::sim_status::active;
  quiet.state.lock = lock::lock_state::awaiting_first_imei;
  quiet.state.updated_at_ms = now_ms - 25 * 3'600'000; // awaiting for 25 hours
  quiet.activity = {1'796'083'200, 0};                 // 2026-12-01T00:00:00Z, never an IMEI
  f.service.add(quiet);
  auto recent = quiet;
  recent.iccid = "89441000000000000042";
  recent.imsis = {234100000000042};
  recent.state.updated_at_ms = now_ms - 3'600'000; // awaiting for an hour
  recent.activity = {1'796'083'260, 1'796'083'230};
  f.service.add(recent);

  http_client c{f.url()};
  auto j = body(c.request("GET", "/v1/sims/89441000000000000034", ro_token));
  CHECK(j["last_observed_at"] == "2026-12-01T00:00:00.000Z");
  CHECK(j["last_imei_at"].is_null());
  j = body(c.request("GET", "/v1/sims/89441000000000000042", ro_token));
  CHECK(j["last_observed_at"] == "2026-12-01T00:01:00.000Z");
  CHECK(j["last_imei_at"] == "2026-12-01T00:00:30.000Z");
  j = body(c.request("GET", std::string{"/v1/sims/"} + iccid_a, ro_token));
  CHECK(j["last_observed_at"].is_null());
  CHECK(j["last_imei_at"].is_null());

  auto listed = [&](const std::string& query) {
    std::vector<std::string> out;
    // The page must outlive the loop: a range-for over a member of a temporary dangles.
    auto page = body(c.request("GET", "/v1/sims?" + query, ro_token));
    for (auto& s : page["items"])
      out.push_back(s["iccid"]);
    return out;
  };
  CHECK(listed("never_with_imei=true") == std::vector<std::string>{"89441000000000000034"});
  CHECK(listed("never_with_imei=false") ==
        std::vector<std::string>{iccid_a, "89441000000000000042"});
  CHECK(listed("awaiting_imei_for=24h") == std::vector<std::string>{"89441000000000000034"});
  CHECK(listed("awaiting_imei_for=30m") ==
        std::vector<std::string>{"89441000000000000034", "89441000000000000042"});
  CHECK(listed("awaiting_imei_for=30m&never_with_imei=true") ==
        std::vector<std::string>{"89441000000000000034"});
  CHECK(error_code(c.request("GET", "/v1/sims?never_with_imei=1", ro_token)) == "bad_parameter");
  CHECK(error_code(c.request("GET", "/v1/sims?awaiting_imei_for=soon", ro_token)) ==
        "bad_parameter");
}

TEST_CASE("GET /v1/sims filters and pages with a cursor", "[api]") {
  server_fixture f;
  f.seed_barred_sim();
  http_client c{f.url()};
  for (const char* iccid : {"89441000000000000026", "89441000000000000034", "89441000000000000042"})
    REQUIRE(c.request("PUT", std::string{"/v1/sims/"} + iccid, rw_token,
                      sim_body("2341000000000" + std::string{iccid}.substr(18, 2), "ee"), json_type)
                .status == 201);
  auto r = c.request("GET", "/v1/sims?bar_state=barred", ro_token);
  REQUIRE(r.status == 200);
  auto j = body(r);
  REQUIRE(j["items"].size() == 1);
  CHECK(j["items"][0]["iccid"] == iccid_a);
  CHECK(j["next_cursor"].is_null());
  CHECK(body(c.request("GET", "/v1/sims?lock_state=off&network=ee", ro_token))["items"].size() ==
        3);

  std::set<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    r = c.request("GET", "/v1/sims?limit=2" + (cursor.empty() ? "" : "&cursor=" + cursor),
                  ro_token);
    REQUIRE(r.status == 200);
    j = body(r);
    CHECK(j["items"].size() <= 2);
    for (const auto& item : j["items"])
      seen.insert(item["iccid"].get<std::string>());
    cursor = j["next_cursor"].is_null() ? "" : j["next_cursor"].get<std::string>();
    ++pages;
  } while (!cursor.empty() && pages < 10);
  CHECK(seen.size() == 4);
  CHECK(pages == 2);

  CHECK(error_code(c.request("GET", "/v1/sims?lock_state=sideways", ro_token)) == "bad_parameter");
  CHECK(error_code(c.request("GET", "/v1/sims?limit=0", ro_token)) == "bad_parameter");
  CHECK(error_code(c.request("GET", "/v1/sims?limit=abc", ro_token)) == "bad_parameter");
  r = c.request("GET", "/v1/sims?colour=red", ro_token);
  CHECK(r.status == 400);
  CHECK(error_code(r) == "unknown_parameter");
}

TEST_CASE("POST /v1/sims:import imports the valid lines and reports the bad ones by line",
          "[api]") {
  server_fixture f;
  http_client c{f.url()};
  std::string csv =
      "iccid,imsis,msisdn,network,status\r\n"
      "89441000000000000018,234100000000001;234100000000002,447700900001,multinet,active\r\n"
      "89441000000000000019,234100000000003,447700900002,multinet,active\r\n"
      "\r\n"
      "89441000000000000026,234100000000004,,roamnet901,inactive\r\n"
      "89441000000000000034,234100000000002,,ee,active\r\n"
      "89441000000000000042,234100000000005,,ee,sleeping\r\n"
      "89441000000000000059,234100000000006,,nowhere,active\r\n"
      "89441000000000000018,234100000000007,,ee,active\r\n";
  auto r = c.request("POST", "/v1/sims:import", rw_token, csv, "text/csv; charset=utf-8");
  REQUIRE(r.status == 200);
  auto j = body(r);
  CHECK(j["imported"] == 2);
  CHECK(j["rejected"] == 5);
  auto results = j["results"];
  REQUIRE(results.size() == 7);
  CHECK(results[0] == json{{"line", 2}, {"iccid", "89441000000000000018"}, {"result", "created"}});
  CHECK(results[1]["line"] == 3);
  CHECK(results[1]["result"] == "rejected");
  CHECK(results[1]["reason"].get<std::string>().find("check digit") != std::string::npos);
  CHECK(results[2]["line"] == 5);
  CHECK(results[2]["result"] == "created");
  CHECK(results[3]["line"] == 6); // the IMSI is on line 2 already
  CHECK(results[3]["reason"].get<std::string>().find("line 2") != std::string::npos);
  CHECK(results[4]["reason"].get<std::string>().find("status") != std::string::npos);
  CHECK(results[5]["reason"].get<std::string>().find("nowhere") != std::string::npos);
  CHECK(results[5]["known_networks"] ==
        json::array({"ee", "ee_big_data", "multinet", "roamnet901"}));
  CHECK(results[6]["reason"].get<std::string>().find("line 2") != std::string::npos);
  CHECK(f.service.snapshot("89441000000000000018"));
  CHECK(f.service.snapshot("89441000000000000026"));
  CHECK_FALSE(f.service.snapshot("89441000000000000034"));
  CHECK_FALSE(f.service.snapshot("89441000000000000059"));

  SECTION("more lines than max_csv_lines import nothing") {
    // 8 MiB of such lines cost 1 GiB of rejected lines before (issue 9 hardening).
    auto writes = f.service.writes();
    std::string many = "iccid,imsis,msisdn,network,status\n";
    for (std::size_t i = 0; i <= api::max_csv_lines; ++i)
      many += "x\n";
    r = c.request("POST", "/v1/sims:import", rw_token, many, "text/csv");
    CHECK(r.status == 422);
    CHECK(error_code(r) == "invalid_value");
    CHECK(body(r)["error"]["message"].get<std::string>().find("split the file") !=
          std::string::npos);
    CHECK(f.service.writes() == writes);
  }
  SECTION("a wrong header imports nothing") {
    auto writes = f.service.writes();
    r = c.request("POST", "/v1/sims:import", rw_token,
                  "iccid,imsi,network\n89441000000000000042,234100000000005,ee\n", "text/csv");
    CHECK(r.status == 422);
    CHECK(body(r)["error"]["message"].get<std::string>().find(
              "iccid,imsis,msisdn,network,status") != std::string::npos);
    CHECK(f.service.writes() == writes);
  }
  SECTION("JSON is not CSV") {
    r = c.request("POST", "/v1/sims:import", rw_token, "{}", json_type);
    CHECK(r.status == 415);
  }
  SECTION("an empty body") {
    r = c.request("POST", "/v1/sims:import", rw_token, "", "text/csv");
    CHECK(r.status == 422);
  }
}

TEST_CASE("parse_sim_csv: a line without quotes reads as the same line with every field quoted",
          "[api]") {
  // The parser reads unquoted lines on a fast path (no copy per character):
  // it must give what the RFC 4180 path gives, line by line and verdict by verdict.
  const std::vector<std::vector<std::string>> rows{
      {"89441000000000000018", "234100000000001;234100000000002", "447700900001", "multinet",
       "active"},
      {" 89441000000000000026 ", "234100000000004", "", "roamnet901", "inactive\r"},
      {"89441000000000000034", "234100000000002", "", "ee", "active"}, // IMSI of line 2
      {"89441000000000000018", "234100000000007", "", "ee", "active"}, // ICCID of line 2
      {"89441000000000000042", "234100000000005", "", "ee", "sleeping"},
      {"89441000000000000059", "", "", "ee", "active"},
      {"8944100000000000005", "234100000000008", "", "ee", "active"},
      {"89441000000000000067", "234100000000009", "", "ee"},
      {"89441000000000000075", "234100000000010", "+447700900003", "Bad Net", "active"}};
  auto body = [&](bool quoted) {
    std::string out = "iccid,imsis,msisdn,network,status\n";
    for (const auto& row : rows) {
      for (std::size_t i = 0; i < row.size(); ++i) {
        auto field = row[i];
        if (quoted) { // quoting keeps the spaces: trim them first, as the unquoted path does
          field = std::string{trim(field)};
          field = "\"" + field + "\"";
        }
        out += (i > 0 ? "," : "") + field;
      }
      out += "\n";
    }
    return out;
  };
  auto plain = parse_sim_csv(body(false));
  auto quoted = parse_sim_csv(body(true));
  REQUIRE(plain);
  REQUIRE(quoted);
  REQUIRE(plain->size() == rows.size());
  REQUIRE(quoted->size() == rows.size());
  std::vector<bool> valid;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& a = (*plain)[i];
    const auto& b = (*quoted)[i];
    CHECK(a.line_no == b.line_no);
    CHECK(a.sim.iccid == b.sim.iccid);
    CHECK(a.sim.imsis == b.sim.imsis);
    CHECK(a.sim.msisdn == b.sim.msisdn);
    CHECK(a.sim.network == b.sim.network);
    CHECK(a.sim.status == b.sim.status);
    REQUIRE(a.valid.has_value() == b.valid.has_value());
    if (!a.valid)
      CHECK(a.valid.error().message() == b.valid.error().message());
    valid.push_back(a.valid.has_value());
  }
  CHECK(valid == std::vector<bool>{true, true, false, false, false, false, false, false, false});
  CHECK((*plain)[1].sim.iccid == "89441000000000000026");
  CHECK((*plain)[1].sim.status == lock::sim_status::inactive);
  CHECK((*plain)[2].valid.error().message().find("line 2") != std::string::npos);
  CHECK((*plain)[3].valid.error().message().find("line 2") != std::string::npos);
  CHECK((*plain)[7].valid.error().message().find("found 4") != std::string::npos);
}

TEST_CASE("orders: enable_imei_lock carries a lock_scope (R16), other orders refuse one", "[api]") {
  server_fixture f;
  actors::sim_info sim;
  sim.iccid = "89441000000000000034";
  sim.imsis = {234100000000034};
  sim.network = "multinet";
  sim.state.status = lock::sim_status::active;
  sim.state.last_seen_imei = device_a;
  f.service.add(sim);
  http_client c{f.url()};
  auto orders = std::string{"/v1/sims/89441000000000000034/orders"};
  auto place = [&](const json& j) {
    return c.request("POST", orders, rw_token, j.dump(), json_type);
  };
  auto r = place({{"type", "enable_imei_lock"}, {"lock_scope", "model"}});
  CHECK(r.status == 422);
  CHECK(body(r)["error"]["message"].get<std::string>().find("imei or device_model") !=
        std::string::npos);
  r = place({{"type", "bar"}, {"lock_scope", "device_model"}});
  CHECK(r.status == 422);
  CHECK(body(r)["error"]["message"].get<std::string>().find("lock_scope applies only") !=
        std::string::npos);
  r = place({{"type", "enable_imei_lock"}, {"lock_scope", "device_model"}});
  REQUIRE(r.status == 202);
  auto j = body(r);
  CHECK(j["type"] == "enable_imei_lock");
  CHECK(j["lock_scope"] == "device_model");
  auto o = body(c.request("GET", "/v1/orders/" + std::to_string(j["id"].get<int>()), ro_token));
  CHECK(o["lock_scope"] == "device_model");
}

TEST_CASE("orders: the Orders tab over the API", "[api]") {
  server_fixture f;
  http_client c{f.url()};
  auto orders = std::string{"/v1/sims/"} + iccid_a + "/orders";
  auto place = [&](const json& j) {
    return c.request("POST", orders, rw_token, j.dump(), json_type);
  };

  SECTION("unbar of an IMEI-lock bar needs an option; update_to_last_seen locks to B (R11)") {
    f.seed_barred_sim();
    auto r = place({{"type", "unbar"}});
    CHECK(r.status == 422);
    CHECK(body(r)["error"]["message"].get<std::string>().find(
              "keep the existing lock or to update it") != std::string::npos);
    r = place({{"type", "unbar"}, {"unbar_mode", "update_to_last_seen"}});
    REQUIRE(r.status == 202);
    auto j = body(r);
    CHECK(j["type"] == "unbar");
    CHECK(j["unbar_mode"] == "update_to_last_seen");
    CHECK(j["warnings"] == json::array());
    CHECK(r.header("Location") == "/v1/orders/" + std::to_string(j["id"].get<int>()));
    auto sim = body(c.request("GET", std::string{"/v1/sims/"} + iccid_a, ro_token));
    CHECK(sim["bar"]["state"] == "none");
    CHECK(sim["lock"]["imei"] == "352099001761481");

    auto order = c.request("GET", "/v1/orders/" + std::to_string(j["id"].get<int>()), ro_token);
    REQUIRE(order.status == 200);
    auto o = body(order);
    for (const auto* key : {"id", "iccid", "type", "status", "created_at", "due_at", "completed_at",
                            "failure_reason"})
      CHECK(o.contains(key));
    CHECK(o["status"] == "completed");
    CHECK(o["failure_reason"].is_null());
  }
  SECTION("unbar keep_lock while in the 2nd device carries the R10 warning") {
    f.seed_barred_sim();
    auto r = place({{"type", "unbar"}, {"unbar_mode", "keep_lock"}});
    REQUIRE(r.status == 202);
    auto w = body(r)["warnings"];
    REQUIRE(w.size() == 1);
    CHECK(w[0].get<std::string>().find("(3rd) device") != std::string::npos);
    CHECK(f.service.snapshot(iccid_a)->state.lock_imei == device_a);
  }
  SECTION("enable on an eligible live SIM, then a second enable conflicts (409)") {
    REQUIRE(c.request("PUT", std::string{"/v1/sims/"} + iccid_a, rw_token,
                      sim_body("234100000000001"), json_type)
                .status == 201);
    f.service.observe(iccid_a, device_c);
    auto r = place({{"type", "enable_imei_lock"}});
    REQUIRE(r.status == 202);
    CHECK(f.service.snapshot(iccid_a)->state.lock_imei == device_c);
    r = place({{"type", "enable_imei_lock"}});
    CHECK(r.status == 409);
    CHECK(error_code(r) == "conflict");
  }
  SECTION("activation with locking: refused where the network does not allow it") {
    REQUIRE(c.request("PUT", std::string{"/v1/sims/"} + iccid_a, rw_token,
                      sim_body("234100000000001", "ee", "inactive"), json_type)
                .status == 201);
    auto r = place({{"type", "activate"}, {"enable_imei_lock", true}});
    CHECK(r.status == 422);
    CHECK(body(r)["error"]["message"].get<std::string>().find(
              "not available on this SIM's network") != std::string::npos);
    r = place({{"type", "activate"}, {"enable_imei_lock", false}});
    CHECK(r.status == 202);
    CHECK(body(r)["enable_imei_lock"] == false);
  }
  SECTION("bad order bodies change nothing") {
    f.seed_barred_sim();
    auto before = f.service.snapshot(iccid_a)->state;
    auto writes = f.service.writes();
    struct bad_case {
      std::string body;
      unsigned status;
      std::string code;
    };
    for (const auto& bc : std::vector<bad_case>{
             {R"({"type":"unbar","unbar_mode":"keep_lock","urgent":true})", 400, "unknown_field"},
             {R"({"type":7})", 400, "wrong_type"},
             {R"({"type":"activate","enable_imei_lock":"yes"})", 400, "wrong_type"},
             {R"({})", 400, "missing_field"},
             {R"({"type":"teleport"})", 422, "invalid_value"},
             {R"({"type":"unbar","unbar_mode":"sometimes"})", 422, "invalid_value"},
             {R"({"type":"bar","unbar_mode":"keep_lock"})", 422, "invalid_value"},
             {R"({"type":"bar","enable_imei_lock":true})", 422, "invalid_value"},
             {R"({"type":"unbar",)", 400, "malformed_json"},
             {R"({"type":"bar","n":-1e400})", 400, "malformed_json"},
             {R"({"type":"bar","n":)" + std::string(40, '{') + "}", 400, "malformed_json"},
         }) {
      auto r = c.request("POST", orders, rw_token, bc.body, json_type);
      INFO(bc.body << " -> " << r.body);
      CHECK(r.status == bc.status);
      CHECK(error_code(r) == bc.code);
    }
    CHECK(f.service.snapshot(iccid_a)->state == before);
    CHECK(f.service.writes() == writes);
  }
  SECTION("orders on an unknown SIM: 404") {
    auto r = place({{"type", "bar"}});
    CHECK(r.status == 404);
    CHECK(error_code(r) == "unknown_sim");
  }
}

TEST_CASE("GET orders and events of a SIM, newest first", "[api]") {
  server_fixture f;
  f.service.auto_complete = false;
  f.seed_barred_sim(); // the violation's bar order stays queued
  http_client c{f.url()};
  auto base = std::string{"/v1/sims/"} + iccid_a;
  f.service.complete_orders();
  REQUIRE(c.request("POST", base + "/orders", rw_token,
                    R"({"type":"unbar","unbar_mode":"keep_lock"})", json_type)
              .status == 202);
  auto r = c.request("GET", base + "/orders", ro_token);
  REQUIRE(r.status == 200);
  auto items = body(r)["items"];
  REQUIRE(items.size() == 2);
  CHECK(items[0]["type"] == "unbar");
  CHECK(items[0]["status"] == "queued");
  CHECK(items[0]["due_at"].is_string());
  CHECK(items[1]["type"] == "bar");
  CHECK(items[1]["bar_reason"] == "imei_lock");
  CHECK(items[1]["status"] == "completed");

  r = c.request("GET", base + "/events", ro_token);
  REQUIRE(r.status == 200);
  auto events = body(r)["items"];
  REQUIRE(events.size() >= 3);
  CHECK(events[0]["cause"] == "order_placed:unbar");
  CHECK(events.back()["cause"] == "observation");
  CHECK(events.back()["imei"] == "352099001761481");
  CHECK(events.back()["before"]["bar"]["state"] == "none");
  CHECK(events.back()["after"]["bar"]["state"] == "bar_pending");
  CHECK(body(c.request("GET", base + "/events?limit=1", ro_token))["items"].size() == 1);
  CHECK(c.request("GET", base + "/events?limit=5000", ro_token).status == 400);

  auto unknown = std::string{"/v1/sims/"} + iccid_b;
  CHECK(c.request("GET", unknown + "/orders", ro_token).status == 404);
  CHECK(c.request("GET", unknown + "/events", ro_token).status == 404);
  CHECK(c.request("GET", "/v1/orders/999", ro_token).status == 404);
  CHECK(error_code(c.request("GET", "/v1/orders/999", ro_token)) == "unknown_order");
  CHECK(c.request("GET", "/v1/orders/abc", ro_token).status == 422);
}

TEST_CASE("unknown routes get 404, wrong methods 405 with Allow", "[api]") {
  server_fixture f;
  http_client c{f.url()};
  auto r = c.request("GET", "/v2/nothing", rw_token);
  CHECK(r.status == 404);
  CHECK(error_code(r) == "not_found");
  r = c.request("DELETE", std::string{"/v1/sims/"} + iccid_a, rw_token);
  CHECK(r.status == 405);
  CHECK(r.header("Allow") == "GET, PUT");
  r = c.request("GET", "/v1/sims:import", rw_token);
  CHECK(r.status == 405);
  CHECK(r.header("Allow") == "POST");
}

TEST_CASE("keep-alive: many requests on one connection, and two servers' clients in parallel",
          "[api]") {
  server_fixture f;
  f.seed_barred_sim();
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      http_client c{f.url()};
      for (int i = 0; i < 50; ++i)
        if (c.request("GET", std::string{"/v1/sims/"} + iccid_a, ro_token).status == 200)
          ++good;
    });
  for (auto& t : threads)
    t.join();
  CHECK(good == 200);
  auto text = f.metrics();
  CHECK(
      text.find(
          R"(imeilock_api_requests_total{code="200",method="GET",route="/v1/sims/{iccid}"} 200)") !=
      std::string::npos);
  CHECK(text.find("imeilock_api_request_duration_seconds_bucket") != std::string::npos);
}

TEST_CASE("a SIM layer that does not answer gets 504 after request_timeout", "[api]") {
  server_fixture f{[](api_config& cfg) { cfg.request_timeout = std::chrono::milliseconds{300}; }};
  f.service.hang = true;
  http_client c{f.url()};
  auto r = c.request("GET", std::string{"/v1/sims/"} + iccid_a, ro_token);
  CHECK(r.status == 504);
  CHECK(error_code(r) == "timeout");
}

TEST_CASE("start() names the address it could not bind", "[api]") {
  server_fixture f;
  auto port = f.server().local_endpoints().front().port;
  auto taken = "127.0.0.1:" + std::to_string(port);
  CHECK_THROWS_WITH(server_fixture([&](api_config& cfg) {
                      cfg.listen = {config::endpoint{"127.0.0.1", port}};
                    }),
                    Catch::Contains("cannot listen on " + taken));
}

TEST_CASE("IPv6 loopback works as a listener", "[api]") {
  server_fixture f{[](api_config& cfg) { cfg.listen = {config::endpoint{"::1", 0}}; }};
  auto eps = f.server().local_endpoints();
  REQUIRE(eps.size() == 1);
  CHECK(eps[0].host == "::1");
  http_client c{"http://[::1]:" + std::to_string(eps[0].port)};
  CHECK(c.request("GET", "/healthz").status == 200);
}

TEST_CASE("the dashboard is served from the binary", "[api]") {
  server_fixture f;
  http_client c{f.url()};
  auto r = c.request("GET", "/ui");
  REQUIRE(r.status == 200);
  CHECK(r.content_type.find("text/html") == 0);
  CHECK(r.body.find("Unbar and update to last seen IMEI") != std::string::npos);
  CHECK(r.body.find("Unbar and keep existing IMEI Lock") != std::string::npos);
  CHECK(c.request("GET", "/ui/app.js").content_type.find("javascript") != std::string::npos);
  CHECK(c.request("GET", "/ui/style.css").status == 200);
  CHECK(c.request("GET", "/ui/nothing.js").status == 404);
  server_fixture off{[](api_config& cfg) { cfg.ui = false; }};
  http_client c2{off.url()};
  CHECK(c2.request("GET", "/ui").status == 404);
}

TEST_CASE("every route the server answers is in the OpenAPI document, and back", "[api][openapi]") {
  server_fixture f;
  http_client c{f.url()};
  auto r = c.request("GET", "/v1/openapi.json");
  REQUIRE(r.status == 200);
  auto doc = body(r);
  CHECK(doc["openapi"].get<std::string>().rfind("3.", 0) == 0);
  const auto& paths = doc["paths"];
  std::set<std::pair<std::string, std::string>> documented;
  for (auto it = paths.begin(); it != paths.end(); ++it)
    for (auto m = it.value().begin(); m != it.value().end(); ++m) {
      std::string method = m.key();
      std::transform(method.begin(), method.end(), method.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
      documented.emplace(method, it.key());
    }
  std::set<std::pair<std::string, std::string>> served;
  for (const auto& route : routes())
    served.emplace(std::string{route.method}, std::string{route.path});
  CHECK(documented == served);

  // And the server really answers each documented path (not 404/405).
  for (const auto& [method, path] : documented) {
    std::string target = path;
    auto subst = [&](const std::string& param, const std::string& value) {
      auto pos = target.find(param);
      if (pos != std::string::npos)
        target.replace(pos, param.size(), value);
    };
    subst("{iccid}", iccid_a);
    subst("{id}", "1");
    subst("{file}", "app.js");
    auto res = c.request(method, target, rw_token, method == "GET" ? "" : "{}",
                         method == "GET" ? "" : json_type);
    INFO(method << " " << target << " -> " << res.status << " " << res.body);
    auto code = error_code(res);
    CHECK(code != "not_found");
    CHECK(code != "method_not_allowed");
  }
}

TEST_CASE("POST /v1/orders:bulk bodies: a list, a filter or a CSV, every ICCID checked",
          "[api][bulk]") {
  auto read = [](const std::string& body, const std::string& type = "application/json",
                 query_map query = {}) {
    request req;
    req.method = "POST";
    req.target = "/v1/orders:bulk";
    req.content_type = type;
    req.body = body;
    return read_bulk(req, query);
  };
  const std::string a{iccid_a};
  auto list = read(R"({"type":"bar","iccids":[")" + a + R"(", ")" + a + R"("]})");
  REQUIRE(list);
  CHECK(list->order.type == lock::order_type::bar);
  CHECK(list->selector.iccids.size() == 2); // the job keeps each SIM once

  auto filter = read(R"({"type":"unbar","unbar_mode":"keep_lock","filter":{"network":"multinet",)"
                     R"("bar_state":"barred","alerted":true}})");
  REQUIRE(filter);
  CHECK(filter->order.mode == lock::unbar_mode::keep_lock);
  CHECK(filter->selector.iccids.empty());
  CHECK(filter->selector.filter.network == std::optional<std::string>{"multinet"});
  CHECK(filter->selector.filter.bar == std::optional<lock::bar_state>{lock::bar_state::barred});
  CHECK(filter->selector.filter.alerted == std::optional<bool>{true});
  CHECK(read(R"({"type":"bar","filter":{}})")); // every SIM, said explicitly

  // The lock scope (R16), as on a single order: only where a lock is enabled.
  auto by_model = read(R"({"type":"enable_imei_lock","lock_scope":"device_model","filter":{}})");
  REQUIRE(by_model);
  CHECK(by_model->order.scope == lock::lock_scope::device_model);
  CHECK(read(R"({"type":"bar","lock_scope":"device_model","filter":{}})")
            .error()
            .is(api::ec::invalid_value));
  CHECK(read(R"({"type":"enable_imei_lock","lock_scope":"tac","filter":{}})")
            .error()
            .is(api::ec::invalid_value));

  // Exactly one selector, and the order checked as a single order's.
  CHECK(read(R"({"type":"bar"})").error().is(api::ec::invalid_value));
  CHECK(read(R"({"type":"bar","iccids":[],"filter":{}})").error().is(api::ec::invalid_value));
  CHECK(read(R"({"type":"bar","iccids":[]})").error().is(api::ec::invalid_value));
  CHECK(read(R"({"type":"explode","filter":{}})").error().is(api::ec::invalid_value));
  CHECK(read(R"({"type":"bar","unbar_mode":"keep_lock","filter":{}})")
            .error()
            .is(api::ec::invalid_value));
  CHECK(read(R"({"type":"bar","filter":{"colour":"red"}})").error().is(api::ec::unknown_field));
  CHECK(read(R"({"type":"bar","filter":{"alerted":"yes"}})").error().is(api::ec::wrong_type));
  CHECK(
      read(R"({"type":"bar","filter":{"lock_state":"open"}})").error().is(api::ec::invalid_value));
  auto bad = read(R"({"type":"bar","iccids":[")" + a + R"(","8944"]})");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message().find("iccids[1]") != std::string::npos);

  // CSV: the iccid column of any header, the order in the query.
  auto csv = read("iccid,network\n" + a + ",multinet\n\n" + a + ",x\n", "text/csv",
                  {{"type", "unbar"}, {"unbar_mode", "update_to_last_seen"}});
  REQUIRE(csv);
  CHECK(csv->selector.iccids.size() == 2);
  CHECK(csv->order.mode == lock::unbar_mode::update_to_last_seen);
  auto csv_model =
      read("iccid\n" + a + "\n", "text/csv",
           {{"type", "activate"}, {"enable_imei_lock", "true"}, {"lock_scope", "device_model"}});
  REQUIRE(csv_model);
  CHECK(csv_model->order.with_lock);
  CHECK(csv_model->order.scope == lock::lock_scope::device_model);
  CHECK(read("iccid\n" + a + "\n", "text/csv").error().is(api::ec::bad_parameter));
  CHECK(read("imsi\n1\n", "text/csv", {{"type", "bar"}}).error().is(api::ec::invalid_value));
  auto csv_bad = read("iccid\n" + a + "\n123\n", "text/csv", {{"type", "bar"}});
  REQUIRE_FALSE(csv_bad);
  CHECK(csv_bad.error().message().find("line 3") != std::string::npos);
  CHECK(read("iccid\n", "text/csv", {{"type", "bar"}}).error().is(api::ec::invalid_value));
  CHECK(read("x", "text/plain").error().is(api::ec::unsupported_media_type));
}

TEST_CASE("the job routes: a write token to create or cancel, 503 from a SIM service without "
          "jobs",
          "[api][bulk]") {
  server_fixture f;
  http_client c{f.url()};
  const std::string body = R"({"type":"bar","filter":{}})";
  CHECK(c.request("POST", "/v1/orders:bulk", ro_token, body, json_type).status == 403);
  CHECK(c.request("POST", "/v1/jobs/1:cancel", ro_token, "", json_type).status == 403);
  CHECK(c.request("DELETE", "/v1/jobs/1", ro_token).status == 403);
  auto r = c.request("POST", "/v1/orders:bulk", rw_token, body, json_type);
  CHECK(r.status == 503);
  CHECK(error_code(r) == "jobs_unavailable");
  CHECK(c.request("POST", "/v1/jobs/1", rw_token, "", json_type).status == 405);
  CHECK(c.request("GET", "/v1/jobs?state=done", rw_token).status == 400);
}

TEST_CASE("GET /v1/fleet: SIMs by network and state, 24 hourly violation counts, the latest "
          "violations with their ICCIDs",
          "[api][fleet]") {
  server_fixture f;
  f.seed_barred_sim(); // multinet: locked, seen in device B: a violation, barred
  http_client c{f.url()};
  CHECK(c.request("GET", "/v1/fleet", "").status == 401);
  auto r = c.request("GET", "/v1/fleet", ro_token);
  REQUIRE(r.status == 200);
  auto j = body(r);
  REQUIRE(j["networks"].size() == 1);
  const auto& n = j["networks"][0];
  CHECK(n["network"] == "multinet");
  CHECK(n["sims"] == 1);
  CHECK(n["lock"] == json{{"off", 0}, {"awaiting_first_imei", 0}, {"locked", 1}});
  CHECK(n["bar"]["none"] == 0);
  CHECK(n["bar"]["bar_pending"].get<int>() + n["bar"]["barred"].get<int>() == 1);
  REQUIRE(n["states"].size() == 1);
  CHECK(n["states"][0]["lock_state"] == "locked");
  CHECK(n["states"][0]["sims"] == 1);
  CHECK(n["orders"]["queued"] == 0);
  REQUIRE(j["violations"]["per_hour"].size() == 24);
  CHECK(j["violations"]["total"] == 1);
  CHECK(j["violations"]["per_hour"][23]["violations"] == 1);
  CHECK(j["violations"]["per_hour"][0]["hour"] == j["violations"]["since"]);
  REQUIRE(j["latest_violations"].size() == 1);
  CHECK(j["latest_violations"][0]["iccid"] == iccid_a);
  CHECK(j["latest_violations"][0]["locked_imei"] == "353490012345670");
  CHECK(j["latest_violations"][0]["imei"] == "352099001761481");
  CHECK(j["running_jobs"] == json::array());
}

// -- More than one node: writes for a SIM another node serves ----------------

TEST_CASE("owner_answer: 307 to the owner's api_url with the same target, 503 without an owner "
          "or an api_url",
          "[api][cluster]") {
  auto r = owner_answer("/v1/sims/89441000000000000018/orders?x=1",
                        {3, "node-b", "http://10.0.0.2:8080/"});
  CHECK(r.status == 307);
  CHECK(r.owner_outcome == "redirected");
  auto loc = std::find_if(r.headers.begin(), r.headers.end(),
                          [](const auto& h) { return h.first == "Location"; });
  REQUIRE(loc != r.headers.end());
  CHECK(loc->second == "http://10.0.0.2:8080/v1/sims/89441000000000000018/orders?x=1");
  auto j = json::parse(r.body);
  CHECK(j["shard"] == 3);
  CHECK(j["owner"] == "node-b");
  CHECK(j["location"] == loc->second);

  // A path prefix (a reverse proxy's) in the advertised URL is kept.
  r = owner_answer("/v1/sims/1", {0, "node-b", "https://api.example.net/node-b"});
  CHECK(r.status == 307);
  CHECK(json::parse(r.body)["location"] == "https://api.example.net/node-b/v1/sims/1");

  for (const auto& owner : {actors::shard_owner{5, "", ""}, actors::shard_owner{5, "node-c", ""},
                            actors::shard_owner{5, "node-c", "///"}}) {
    INFO(owner.node_id << " " << owner.api_url);
    r = owner_answer("/v1/sims/1", owner);
    CHECK(r.status == 503);
    CHECK(std::count_if(r.headers.begin(), r.headers.end(),
                        [](const auto& h) { return h.first == "Retry-After"; }) == 1);
    CHECK(std::none_of(r.headers.begin(), r.headers.end(),
                       [](const auto& h) { return h.first == "Location"; }));
    j = json::parse(r.body);
    CHECK(j["shard"] == 5);
    CHECK(j["error"]["code"] ==
          (owner.node_id.empty() ? "no_shard_owner" : "owner_without_api_url"));
    CHECK(r.owner_outcome == (owner.node_id.empty() ? "no_owner" : "no_api_url"));
    if (!owner.node_id.empty())
      CHECK(j["error"]["message"].get<std::string>().find("node-c") != std::string::npos);
  }
}

TEST_CASE("a write for a SIM another node serves is redirected there, and the client follows "
          "once with the same method and body",
          "[api][cluster]") {
  server_fixture owner; // the node serving the SIM's shard
  server_fixture other; // a node that does not
  owner.seed_barred_sim();
  other.seed_barred_sim(); // reads work everywhere
  other.service.serve_elsewhere(iccid_a, {7, "node-owner", owner.url()});
  other.service.serve_elsewhere(iccid_b, {8, "", ""});
  const auto orders = std::string{"/v1/sims/"} + iccid_a + "/orders";

  // The raw answer: 307 with Location and the owner in the body.
  http::client raw{*http::parse_url(other.url())};
  http::request req{
      "POST",
      orders,
      {{"Authorization", std::string{"Bearer "} + rw_token}, {"Content-Type", json_type}},
      R"({"type":"unbar","unbar_mode":"keep_lock"})"};
  auto r = raw.send(req);
  REQUIRE(r.status == 307);
  CHECK(r.header("Location") == owner.url() + orders);
  CHECK(json::parse(r.body)["owner"] == "node-owner");
  CHECK(owner.service.writes() == 0);
  CHECK(other.service.writes() == 0);
  // No token: 401 before anything else.
  CHECK(raw.send({"POST", orders, {{"Content-Type", json_type}}, req.body}).status == 401);

  // imeilockctl's client follows it: the order is placed at the owner.
  http_client c{other.url()};
  auto placed = c.request("POST", orders, rw_token, req.body, json_type);
  REQUIRE(placed.status == 202);
  CHECK(body(placed)["type"] == "unbar");
  CHECK(owner.service.writes() == 1);
  CHECK(other.service.writes() == 0);
  // An upsert too (PUT keeps its body).
  auto put = c.request("PUT", std::string{"/v1/sims/"} + iccid_a, rw_token,
                       sim_body("234100000000001"), json_type);
  CHECK(put.status == 200);
  CHECK(owner.service.writes() == 2);
  // Reads are answered where they are asked.
  CHECK(c.request("GET", orders, ro_token).status == 200);

  // No live owner: 503 with Retry-After, nothing followed.
  auto none = c.request("PUT", std::string{"/v1/sims/"} + iccid_b, rw_token,
                        sim_body("234100000000002"), json_type);
  CHECK(none.status == 503);
  CHECK(error_code(none) == "no_shard_owner");
  CHECK(!none.header("Retry-After").empty());
  CHECK(owner.service.writes() == 2);

  auto sample = [text = other.metrics()](const std::string& series) {
    auto at = text.find("\n" + series + " ");
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + series.size() + 2));
  };
  CHECK(sample(R"(imeilock_api_owner_redirects_total{outcome="redirected"})") == 3);
  CHECK(sample(R"(imeilock_api_owner_redirects_total{outcome="no_owner"})") == 1);
}

TEST_CASE("an import at a node sends each line of another node's shard to its owner and merges "
          "the per-line answers in input order",
          "[api][cluster]") {
  server_fixture owner; // serves the shard of ...026 and ...083
  server_fixture other; // the node the import is sent to
  const std::string local = "89441000000000000018";
  const std::string forwarded = "89441000000000000026";
  const std::string no_owner = "89441000000000000034";
  const std::string dead = "89441000000000000042";
  const std::string no_url = "89441000000000000059";
  const std::string moved = "89441000000000000067";
  const std::string bad_network = "89441000000000000083";
  other.service.serve_elsewhere(forwarded, {2, "node-owner", owner.url() + "/"});
  other.service.serve_elsewhere(bad_network, {2, "node-owner", owner.url()});
  other.service.serve_elsewhere(moved, {2, "node-owner", owner.url()});
  other.service.serve_elsewhere(no_owner, {9, "", ""});
  other.service.serve_elsewhere(dead, {10, "node-dead", "http://127.0.0.1:1"});
  other.service.serve_elsewhere(no_url, {11, "node-x", ""});
  // The lease moved on meanwhile: the owner does not forward a forwarded line again.
  owner.service.serve_elsewhere(moved, {3, "node-third", other.url()});
  std::string csv = "iccid,imsis,msisdn,network,status\n" + local +
                    ",234100000000001,,multinet,active\n" + forwarded +
                    ",234100000000002;234100000000012,\"447700900002\",multinet,inactive\n" +
                    no_owner + ",234100000000003,,multinet,active\n" + dead +
                    ",234100000000004,,multinet,active\n" + no_url +
                    ",234100000000005,,multinet,active\n"
                    "89441000000000000010,234100000000006,,multinet,active\n" +
                    moved + ",234100000000007,,multinet,active\n" + bad_network +
                    ",234100000000008,,nowhere,active\n";
  http_client c{other.url()};
  auto r = c.request("POST", "/v1/sims:import", rw_token, csv, "text/csv");
  REQUIRE(r.status == 207); // some lines are to be sent again
  CHECK(!r.header("Retry-After").empty());
  auto j = body(r);
  CHECK(j["imported"] == 2);
  CHECK(j["rejected"] == 6);
  CHECK(j["retry"] == 4);
  auto results = j["results"];
  REQUIRE(results.size() == 8);
  for (std::size_t i = 0; i < results.size(); ++i)
    CHECK(results[i]["line"] == i + 2);
  CHECK(results[0] == json{{"line", 2}, {"iccid", local}, {"result", "created"}});
  CHECK(results[1] ==
        json{{"line", 3}, {"iccid", forwarded}, {"result", "created"}, {"node", "node-owner"}});
  auto code_of = [&](std::size_t i) { return results[i].value("code", std::string{}); };
  CHECK(code_of(2) == "no_shard_owner");
  CHECK(code_of(3) == "owner_unreachable");
  CHECK(code_of(4) == "owner_without_api_url");
  CHECK(results[5]["result"] == "rejected"); // a bad ICCID: this node says so
  CHECK_FALSE(results[5].contains("retry"));
  CHECK(code_of(6) == "not_served_here");
  CHECK(results[6]["node"] == "node-owner");
  CHECK(results[7]["result"] == "rejected"); // the owner's refusal, as on one node
  CHECK(results[7]["reason"].get<std::string>().find("nowhere") != std::string::npos);
  CHECK(results[7]["known_networks"].size() == 4);
  CHECK_FALSE(results[7].contains("retry"));
  for (std::size_t i : {2, 3, 4, 6}) {
    CHECK(results[i]["result"] == "rejected");
    CHECK(results[i]["retry"] == true);
  }
  // Each line applied by one node only, with what the line says.
  CHECK(other.service.snapshot(local));
  CHECK_FALSE(other.service.snapshot(forwarded));
  auto at_owner = owner.service.snapshot(forwarded);
  REQUIRE(at_owner);
  CHECK(at_owner->imsis == std::vector<std::uint64_t>{234100000000002, 234100000000012});
  CHECK(at_owner->msisdn == "447700900002");
  CHECK(at_owner->state.status == lock::sim_status::inactive);
  CHECK_FALSE(owner.service.snapshot(moved));
  CHECK_FALSE(other.service.snapshot(moved));

  SECTION("a read-only token is refused before anything is forwarded") {
    auto writes = owner.service.writes();
    CHECK(c.request("POST", "/v1/sims:import", ro_token, csv, "text/csv").status == 403);
    CHECK(owner.service.writes() == writes);
  }
}
