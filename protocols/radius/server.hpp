#pragma once
// The RADIUS accounting server (RFC 2866, RFC 5080): UDP listeners, the
// client table, validation, the RFC 5080 §2.2.2 response cache, and the
// bridge to the SIM layer. An Accounting-Response goes out only once the SIM
// layer acknowledges the observation (DESIGN §5); everything invalid is
// silently discarded, counted by reason and logged rate-limited.
//
// Threads: `io_threads` workers, each running its own io_context with its
// own SO_REUSEPORT socket per listener (the kernel spreads NAS source
// addresses across them), each with its own response cache, so the packet
// path takes no lock. Datagrams are read and answered in batches
// (recvmmsg/sendmmsg). Asio stays out of this header.
//
//   radius::radius_server server{cfg.radius, sim_layer, registry};
//   if (auto started = server.start(); !started) { log started.error(); return 1; }
//   ...  server.reload(new_cfg.radius);   // SIGHUP: clients, window, rules
//   server.stop();                        // stop reading, drain, close

#include "actors/ports.hpp"
#include "config/section.hpp"
#include "protocols/radius/config.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace prometheus {
class Registry;
}

namespace imeilock::radius {

/// Counters a test or the daemon can read without scraping (sums over threads).
struct server_stats {
  std::uint64_t received = 0;    ///< datagrams read
  std::uint64_t answered = 0;    ///< Accounting-Responses sent (fresh, not resent)
  std::uint64_t resent = 0;      ///< duplicates answered from the response cache
  std::uint64_t in_progress = 0; ///< duplicates dropped while still being processed
  std::uint64_t submitted = 0;   ///< observations handed to the SIM layer
  std::uint64_t no_imsi = 0;     ///< session records without a usable IMSI (answered)
  std::uint64_t discarded[discard_reason_count] = {};
  std::uint64_t discarded_total() const;
};

/// The accounting server. Not copyable; start() once, stop() once.
class radius_server {
public:
  radius_server(const radius_config& cfg, actors::observation_sink& sink,
                prometheus::Registry& registry);
  ~radius_server();
  radius_server(const radius_server&) = delete;
  radius_server& operator=(const radius_server&) = delete;

  /// Opens every listener and starts the I/O threads (none when `enabled`
  /// is false). sys_ec::listen_failed naming the address ("cannot listen on
  /// 127.0.0.1:1813: Address in use"), config::ec::invalid for a
  /// configuration that fails validate(). Called once (IMEILOCK_ASSERT).
  expected<void> start();

  /// The bound addresses, one per configured listener, with the real port
  /// when the configuration said 0.
  std::vector<config::endpoint> local_endpoints() const;

  /// Applies a new configuration from any thread: clients and secrets,
  /// duplicate window, cache size, in-flight limit, User-Name rules.
  /// Listener and thread changes need a restart (logged). config::ec::invalid
  /// if `cfg` is invalid; the running configuration is then kept.
  expected<void> reload(const radius_config& cfg);

  /// Stops reading, waits up to drain_timeout for requests in flight to be
  /// answered, closes the sockets and joins the threads. Idempotent.
  void stop();

  /// A snapshot of the counters.
  server_stats stats() const;

private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

} // namespace imeilock::radius
