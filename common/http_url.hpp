#pragma once
// URLs of the HTTP peers the daemon talks to (provisioning webhooks, event
// webhooks, the operator API for imeilockctl). The one parser in the tree.
//
//   auto u = http::parse_url("http://[::1]:8080/hooks?x=1");
//   u->host == "::1", u->port == "8080", u->target == "/hooks?x=1"
//   (!u: u.error().message() quotes the URL and names what is wrong)
//
// Pure: no Asio, built in every configuration.

#include "common/error.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace imeilock::http {

/// What is wrong with how an HTTP peer is to be reached (this file and
/// common/http_client; see common/error.hpp for the other layers). The
/// configuration reader words them as config::ec::invalid of its key.
enum class ec : std::uint8_t {
  /// A URL parse_url() refuses.
  bad_url = 1,
  /// TLS files that are missing, unreadable, not PEM or not a matching
  /// certificate and key (tls_files::validate(), make_tls_context()).
  bad_tls_files,
};

constexpr std::string_view to_string(ec e) {
  switch (e) {
    case ec::bad_url:
      return "bad_url";
    case ec::bad_tls_files:
      return "bad_tls_files";
  }
  return "unknown";
}

} // namespace imeilock::http

template <>
struct imeilock::error_category<imeilock::http::ec> {
  static constexpr std::string_view name = "http";
};

namespace imeilock::http {

/// scheme://host[:port][/path][?query], split. `scheme` is "http" or "https".
struct url {
  std::string scheme = "http";
  std::string host;         ///< a name, an IPv4 address or an IPv6 address without brackets
  std::string port;         ///< decimal 1..65535; the scheme's default when the URL has none
  std::string target = "/"; ///< path and query, always starting with '/'

  /// The Host header value (RFC 9110 §7.2): brackets around an IPv6
  /// address, ":port" only when it is not the scheme's default.
  std::string host_header() const;
  /// "host:port" (brackets for IPv6) for messages.
  std::string authority() const;
  /// True for https: the exchange runs over TLS (common/http_client).
  bool tls() const { return scheme == "https"; }
};

/// Whom an https client trusts and which certificate it shows. The server's
/// certificate is always verified (chain and hostname); there is no switch
/// to turn that off.
struct tls_files {
  std::string ca_file;     ///< PEM CA certificates to trust; empty = the system store
  std::string client_cert; ///< PEM client certificate (chain) to present; empty = none
  std::string client_key;  ///< PEM private key of client_cert; required with it

  /// Whether the files can be used: else ec::bad_tls_files, `where` the key
  /// as in the configuration ("client_key": "client_cert needs its private
  /// key", "ca_file": "cannot read '/x'").
  expected<void> validate() const;
  friend bool operator==(const tls_files&, const tls_files&) = default;
};

/// The default port of a scheme ("80" for http, "443" for https), empty when unknown.
std::string_view default_port(std::string_view scheme);

/// Parses `text`; ec::bad_url with a message quoting the URL and naming what
/// is wrong.
expected<url> parse_url(std::string_view text);

} // namespace imeilock::http
