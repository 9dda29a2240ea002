// libFuzzer target for the RADIUS decoder: parse() must refuse or accept any
// datagram without reading out of bounds, and whatever it accepts must be
// safe to authenticate, walk and turn into an observation.
#include "protocols/radius/accounting.hpp"
#include "protocols/radius/codec.hpp"

#include <cstddef>
#include <cstdint>

using namespace imeilock::radius;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const bytes datagram{data, size};
  const parse_result r = parse(datagram);
  if (!r.packet)
    return 0;
  const packet_view& p = *r.packet;
  const bytes secret = as_bytes("testing123");
  (void)verify_request_authenticator(p, secret);
  (void)check_request_message_authenticator(p, secret);
  (void)check_response_message_authenticator(p, p.authenticator_bytes(), secret);
  (void)verify_response_authenticator(p, p.authenticator_bytes(), secret);
  std::size_t n = 0;
  p.for_each([&](const attribute& a) {
    n += a.value.size();
    return true;
  });
  if (auto s = p.find(attr::acct_status_type))
    (void)status_label(read_u32(*s).value_or(0));
  (void)p.find_vendor(tgpp::vendor_id, tgpp::imeisv);
  user_name_rules rules;
  rules.strip_prefixes = {"imsi-", "IMSI"};
  imeilock::actors::observation obs;
  (void)make_observation(p, rules, "192.0.2.1", 0, obs, true);
  (void)dedupe_key(p, "192.0.2.1");
  return n > max_packet_size ? 1 : 0;
}
