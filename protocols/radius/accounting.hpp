#pragma once
// From a validated Accounting-Request to what the SIM layer needs: the
// subscriber (IMSI, MSISDN), the device (3GPP-IMEISV, rule R2), the event
// kind, what a Disconnect-Request would need, and an idempotency key that
// survives retransmits with a new Identifier. Pure.

#include "actors/ports.hpp"
#include "protocols/radius/codec.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace imeilock::radius {

/// Acct-Status-Type values (RFC 2866 §5.1).
enum class status_type : std::uint32_t {
  start = 1,
  stop = 2,
  interim_update = 3,
  accounting_on = 7,
  accounting_off = 8,
};

/// The metric label for a status type: start, stop, interim, on, off, other.
std::string_view status_label(std::uint32_t status);

/// True for Start, Interim-Update and Stop: the records that name a session
/// and so can carry a subscriber and a device. Accounting-On/Off and the rest
/// are answered without an observation.
bool carries_session(std::uint32_t status);

/// How to find the IMSI in User-Name when 3GPP-IMSI is absent.
struct user_name_rules {
  /// Drop "@realm" (and anything after the first '@').
  bool strip_realm = true;
  /// Leading prefixes to drop, first match wins (e.g. "imsi-", "IMSI").
  std::vector<std::string> strip_prefixes;
};

/// Parses 6..15 ASCII digits into an IMSI; 0 if not an IMSI.
std::uint64_t parse_imsi(std::string_view digits);

/// The IMSI of a request: 3GPP-IMSI (TS 29.061, vendor 10415 type 1) if
/// present and valid, else User-Name after the rules; 0 when neither gives one.
std::uint64_t extract_imsi(const packet_view& p, const user_name_rules& rules);

/// The idempotency key of an accounting record: a 64-bit hash of what stays
/// the same when a NAS retransmits the record, possibly with a new Identifier
/// (RFC 5080 §2.2.2): NAS identity, Acct-Session-Id, Acct-Status-Type, the
/// counters and times of the record, the subscriber and device. It leaves out
/// the Identifier, the authenticators, Acct-Delay-Time (RFC 2866 §5.2: it
/// changes on a retransmit) and Message-Authenticator. Never 0.
std::uint64_t dedupe_key(const packet_view& p, std::string_view source_address);

/// Builds the observation for a Start/Interim/Stop request. `source_address`
/// is the datagram's source IP (text); `at_ms` the receive time. The
/// Disconnect target (a few allocations) is built only `with_disconnect`.
/// Returns false (obs untouched) when the request has no usable IMSI.
bool make_observation(const packet_view& p, const user_name_rules& rules,
                      std::string_view source_address, std::int64_t at_ms, actors::observation& obs,
                      bool with_disconnect);

/// Formats 4 octets as dotted IPv4 ("" if not 4 octets).
std::string format_ipv4(bytes value);

} // namespace imeilock::radius
