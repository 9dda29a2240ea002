// Writes every kind of message the front-end sends (success and error
// answers, DWR, DPR) in text2pcap's hex dump format, one packet each, with a
// line "# <name> <result-code>" before it. tshark_answers.sh feeds it to
// text2pcap and tshark.

#include "protocols/diameter/messages.hpp"
#include "protocols/diameter/requests.hpp"

#include <cstdio>

using namespace imeilock::diameter;
using buf = std::vector<std::uint8_t>;

namespace {

void dump(const char* name, std::uint32_t rc, const buf& b) {
  std::printf("# %s %u\n", name, rc);
  for (std::size_t i = 0; i < b.size(); i += 16) {
    std::printf("%06zx", i);
    for (std::size_t j = i; j < b.size() && j < i + 16; ++j)
      std::printf(" %02x", b[j]);
    std::printf("\n");
  }
}

buf request(std::uint32_t cmd) {
  charging_spec s;
  s.command = cmd;
  s.imsi = "234150999999999";
  s.form = imei_form::uei_ascii;
  s.imeisv = "3534900123456789";
  s.record_number = 3;
  buf b;
  build_charging_request(b, s);
  return b;
}

/// Parses `req` (possibly damaged by `damage`) and dumps the answer the server would send.
void answer_for(const char* name, buf req) {
  const bytes msg{req.data(), req.size()};
  local_identity self;
  self.origin_host = "imeilockd.test";
  self.origin_realm = "localdomain";
  self.origin_state_id = 1700000000;
  buf out;
  const header h = decode_header(msg);
  if (auto err = check_request_header(h)) {
    build_error_answer(out, h, "client.example.net;1;1", self, err.result_code, err.failed_avp,
                       err.message);
    dump(name, err.result_code, out);
    return;
  }
  charging_request cr;
  auto err = parse_charging_request(msg, {}, cr);
  const std::uint32_t rc = err ? err.result_code : result::success;
  build_charging_answer(out, cr.ctx, self, rc, err.failed_avp, err.message);
  dump(name, rc, out);
}

buf without(buf b, std::uint32_t code) {
  avp a;
  if (!find_avp(bytes{b.data(), b.size()}.subspan(header_size), code, 0, a))
    return b;
  const auto off = static_cast<std::size_t>(a.raw.data() - b.data());
  b.erase(b.begin() + static_cast<std::ptrdiff_t>(off),
          b.begin() + static_cast<std::ptrdiff_t>(off + pad4(a.raw.size())));
  store_u24(b.data() + 1, static_cast<std::uint32_t>(b.size()));
  return b;
}

buf with(buf b, std::uint32_t code, std::uint8_t flags, std::uint32_t vendor, buf value) {
  message_writer w{b};
  w.add_raw(code, flags, vendor, bytes{value.data(), value.size()});
  store_u24(b.data() + 1, static_cast<std::uint32_t>(b.size()));
  return b;
}

} // namespace

int main() {
  local_identity self;
  self.origin_host = "imeilockd.test";
  self.origin_realm = "localdomain";
  self.origin_state_id = 1700000000;
  answer_for("ACA", request(command::accounting));
  answer_for("CCA", request(command::credit_control));
  answer_for("ACA-5005", without(request(command::accounting), avp_code::accounting_record_type));
  answer_for("CCA-5005", without(request(command::credit_control), avp_code::service_context_id));
  {
    buf b = request(command::accounting);
    avp a;
    find_avp(bytes{b.data(), b.size()}.subspan(header_size), avp_code::accounting_record_type, 0,
             a);
    b[static_cast<std::size_t>(a.data.data() - b.data()) + 3] = 9;
    answer_for("ACA-5004", b);
  }
  answer_for("ACA-5014",
             with(without(request(command::accounting), avp_code::accounting_record_number),
                  avp_code::accounting_record_number, avp_flag::mandatory, 0, {0, 1}));
  answer_for("ACA-5001",
             with(request(command::accounting), 99999, avp_flag::mandatory, 0, {1, 2, 3, 4}));
  {
    buf b = request(command::accounting);
    store_u24(b.data() + 5, 258);
    answer_for("3001", b);
  }
  {
    buf b = request(command::accounting);
    store_u32(b.data() + 8, 16777238);
    answer_for("3007", b);
  }
  {
    buf b = request(command::accounting);
    b[4] |= cmd_flag::error;
    answer_for("3008", b);
  }
  {
    charging_request cr;
    buf b = request(command::accounting);
    (void)parse_charging_request(bytes{b.data(), b.size()}, {}, cr);
    buf out;
    build_charging_answer(out, cr.ctx, self, result::too_busy);
    dump("ACA-3004", result::too_busy, out);
  }
  buf cer;
  build_cer(cer, "pgw1.example.net", "example.net", 4, 3);
  const header ch = decode_header(bytes{cer.data(), cer.size()});
  const std::vector<host_address> addrs{host_address{1, {127, 0, 0, 1}},
                                        host_address{2, buf(16, 0)}};
  for (std::uint32_t rc : {result::success, result::unknown_peer, result::no_common_application}) {
    buf out;
    build_cea(out, ch, self, rc, addrs, {}, rc == result::success ? "" : "refused");
    dump("CEA", rc, out);
  }
  {
    buf out;
    build_dwr(out, self, 1, 2);
    dump("DWR", 0, out);
    buf dwa;
    header h;
    h.command = command::device_watchdog;
    build_dwa(dwa, h, self);
    dump("DWA", result::success, dwa);
    buf dpr;
    build_dpr(dpr, self, 3, 4, disconnect_cause::rebooting);
    dump("DPR", 0, dpr);
    buf dpa;
    h.command = command::disconnect_peer;
    build_dpa(dpa, h, self);
    dump("DPA", result::success, dpa);
  }
  return 0;
}
