// libFuzzer target for the JSON bodies of PUT /v1/sims/{iccid} and
// POST /v1/sims/{iccid}/orders, read by the very functions the router calls
// (api/request.hpp). The first byte picks the route and the Content-Type, the
// rest is the body. Any body gives either a 400/415/422 answer with a valid
// JSON error, or a request that passes every check.
#include "api/request.hpp"
#include "api/validate.hpp"
#include "fuzz_check.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

using namespace imeilock;

namespace {

constexpr const char* content_types[] = {"application/json", "application/json; charset=utf-8",
                                         " Application/JSON ", "text/csv"};
constexpr const char* path_iccid = "89441000000000000026"; // checked by the router before

void check_refusal(const error& e) {
  const auto r = api::error_response(e);
  FUZZ_CHECK(r.status == 400 || r.status == 415 || r.status == 422);
  const auto j = nlohmann::json::parse(r.body, nullptr, false);
  FUZZ_CHECK(!j.is_discarded());
  FUZZ_CHECK(j["error"]["code"].is_string() && j["error"]["message"].is_string());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0)
    return 0;
  const unsigned selector = data[0];
  api::request req;
  req.content_type = content_types[(selector >> 1) % 4];
  req.body.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((selector & 1) == 0) {
    req.method = "PUT";
    auto read = api::read_sim_upsert(req, path_iccid);
    if (!read) {
      check_refusal(read.error());
      return 0;
    }
    const auto& up = *read;
    FUZZ_CHECK(req.content_type != "text/csv");
    FUZZ_CHECK(up.iccid == path_iccid);
    FUZZ_CHECK(!up.imsis.empty());
    for (std::size_t i = 0; i < up.imsis.size(); ++i)
      FUZZ_CHECK(std::count(up.imsis.begin(), up.imsis.end(), up.imsis[i]) == 1);
    FUZZ_CHECK(api::check_network(up.network).has_value());
    FUZZ_CHECK(std::all_of(up.msisdn.begin(), up.msisdn.end(),
                           [](char c) { return c >= '0' && c <= '9'; }));
    FUZZ_CHECK(up.status == lock::sim_status::active || up.status == lock::sim_status::inactive);
  } else {
    req.method = "POST";
    auto read = api::read_order(req);
    if (!read) {
      check_refusal(read.error());
      return 0;
    }
    const auto& order = *read;
    FUZZ_CHECK(req.content_type != "text/csv");
    FUZZ_CHECK(order.type != lock::order_type::none);
    FUZZ_CHECK(order.mode == lock::unbar_mode::none || order.type == lock::order_type::unbar);
    FUZZ_CHECK(!order.with_lock || order.type == lock::order_type::activate);
  }
  return 0;
}
