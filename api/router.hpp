#pragma once
// The API's routes and their handlers, free of any networking: a request
// comes in as plain strings, the answer goes out through a callback (called
// exactly once, from any thread). http_server feeds it from Beast; tests can
// call it directly.

#include "actors/ports.hpp"
#include "api/api_config.hpp"
#include "api/request.hpp"
#include "common/http_client.hpp"

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

/// More than one node: sends a request to another node's API and calls
/// `done` once with its answer (status 0: none), on any thread.
using forward_fn = std::function<void(const http::url& to, http::request req,
                                      std::function<void(http::response)> done)>;

/// The header that marks a request one node forwarded to another (an
/// import's lines of another node's shards): the node receiving it does not
/// forward again, so a lease moving meanwhile cannot make a loop.
inline constexpr std::string_view forwarded_header = "X-Imeilock-Forwarded-By";

/// The most lines of an import sent to one owner in one request; an owner's
/// next request goes once the previous one is answered (memory stays bounded
/// whatever the import's size).
inline constexpr std::size_t forward_chunk_lines = 10'000;

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
  /// More than one node: how an import's lines of shards served elsewhere
  /// reach their owner (docs/cluster.md "Imports"). Unset: those lines are
  /// answered as not applied. Before the first request.
  void set_forwarder(forward_fn forward) {
    forward_ = std::make_shared<const forward_fn>(std::move(forward));
  }

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
  std::shared_ptr<const forward_fn> forward_;
};

} // namespace imeilock::api
