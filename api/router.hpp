#pragma once
// The API's routes and their handlers, free of any networking: a request
// comes in as plain strings, the answer goes out through a callback (called
// exactly once, from any thread). http_server feeds it from Beast; tests can
// call it directly.

#include "actors/ports.hpp"
#include "api/api_config.hpp"
#include "api/request.hpp"

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace imeilock::api {

using respond_fn = std::function<void(response)>;

/// A route of the API. `write` routes need a read-write token; `open` routes
/// need no token at all.
struct route_info {
  std::string_view method;
  std::string_view path; ///< OpenAPI path template, e.g. "/v1/sims/{iccid}"
  bool write = false;
  bool open = false;
};

/// Every route the server answers (the OpenAPI test walks this list).
const std::vector<route_info>& routes();

/// More than one node (docs/cluster.md "Serving"): the answer to an operator
/// write with request target `target` (path and query, as received) for a
/// SIM whose shard `owner` serves, not this node. 307 Temporary Redirect to
/// the owner's api_url + `target` (the client repeats the method and body
/// there), with a JSON body naming the shard and its owner; 503 with
/// Retry-After when the shard has no live owner right now or the owner
/// advertises no api_url. Every write route answers through this.
response owner_answer(std::string_view target, const actors::shard_owner& owner);

/// Dispatches requests to the SIM layer. Thread-safe.
class router {
public:
  explicit router(actors::sim_service& service);

  /// Replaces the tokens in force (config reload).
  void set_tokens(token_set tokens);
  /// Readiness, as /readyz reports it.
  void set_ready(bool ready) { ready_.store(ready); }
  bool ready() const { return ready_.load(); }
  /// Whether /ui is served.
  void set_ui(bool enabled) { ui_.store(enabled); }

  /// Handles one request; `done` runs exactly once, possibly on another thread.
  void handle(request req, respond_fn done);

  /// What an Authorization header's bearer token allows, in constant time.
  /// The server asks it too: a connection that carried a valid token keeps its slot.
  enum class access : std::uint8_t { none, read_only, read_write };
  access authenticate(std::string_view authorization) const;

  struct call; ///< one request in progress (router.cpp)

private:
  actors::sim_service& service_;
  mutable std::mutex tokens_mutex_;
  std::shared_ptr<const token_set> tokens_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> ui_{true};
};

} // namespace imeilock::api
