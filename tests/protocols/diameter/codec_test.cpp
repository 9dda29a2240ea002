// The Diameter codec: framing, AVPs, validation (first error only, with the
// right Result-Code and Failed-AVP), identity extraction in every IMEI
// encoding, answers and dedupe keys. Real bytes throughout.

#include "protocols/diameter/answer_cache.hpp"
#include "protocols/diameter/key_set.hpp"
#include "protocols/diameter/messages.hpp"
#include "protocols/diameter/requests.hpp"
#include "protocols/diameter/wire.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <unordered_set>

using namespace imeilock::diameter;
using imeilock::lock::imei_status;

namespace {

using buf = std::vector<std::uint8_t>;

bytes view(const buf& b) {
  return bytes{b.data(), b.size()};
}

/// The AVPs of a message (top level).
std::vector<avp> avps_of(const buf& msg) {
  std::vector<avp> out;
  avp_reader r{view(msg).subspan(header_size)};
  avp a;
  while (r.next(a))
    out.push_back(a);
  REQUIRE(r.error() == avp_error::none);
  return out;
}

std::uint32_t u32_of(const buf& msg, std::uint32_t code) {
  avp a;
  REQUIRE(find_avp(view(msg).subspan(header_size), code, 0, a));
  std::uint32_t v = 0;
  REQUIRE(a.u32(v));
  return v;
}

bool has_avp(const buf& msg, std::uint32_t code) {
  avp a;
  return find_avp(view(msg).subspan(header_size), code, 0, a);
}

/// The single AVP inside the answer's Failed-AVP.
avp failed_inner(const buf& msg) {
  avp f;
  REQUIRE(find_avp(view(msg).subspan(header_size), avp_code::failed_avp, 0, f));
  avp_reader r{f.data};
  avp in;
  REQUIRE(r.next(in));
  return in;
}

charging_spec acr_spec() {
  charging_spec s;
  s.imsi = "234150999999999";
  s.msisdn = "447700900123";
  s.form = imei_form::uei_ascii;
  s.imeisv = "3534900123456789";
  s.record_type = 2;
  s.record_number = 7;
  return s;
}

buf encode(const charging_spec& s) {
  buf b;
  build_charging_request(b, s);
  return b;
}

/// Replaces the first AVP `code` (vendor 0) of a message with `repl` (encoded), fixing the length.
buf replace_avp(const buf& msg, std::uint32_t code, const buf& repl) {
  avp a;
  REQUIRE(find_avp(view(msg).subspan(header_size), code, 0, a));
  const auto off = static_cast<std::size_t>(a.raw.data() - msg.data());
  buf out(msg.begin(), msg.begin() + static_cast<std::ptrdiff_t>(off));
  out.insert(out.end(), repl.begin(), repl.end());
  out.insert(out.end(), msg.begin() + static_cast<std::ptrdiff_t>(off + pad4(a.raw.size())),
             msg.end());
  store_u24(out.data() + 1, static_cast<std::uint32_t>(out.size()));
  return out;
}

buf remove_avp(const buf& msg, std::uint32_t code) {
  return replace_avp(msg, code, {});
}

buf append_avp(buf msg, const buf& extra) {
  msg.insert(msg.end(), extra.begin(), extra.end());
  store_u24(msg.data() + 1, static_cast<std::uint32_t>(msg.size()));
  return msg;
}

buf avp_bytes(std::uint32_t code, std::uint8_t flags, std::uint32_t vendor, const buf& value) {
  buf b;
  message_writer w{b};
  w.add_raw(code, flags, vendor, view(value));
  return b;
}

local_identity me() {
  local_identity id;
  id.origin_host = "imeilockd.test";
  id.origin_realm = "test";
  id.origin_state_id = 42;
  return id;
}

} // namespace

TEST_CASE("header and framing from real bytes (RFC 6733 §3)", "[diameter][wire]") {
  // A DWR: version 1, length 0x30, flags R, command 280, app 0, hbh 0x11223344, e2e 0x55667788.
  const buf dwr = {0x01, 0x00, 0x00, 0x30, 0x80, 0x00, 0x01, 0x18, 0x00, 0x00, 0x00, 0x00, 0x11,
                   0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
                   // Origin-Host "a.b" (264, M, len 11) + 1 pad
                   0x00, 0x00, 0x01, 0x08, 0x40, 0x00, 0x00, 0x0b, 'a', '.', 'b', 0x00,
                   // Origin-Realm "b" (296, M, len 9) + 3 pad
                   0x00, 0x00, 0x01, 0x28, 0x40, 0x00, 0x00, 0x09, 'b', 0x00, 0x00, 0x00,
                   // Origin-State-Id 5 is left out: 40 + 8 = 48 = 0x30
                   0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  // The last 8 bytes are an AVP with code 0 and length 0: invalid.
  std::uint32_t len = 0;
  REQUIRE(check_frame(view(dwr), 65536, len) == frame_status::complete);
  CHECK(len == 48);
  const header h = decode_header(view(dwr));
  CHECK(h.version == 1);
  CHECK(h.is_request());
  CHECK(h.command == command::device_watchdog);
  CHECK(h.hop_by_hop == 0x11223344);
  CHECK(h.end_to_end == 0x55667788);
  avp_reader r{view(dwr).subspan(header_size)};
  avp a;
  REQUIRE(r.next(a));
  CHECK(a.code == avp_code::origin_host);
  CHECK(a.text() == "a.b");
  CHECK(a.mandatory());
  REQUIRE(r.next(a));
  CHECK(a.text() == "b");
  CHECK_FALSE(r.next(a));
  CHECK(r.error() == avp_error::bad_length);

  base_info info;
  auto err = parse_base(view(dwr), info);
  CHECK(err.result_code == result::invalid_avp_length);
}

TEST_CASE("framing errors: version, length alignment, limits, truncation", "[diameter][wire]") {
  buf b = encode(acr_spec());
  std::uint32_t len = 0;
  SECTION("truncated frame waits for more") {
    for (std::size_t n :
         {std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{19}, b.size() - 1})
      CHECK(check_frame(bytes{b.data(), n}, 65536, len) == frame_status::need_more);
  }
  SECTION("version 2") {
    b[0] = 2;
    CHECK(check_frame(view(b), 65536, len) == frame_status::bad_version);
  }
  SECTION("length not a multiple of 4") {
    store_u24(b.data() + 1, static_cast<std::uint32_t>(b.size() - 1));
    CHECK(check_frame(view(b), 65536, len) == frame_status::bad_length);
  }
  SECTION("length below the header") {
    store_u24(b.data() + 1, 16);
    CHECK(check_frame(view(b), 65536, len) == frame_status::bad_length);
  }
  SECTION("oversize frame refused from its header alone") {
    store_u24(b.data() + 1, 0xfffffc);
    CHECK(check_frame(bytes{b.data(), 4}, 65536, len) == frame_status::too_long);
  }
}

TEST_CASE("AVP encoding: vendor flag, padding, grouped lengths", "[diameter][wire]") {
  buf b;
  message_writer w{b};
  w.begin(cmd_flag::request, command::accounting, application::accounting, 9, 10);
  w.add_string(avp_code::session_id, "abcde"); // 8 + 5 -> padded to 16
  const auto g = w.begin_group(avp_code::service_information, avp_flag::mandatory, vendor_3gpp);
  w.add_string(avp_code::imeisv_3gpp, "1", avp_flag::mandatory, vendor_3gpp); // 12 + 1 -> 16
  w.end_group(g);
  w.finish();
  REQUIRE(b.size() == 20 + 16 + 12 + 16);
  CHECK(load_u24(b.data() + 1) == b.size());
  CHECK(load_u24(b.data() + 20 + 5) == 13); // unpadded length
  CHECK(b[20 + 13] == 0);                   // padding is zero
  CHECK(b[36 + 4] == (avp_flag::vendor | avp_flag::mandatory));
  CHECK(load_u32(b.data() + 36 + 8) == vendor_3gpp);
  CHECK(load_u24(b.data() + 36 + 5) == 12 + 16);
  auto all = avps_of(b);
  REQUIRE(all.size() == 2);
  CHECK(all[1].vendor == vendor_3gpp);
  avp inner;
  REQUIRE(find_avp(all[1].data, avp_code::imeisv_3gpp, vendor_3gpp, inner));
  CHECK(inner.text() == "1");
}

TEST_CASE("ACR identities in every IMEI encoding (R2), top level and nested",
          "[diameter][extract]") {
  const auto [form, source] = GENERATE(table<imei_form, std::string_view>({
      {imei_form::uei_ascii, "uei"},
      {imei_form::uei_hex, "uei"},
      {imei_form::uei_tbcd, "uei"},
      {imei_form::terminal_information, "terminal_information"},
      {imei_form::imeisv_3gpp, "3gpp_imeisv"},
  }));
  const bool nested = GENERATE(false, true);
  const std::uint32_t cmd = GENERATE(command::accounting, command::credit_control);
  auto s = acr_spec();
  s.form = form;
  s.nested = nested;
  s.command = cmd;
  const buf b = encode(s);
  charging_request req;
  auto err = parse_charging_request(view(b), {}, req);
  INFO("form " << static_cast<int>(form) << " nested " << nested << " command " << cmd);
  REQUIRE_FALSE(err);
  CHECK(req.imsi == "234150999999999");
  CHECK(req.msisdn == "447700900123");
  CHECK(req.origin_host == "client.example.net");
  CHECK(req.ctx.session_id == "client.example.net;1;1");
  CHECK(req.ctx.record_type == 2);
  CHECK(req.ctx.record_number == 7);
  CHECK(req.imei_source == source);
  REQUIRE(req.imei.status == imei_status::ok);
  CHECK(req.imei.device == 35349001234567ULL);
  if (form != imei_form::uei_hex) {
    REQUIRE(req.imei.svn.has_value());
    CHECK(*req.imei.svn == 89);
  }
}

TEST_CASE("no IMEI is absent, a bad IMEI is malformed (R2, R3)", "[diameter][extract]") {
  auto s = acr_spec();
  s.form = imei_form::none;
  charging_request req;
  REQUIRE_FALSE(parse_charging_request(view(encode(s)), {}, req));
  CHECK(req.imei.status == imei_status::absent);
  s.form = imei_form::uei_ascii;
  s.imeisv = "35349X0123456789";
  charging_request req2;
  REQUIRE_FALSE(parse_charging_request(view(encode(s)), {}, req2));
  CHECK(req2.imei.status == imei_status::malformed);
  CHECK(imsi_to_integer("234150999999999") == 234150999999999ULL);
  CHECK(imsi_to_integer("23415099999999a") == 0);
  CHECK(imsi_to_integer("1234567890123456") == 0);
}

TEST_CASE("5005 MISSING_AVP names the first missing AVP with a zero-filled example",
          "[diameter][errors]") {
  const buf acr = encode(acr_spec());
  const auto [code, value_len] = GENERATE(table<std::uint32_t, std::size_t>({
      {avp_code::session_id, 1},
      {avp_code::origin_host, 1},
      {avp_code::origin_realm, 1},
      {avp_code::destination_realm, 1},
      {avp_code::accounting_record_type, 4},
      {avp_code::accounting_record_number, 4},
  }));
  charging_request req;
  auto err = parse_charging_request(view(remove_avp(acr, code)), {}, req);
  REQUIRE(err.result_code == result::missing_avp);
  CHECK_FALSE(err.protocol_error());
  buf ans;
  build_charging_answer(ans, req.ctx, me(), err.result_code, err.failed_avp, err.message);
  CHECK(u32_of(ans, avp_code::result_code) == result::missing_avp);
  CHECK((ans[4] & cmd_flag::error) == 0);
  const avp in = failed_inner(ans);
  CHECK(in.code == code);
  CHECK(in.vendor == 0);
  REQUIRE(in.data.size() == value_len);
  for (auto byte : in.data)
    CHECK(byte == 0);
}

TEST_CASE("5005 for a CCR without CC-Request-Type", "[diameter][errors]") {
  auto s = acr_spec();
  s.command = command::credit_control;
  charging_request req;
  auto err =
      parse_charging_request(view(remove_avp(encode(s), avp_code::cc_request_type)), {}, req);
  REQUIRE(err.result_code == result::missing_avp);
  buf ans;
  build_charging_answer(ans, req.ctx, me(), err.result_code, err.failed_avp);
  CHECK(failed_inner(ans).code == avp_code::cc_request_type);
  CHECK(u32_of(ans, avp_code::auth_application_id) == 4);
}

TEST_CASE("5004 INVALID_AVP_VALUE for an unknown Accounting-Record-Type", "[diameter][errors]") {
  buf bad;
  message_writer w{bad};
  w.add_u32(avp_code::accounting_record_type, 9);
  charging_request req;
  auto err = parse_charging_request(
      view(replace_avp(encode(acr_spec()), avp_code::accounting_record_type, bad)), {}, req);
  REQUIRE(err.result_code == result::invalid_avp_value);
  buf ans;
  build_charging_answer(ans, req.ctx, me(), err.result_code, err.failed_avp);
  const avp in = failed_inner(ans);
  CHECK(in.code == avp_code::accounting_record_type);
  std::uint32_t v = 0;
  REQUIRE(in.u32(v));
  CHECK(v == 9);
}

TEST_CASE("5014 INVALID_AVP_LENGTH: short Unsigned32 and an AVP running past the message",
          "[diameter][errors]") {
  const buf acr = encode(acr_spec());
  SECTION("Accounting-Record-Number of 3 bytes") {
    charging_request req;
    auto err =
        parse_charging_request(view(replace_avp(acr, avp_code::accounting_record_number,
                                                avp_bytes(avp_code::accounting_record_number,
                                                          avp_flag::mandatory, 0, {0, 0, 1}))),
                               {}, req);
    REQUIRE(err.result_code == result::invalid_avp_length);
    buf ans;
    build_charging_answer(ans, req.ctx, me(), err.result_code, err.failed_avp);
    CHECK(failed_inner(ans).code == avp_code::accounting_record_number);
  }
  SECTION("last AVP claims more bytes than the message has") {
    buf b = acr;
    avp last;
    {
      avp_reader r{view(b).subspan(header_size)};
      avp a;
      while (r.next(a))
        last = a;
    }
    const auto off = static_cast<std::size_t>(last.raw.data() - b.data());
    store_u24(b.data() + off + 5, 4000);
    charging_request req;
    auto err = parse_charging_request(view(b), {}, req);
    REQUIRE(err.result_code == result::invalid_avp_length);
    buf ans;
    build_charging_answer(ans, req.ctx, me(), err.result_code, err.failed_avp);
    const avp in = failed_inner(ans);
    CHECK(in.code == last.code);
    CHECK(in.data.empty()); // header only, zero payload (RFC 6733 §7.1.5)
  }
  SECTION("AVP length below its header") {
    charging_request req;
    buf tiny = {0, 0, 0x01, 0x07, 0x40, 0, 0, 4};
    auto err = parse_charging_request(view(append_avp(acr, tiny)), {}, req);
    REQUIRE(err.result_code == result::invalid_avp_length);
  }
  SECTION("broken group inside Service-Information") {
    buf inner = avp_bytes(avp_code::ps_information, avp_flag::mandatory, vendor_3gpp,
                          {0, 0, 0, 1, 0x40, 0, 0, 99});
    charging_request req;
    auto err = parse_charging_request(
        view(append_avp(acr, avp_bytes(avp_code::service_information, avp_flag::mandatory,
                                       vendor_3gpp, inner))),
        {}, req);
    REQUIRE(err.result_code == result::invalid_avp_length);
    buf ans;
    build_charging_answer(ans, req.ctx, me(), err.result_code, err.failed_avp);
    CHECK(failed_inner(ans).code == avp_code::service_information);
  }
}

TEST_CASE("5001 AVP_UNSUPPORTED for an unknown AVP with the M bit", "[diameter][errors]") {
  const buf acr = encode(acr_spec());
  SECTION("vendor 0") {
    charging_request req;
    auto err = parse_charging_request(
        view(append_avp(acr, avp_bytes(99999, avp_flag::mandatory, 0, {1, 2, 3}))), {}, req);
    REQUIRE(err.result_code == result::avp_unsupported);
    buf ans;
    build_charging_answer(ans, req.ctx, me(), err.result_code, err.failed_avp);
    const avp in = failed_inner(ans);
    CHECK(in.code == 99999);
    CHECK(in.data.size() == 3);
    // The record was otherwise fine: the ACA still echoes type and number.
    CHECK(u32_of(ans, avp_code::accounting_record_number) == 7);
  }
  SECTION("unknown vendor") {
    charging_request req;
    auto err = parse_charging_request(
        view(append_avp(acr, avp_bytes(1, avp_flag::mandatory, 9999, {1}))), {}, req);
    REQUIRE(err.result_code == result::avp_unsupported);
  }
  SECTION("without the M bit it is ignored") {
    charging_request req;
    CHECK_FALSE(
        parse_charging_request(view(append_avp(acr, avp_bytes(99999, 0, 0, {1}))), {}, req));
  }
  SECTION("3GPP vendor AVPs are tolerated (tap deployment)") {
    charging_request req;
    CHECK_FALSE(parse_charging_request(
        view(append_avp(acr, avp_bytes(1032, avp_flag::mandatory, vendor_3gpp, {0, 0, 3, 0xec}))),
        {}, req));
  }
}

TEST_CASE("first error only: the earliest problem in the message wins", "[diameter][errors]") {
  buf b = append_avp(encode(acr_spec()), avp_bytes(99999, avp_flag::mandatory, 0, {1}));
  b = remove_avp(b, avp_code::destination_realm);
  charging_request req;
  auto err = parse_charging_request(view(b), {}, req);
  CHECK(err.result_code == result::avp_unsupported);
}

TEST_CASE("header errors: 3008, 3001, 3007 travel with the E bit", "[diameter][errors]") {
  buf acr = encode(acr_spec());
  header h = decode_header(view(acr));
  SECTION("3008 E bit on a request") {
    h.flags |= cmd_flag::error;
    CHECK(check_request_header(h).result_code == result::invalid_hdr_bits);
  }
  SECTION("3008 reserved bits") {
    h.flags |= 0x01;
    CHECK(check_request_header(h).result_code == result::invalid_hdr_bits);
  }
  SECTION("3001 unknown command of a known application") {
    h.command = 258;
    CHECK(check_request_header(h).result_code == result::command_unsupported);
  }
  SECTION("3007 unknown application") {
    h.application = 16777238;
    auto err = check_request_header(h);
    REQUIRE(err.result_code == result::application_unsupported);
    REQUIRE(err.protocol_error());
    buf ans;
    build_error_answer(ans, h, "sess;1", me(), err.result_code, {}, err.message);
    CHECK((ans[4] & cmd_flag::error) != 0);
    CHECK((ans[4] & cmd_flag::request) == 0);
    const header ah = decode_header(view(ans));
    CHECK(ah.application == 16777238);
    CHECK(ah.hop_by_hop == h.hop_by_hop);
    CHECK(ah.end_to_end == h.end_to_end);
    CHECK(u32_of(ans, avp_code::result_code) == result::application_unsupported);
    auto all = avps_of(ans);
    CHECK(all.front().code == avp_code::session_id);
  }
  SECTION("a valid ACR and CCR header pass") {
    CHECK_FALSE(check_request_header(h));
  }
}

TEST_CASE("ACA echoes Accounting-Record-Type/-Number, CCA CC-Request-Type/-Number",
          "[diameter][answers]") {
  auto s = acr_spec();
  s.record_type = 3;
  s.record_number = 12345;
  s.hop_by_hop = 0xdeadbeef;
  s.end_to_end = 0xcafe;
  charging_request req;
  REQUIRE_FALSE(parse_charging_request(view(encode(s)), {}, req));
  buf aca;
  build_charging_answer(aca, req.ctx, me(), result::success);
  const header h = decode_header(view(aca));
  CHECK_FALSE(h.is_request());
  CHECK(h.command == command::accounting);
  CHECK(h.application == application::accounting);
  CHECK(h.hop_by_hop == 0xdeadbeef);
  CHECK(h.end_to_end == 0xcafe);
  CHECK((h.flags & cmd_flag::proxiable) != 0);
  CHECK(avps_of(aca).front().code == avp_code::session_id);
  CHECK(u32_of(aca, avp_code::result_code) == 2001);
  CHECK(u32_of(aca, avp_code::accounting_record_type) == 3);
  CHECK(u32_of(aca, avp_code::accounting_record_number) == 12345);
  CHECK(u32_of(aca, avp_code::origin_state_id) == 42);

  s.command = command::credit_control;
  s.record_type = 1;
  charging_request ccr;
  REQUIRE_FALSE(parse_charging_request(view(encode(s)), {}, ccr));
  buf cca;
  build_charging_answer(cca, ccr.ctx, me(), result::success);
  CHECK(decode_header(view(cca)).application == application::credit_control);
  CHECK(u32_of(cca, avp_code::cc_request_type) == 1);
  CHECK(u32_of(cca, avp_code::cc_request_number) == 12345);
  CHECK(u32_of(cca, avp_code::auth_application_id) == 4);

  buf busy;
  build_charging_answer(busy, req.ctx, me(), result::too_busy);
  CHECK((busy[4] & cmd_flag::error) != 0);
  CHECK(u32_of(busy, avp_code::result_code) == 3004);
}

TEST_CASE("Proxy-Info is echoed in order (RFC 6733 §6.2)", "[diameter][answers]") {
  buf p1, p2;
  {
    message_writer w{p1};
    auto g = w.begin_group(avp_code::proxy_info);
    w.add_string(avp_code::proxy_host, "dra1");
    w.add_string(avp_code::proxy_state, "s1");
    w.end_group(g);
  }
  {
    message_writer w{p2};
    auto g = w.begin_group(avp_code::proxy_info);
    w.add_string(avp_code::proxy_host, "dra2");
    w.add_string(avp_code::proxy_state, "s2");
    w.end_group(g);
  }
  buf b = append_avp(append_avp(encode(acr_spec()), p1), p2);
  charging_request req;
  REQUIRE_FALSE(parse_charging_request(view(b), {}, req));
  buf aca;
  build_charging_answer(aca, req.ctx, me(), result::success);
  std::vector<std::string> hosts;
  for (const auto& a : avps_of(aca)) {
    if (a.code != avp_code::proxy_info)
      continue;
    avp h;
    REQUIRE(find_avp(a.data, avp_code::proxy_host, 0, h));
    hosts.emplace_back(h.text());
  }
  CHECK(hosts == std::vector<std::string>{"dra1", "dra2"});
}

TEST_CASE("the ACA/CCA written in one pass is byte for byte the RFC order, appended after "
          "what the buffer holds",
          "[diameter][answers]") {
  // The reference: message_writer, AVP by AVP, in the order RFC 6733 §9.7.2 /
  // RFC 4006 §3.2 list them (what build_charging_answer wrote before it sized
  // the answer first).
  auto reference = [](const answer_context& ctx, const local_identity& self) {
    buf out;
    message_writer w{out};
    const header& h = ctx.request;
    w.begin(h.flags & cmd_flag::proxiable, h.command, h.application, h.hop_by_hop, h.end_to_end);
    if (!ctx.session_id.empty())
      w.add_string(avp_code::session_id, ctx.session_id);
    w.add_u32(avp_code::result_code, result::success);
    w.add_string(avp_code::origin_host, self.origin_host);
    w.add_string(avp_code::origin_realm, self.origin_realm);
    if (h.command == command::accounting) {
      if (ctx.has_record) {
        w.add_u32(avp_code::accounting_record_type, ctx.record_type);
        w.add_u32(avp_code::accounting_record_number, ctx.record_number);
      }
      if (ctx.has_acct_application_id)
        w.add_u32(avp_code::acct_application_id, ctx.acct_application_id);
    } else {
      w.add_u32(avp_code::auth_application_id, application::credit_control);
      if (ctx.has_record) {
        w.add_u32(avp_code::cc_request_type, ctx.record_type);
        w.add_u32(avp_code::cc_request_number, ctx.record_number);
      }
    }
    w.add_u32(avp_code::origin_state_id, self.origin_state_id);
    if (!ctx.proxy_info.empty())
      w.append_avps(ctx.proxy_info);
    w.finish();
    return out;
  };
  buf proxy;
  {
    message_writer w{proxy};
    auto g = w.begin_group(avp_code::proxy_info);
    w.add_string(avp_code::proxy_host, "dra1.example.net");
    w.add_string(avp_code::proxy_state, "abc"); // 3 octets: padded
    w.end_group(g);
  }
  auto self = me();
  for (const std::string host : {"h", "hostname.ab", "imeilockd.example.org"}) {
    self.origin_host = host; // lengths 1, 11, 21: every padding
    for (const std::uint32_t cmd : {command::accounting, command::credit_control}) {
      for (const std::string sid : {"", "s", "pgw1.example.net;42;7", "pgw1.example.net;1;22"}) {
        for (int variant = 0; variant < 8; ++variant) {
          answer_context ctx;
          ctx.request.flags = cmd_flag::request | ((variant & 1) ? cmd_flag::proxiable : 0);
          ctx.request.command = cmd;
          ctx.request.application =
              cmd == command::accounting ? application::accounting : application::credit_control;
          ctx.request.hop_by_hop = 0x01020304;
          ctx.request.end_to_end = 0xa0b0c0d0;
          ctx.session_id = sid;
          ctx.has_record = (variant & 2) != 0;
          ctx.record_type = 3;
          ctx.record_number = 77;
          ctx.has_acct_application_id = (variant & 4) != 0;
          ctx.acct_application_id = 3;
          if (variant >= 4)
            ctx.proxy_info = proxy;
          const buf want = reference(ctx, self);
          buf got{0xee, 0xee}; // what the buffer held stays in front
          build_charging_answer(got, ctx, self, result::success);
          REQUIRE(got.size() == 2 + want.size());
          CHECK(got[0] == 0xee);
          CHECK(got[1] == 0xee);
          CHECK(buf(got.begin() + 2, got.end()) == want);
        }
      }
    }
  }
}

TEST_CASE("CER parsing and CEA content (RFC 6733 §5.3)", "[diameter][base]") {
  buf cer;
  build_cer(cer, "pgw1.example.net", "example.net", 4, 3, 77, 88);
  cer_info info;
  REQUIRE_FALSE(parse_cer(view(cer), info));
  CHECK(info.origin_host == "pgw1.example.net");
  CHECK(info.auth_applications == std::vector<std::uint32_t>{4});
  CHECK(info.acct_applications == std::vector<std::uint32_t>{3});

  cer_info missing;
  auto err = parse_cer(view(remove_avp(cer, avp_code::host_ip_address)), missing);
  REQUIRE(err.result_code == result::missing_avp);

  buf cea;
  build_cea(cea, info.request, me(), result::success, {host_address{1, {127, 0, 0, 1}}});
  CHECK(decode_header(view(cea)).hop_by_hop == 77);
  CHECK(u32_of(cea, avp_code::result_code) == 2001);
  CHECK(u32_of(cea, avp_code::auth_application_id) == 4);
  CHECK(u32_of(cea, avp_code::acct_application_id) == 3);
  CHECK(has_avp(cea, avp_code::vendor_specific_application_id));
  CHECK(has_avp(cea, avp_code::product_name));
  avp ip;
  REQUIRE(find_avp(view(cea).subspan(header_size), avp_code::host_ip_address, 0, ip));
  CHECK(ip.data.size() == 6);

  buf refused;
  build_cea(refused, info.request, me(), result::unknown_peer, {});
  CHECK((refused[4] & cmd_flag::error) != 0);
}

TEST_CASE("DWR/DPR parsing, DWA/DPA/DWR/DPR building", "[diameter][base]") {
  buf dpr;
  build_dpr(dpr, me(), 5, 6, disconnect_cause::rebooting);
  base_info info;
  REQUIRE_FALSE(parse_base(view(dpr), info));
  CHECK(info.disconnect_cause == disconnect_cause::rebooting);
  CHECK(info.origin_host == "imeilockd.test");
  base_info no_cause;
  CHECK(parse_base(view(remove_avp(dpr, avp_code::disconnect_cause)), no_cause).result_code ==
        result::missing_avp);

  buf dwr;
  build_dwr(dwr, me(), 1, 2);
  base_info w;
  REQUIRE_FALSE(parse_base(view(dwr), w));
  buf dwa;
  build_dwa(dwa, w.hdr, me());
  base_info a;
  REQUIRE_FALSE(parse_base(view(dwa), a));
  CHECK(a.result_code == 2001);
  CHECK(classify(decode_header(view(dwa))) == message_kind::dwa);
}

TEST_CASE("nesting beyond max_avp_depth is refused", "[diameter][errors]") {
  auto s = acr_spec();
  s.nested = true;
  decode_limits lim;
  lim.max_avp_depth = 2; // Service-Information(1) > PS-Information(2) > UEI(3)
  charging_request req;
  auto err = parse_charging_request(view(encode(s)), lim, req);
  CHECK(err.result_code == result::invalid_avp_value);
}

TEST_CASE("dedupe keys: same record same key, different records differ", "[diameter][dedupe]") {
  CHECK(record_key("s;1", 271, 1) == record_key("s;1", 271, 1));
  CHECK(record_key("s;1", 271, 1) != record_key("s;1", 271, 2));
  CHECK(record_key("s;1", 271, 1) != record_key("s;2", 271, 1));
  CHECK(record_key("s;1", 271, 1) != record_key("s;1", 272, 1));
  CHECK(end_to_end_key("a", 1) != end_to_end_key("b", 1));
  CHECK(end_to_end_key("a", 1) != 0);
}

TEST_CASE("key_set agrees with std::unordered_set through inserts, erases and growth",
          "[diameter][dedupe]") {
  // Random work on few distinct keys keeps the table near half full with long
  // probe runs, wrap-arounds at its end and back-shifts on erase; then a
  // larger key space makes it grow.
  std::mt19937_64 rng{12};
  for (const std::uint64_t distinct : {40ULL, 1000ULL, 50000ULL}) {
    key_set set;
    std::unordered_set<std::uint64_t> ref;
    for (int step = 0; step < 60000; ++step) {
      const std::uint64_t key = 1 + rng() % distinct;
      const auto op = rng() % 3;
      if (op == 0) {
        CHECK(set.insert(key) == ref.insert(key).second);
      } else if (op == 1) {
        CHECK(set.erase(key) == (ref.erase(key) == 1));
      } else {
        REQUIRE(set.contains(key) == ref.contains(key));
      }
      REQUIRE(set.size() == ref.size());
    }
    for (std::uint64_t k = 1; k <= distinct; ++k)
      REQUIRE(set.contains(k) == ref.contains(k));
    for (const auto k : ref)
      CHECK(set.erase(k));
    CHECK(set.empty());
    CHECK_FALSE(set.contains(1));
  }
  key_set set;
  CHECK_FALSE(set.erase(0)); // 0 is never a key
  CHECK_FALSE(set.erase(7));
  CHECK(set.insert(0xffffffffffffffffULL));
  CHECK_FALSE(set.insert(0xffffffffffffffffULL));
  CHECK(set.contains(0xffffffffffffffffULL));
}

TEST_CASE("answer cache: hit, expiry, capacity", "[diameter][dedupe]") {
  answer_cache c{2, std::chrono::milliseconds{1000}};
  auto a = std::make_shared<const buf>(buf{1, 2, 3});
  c.insert(1, a, 0);
  CHECK(c.find(1, 500) == a);
  CHECK(c.find(1, 1500) == nullptr);
  c.insert(2, a, 10);
  c.insert(3, a, 20);
  c.insert(4, a, 30);
  CHECK(c.size() <= 2);
  CHECK(c.find(4, 40) == a);
  CHECK(c.find(1, 40) == nullptr);
  answer_cache off{0, std::chrono::milliseconds{1000}};
  off.insert(1, a, 0);
  CHECK(off.find(1, 0) == nullptr);
}
