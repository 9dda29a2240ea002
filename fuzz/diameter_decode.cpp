// libFuzzer target: the input is a TCP byte stream from a Diameter peer.
// Frames are cut as the server does, each is classified, validated and
// answered; invariants of the codec are asserted along the way.

#include "protocols/diameter/messages.hpp"
#include "protocols/diameter/wire.hpp"

#include <cstdlib>

using namespace imeilock::diameter;

namespace {

void check(bool ok) {
  if (!ok)
    std::abort();
}

/// Every answer we build must itself be a well-formed frame.
void check_answer(const std::vector<std::uint8_t>& out) {
  std::uint32_t len = 0;
  check(check_frame(bytes{out.data(), out.size()}, 1u << 24, len) == frame_status::complete);
  check(len == out.size());
  avp_reader r{bytes{out.data(), out.size()}.subspan(header_size)};
  avp a;
  while (r.next(a)) {
  }
  check(r.error() == avp_error::none);
}

void one_frame(bytes msg) {
  const header h = decode_header(msg);
  local_identity self;
  self.origin_host = "imeilockd.fuzz";
  self.origin_realm = "fuzz";
  std::vector<std::uint8_t> out;
  if (!h.is_request()) {
    base_info info;
    (void)parse_base(msg, info);
    return;
  }
  if (auto err = check_request_header(h)) {
    build_error_answer(out, h, "s", self, err.result_code, err.failed_avp, err.message);
    check_answer(out);
    return;
  }
  switch (classify(h)) {
    case message_kind::cer: {
      cer_info info;
      auto err = parse_cer(msg, info);
      build_cea(out, h, self, err ? err.result_code : result::success,
                {host_address{1, {127, 0, 0, 1}}}, err.failed_avp, err.message);
      check_answer(out);
      return;
    }
    case message_kind::dwr:
    case message_kind::dpr: {
      base_info info;
      auto err = parse_base(msg, info);
      build_dwa(out, h, self, err ? err.result_code : result::success);
      check_answer(out);
      return;
    }
    case message_kind::acr:
    case message_kind::ccr: {
      charging_request req;
      decode_limits lim;
      lim.max_avp_depth = 4;
      auto err = parse_charging_request(msg, lim, req);
      build_charging_answer(out, req.ctx, self, err ? err.result_code : result::success,
                            err.failed_avp, err.message);
      check_answer(out);
      if (!err) {
        (void)imsi_to_integer(req.imsi);
        (void)record_key(req.ctx.session_id, h.command, req.ctx.record_number);
        (void)end_to_end_key(req.origin_host, h.end_to_end);
      }
      return;
    }
    default:
      return;
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  bytes stream{data, size};
  std::size_t off = 0;
  while (off < stream.size()) {
    std::uint32_t len = 0;
    const auto st = check_frame(stream.subspan(off), 65536, len);
    if (st != frame_status::complete)
      break; // the server closes the connection here
    check(len >= header_size && len % 4 == 0 && off + len <= stream.size());
    one_frame(stream.subspan(off, len));
    off += len;
  }
  return 0;
}
