#pragma once
// The RADIUS wire format (RFC 2865 §3, §5; RFC 2866; RFC 3579 §3.2;
// RFC 5176): parsing and validating a datagram without copying it, checking
// and computing authenticators, and building the few packets we send.
// Pure: no sockets, no clocks, no exceptions. Every way a datagram can be
// refused has a discard_reason, so the server can count it.

#include "protocols/radius/md5.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace imeilock::radius {

using bytes = std::span<const std::uint8_t>;

/// RFC 2865 §3 / RFC 2866 §3 / RFC 5176 §2.3 packet codes.
enum class code : std::uint8_t {
  access_request = 1,
  access_accept = 2,
  access_reject = 3,
  accounting_request = 4,
  accounting_response = 5,
  access_challenge = 11,
  disconnect_request = 40,
  disconnect_ack = 41,
  disconnect_nak = 42,
  coa_request = 43,
  coa_ack = 44,
  coa_nak = 45,
};

/// Attribute types we read or write (RFC 2865 §5, RFC 2866 §5, RFC 3579, RFC 5176).
namespace attr {
inline constexpr std::uint8_t user_name = 1;
inline constexpr std::uint8_t nas_ip_address = 4;
inline constexpr std::uint8_t nas_port = 5;
inline constexpr std::uint8_t framed_ip_address = 8;
inline constexpr std::uint8_t vendor_specific = 26;
inline constexpr std::uint8_t called_station_id = 30;
inline constexpr std::uint8_t calling_station_id = 31;
inline constexpr std::uint8_t proxy_state = 33;
inline constexpr std::uint8_t nas_identifier = 32;
inline constexpr std::uint8_t acct_status_type = 40;
inline constexpr std::uint8_t acct_delay_time = 41;
inline constexpr std::uint8_t acct_input_octets = 42;
inline constexpr std::uint8_t acct_output_octets = 43;
inline constexpr std::uint8_t acct_session_id = 44;
inline constexpr std::uint8_t acct_session_time = 46;
inline constexpr std::uint8_t acct_input_packets = 47;
inline constexpr std::uint8_t acct_output_packets = 48;
inline constexpr std::uint8_t acct_terminate_cause = 49;
inline constexpr std::uint8_t acct_multi_session_id = 50;
inline constexpr std::uint8_t acct_input_gigawords = 52;
inline constexpr std::uint8_t acct_output_gigawords = 53;
inline constexpr std::uint8_t event_timestamp = 55;
inline constexpr std::uint8_t message_authenticator = 80;
inline constexpr std::uint8_t nas_ipv6_address = 95;
inline constexpr std::uint8_t error_cause = 101;
} // namespace attr

/// 3GPP vendor-specific attributes (TS 29.061 §16.4.7), vendor 10415.
namespace tgpp {
inline constexpr std::uint32_t vendor_id = 10415;
inline constexpr std::uint8_t imsi = 1;
inline constexpr std::uint8_t imeisv = 20;
} // namespace tgpp

inline constexpr std::size_t header_size = 20;
inline constexpr std::size_t authenticator_size = 16;
/// RFC 2865 §3: "The maximum length is 4096".
inline constexpr std::size_t max_packet_size = 4096;

using authenticator = std::array<std::uint8_t, authenticator_size>;

/// Why a datagram was silently discarded (RFC 2865 §3, RFC 2866 §3).
/// The server counts each; the names are metric label values.
enum class discard_reason : std::uint8_t {
  too_short,                 ///< fewer than 20 octets
  oversize,                  ///< datagram or Length field above 4096
  bad_length_field,          ///< Length field below 20
  length_mismatch,           ///< datagram shorter than its Length field
  attribute_too_short,       ///< an attribute length below 2
  attribute_overrun,         ///< an attribute runs past the end of the packet
  unexpected_code,           ///< not an Accounting-Request on the accounting port
  unknown_client,            ///< source address not in the client table
  bad_authenticator,         ///< Request Authenticator does not verify (wrong secret)
  bad_message_authenticator, ///< Message-Authenticator wrong or malformed
  missing_status_type,       ///< RFC 2866 §5.1: Acct-Status-Type is required
  in_progress,               ///< a retransmit of a request still being processed
  overloaded,                ///< the SIM layer shed it: no answer, the NAS retries
  not_durable,               ///< the SIM layer could not commit: no answer
  shutting_down,             ///< arrived or finished while stopping
  not_owner,                 ///< more than one node: the SIM's shard is served by another node
};
inline constexpr std::size_t discard_reason_count = 16;
std::string_view to_string(discard_reason r);

struct parse_result;

/// One attribute as found in a packet; `value` points into the datagram.
struct attribute {
  std::uint8_t type = 0;
  bytes value;
};

/// A validated packet; views into the caller's buffer, which must outlive it.
class packet_view {
public:
  code packet_code() const { return static_cast<code>(data_[0]); }
  std::uint8_t identifier() const { return data_[1]; }
  /// The packet as its Length field says (trailing padding dropped).
  bytes raw() const { return data_; }
  bytes authenticator_bytes() const { return data_.subspan(4, authenticator_size); }
  /// All attributes, in order.
  bytes attributes() const { return data_.subspan(header_size); }

  /// The first attribute of `type`.
  std::optional<bytes> find(std::uint8_t type) const;
  /// The first vendor-specific sub-attribute `vendor`/`type` in the RFC 2865
  /// §5.26 recommended format; malformed VSAs are skipped (RFC 6929 §2.8).
  std::optional<bytes> find_vendor(std::uint32_t vendor, std::uint8_t type) const;

  /// Calls fn(attribute) for each attribute; stops early if fn returns false.
  template <class Fn>
  void for_each(Fn&& fn) const {
    std::size_t pos = header_size;
    while (pos + 2 <= data_.size()) {
      const std::uint8_t len = data_[pos + 1];
      if (!fn(attribute{data_[pos], data_.subspan(pos + 2, len - 2u)}))
        return;
      pos += len;
    }
  }

private:
  friend parse_result parse(bytes datagram);
  explicit packet_view(bytes data) : data_(data) {}
  bytes data_;

public:
  packet_view() = default;
};

/// The outcome of parse(): a packet, or why it is discarded.
struct parse_result {
  std::optional<packet_view> packet;
  discard_reason reason = discard_reason::too_short; ///< meaningful when !packet
};

/// RFC 2865 §3 and §5: checks the header and walks the attributes.
/// Octets beyond the Length field are padding and ignored.
parse_result parse(bytes datagram);

/// RFC 2866 §3 (and RFC 5176 §2.3 for Disconnect/CoA requests): the Request
/// Authenticator is MD5(Code+Identifier+Length+16 zero octets+Attributes+Secret).
authenticator request_authenticator(bytes packet, bytes secret);
/// True when the packet's Request Authenticator verifies with `secret`.
bool verify_request_authenticator(const packet_view& p, bytes secret);

/// RFC 2865 §3: Response Authenticator =
/// MD5(Code+Identifier+Length+Request Authenticator+Attributes+Secret).
authenticator response_authenticator(bytes response, bytes request_auth, bytes secret);
/// True when a response's authenticator matches the request it answers.
bool verify_response_authenticator(const packet_view& response, bytes request_auth, bytes secret);

/// Result of checking a Message-Authenticator (RFC 3579 §3.2).
enum class message_auth_status : std::uint8_t { absent, ok, bad };
/// Checks the Message-Authenticator of a request whose authenticator field is
/// computed from the contents (Accounting-, Disconnect-, CoA-Request): the
/// HMAC-MD5 is taken with the authenticator field and the attribute's value
/// both zeroed (RFC 5176 §3.5, RFC 5080 §2.2.2 practice).
message_auth_status check_request_message_authenticator(const packet_view& p, bytes secret);
/// The same for a response: HMAC over the packet with the Request
/// Authenticator in the authenticator field (RFC 3579 §3.2).
message_auth_status check_response_message_authenticator(const packet_view& p, bytes request_auth,
                                                         bytes secret);

/// A 20-octet Accounting-Response (RFC 2866 §4.2: no attributes needed).
std::array<std::uint8_t, header_size> make_accounting_response(std::uint8_t identifier,
                                                               bytes request_auth, bytes secret);

/// The Accounting-Response to `request`, with its Proxy-State attributes
/// copied in order (RFC 2865 §5.33: a proxy relies on getting them back).
/// Writes into `out`, which needs accounting_response_size(request) octets;
/// returns the length written.
std::size_t write_accounting_response(const packet_view& request, bytes secret,
                                      std::span<std::uint8_t> out);
/// The length of that response: 20 + the Proxy-State attributes.
std::size_t accounting_response_size(const packet_view& request);

/// Appends attributes to a packet under construction.
class packet_builder {
public:
  packet_builder(code c, std::uint8_t identifier);
  /// False (and nothing added) if the value does not fit (253 octets, 4096 total).
  bool add(std::uint8_t type, bytes value);
  bool add(std::uint8_t type, std::string_view value);
  bool add_u32(std::uint8_t type, std::uint32_t value);
  /// Adds a Message-Authenticator placeholder, filled in by finish_request/finish_response.
  bool add_message_authenticator();
  /// Finishes a request whose authenticator is computed (Accounting-,
  /// Disconnect-, CoA-Request): Message-Authenticator first, then the
  /// Request Authenticator (RFC 5176 §3.5).
  std::vector<std::uint8_t> finish_request(bytes secret);
  /// Finishes a response to a request with `request_auth`.
  std::vector<std::uint8_t> finish_response(bytes request_auth, bytes secret);

private:
  void set_length();
  std::vector<std::uint8_t> buf_;
  std::size_t message_auth_at_ = 0; ///< offset of the MA value, 0 if none
};

/// Reads a 4-octet integer attribute value (RFC 2865 §5: "integer").
std::optional<std::uint32_t> read_u32(bytes value);

inline bytes as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_string(bytes b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

} // namespace imeilock::radius
