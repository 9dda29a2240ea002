#pragma once
// Configuration of the operator interface: the HTTP API listener and its
// tokens (`api:` section) and the event webhooks (`webhooks:` section).
// Every default below is the one the daemon runs with when the key is absent.

#include "common/http_url.hpp"
#include "config/section.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace imeilock::api {

using namespace std::chrono_literals;

/// The `api:` section.
struct api_config {
  /// Addresses the HTTP server listens on (IPv4 or IPv6; port 0 = any, tests).
  std::vector<config::endpoint> listen{config::endpoint{"127.0.0.1", 8080}};
  /// Bearer tokens allowed to read and write (place orders, upsert SIMs).
  std::vector<std::string> tokens;
  /// Bearer tokens allowed to read only (writes answer 403).
  std::vector<std::string> read_only_tokens;
  /// A file with more tokens, one per line: `rw TOKEN` or `ro TOKEN`;
  /// blank lines and lines starting with '#' are ignored. Empty: none.
  std::string token_file;
  /// Largest request head (request line + headers) accepted, bytes (431 above).
  std::uint32_t max_header_bytes = 16 * 1024;
  /// Largest request body accepted, bytes (413 above). CSV imports are the
  /// big ones: about 60 bytes per SIM.
  std::uint32_t max_body_bytes = 8 * 1024 * 1024;
  /// A keep-alive connection waiting for its next request is closed after this long.
  std::chrono::milliseconds idle_timeout = 60s;
  /// Time to send a complete request head: from accept for a new connection,
  /// from the first byte for the next request on a keep-alive one. Seconds,
  /// so a client that connects and sends nothing (or trickles) frees its slot.
  std::chrono::milliseconds header_timeout = 10s;
  /// A request whose answer from the SIM layer takes longer gets 504.
  std::chrono::milliseconds request_timeout = 30s;
  /// Open connections at most. When full, a new connection evicts the oldest
  /// connection that has not yet sent a request with a valid token; if every
  /// open connection has, the new one is closed at once.
  std::uint32_t max_connections = 512;
  /// Open connections at most from one source address (IPv6: one /64). Beyond
  /// it the source's oldest connection without a valid token is evicted, or
  /// the new one closed if it has none.
  std::uint32_t max_connections_per_source = 64;
  /// Serve the dashboard at /ui.
  bool ui = true;
};

/// Reads `api:` strictly (unknown keys and out-of-range values throw config::error).
void load(api_config& cfg, config::section s);

/// The tokens in force, from the configuration and its token file.
struct token_set {
  std::vector<std::string> read_write;
  std::vector<std::string> read_only;
  bool empty() const { return read_write.empty() && read_only.empty(); }
};

/// Collects the tokens of `cfg`, reading its token file: sys_ec::file_failed
/// when the file cannot be read, config::ec::invalid naming "file:line" for
/// a bad line.
expected<token_set> resolve_tokens(const api_config& cfg);

/// One receiver of event webhooks.
struct webhook_target {
  /// http://host[:port]/path or https://host[:port]/path.
  std::string url;
  /// Event names sent to this URL (see webhook_event_names()); empty = all.
  std::vector<std::string> events;
  /// HMAC-SHA256 key for the X-Imeilock-Signature header.
  std::string secret;
  /// File holding the key (trailing newline ignored); used when `secret` is empty.
  std::string secret_file;
  /// https: CA file (empty: system store) and optional client certificate.
  http::tls_files tls;

  friend bool operator==(const webhook_target&, const webhook_target&) = default;
};

/// The `webhooks:` section.
struct webhook_config {
  std::vector<webhook_target> targets;
  /// Deliveries waiting per target; beyond it the oldest is dropped and counted.
  std::uint32_t queue_size = 10000;
  /// Attempts per delivery before it is dropped (counted, logged).
  std::uint32_t max_attempts = 10;
  /// First retry delay; doubles each attempt up to max_backoff.
  std::chrono::milliseconds initial_backoff = 1s;
  std::chrono::milliseconds max_backoff = 5min;
  /// Connect + send + answer, per attempt.
  std::chrono::milliseconds timeout = 10s;

  friend bool operator==(const webhook_config&, const webhook_config&) = default;
};

/// Reads `webhooks:` strictly; reads each secret_file.
void load(webhook_config& cfg, config::section s);

/// The event names a target may subscribe to, as sent in "event".
const std::vector<std::string>& webhook_event_names();

} // namespace imeilock::api
