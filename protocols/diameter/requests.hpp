#pragma once
// Requests as a peer (PCEF, CTF, DRA) sends them: used by the tests, the
// load generator and the fuzzer's seed corpus, never by the server itself.

#include "protocols/diameter/wire.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace imeilock::diameter {

/// How a request carries the device identity.
enum class imei_form : std::uint8_t {
  none,
  uei_ascii,            ///< User-Equipment-Info, IMEISV as 16 ASCII digits
  uei_hex,              ///< User-Equipment-Info, TS 32.299: 15 digits + 'F' filler
  uei_tbcd,             ///< User-Equipment-Info, 8 bytes TBCD
  terminal_information, ///< 1401 { 1402 IMEI (15 digits), 1403 Software-Version (2 digits) }
  imeisv_3gpp,          ///< 3GPP-IMEISV (20, vendor 10415), 16 ASCII digits
};

/// One ACR (command 271, application 3) or CCR (272, application 4).
struct charging_spec {
  std::uint32_t command = command::accounting;
  std::string session_id = "client.example.net;1;1";
  std::string origin_host = "client.example.net";
  std::string origin_realm = "example.net";
  std::string destination_realm = "localdomain";
  std::uint32_t record_type = 2;   ///< Accounting-Record-Type / CC-Request-Type
  std::uint32_t record_number = 0; ///< Accounting-Record-Number / CC-Request-Number
  std::string imsi;                ///< Subscription-Id type 1, empty: none
  std::string msisdn;              ///< Subscription-Id type 0, empty: none
  imei_form form = imei_form::none;
  std::string imeisv; ///< 16 digits (14 identity + 2 SVN)
  /// Put identities inside Service-Information / PS-Information (TS 32.299).
  bool nested = false;
  std::uint32_t hop_by_hop = 1;
  std::uint32_t end_to_end = 1;
  std::uint8_t extra_flags = 0; ///< e.g. cmd_flag::retransmit
};

/// Appends the request to `out`.
void build_charging_request(std::vector<std::uint8_t>& out, const charging_spec& spec);

/// A CER advertising `auth_app` and `acct_app` (0xffffffff relay; 0: omit).
void build_cer(std::vector<std::uint8_t>& out, const std::string& origin_host,
               const std::string& origin_realm, std::uint32_t auth_app, std::uint32_t acct_app,
               std::uint32_t hop_by_hop = 1, std::uint32_t end_to_end = 1);

} // namespace imeilock::diameter
