#pragma once
// The `radius:` section of imeilockd.yaml: listeners, clients (address or
// CIDR + shared secret), duplicate detection, User-Name rules and the
// Disconnect-Request (RFC 5176) sender. Pure data + a strict loader.

#include "config/section.hpp"
#include "protocols/radius/accounting.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace imeilock::radius {

/// One RADIUS client (a NAS, GGSN/PGW or proxy) allowed to send accounting.
struct client_config {
  std::string name;    ///< label in metrics and logs; defaults to `address`
  std::string address; ///< "10.1.2.3", "10.0.0.0/8", "2001:db8::/32"
  std::string secret;  ///< shared secret (RFC 2865 §3), non-empty
  /// Discard requests without a valid Message-Authenticator (RFC 3579 §3.2).
  bool require_message_authenticator = false;
  /// Disconnect-Request port for this client; 0: disconnect_config::port.
  std::uint16_t disconnect_port = 0;
  /// Secret for Disconnect-Requests to this client; empty: `secret`.
  std::string disconnect_secret;
};

/// The Disconnect-Request sender (RFC 5176), off by default.
struct disconnect_config {
  /// Keep each session's Disconnect target and send. The file's value is the
  /// old global switch, an alias (daemon::apply_disconnect_alias); the daemon
  /// then sets it to whether any network's imei_lock action is
  /// disconnect_and_bar.
  bool enabled = false;
  std::uint16_t port = 3799;               ///< RFC 5176 §3.1 default DAE port
  std::chrono::milliseconds timeout{1000}; ///< first retransmission timeout
  std::uint32_t retries = 3;               ///< retransmissions after the first send (backoff x2)
};

/// The whole `radius:` section.
struct radius_config {
  bool enabled = true;
  /// Listening addresses; "*:1813" / "[::]:1813" for all interfaces.
  std::vector<config::endpoint> listen{{"127.0.0.1", 1813}};
  /// I/O threads; each gets its own SO_REUSEPORT socket per listener.
  std::uint32_t io_threads = 1;
  /// RFC 5080 §2.2.2 response cache lifetime (5-30 s).
  std::chrono::milliseconds duplicate_window{10000};
  /// Upper bound on cached responses per I/O thread (oldest evicted first).
  std::uint32_t duplicate_cache_entries = 1'000'000;
  /// Requests waiting for the SIM layer per I/O thread; beyond this new ones
  /// are dropped unanswered (the NAS retries, DESIGN §5).
  std::uint32_t max_in_flight = 65536;
  /// SO_RCVBUF/SO_SNDBUF in bytes (the kernel may cap it).
  std::uint32_t socket_buffer = 4u << 20;
  /// Waiting for in-flight requests at stop().
  std::chrono::milliseconds drain_timeout{5000};
  user_name_rules user_name;
  std::vector<client_config> clients;
  disconnect_config disconnect;

  /// Succeeds when valid, else config::ec::invalid naming the problem.
  expected<void> validate() const;
};

/// Reads `s` into `cfg` strictly (unknown keys and out-of-range values throw
/// config::error). Keys absent keep the defaults above.
void load(radius_config& cfg, config::section s);

} // namespace imeilock::radius
