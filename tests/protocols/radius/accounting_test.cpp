#include "protocols/radius/accounting.hpp"
#include "protocols/radius/clients.hpp"

#include "wire_samples.hpp"

#include <catch2/catch.hpp>

using namespace imeilock;
using namespace imeilock::radius;
using samples::from_hex;

namespace {

struct request {
  std::vector<std::uint8_t> data;
  packet_view view() const {
    auto r = parse(data);
    REQUIRE(r.packet);
    return *r.packet;
  }
};

std::vector<std::uint8_t> vsa(std::uint8_t type, std::string_view value) {
  std::vector<std::uint8_t> v(6 + value.size());
  v[2] = 0x28;
  v[3] = 0xaf;
  v[4] = type;
  v[5] = static_cast<std::uint8_t>(2 + value.size());
  for (std::size_t i = 0; i < value.size(); ++i)
    v[6 + i] = static_cast<std::uint8_t>(value[i]);
  return v;
}

/// An Accounting-Request as a GGSN/PGW sends it; `delay` and `id` vary on a retransmit.
request gateway_request(std::uint8_t id, std::uint32_t status, std::uint32_t delay = 0,
                        std::uint32_t out_octets = 1000) {
  packet_builder b(code::accounting_request, id);
  b.add_u32(attr::acct_status_type, status);
  b.add(attr::user_name, "234150000000002@iot.example");
  b.add(attr::vendor_specific, vsa(tgpp::imsi, "234150000000002"));
  b.add(attr::vendor_specific, vsa(tgpp::imeisv, "3534900123456702"));
  b.add(attr::calling_station_id, "+447700900002");
  b.add_u32(attr::nas_ip_address, 0x0a000002);
  b.add(attr::acct_session_id, "sess-2");
  b.add_u32(attr::acct_output_octets, out_octets);
  b.add_u32(attr::acct_delay_time, delay);
  return {b.finish_request(as_bytes(samples::secret))};
}

} // namespace

TEST_CASE(
    "the radclient Start becomes an observation with IMSI, MSISDN, IMEI and Disconnect target") {
  request r{from_hex(samples::start_with_ma_hex)};
  actors::observation obs;
  REQUIRE(make_observation(r.view(), {}, "127.0.0.1", 1234, obs, true));
  CHECK(obs.imsi == 234150000000001ull);
  CHECK(obs.msisdn == "447700900001");
  CHECK(obs.imei.status == lock::imei_status::ok);
  CHECK(obs.imei.device == 35349001234567ull);
  CHECK(obs.source == actors::source_kind::radius);
  CHECK(obs.at_ms == 1234);
  CHECK(obs.dedupe_key != 0);
  CHECK(obs.peer == "10.0.0.1");
  REQUIRE(obs.disconnect);
  CHECK(obs.disconnect->nas_address == "10.0.0.1");
  CHECK(obs.disconnect->acct_session_id == "sess-0001");
  CHECK(obs.disconnect->framed_ip == "100.64.0.1");
  CHECK(obs.disconnect->user_name == "234150000000001@iot.example");
  CHECK(obs.disconnect->calling_station_id == "447700900001");
}

TEST_CASE("without the Disconnect target requested, none is built") {
  request r{from_hex(samples::interim_hex)};
  actors::observation obs;
  REQUIRE(make_observation(r.view(), {}, "127.0.0.1", 0, obs, false));
  CHECK_FALSE(obs.disconnect);
  CHECK(obs.peer == "10.0.0.1");
}

TEST_CASE("a leading + is dropped from the MSISDN, no IMEISV means an absent IMEI (R3)") {
  packet_builder b(code::accounting_request, 1);
  b.add_u32(attr::acct_status_type, 1);
  b.add(attr::user_name, "234150000000003");
  b.add(attr::calling_station_id, "+447700900003");
  request r{b.finish_request(as_bytes("s"))};
  actors::observation obs;
  REQUIRE(make_observation(r.view(), {}, "192.0.2.9", 0, obs, true));
  CHECK(obs.imsi == 234150000000003ull);
  CHECK(obs.msisdn == "447700900003");
  CHECK(obs.imei.status == lock::imei_status::absent);
  CHECK(obs.disconnect->nas_address == "192.0.2.9"); // no NAS-IP-Address: the packet source
}

TEST_CASE("a malformed IMEISV is kept as malformed for the SIM layer to count (R2)") {
  packet_builder b(code::accounting_request, 1);
  b.add_u32(attr::acct_status_type, 3);
  b.add(attr::vendor_specific, vsa(tgpp::imsi, "234150000000004"));
  b.add(attr::vendor_specific, vsa(tgpp::imeisv, "35349X0123"));
  request r{b.finish_request(as_bytes("s"))};
  actors::observation obs;
  REQUIRE(make_observation(r.view(), {}, "192.0.2.9", 0, obs, true));
  CHECK(obs.imei.status == lock::imei_status::malformed);
}

TEST_CASE("the IMSI comes from User-Name when 3GPP-IMSI is absent, realm and prefix stripped") {
  auto with_user = [](std::string_view name) {
    packet_builder b(code::accounting_request, 1);
    b.add_u32(attr::acct_status_type, 1);
    b.add(attr::user_name, name);
    return request{b.finish_request(as_bytes("s"))};
  };
  user_name_rules rules;
  CHECK(extract_imsi(with_user("234150000000005@apn.example").view(), rules) == 234150000000005ull);
  CHECK(extract_imsi(with_user("imsi-234150000000005").view(), rules) == 0);
  rules.strip_prefixes = {"IMSI", "imsi-"};
  CHECK(extract_imsi(with_user("imsi-234150000000005@x").view(), rules) == 234150000000005ull);
  rules.strip_realm = false;
  CHECK(extract_imsi(with_user("234150000000005@apn.example").view(), rules) == 0);
  CHECK(extract_imsi(with_user("alice").view(), rules) == 0);
  CHECK(extract_imsi(with_user("1234567890123456").view(), rules) == 0); // 16 digits: not an IMSI
}

TEST_CASE("3GPP-IMSI wins over User-Name") {
  request r = gateway_request(1, 1);
  CHECK(extract_imsi(r.view(), {}) == 234150000000002ull);
}

TEST_CASE("a request without any IMSI gives no observation") {
  packet_builder b(code::accounting_request, 1);
  b.add_u32(attr::acct_status_type, 1);
  b.add(attr::acct_session_id, "x");
  request r{b.finish_request(as_bytes("s"))};
  actors::observation obs;
  CHECK_FALSE(make_observation(r.view(), {}, "192.0.2.9", 0, obs, true));
}

TEST_CASE("dedupe_key survives a retransmit with a new Identifier and Acct-Delay-Time (RFC 5080 "
          "§2.2.2)") {
  const auto first = dedupe_key(gateway_request(10, 3, 0).view(), "10.0.0.2");
  CHECK(first == dedupe_key(gateway_request(11, 3, 5).view(), "10.0.0.2"));
  CHECK(first != dedupe_key(gateway_request(12, 3, 0, 2000).view(), "10.0.0.2")); // a new interim
  CHECK(first != dedupe_key(gateway_request(13, 2, 0).view(), "10.0.0.2"));       // the Stop
  CHECK(first != dedupe_key(gateway_request(10, 3, 0).view(), "10.0.0.3"));       // another NAS
}

TEST_CASE("status types: sessions give observations, Accounting-On/Off do not") {
  CHECK(carries_session(1));
  CHECK(carries_session(2));
  CHECK(carries_session(3));
  CHECK_FALSE(carries_session(7));
  CHECK_FALSE(carries_session(8));
  CHECK(status_label(3) == "interim");
  CHECK(status_label(7) == "on");
  CHECK(status_label(99) == "other");
}

TEST_CASE("IMSI parsing") {
  CHECK(parse_imsi("234150000000001") == 234150000000001ull);
  CHECK(parse_imsi("23415") == 0);
  CHECK(parse_imsi("") == 0);
  CHECK(parse_imsi("2341500000000x1") == 0);
  CHECK(parse_imsi("001010123456789") == 1010123456789ull);
}

TEST_CASE("IPv4 addresses formatted dotted, every octet width") {
  const std::uint8_t a[] = {0, 0, 0, 0};
  const std::uint8_t b[] = {255, 255, 255, 255};
  const std::uint8_t c[] = {10, 100, 9, 45};
  CHECK(format_ipv4(bytes{a, 4}) == "0.0.0.0");
  CHECK(format_ipv4(bytes{b, 4}) == "255.255.255.255");
  CHECK(format_ipv4(bytes{c, 4}) == "10.100.9.45");
  CHECK(format_ipv4(bytes{c, 3}).empty());
  CHECK(parse_ip("192.0.2.200")->to_string() == "192.0.2.200");
  CHECK(parse_ip("2001:db8::1")->to_string() == "2001:db8::1");
  CHECK(parse_ip("::ffff:10.0.0.1")->to_string() == "10.0.0.1");
}
