#pragma once
// The `diameter:` section of imeilockd.yaml: our identity, listeners, the
// peers allowed to connect (RFC 6733 §2.1, §5.3), the watchdog (RFC 3539)
// and the limits that keep a peer from making us allocate without bound.
// Pure data + a strict loader.

#include "config/section.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace imeilock::diameter {

/// One peer (a PCEF/PGW, CTF, OCS or Diameter routing agent) allowed to connect.
struct peer_config {
  std::string origin_host; ///< the Origin-Host its CER must carry (compared case-insensitively)
  std::string realm;       ///< the Origin-Realm it must carry; empty: any
  /// Source addresses or CIDR prefixes it may connect from ("10.0.0.1",
  /// "10.0.0.0/24", "2001:db8::/32"); empty: any address.
  std::vector<std::string> addresses;
};

/// Limits on what a peer can make us hold.
struct limits_config {
  /// Largest message accepted, bytes (RFC 6733 allows 2^24-1; real ACRs are a few KB).
  std::uint32_t max_message_size = 65536;
  /// Grouped AVP nesting we descend into.
  std::uint32_t max_avp_depth = 8;
  /// Requests of one connection waiting for the SIM layer; beyond it new ones
  /// get 3004 DIAMETER_TOO_BUSY (DESIGN §5).
  std::uint32_t max_pending_per_connection = 4096;
  /// Answers queued for a peer that does not read them, bytes; beyond it we
  /// stop reading from that peer until it catches up.
  std::uint32_t max_write_buffer = 4u << 20;
  /// Open connections (all peers, including those still in CER wait). When
  /// full, a new connection evicts the oldest one still waiting for CER from
  /// an address no peer is configured with (or, if the newcomer comes from a
  /// configured peer's address, the oldest waiting for CER at all); connections
  /// past CER are never evicted.
  std::uint32_t max_connections = 256;
  /// Connections per configured peer.
  std::uint32_t max_connections_per_peer = 16;
  /// Answers kept for duplicate detection (RFC 6733 §9.4), oldest evicted first.
  std::uint32_t duplicate_cache_entries = 200000;
  /// How long an answer stays in the duplicate cache (RFC 6733 §3: End-to-End
  /// identifiers are unique for at least 4 minutes).
  std::chrono::milliseconds duplicate_window{240000};
};

/// The whole `diameter:` section.
struct diameter_config {
  bool enabled = true;
  std::string origin_host = "imeilockd.localdomain"; ///< our DiameterIdentity
  std::string origin_realm = "localdomain";
  /// Listening addresses; "[::]:3868" / "*:3868" for every interface.
  std::vector<config::endpoint> listen{{"127.0.0.1", 3868}};
  std::vector<peer_config> peers;
  /// RFC 3539 §3.4.1 Tw (at least 6 s); jittered by up to ±2 s.
  std::chrono::milliseconds watchdog{30000};
  /// How long a new connection may take to send its CER.
  std::chrono::milliseconds cer_timeout{10000};
  /// How long stop() waits for DPAs (and in-flight answers) before closing.
  std::chrono::milliseconds dpr_timeout{3000};
  /// Our Vendor-Id in CEA (0: none).
  std::uint32_t vendor_id = 0;
  limits_config limits;

  /// Succeeds when valid, else config::ec::invalid naming the problem.
  expected<void> validate() const;
};

/// Reads `s` into `cfg` strictly (unknown keys and out-of-range values throw
/// config::error). Keys absent keep the defaults above.
void load(diameter_config& cfg, config::section s);

/// A parsed address/CIDR prefix of peer_config::addresses.
struct address_prefix {
  std::uint16_t family = 0; ///< 4 or 6
  unsigned char addr[16] = {};
  std::uint32_t bits = 0;
};
/// Parses "10.0.0.1", "10.0.0.0/8", "::1", "2001:db8::/32"; an error
/// (config::ec::invalid) quoting `text` when it is neither.
expected<address_prefix> parse_prefix(const std::string& text);
/// True if `addr` (4 or 16 bytes; IPv4-mapped IPv6 is matched as IPv4) is in `p`.
bool prefix_contains(const address_prefix& p, const unsigned char* addr, std::size_t len);

} // namespace imeilock::diameter
