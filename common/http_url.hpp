#pragma once
// URLs of the HTTP peers the daemon talks to (provisioning webhooks, event
// webhooks, the operator API for imeilockctl). The one parser in the tree.
//
//   auto u = http::parse_url("http://[::1]:8080/hooks?x=1", &why);
//   u->host == "::1", u->port == "8080", u->target == "/hooks?x=1"
//
// Pure: no Asio, built in every configuration.

#include <optional>
#include <string>
#include <string_view>

namespace imeilock::http {

/// scheme://host[:port][/path][?query], split. `scheme` is "http" today; the
/// table in http_url.cpp knows "https" (port 443) too, refused until TLS
/// lands, so adding it is one flag.
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
};

/// The default port of a scheme ("80" for http, "443" for https), empty when unknown.
std::string_view default_port(std::string_view scheme);

/// Parses `text`. On failure returns nullopt and, if `why` is given, a
/// message quoting the URL and naming what is wrong.
std::optional<url> parse_url(std::string_view text, std::string* why = nullptr);

} // namespace imeilock::http
