#pragma once
// A small blocking HTTP/1.1 client for the operator API (imeilockctl, tests).
// Beast stays inside client.cpp.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace imeilock::api {

/// One answer; status 0 means no answer (see `error`).
struct client_response {
  unsigned status = 0;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string error; ///< connection/protocol error when status == 0

  /// The value of a header (case-insensitive name), empty if absent.
  std::string header(std::string_view name) const;
};

/// Talks to one server, keeping its connection open between requests.
class http_client {
public:
  /// `base_url`: http://host:port (a path prefix is allowed).
  explicit http_client(std::string base_url,
                       std::chrono::milliseconds timeout = std::chrono::seconds{30});
  ~http_client();
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  /// Sends one request. `token` empty: no Authorization header. Extra headers
  /// may be given (tests).
  client_response request(const std::string& method, const std::string& target,
                          const std::string& token = {}, const std::string& body = {},
                          const std::string& content_type = {},
                          const std::vector<std::pair<std::string, std::string>>& headers = {});

  /// False if base_url could not be parsed (message in `why`).
  bool valid(std::string* why = nullptr) const;

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace imeilock::api
