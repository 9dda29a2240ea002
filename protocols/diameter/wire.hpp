#pragma once
// Diameter on the wire (RFC 6733 §3, §4): the message header, AVP headers,
// framing checks on a byte stream, an AVP reader and a message writer.
// Pure: no I/O, no allocation on the read path, no exceptions.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace imeilock::diameter {

using bytes = std::span<const std::uint8_t>;

/// RFC 6733 §3: version 1, 20-byte header.
inline constexpr std::uint8_t version = 1;
inline constexpr std::size_t header_size = 20;

/// Vendor-Id of 3GPP (TS 29.230).
inline constexpr std::uint32_t vendor_3gpp = 10415;

/// Command flags (RFC 6733 §3).
namespace cmd_flag {
inline constexpr std::uint8_t request = 0x80;
inline constexpr std::uint8_t proxiable = 0x40;
inline constexpr std::uint8_t error = 0x20;
inline constexpr std::uint8_t retransmit = 0x10;
inline constexpr std::uint8_t reserved = 0x0f;
} // namespace cmd_flag

/// AVP flags (RFC 6733 §4.1).
namespace avp_flag {
inline constexpr std::uint8_t vendor = 0x80;
inline constexpr std::uint8_t mandatory = 0x40;
inline constexpr std::uint8_t protected_ = 0x20;
inline constexpr std::uint8_t reserved = 0x1f;
} // namespace avp_flag

/// Command codes this node handles.
namespace command {
inline constexpr std::uint32_t capabilities_exchange = 257; ///< CER/CEA (RFC 6733 §5.3)
inline constexpr std::uint32_t accounting = 271;            ///< ACR/ACA (RFC 6733 §9.7)
inline constexpr std::uint32_t credit_control = 272;        ///< CCR/CCA (RFC 4006 §3)
inline constexpr std::uint32_t device_watchdog = 280;       ///< DWR/DWA (RFC 6733 §5.5)
inline constexpr std::uint32_t disconnect_peer = 282;       ///< DPR/DPA (RFC 6733 §5.4)
} // namespace command

/// Application Ids (RFC 6733 §2.4, RFC 4006 §1.3).
namespace application {
inline constexpr std::uint32_t common = 0;
inline constexpr std::uint32_t accounting = 3;     ///< base accounting / 3GPP Rf
inline constexpr std::uint32_t credit_control = 4; ///< DCCA / 3GPP Gy
inline constexpr std::uint32_t relay = 0xffffffff;
} // namespace application

/// AVP codes used here (vendor 0 unless noted).
namespace avp_code {
inline constexpr std::uint32_t user_name = 1;
inline constexpr std::uint32_t imeisv_3gpp = 20; ///< 3GPP-IMEISV, vendor 10415 (TS 29.061)
inline constexpr std::uint32_t acct_session_id = 44;
inline constexpr std::uint32_t event_timestamp = 55;
inline constexpr std::uint32_t host_ip_address = 257;
inline constexpr std::uint32_t auth_application_id = 258;
inline constexpr std::uint32_t acct_application_id = 259;
inline constexpr std::uint32_t vendor_specific_application_id = 260;
inline constexpr std::uint32_t session_id = 263;
inline constexpr std::uint32_t origin_host = 264;
inline constexpr std::uint32_t supported_vendor_id = 265;
inline constexpr std::uint32_t vendor_id = 266;
inline constexpr std::uint32_t firmware_revision = 267;
inline constexpr std::uint32_t result_code = 268;
inline constexpr std::uint32_t product_name = 269;
inline constexpr std::uint32_t disconnect_cause = 273;
inline constexpr std::uint32_t origin_state_id = 278;
inline constexpr std::uint32_t failed_avp = 279;
inline constexpr std::uint32_t proxy_host = 280;
inline constexpr std::uint32_t error_message = 281;
inline constexpr std::uint32_t route_record = 282;
inline constexpr std::uint32_t destination_realm = 283;
inline constexpr std::uint32_t proxy_info = 284;
inline constexpr std::uint32_t proxy_state = 33;
inline constexpr std::uint32_t destination_host = 293;
inline constexpr std::uint32_t error_reporting_host = 294;
inline constexpr std::uint32_t origin_realm = 296;
inline constexpr std::uint32_t inband_security_id = 299;
inline constexpr std::uint32_t cc_request_number = 415;
inline constexpr std::uint32_t cc_request_type = 416;
inline constexpr std::uint32_t subscription_id = 443;
inline constexpr std::uint32_t subscription_id_data = 444;
inline constexpr std::uint32_t subscription_id_type = 450;
inline constexpr std::uint32_t service_context_id = 461;
inline constexpr std::uint32_t user_equipment_info = 458;
inline constexpr std::uint32_t user_equipment_info_type = 459;
inline constexpr std::uint32_t user_equipment_info_value = 460;
inline constexpr std::uint32_t accounting_record_type = 480;
inline constexpr std::uint32_t accounting_record_number = 485;
inline constexpr std::uint32_t service_information = 873;   ///< vendor 10415 (TS 32.299)
inline constexpr std::uint32_t ps_information = 874;        ///< vendor 10415 (TS 32.299)
inline constexpr std::uint32_t terminal_information = 1401; ///< vendor 10415 (TS 29.272)
inline constexpr std::uint32_t imei = 1402;                 ///< vendor 10415
inline constexpr std::uint32_t software_version = 1403;     ///< vendor 10415
} // namespace avp_code

/// Result-Code values (RFC 6733 §7.1, RFC 4006).
namespace result {
inline constexpr std::uint32_t success = 2001;
inline constexpr std::uint32_t command_unsupported = 3001;
inline constexpr std::uint32_t unable_to_deliver = 3002;
inline constexpr std::uint32_t too_busy = 3004;
inline constexpr std::uint32_t application_unsupported = 3007;
inline constexpr std::uint32_t invalid_hdr_bits = 3008;
inline constexpr std::uint32_t invalid_avp_bits = 3009;
inline constexpr std::uint32_t unknown_peer = 3010;
inline constexpr std::uint32_t avp_unsupported = 5001;
inline constexpr std::uint32_t invalid_avp_value = 5004;
inline constexpr std::uint32_t missing_avp = 5005;
inline constexpr std::uint32_t no_common_application = 5010;
inline constexpr std::uint32_t unable_to_comply = 5012;
inline constexpr std::uint32_t invalid_avp_length = 5014;
} // namespace result

/// Disconnect-Cause values (RFC 6733 §5.4.3).
namespace disconnect_cause {
inline constexpr std::uint32_t rebooting = 0;
inline constexpr std::uint32_t busy = 1;
inline constexpr std::uint32_t do_not_want_to_talk_to_you = 2;
} // namespace disconnect_cause

/// Big-endian helpers.
inline std::uint32_t load_u24(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 16) | (std::uint32_t{p[1]} << 8) | p[2];
}
inline std::uint32_t load_u32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         p[3];
}
inline void store_u24(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 16);
  p[1] = static_cast<std::uint8_t>(v >> 8);
  p[2] = static_cast<std::uint8_t>(v);
}
inline void store_u32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}
/// AVP data is padded to a multiple of 4 bytes (RFC 6733 §4).
constexpr std::size_t pad4(std::size_t n) {
  return (n + 3) & ~std::size_t{3};
}

/// The fixed message header (RFC 6733 §3).
struct header {
  std::uint8_t version = 0;
  std::uint32_t length = 0; ///< whole message, bytes, 24-bit
  std::uint8_t flags = 0;
  std::uint32_t command = 0; ///< 24-bit
  std::uint32_t application = 0;
  std::uint32_t hop_by_hop = 0;
  std::uint32_t end_to_end = 0;

  bool is_request() const { return (flags & cmd_flag::request) != 0; }
  bool is_error() const { return (flags & cmd_flag::error) != 0; }
  bool is_retransmit() const { return (flags & cmd_flag::retransmit) != 0; }
};

/// Decodes the 20 header bytes; `raw` must hold at least header_size bytes.
header decode_header(bytes raw);

/// What the next frame of a byte stream looks like.
enum class frame_status : std::uint8_t {
  complete,    ///< `length` bytes form one message
  need_more,   ///< not enough bytes yet to tell / to hold the message
  bad_version, ///< version != 1: the stream cannot be resynchronised
  bad_length,  ///< length < 20 or not a multiple of 4 (RFC 6733 §3)
  too_long,    ///< length above the configured maximum
};
std::string_view to_string(frame_status s);

/// Looks at the start of `buf` (a TCP stream): is a whole message there, and
/// how long is it? Invalid framing means the connection must be closed
/// (there is no way to find the next message boundary).
frame_status check_frame(bytes buf, std::size_t max_message_size, std::uint32_t& length);

/// One AVP as found in a message: views into the message bytes.
struct avp {
  std::uint32_t code = 0;
  std::uint8_t flags = 0;
  std::uint32_t vendor = 0;
  bytes data; ///< value, without padding
  bytes raw;  ///< header + value, without padding (for Failed-AVP)

  bool vendor_specific() const { return (flags & avp_flag::vendor) != 0; }
  bool mandatory() const { return (flags & avp_flag::mandatory) != 0; }
  std::string_view text() const {
    return {reinterpret_cast<const char*>(data.data()), data.size()};
  }
  /// Unsigned32/Enumerated/Integer32 value; false if the length is not 4.
  bool u32(std::uint32_t& out) const {
    if (data.size() != 4)
      return false;
    out = load_u32(data.data());
    return true;
  }
  bool is(std::uint32_t c, std::uint32_t v = 0) const { return code == c && vendor == v; }
};

/// Why an AVP sequence could not be walked (RFC 6733 §7.1.5: 5014).
enum class avp_error : std::uint8_t {
  none,
  truncated_header, ///< fewer bytes left than an AVP header
  bad_length,       ///< AVP length below its header size or beyond the enclosing data
  too_deep,         ///< grouped AVPs nested beyond the configured limit
};

/// Walks a sequence of AVPs (a message body or a Grouped AVP's value).
/// next() returns false at the end or on an error (see error()).
class avp_reader {
public:
  explicit avp_reader(bytes data) : data_(data) {}
  bool next(avp& out);
  avp_error error() const { return error_; }
  /// On error: the offset of the bad AVP within the data and its bytes so far.
  std::size_t error_offset() const { return pos_; }

private:
  bytes data_;
  std::size_t pos_ = 0;
  avp_error error_ = avp_error::none;
};

/// Finds the first AVP with `code`/`vendor` in `data`; false if absent or the
/// sequence is malformed before it.
bool find_avp(bytes data, std::uint32_t code, std::uint32_t vendor, avp& out);

/// Builds one message into a byte vector. Grouped AVPs: begin_group() returns
/// a mark, end_group(mark) fixes its length. finish() writes the message length.
class message_writer {
public:
  explicit message_writer(std::vector<std::uint8_t>& out) : out_(out) {}

  /// Starts a message at the end of the output vector.
  void begin(std::uint8_t flags, std::uint32_t command, std::uint32_t application,
             std::uint32_t hop_by_hop, std::uint32_t end_to_end);
  void add_raw(std::uint32_t code, std::uint8_t flags, std::uint32_t vendor, bytes value);
  void add_string(std::uint32_t code, std::string_view value,
                  std::uint8_t flags = avp_flag::mandatory, std::uint32_t vendor = 0);
  void add_u32(std::uint32_t code, std::uint32_t value, std::uint8_t flags = avp_flag::mandatory,
               std::uint32_t vendor = 0);
  void add_u64(std::uint32_t code, std::uint64_t value, std::uint8_t flags = avp_flag::mandatory,
               std::uint32_t vendor = 0);
  /// Copies an AVP found in another message as is (e.g. Proxy-Info, Failed-AVP content).
  void copy(const avp& a);
  /// Appends bytes that already are a well-formed, padded AVP sequence.
  void append_avps(bytes encoded);
  std::size_t begin_group(std::uint32_t code, std::uint8_t flags = avp_flag::mandatory,
                          std::uint32_t vendor = 0);
  void end_group(std::size_t mark);
  /// Sets the message length; returns the message's bytes within the output.
  bytes finish();

private:
  std::size_t put_avp_header(std::uint32_t code, std::uint8_t flags, std::uint32_t vendor,
                             std::size_t value_len);
  std::vector<std::uint8_t>& out_;
  std::size_t start_ = 0;
};

} // namespace imeilock::diameter
