// libFuzzer target for the CSV import body (POST /v1/sims:import): any bytes
// give either a header error or lines that are each rejected with a reason or
// hold a SIM that passes every check, with no ICCID or IMSI twice; the JSON
// answer the router builds from them always serialises to valid JSON.
#include "api/request.hpp"
#include "api/validate.hpp"
#include "fuzz_check.hpp"
#include "lock/identifiers.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

using namespace imeilock;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body{reinterpret_cast<const char*>(data), size};
  const auto parsed = api::parse_sim_csv(body);
  if (!parsed) {
    FUZZ_CHECK(parsed.error() == api::ec::invalid_value);
    FUZZ_CHECK(!parsed.error().message().empty());
    const auto r = api::error_response(parsed.error());
    FUZZ_CHECK(r.status == 422);
    FUZZ_CHECK(nlohmann::json::accept(r.body));
    return 0;
  }
  std::set<std::string> iccids;
  std::set<std::uint64_t> imsis;
  std::size_t previous = 1; // the header's line
  nlohmann::json items = nlohmann::json::array();
  for (const auto& line : *parsed) {
    FUZZ_CHECK(line.line_no > previous);
    previous = line.line_no;
    nlohmann::json item{{"line", line.line_no}, {"iccid", line.sim.iccid}};
    if (!line.valid) {
      FUZZ_CHECK(line.valid.error() == api::ec::invalid_value);
      FUZZ_CHECK(!line.valid.error().message().empty());
      item["result"] = "rejected";
      item["reason"] = line.valid.error().message();
    } else {
      FUZZ_CHECK(lock::validate_iccid(line.sim.iccid).has_value());
      FUZZ_CHECK(!line.sim.imsis.empty());
      FUZZ_CHECK(api::check_network(line.sim.network).has_value());
      FUZZ_CHECK(line.sim.msisdn.empty() || line.sim.msisdn.front() != '+');
      FUZZ_CHECK(iccids.insert(line.sim.iccid).second);
      for (auto imsi : line.sim.imsis)
        FUZZ_CHECK(imsis.insert(imsi).second);
      item["result"] = "created";
    }
    items.push_back(std::move(item));
  }
  const auto r = api::json_response(200, {{"results", std::move(items)}});
  FUZZ_CHECK(nlohmann::json::accept(r.body));
  return 0;
}
