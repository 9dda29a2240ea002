#pragma once
// Diameter messages this node understands: validation of requests (first
// error only, RFC 6733 §7), extraction of the SIM and device identities from
// Rf ACRs and Gy CCRs, the dedupe keys, and the answers we send.
// Pure: no I/O, no exceptions on the packet path.

#include "lock/imei.hpp"
#include "protocols/diameter/wire.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace imeilock::diameter {

/// Limits applied while decoding one message.
struct decode_limits {
  /// Deepest Grouped AVP nesting we descend into (message body = depth 0).
  std::uint32_t max_avp_depth = 8;
};

/// The first error found in a request, as RFC 6733 §7 wants it reported.
struct request_error {
  std::uint32_t result_code = 0; ///< 0: no error
  /// The offending AVP(s), encoded (padded), to go inside Failed-AVP; may be empty.
  std::vector<std::uint8_t> failed_avp;
  std::string_view message; ///< for Error-Message (static text)

  explicit operator bool() const { return result_code != 0; }
  /// 3xxx protocol errors travel in an answer-message with the E bit (RFC 6733 §7.2).
  bool protocol_error() const { return result_code >= 3000 && result_code < 4000; }
};

/// What kind of message a frame holds, from its header alone.
enum class message_kind : std::uint8_t {
  cer,
  cea,
  dwr,
  dwa,
  dpr,
  dpa,
  acr,
  ccr,
  other_request,
  other_answer,
};
message_kind classify(const header& h);
/// "CER", "ACR", ... for logs and metric labels.
std::string_view command_name(std::uint32_t command);

/// Everything needed to answer a request later (after the SIM layer's ack),
/// owning its strings so the frame buffer can be reused meanwhile.
struct answer_context {
  header request;                  ///< the request's header
  std::string session_id;          ///< empty: the request had none
  bool has_record = false;         ///< record type/number present and valid
  std::uint32_t record_type = 0;   ///< Accounting-Record-Type or CC-Request-Type
  std::uint32_t record_number = 0; ///< Accounting-Record-Number or CC-Request-Number
  bool has_acct_application_id = false;
  std::uint32_t acct_application_id = 0;
  std::uint32_t auth_application_id = 0; ///< CCR: echoed in the CCA (RFC 4006 §3.2)
  std::vector<std::uint8_t> proxy_info;  ///< Proxy-Info AVPs to echo, in order (RFC 6733 §6.2)
};

/// An ACR or CCR, reduced to what the lock needs.
struct charging_request {
  answer_context ctx;
  std::string origin_host;
  std::string origin_realm;
  std::string imsi;   ///< Subscription-Id type 1 (END_USER_IMSI), digits as sent
  std::string msisdn; ///< Subscription-Id type 0 (END_USER_E164)
  lock::imei_value imei;
  /// Where the IMEI was found: "uei", "terminal_information", "3gpp_imeisv", "" (none).
  std::string_view imei_source;
};

/// Parses and validates an ACR (application 3) or a CCR (application 4).
/// `msg` is the whole frame (check_frame() said complete). On error the
/// returned error is set and `out.ctx` holds what could be read to answer it.
request_error parse_charging_request(bytes msg, const decode_limits& lim, charging_request& out);

/// Checks the header of any request we receive: E bit on a request or
/// reserved bits -> 3008; unknown application -> 3007; known application but
/// unknown command -> 3001 (RFC 6733 §7.1.3, §6.1).
request_error check_request_header(const header& h);

/// Applications a peer can advertise in its CER (RFC 6733 §5.3.1, §6.11).
struct cer_info {
  header request;
  std::string origin_host;
  std::string origin_realm;
  std::uint32_t origin_state_id = 0;
  std::vector<std::uint32_t> auth_applications;
  std::vector<std::uint32_t> acct_applications; ///< including those inside VSAI
  std::string product_name;
};
/// Parses a CER; errors: 5005 for a missing Origin-Host/Origin-Realm/
/// Host-IP-Address/Vendor-Id/Product-Name, 5014 for bad AVP lengths.
request_error parse_cer(bytes msg, cer_info& out);

/// A DWR or DPR (and their answers): origin and, for DPR, Disconnect-Cause.
struct base_info {
  header hdr;
  std::string origin_host;
  std::string origin_realm;
  std::uint32_t result_code = 0;      ///< answers only
  std::uint32_t disconnect_cause = 0; ///< DPR only
};
/// Parses DWR/DPR (5005 if Origin-Host/Origin-Realm, or a DPR's
/// Disconnect-Cause, is missing) and DWA/DPA/CEA (no checks beyond framing).
request_error parse_base(bytes msg, base_info& out);

/// Our identity as sent in every message.
struct local_identity {
  std::string origin_host;
  std::string origin_realm;
  std::uint32_t origin_state_id = 0;
  std::uint32_t vendor_id = 0; ///< 0: no vendor (RFC 6733 §5.3.3)
  std::string product_name = "imeilockd";
  std::uint32_t firmware_revision = 1;
};

/// A Host-IP-Address value (RFC 6733 §4.3.1 Address): family + address bytes.
struct host_address {
  std::uint16_t family = 1; ///< 1 IPv4, 2 IPv6 (IANA address family numbers)
  std::vector<std::uint8_t> addr;
};

/// Success or error ACA/CCA for a charging request (RFC 6733 §9.7.2,
/// RFC 4006 §3.2). A 3xxx code gives an answer-message with the E bit.
void build_charging_answer(std::vector<std::uint8_t>& out, const answer_context& ctx,
                           const local_identity& self, std::uint32_t result_code,
                           bytes failed_avp = {}, std::string_view error_message = {});

/// A protocol-error answer to any request (RFC 6733 §7.2 answer-message),
/// E bit set, copying the request's command, application and ids.
void build_error_answer(std::vector<std::uint8_t>& out, const header& request,
                        std::string_view session_id, const local_identity& self,
                        std::uint32_t result_code, bytes failed_avp = {},
                        std::string_view error_message = {});

/// CEA (RFC 6733 §5.3.2): our capabilities; Auth-Application-Id 4,
/// Acct-Application-Id 3 and a Vendor-Specific-Application-Id for 3GPP.
void build_cea(std::vector<std::uint8_t>& out, const header& request, const local_identity& self,
               std::uint32_t result_code, const std::vector<host_address>& addresses,
               bytes failed_avp = {}, std::string_view error_message = {});
/// DWA (RFC 6733 §5.5.2).
void build_dwa(std::vector<std::uint8_t>& out, const header& request, const local_identity& self,
               std::uint32_t result_code = result::success);
/// DPA (RFC 6733 §5.4.2).
void build_dpa(std::vector<std::uint8_t>& out, const header& request, const local_identity& self,
               std::uint32_t result_code = result::success);
/// DWR we send (RFC 3539 §3.4.1).
void build_dwr(std::vector<std::uint8_t>& out, const local_identity& self, std::uint32_t hop_by_hop,
               std::uint32_t end_to_end);
/// DPR we send (RFC 6733 §5.4.1).
void build_dpr(std::vector<std::uint8_t>& out, const local_identity& self, std::uint32_t hop_by_hop,
               std::uint32_t end_to_end, std::uint32_t cause);

/// Dedupe key of an accounting record (RFC 6733 §9.4: Session-Id +
/// Accounting-Record-Number identify a record; CCRs likewise with
/// CC-Request-Number, RFC 4006 §8.2). Never 0.
std::uint64_t record_key(std::string_view session_id, std::uint32_t command,
                         std::uint32_t record_number);
/// Dedupe key of a retransmission (RFC 6733 §3: End-to-End Identifier +
/// Origin-Host are unique for at least 4 minutes). Never 0.
std::uint64_t end_to_end_key(std::string_view origin_host, std::uint32_t end_to_end);

/// Parses an IMSI of 5..15 ASCII digits into an integer; 0 if not an IMSI.
std::uint64_t imsi_to_integer(std::string_view digits);

} // namespace imeilock::diameter
