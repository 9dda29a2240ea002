#pragma once
// The Diameter front-end: a TCP Diameter node (RFC 6733) that accepts
// connections from configured peers, exchanges capabilities, keeps the
// watchdog (RFC 3539), and turns every Rf ACR (application 3) and Gy CCR
// (application 4) into an actors::observation. The answer (ACA/CCA) leaves
// only after the SIM layer acknowledged the observation (DESIGN §5).
//
// Gy: imeilockd is not a charging system. It answers CCRs with 2001 and
// grants nothing; Gy support is for tap or mirror deployments (a DRA copying
// CCRs to us), never as the OCS of record.
//
// Answers by SIM layer outcome (RFC 6733 §7.1):
//   ok, unknown_sim            -> 2001 DIAMETER_SUCCESS
//   overloaded                 -> 3004 DIAMETER_TOO_BUSY, E bit
//   not_owner                  -> 3002 DIAMETER_UNABLE_TO_DELIVER, E bit: another
//      node serves the SIM's shard (more than one node, docs/cluster.md); the
//      routing agent sends the request to an alternate peer
//   store_failed, shutting_down-> 3004 DIAMETER_TOO_BUSY, E bit: nothing was
//      made durable, and 3004 tells the client at once to send the record to
//      an alternate peer (RFC 6733 §7.1.3) instead of waiting for its Tx
//      timer; its accounting record stays in its own store for retry (§9.4).
//
// Threading: every handler runs on one strand of the given io_context, which
// may be run by any number of threads. The sink and the registry must
// outlive the server; call stop() and wait for its callback before
// destroying it.

#include "protocols/diameter/config.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}
namespace prometheus {
class Registry;
}
namespace imeilock::actors {
class observation_sink;
}

namespace imeilock::diameter {

struct server_impl;

/// A Diameter node listening for peers.
class diameter_server {
public:
  diameter_server(boost::asio::io_context& io, const diameter_config& cfg,
                  actors::observation_sink& sink, prometheus::Registry& registry);
  ~diameter_server();
  diameter_server(const diameter_server&) = delete;
  diameter_server& operator=(const diameter_server&) = delete;

  /// Binds every listener and starts accepting; sys_ec::listen_failed naming
  /// the address that could not be bound.
  expected<void> start();

  /// The bound addresses (after start(); port 0 resolved to the real port).
  std::vector<config::endpoint> local_endpoints() const;

  /// Stops accepting, sends DPR (REBOOTING) to every open peer once its
  /// pending requests are answered, waits for DPAs up to dpr_timeout, closes
  /// everything, then calls `done` (on the io_context). Safe to call once.
  void stop(std::function<void()> done);

  /// Applies a new configuration's peers, watchdog and limits (listeners and
  /// our identity need a restart). Peers no longer configured get a DPR
  /// (DO_NOT_WANT_TO_TALK_TO_YOU) and are closed. `cfg` must be valid.
  void reload(const diameter_config& cfg);

private:
  std::shared_ptr<server_impl> impl_;
};

} // namespace imeilock::diameter
