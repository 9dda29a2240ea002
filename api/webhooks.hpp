#pragma once
// Event webhooks: every SIM event the SIM layer reports (violation, bar and
// unbar completed, lock enabled / disabled / set from the first IMEI, ...) is
// POSTed as JSON to the targets subscribed to it:
//
//   {"event": "violation", "iccid": "8944...", "imsi": "234...", "imei": "3534...",
//    "locked_imei": "3512...", "order_id": 17, "at": "2026-11-25T02:46:04.123Z"}
//
// with `X-Imeilock-Signature: sha256=<hex HMAC-SHA256 of the body with the
// target's secret>`, `X-Imeilock-Event` and `X-Imeilock-Delivery` (unique id,
// the same across retries). A 2xx answer is success; anything else, or no
// answer within `timeout`, is retried with exponential backoff up to
// `max_attempts`. Each target has its own bounded queue and delivers in order.
//
// https targets verify the server's certificate (chain against the system CA
// store or the target's tls.ca_file, dates, host name) and may present a
// client certificate; a failed check is a failed attempt like a refused
// connection, retried and counted, its reason ("certificate has expired",
// "hostname mismatch", "unknown CA") in the webhook.retry / gave_up log lines.
//
// reload() applies a changed `webhooks:` section without a restart: targets
// whose settings are unchanged keep their queue; new or changed ones
// (URL, secret, events, tls) start afresh and the ones they replace stop,
// dropping (and counting) what they still had queued.
//
//   api::webhook_notifier hooks{io, cfg.webhooks, registry};
//   sim_layer.add_listener(hooks);   // the SIM layer calls on_event()
//   ...
//   hooks.stop();

#include "actors/ports.hpp"
#include "api/api_config.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace boost::asio {
class io_context;
}
namespace prometheus {
class Registry;
}

namespace imeilock::api {

/// The webhook body for one event.
std::string webhook_payload(const actors::sim_event& ev);
/// The event name for a notice, as in "event" (see webhook_event_names()).
std::string_view webhook_event_name(lock::notice what);
/// Lower-case hex HMAC-SHA256 of `data` with `key`.
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

/// Delivers SIM events to webhook targets. on_event() never blocks: it
/// queues and returns; deliveries run on `io`.
class webhook_notifier : public actors::sim_listener {
public:
  webhook_notifier(boost::asio::io_context& io, const webhook_config& cfg,
                   prometheus::Registry& registry);
  ~webhook_notifier() override;
  webhook_notifier(const webhook_notifier&) = delete;
  webhook_notifier& operator=(const webhook_notifier&) = delete;

  /// Queues `ev` for every target subscribed to it. Thread-safe, non-blocking.
  void on_event(const actors::sim_event& ev) override;

  /// Applies `next` (SIGHUP). Changes nothing and returns http::ec::bad_tls_files
  /// when a new target's TLS files cannot be used. Thread-safe with on_event().
  expected<void> reload(const webhook_config& next);

  /// Stops delivering; queued deliveries are dropped (counted). Idempotent.
  void stop();

  /// Deliveries queued or in flight, all targets (tests, shutdown drain).
  std::size_t pending() const;

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

} // namespace imeilock::api
