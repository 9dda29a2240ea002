#pragma once
// The HTTP/1.1 client every component uses: the orders webhook backend and
// the event webhooks (asynchronous, one connection per request) and the
// operator API client of imeilockctl and the tests (blocking, keep-alive).
//
//   // on an io_context someone runs; `done` runs on one of its threads
//   http::async_send(io, url, {"POST", "", {{"Content-Type", "application/json"}}, body},
//                    {.timeout = 5s}, [](http::response r) { ... });
//
//   http::client api{*http::parse_url("http://127.0.0.1:8080")};
//   auto r = api.send({"GET", "/v1/sims"});
//
// https URLs run over TLS (OpenSSL): the server's certificate chain is
// verified against the system CA store or a CA file and its name against the
// URL's host (SNI sent for names); a client certificate is optional. See
// make_tls_context(). A failed check ends the exchange with failure::tls and
// an error naming it ("certificate has expired", "hostname mismatch", "unknown CA").
//
// Boost.Beast and Asio stay inside http_client.cpp (TOOLCHAIN.md: keep heavy
// headers out of widely included ones, and Beast in as few TUs as possible).

#include "common/http_url.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace imeilock::http {

/// Header fields in order, as (name, value).
using header_list = std::vector<std::pair<std::string, std::string>>;

/// One request. Host and User-Agent are set by the client; Content-Length
/// from `body`.
struct request {
  std::string method = "GET";
  std::string target;  ///< path and query; empty: the URL's own target
  header_list headers; ///< sent after Host and User-Agent; a field of the same name replaces theirs
  std::string body;
};

/// Where an exchange failed when no answer came.
enum class failure : std::uint8_t {
  none,
  resolve,
  connect,
  tls,
  send,
  receive,
  timeout,
  cancelled
};

/// One answer, or why there is none.
struct response {
  unsigned status = 0; ///< the HTTP status; 0 when no answer came (see `failed`, `error`)
  std::string content_type;
  header_list headers;
  std::string body;
  failure failed = failure::none;
  /// For the operator when no answer came: "resolve HOST: ...", "connect: Connection
  /// refused", "tls handshake with HOST:PORT: certificate verify failed: certificate
  /// has expired", "send: ...", "read answer: ...", "timeout after 300ms", "cancelled".
  std::string error;

  /// True for a 2xx answer.
  bool ok() const { return status >= 200 && status < 300; }
  /// The value of a header (name compared case-insensitively), empty if absent.
  std::string header(std::string_view name) const;
};

/// TLS settings for https peers, built once and shared by many exchanges
/// (an OpenSSL SSL_CTX inside). Opaque here: OpenSSL stays in http_client.cpp.
class tls_context;

/// Builds the TLS settings from `files`: trust files.ca_file, else the system
/// CA store; present files.client_cert with files.client_key if set. A
/// problem (unreadable or malformed PEM, key not matching the certificate) is
/// ec::bad_tls_files with a message naming the file. Never null.
expected<std::shared_ptr<tls_context>> make_tls_context(const tls_files& files);

/// Per-client settings.
struct options {
  /// Bound on one whole exchange: resolve, connect, send and read the answer.
  std::chrono::milliseconds timeout{30'000};
  /// Larger answer bodies fail the exchange (failure::receive), in bytes.
  std::size_t body_limit = 1024 * 1024;
  std::string user_agent = "imeilockd";
  /// https: whom to trust and the client certificate; null = the system CA
  /// store, no client certificate. Unused for http.
  std::shared_ptr<tls_context> tls;
};

/// A request started by async_send().
class pending {
public:
  virtual ~pending() = default;
  /// Stops the exchange; `done` then gets failure::cancelled unless it already
  /// ran. Thread-safe, idempotent.
  virtual void cancel() = 0;
};

/// Sends `req` to `to` on a fresh connection ("Connection: close") and calls
/// `done` exactly once, on one of io's threads, never inside async_send. `io`
/// must be run by someone and outlive the exchange. The handle may be dropped.
std::shared_ptr<pending> async_send(boost::asio::io_context& io, const url& to, const request& req,
                                    const options& opt, std::function<void(response)> done);

/// A blocking client for one server that keeps its connection open between
/// requests (and retries once on a fresh one when the kept one turns out
/// closed). Not thread-safe: one caller at a time. Runs its own io_context.
class client {
public:
  explicit client(url server, options opt = {});
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Sends one request and waits for the answer (at most opt.timeout).
  response send(const request& req);

  const url& server() const;

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace imeilock::http
