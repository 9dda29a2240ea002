#pragma once
// The Disconnect-Request sender (RFC 5176, off by default). When the SIM
// layer reports an IMEI-lock violation seen over RADIUS, it asks the NAS
// that reported the session to end it, so that less data flows before the
// bar order completes. The bar is raised regardless; this only narrows the
// window. Each request carries only NAS and session identification
// attributes (RFC 5176 §3), is retransmitted with the same Identifier and
// authenticator with exponential backoff, and its outcome (ACK, NAK with
// Error-Cause, timeout) goes to metrics, the log and an audit hook.

#include "actors/ports.hpp"
#include "protocols/radius/config.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}
namespace prometheus {
class Registry;
}

namespace imeilock::radius {

/// How a Disconnect-Request ended.
enum class disconnect_outcome : std::uint8_t {
  ack,        ///< Disconnect-ACK (41)
  nak,        ///< Disconnect-NAK (42), see error_cause
  timeout,    ///< no valid answer after all retransmissions
  no_client,  ///< the NAS is not in the client table: no secret to sign with
  send_error, ///< the request could not be sent (socket error)
};
std::string_view to_string(disconnect_outcome o);

/// The outcome of one Disconnect-Request, for the SIM's audit log (R14).
struct disconnect_result {
  std::string iccid;
  std::uint64_t imsi = 0;
  std::string nas_address;
  std::uint16_t nas_port = 0;
  std::string acct_session_id;
  disconnect_outcome outcome = disconnect_outcome::timeout;
  std::uint32_t error_cause = 0; ///< RFC 5176 §3.6 Error-Cause of a NAK, 0 if none
  std::uint32_t attempts = 0;    ///< datagrams sent
  std::int64_t at_ms = 0;        ///< when the outcome was known, unix ms
};

/// Subscribes to the SIM layer; sends on `violation` events that carry a
/// disconnect target. Runs on the given io_context, which must outlive it;
/// on_event() is thread-safe and never blocks.
class disconnect_sender : public actors::sim_listener {
public:
  disconnect_sender(boost::asio::io_context& io, const radius_config& cfg,
                    prometheus::Registry& registry);
  ~disconnect_sender() override;
  disconnect_sender(const disconnect_sender&) = delete;
  disconnect_sender& operator=(const disconnect_sender&) = delete;

  void on_event(const actors::sim_event& ev) override;

  /// Called on the io_context's thread with each outcome (the lead wires it
  /// to the SIM's audit log). Set before events arrive.
  void set_result_hook(std::function<void(const disconnect_result&)> hook);

  /// New clients/secrets/ports/timeouts; thread-safe. config::ec::invalid
  /// (nothing changes) when a client entry is bad.
  expected<void> reload(const radius_config& cfg);

  /// Closes the sockets; pending requests end without an outcome.
  void stop();

  /// Sends a Disconnect-Request for `target` regardless of events (tests, tools).
  void disconnect(const actors::disconnect_target& target, std::string iccid = {},
                  std::uint64_t imsi = 0);

private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

} // namespace imeilock::radius
