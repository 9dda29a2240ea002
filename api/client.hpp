#pragma once
// The operator API's client (imeilockctl, tests): common/http_client's
// blocking client plus what the API adds — a base URL that may carry a path
// prefix (a proxy's), the bearer token and imeilockctl's User-Agent.

#include "common/http_client.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace imeilock::api {

/// One answer; status 0 means no answer (see `error`).
using client_response = http::response;

/// Talks to one server, keeping its connection open between requests.
class http_client {
public:
  /// `base_url`: http://host:port (a path prefix is allowed).
  explicit http_client(const std::string& base_url,
                       std::chrono::milliseconds timeout = std::chrono::seconds{30});
  ~http_client();
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  /// Sends one request. `token` empty: no Authorization header. Extra headers
  /// may be given (tests). When no answer comes, `error` names the server:
  /// "cannot connect to 127.0.0.1:1: connect: Connection refused".
  /// A 307 or 308 answer is followed once: the same method, body and headers
  /// (the token too) are sent to its Location, on a connection of its own
  /// (a cluster node redirects a write to the node serving the SIM's shard,
  /// docs/cluster.md); the answer from there is returned, whatever it is.
  client_response request(const std::string& method, const std::string& target,
                          const std::string& token = {}, const std::string& body = {},
                          const std::string& content_type = {},
                          const http::header_list& headers = {});

  /// Whether base_url could be parsed (http::ec::bad_url if not).
  expected<void> valid() const;

private:
  std::optional<http::client> client_; ///< nullopt when the URL is bad
  http::options options_;              ///< client_'s, for a redirect's server too
  std::string prefix_;                 ///< the base URL's path, without a trailing '/'
  std::string parse_error_;
};

} // namespace imeilock::api
