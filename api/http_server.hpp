#pragma once
// The operator API's HTTP server (Boost.Beast, HTTP/1.1 with keep-alive),
// serving the routes of api/router.hpp, the OpenAPI document and the
// dashboard. Beast stays inside http_server.cpp; this header needs no Boost.
//
//   api::http_server api{io, cfg.api, sim_layer, registry};
//   if (auto started = api.start(); !started) { log started.error(); ... }
//   ... once every listener is bound and the store is open:
//   api.set_ready(true);
//   ... SIGHUP: if (auto r = api.reload(new_cfg.api); !r) log it, the old tokens stay.
//   api.stop();

#include "actors/ports.hpp"
#include "api/api_config.hpp"
#include "config/section.hpp"

#include <memory>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}
namespace prometheus {
class Registry;
}

namespace imeilock::api {

/// The HTTP API. All methods are thread-safe; handlers run on `io` (any
/// number of threads may run it). `service` must outlive the server.
class http_server {
public:
  http_server(boost::asio::io_context& io, const api_config& cfg, actors::sim_service& service,
              prometheus::Registry& registry);
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// Binds every configured address and starts accepting. sys_ec::listen_failed
  /// naming the address that failed (nothing stays bound then); the token
  /// file's errors as resolve_tokens() gives them.
  expected<void> start();

  /// The addresses actually bound (the real port when the config said 0).
  std::vector<config::endpoint> local_endpoints() const;

  /// Stops accepting and closes every connection. Idempotent.
  void stop();

  /// What GET /readyz answers: true once listeners are bound and the store is open.
  void set_ready(bool ready);

  /// Applies a new configuration's tokens, limits, timeouts and `ui` switch.
  /// Listen addresses need a restart (a change is logged). On error (e.g. an
  /// unreadable token file) nothing changes and the error says why.
  expected<void> reload(const api_config& cfg);

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

} // namespace imeilock::api
