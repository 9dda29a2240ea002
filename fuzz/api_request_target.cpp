// libFuzzer target for the request target as the router reads it
// (api/request.hpp): path segments, percent-decoding, the query, route
// templates and `limit`. Any bytes give either a 400 with a valid JSON error
// or decoded parts that survive a round trip: percent-encoding every byte of
// them again and parsing that gives the same parts.
#include "api/request.hpp"
#include "fuzz_check.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace imeilock;

namespace {

/// The templates of the router's route table (api/router.cpp).
constexpr std::string_view templates[] = {"/healthz",
                                          "/readyz",
                                          "/v1/openapi.json",
                                          "/ui",
                                          "/ui/{file}",
                                          "/v1/sims",
                                          "/v1/sims:import",
                                          "/v1/sims/{iccid}",
                                          "/v1/sims/{iccid}/orders",
                                          "/v1/sims/{iccid}/events",
                                          "/v1/orders/{id}"};

std::string encode_all(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    out += '%';
    out += hex[c >> 4];
    out += hex[c & 0xF];
  }
  return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view target{reinterpret_cast<const char*>(data), size};
  auto parsed = api::parse_target(target);
  if (!parsed) {
    FUZZ_CHECK(parsed.error() == api::ec::bad_request);
    const auto r = api::error_response(parsed.error());
    FUZZ_CHECK(r.status == 400);
    FUZZ_CHECK(nlohmann::json::accept(r.body));
    return 0;
  }
  const auto& parts = *parsed;
  FUZZ_CHECK(!parts.segments.empty());
  for (auto tmpl : templates) {
    std::vector<std::string> params;
    if (!api::match_route(tmpl, parts.segments, params))
      continue;
    FUZZ_CHECK(params.size() ==
               static_cast<std::size_t>(std::count(tmpl.begin(), tmpl.end(), '{')));
    for (const auto& p : params)
      FUZZ_CHECK(!p.empty());
  }
  if (auto limit = api::read_limit(parts.query); !limit) {
    FUZZ_CHECK(limit.error() == api::ec::bad_parameter);
    const auto r = api::error_response(limit.error());
    FUZZ_CHECK(r.status == 400);
    FUZZ_CHECK(nlohmann::json::accept(r.body));
  } else {
    FUZZ_CHECK(*limit >= 1 && *limit <= api::max_page);
  }
  for (const auto& [key, value] : parts.query)
    FUZZ_CHECK(api::query_value(parts.query, key).has_value());

  std::string again;
  for (const auto& s : parts.segments)
    again += "/" + encode_all(s);
  if (target.find('?') != std::string_view::npos) {
    again += '?';
    for (const auto& [key, value] : parts.query)
      again += encode_all(key) + "=" + encode_all(value) + "&";
  }
  auto reparsed = api::parse_target(again);
  FUZZ_CHECK(reparsed.has_value());
  FUZZ_CHECK(reparsed->segments == parts.segments);
  FUZZ_CHECK(reparsed->query == parts.query);
  return 0;
}
