#include "protocols/radius/codec.hpp"

#include "wire_samples.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace imeilock::radius;
using samples::from_hex;

namespace {

std::string hex(bytes b) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (auto c : b) {
    s += digits[c >> 4];
    s += digits[c & 15];
  }
  return s;
}

bytes secret() {
  return as_bytes(samples::secret);
}

discard_reason reason_of(const std::vector<std::uint8_t>& d) {
  auto r = parse(d);
  REQUIRE_FALSE(r.packet);
  return r.reason;
}

} // namespace

TEST_CASE("MD5 matches the RFC 1321 test suite", "[md5]") {
  CHECK(hex(md5_of(as_bytes(""))) == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(hex(md5_of(as_bytes("abc"))) == "900150983cd24fb0d6963f7d28e17f72");
  CHECK(hex(md5_of(as_bytes("message digest"))) == "f96b697d7cb7938d525a2f31aaf161d0");
  CHECK(hex(md5_of(as_bytes(
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890"))) ==
        "57edf4a22be3c955ac49da2e2107b67a");
  CHECK(hex(md5_of({as_bytes("message "), as_bytes("digest")})) ==
        "f96b697d7cb7938d525a2f31aaf161d0");
  CHECK(hex(md5_of({as_bytes(""), as_bytes("abc"), as_bytes("")})) ==
        "900150983cd24fb0d6963f7d28e17f72");
}

TEST_CASE("HMAC-MD5 matches the RFC 2104 test vectors", "[md5]") {
  const std::vector<std::uint8_t> key(16, 0x0b);
  CHECK(hex(hmac_md5(key, {as_bytes("Hi There")})) == "9294727a3638bb1c13f48ef8158bfc9d");
  CHECK(hex(hmac_md5(as_bytes("Jefe"), {as_bytes("what do ya want "), as_bytes("for nothing?")})) ==
        "750c783e6ab0b503eaa86e310a5db738");
  // RFC 2104: a key longer than the block (64 octets) is hashed first (RFC 2202 test case 6).
  const std::vector<std::uint8_t> long_key(80, 0xaa);
  CHECK(hex(hmac_md5(long_key,
                     {as_bytes("Test Using Larger Than Block-Size Key - Hash Key First")})) ==
        "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd");
  // Re-keying the per-thread context: the first key must not leak into the next MAC.
  CHECK(hex(hmac_md5(key, {as_bytes("Hi There")})) == "9294727a3638bb1c13f48ef8158bfc9d");
}

TEST_CASE("a radclient Accounting-Request parses and its authenticator verifies (RFC 2866 §3)") {
  const auto d = from_hex(samples::interim_hex);
  auto r = parse(d);
  REQUIRE(r.packet);
  CHECK(r.packet->packet_code() == code::accounting_request);
  CHECK(r.packet->identifier() == 60);
  CHECK(verify_request_authenticator(*r.packet, secret()));
  CHECK_FALSE(verify_request_authenticator(*r.packet, as_bytes("wrong-secret")));
  CHECK(check_request_message_authenticator(*r.packet, secret()) == message_auth_status::absent);
  auto imsi = r.packet->find_vendor(tgpp::vendor_id, tgpp::imsi);
  REQUIRE(imsi);
  CHECK(as_string(*imsi) == "234150000000001");
  auto imeisv = r.packet->find_vendor(tgpp::vendor_id, tgpp::imeisv);
  REQUIRE(imeisv);
  CHECK(as_string(*imeisv) == "3534900123456701");
  CHECK(read_u32(*r.packet->find(attr::acct_status_type)) == 3u);
}

TEST_CASE("radclient's Message-Authenticator on an Accounting-Request verifies (RFC 3579 §3.2)") {
  auto d = from_hex(samples::start_with_ma_hex);
  auto r = parse(d);
  REQUIRE(r.packet);
  CHECK(verify_request_authenticator(*r.packet, secret()));
  CHECK(check_request_message_authenticator(*r.packet, secret()) == message_auth_status::ok);
  CHECK(check_request_message_authenticator(*r.packet, as_bytes("other")) ==
        message_auth_status::bad);

  SECTION("a flipped bit in the Message-Authenticator is caught") {
    d[d.size() - 1] ^= 1;
    auto r2 = parse(d);
    REQUIRE(r2.packet);
    CHECK(check_request_message_authenticator(*r2.packet, secret()) == message_auth_status::bad);
  }
}

TEST_CASE("the Accounting-Response authenticator equals pyrad's (RFC 2866 §4.2)") {
  const auto d = from_hex(samples::interim_hex);
  auto r = parse(d);
  REQUIRE(r.packet);
  const auto resp =
      make_accounting_response(r.packet->identifier(), r.packet->authenticator_bytes(), secret());
  CHECK(hex(resp) == samples::interim_response_hex);
  auto rp = parse(resp);
  REQUIRE(rp.packet);
  CHECK(verify_response_authenticator(*rp.packet, r.packet->authenticator_bytes(), secret()));
}

TEST_CASE("malformed datagrams are refused with a reason (RFC 2865 §3, §5)") {
  const auto good = from_hex(samples::interim_hex);

  SECTION("shorter than a header") {
    CHECK(reason_of(std::vector<std::uint8_t>(good.begin(), good.begin() + 19)) ==
          discard_reason::too_short);
    CHECK(reason_of({}) == discard_reason::too_short);
  }
  SECTION("truncated: the datagram is shorter than Length") {
    CHECK(reason_of(std::vector<std::uint8_t>(good.begin(), good.end() - 1)) ==
          discard_reason::length_mismatch);
  }
  SECTION("Length below 20") {
    auto d = good;
    d[2] = 0;
    d[3] = 19;
    CHECK(reason_of(d) == discard_reason::bad_length_field);
  }
  SECTION("Length above 4096") {
    auto d = good;
    d[2] = 0x10;
    d[3] = 0x01;
    CHECK(reason_of(d) == discard_reason::oversize);
  }
  SECTION("a datagram above 4096 octets") {
    auto d = good;
    d.resize(4097, 0);
    CHECK(reason_of(d) == discard_reason::oversize);
  }
  SECTION("an attribute of length 0 or 1") {
    auto d = good;
    d[21] = 1; // Acct-Status-Type's length
    CHECK(reason_of(d) == discard_reason::attribute_too_short);
    d[21] = 0;
    CHECK(reason_of(d) == discard_reason::attribute_too_short);
  }
  SECTION("an attribute running past Length") {
    auto d = good;
    d[21] = 200;
    CHECK(reason_of(d) == discard_reason::attribute_overrun);
  }
  SECTION("a lone octet after the last attribute") {
    auto d = good;
    d.push_back(0x1f);
    d[3] = static_cast<std::uint8_t>(d[3] + 1);
    CHECK(reason_of(d) == discard_reason::attribute_overrun);
  }
  SECTION("octets past Length are padding and ignored") {
    auto d = good;
    d.push_back(0xff);
    d.push_back(0x00);
    auto r = parse(d);
    REQUIRE(r.packet);
    CHECK(r.packet->raw().size() == good.size());
    CHECK(verify_request_authenticator(*r.packet, secret()));
  }
}

TEST_CASE("a malformed vendor attribute is skipped, not fatal (RFC 6929 §2.8)") {
  packet_builder b(code::accounting_request, 7);
  const std::uint8_t bad_vsa[] = {0, 0, 0x28, 0xaf, 1, 40, '2', '3'}; // sub-length runs past
  REQUIRE(b.add(attr::vendor_specific, bytes{bad_vsa}));
  const std::uint8_t good_vsa[] = {0, 0, 0x28, 0xaf, 1, 5, '1', '2', '3'};
  REQUIRE(b.add(attr::vendor_specific, bytes{good_vsa}));
  auto d = b.finish_request(secret());
  auto r = parse(d);
  REQUIRE(r.packet);
  auto v = r.packet->find_vendor(tgpp::vendor_id, tgpp::imsi);
  REQUIRE(v);
  CHECK(as_string(*v) == "123");
  CHECK(verify_request_authenticator(*r.packet, secret()));
}

TEST_CASE("built requests carry a verifiable Request Authenticator and Message-Authenticator (RFC "
          "5176 §3.5)") {
  packet_builder b(code::disconnect_request, 42);
  b.add(attr::acct_session_id, "sess-1");
  b.add_u32(attr::nas_ip_address, 0x0a000001);
  b.add_message_authenticator();
  auto d = b.finish_request(secret());
  auto r = parse(d);
  REQUIRE(r.packet);
  CHECK(r.packet->packet_code() == code::disconnect_request);
  CHECK(verify_request_authenticator(*r.packet, secret()));
  CHECK(check_request_message_authenticator(*r.packet, secret()) == message_auth_status::ok);

  SECTION("and a response built for it verifies against the request") {
    packet_builder ack(code::disconnect_nak, 42);
    ack.add_u32(attr::error_cause, 503);
    ack.add_message_authenticator();
    auto a = ack.finish_response(r.packet->authenticator_bytes(), secret());
    auto ar = parse(a);
    REQUIRE(ar.packet);
    CHECK(verify_response_authenticator(*ar.packet, r.packet->authenticator_bytes(), secret()));
    CHECK(check_response_message_authenticator(*ar.packet, r.packet->authenticator_bytes(),
                                               secret()) == message_auth_status::ok);
    CHECK(read_u32(*ar.packet->find(attr::error_cause)) == 503u);
  }
}

TEST_CASE("the builder refuses values that do not fit") {
  packet_builder b(code::accounting_request, 1);
  CHECK_FALSE(b.add(attr::user_name, std::string(254, 'x')));
  CHECK(b.add(attr::user_name, std::string(253, 'x')));
  int added = 1;
  while (b.add(attr::user_name, std::string(253, 'y')))
    ++added;
  auto d = b.finish_request(secret());
  CHECK(d.size() <= max_packet_size);
  CHECK(added == 15);
}

TEST_CASE("a Message-Authenticator of the wrong length is bad") {
  packet_builder b(code::accounting_request, 3);
  const std::uint8_t short_ma[4] = {};
  b.add(attr::message_authenticator, bytes{short_ma});
  auto d = b.finish_request(secret());
  auto r = parse(d);
  REQUIRE(r.packet);
  CHECK(check_request_message_authenticator(*r.packet, secret()) == message_auth_status::bad);
}

TEST_CASE("the Accounting-Response carries the request's Proxy-State attributes in order (RFC 2865 "
          "§5.33)") {
  packet_builder b(code::accounting_request, 9);
  b.add_u32(attr::acct_status_type, 1);
  b.add(attr::proxy_state, "proxy-a");
  b.add(attr::user_name, "234150000000001");
  b.add(attr::proxy_state, "proxy-b");
  auto d = b.finish_request(secret());
  auto r = parse(d);
  REQUIRE(r.packet);
  std::vector<std::uint8_t> out(accounting_response_size(*r.packet));
  CHECK(out.size() == 20 + 9 + 9);
  REQUIRE(write_accounting_response(*r.packet, secret(), out) == out.size());
  auto rp = parse(out);
  REQUIRE(rp.packet);
  CHECK(rp.packet->packet_code() == code::accounting_response);
  CHECK(rp.packet->identifier() == 9);
  CHECK(verify_response_authenticator(*rp.packet, r.packet->authenticator_bytes(), secret()));
  std::vector<std::string> states;
  rp.packet->for_each([&](const attribute& a) {
    CHECK(a.type == attr::proxy_state);
    states.emplace_back(as_string(a.value));
    return true;
  });
  CHECK(states == std::vector<std::string>{"proxy-a", "proxy-b"});

  SECTION("without Proxy-State it is the plain 20-octet answer") {
    const auto plain = from_hex(samples::interim_hex);
    auto pr = parse(plain);
    REQUIRE(pr.packet);
    std::vector<std::uint8_t> o(accounting_response_size(*pr.packet));
    write_accounting_response(*pr.packet, secret(), o);
    CHECK(hex(o) == samples::interim_response_hex);
  }
}
