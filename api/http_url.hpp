#pragma once
// Plain-HTTP URLs as the API client and the webhooks take them.

#include <string>
#include <string_view>

namespace imeilock::api {

/// http://host[:port][/path], split. IPv6 hosts are written [::1] and kept
/// without the brackets.
struct http_url {
  std::string host;
  std::string port = "80";
  std::string path = "/"; ///< with the query, if any
};

/// Parses `text`; false with `why` set when it is not an http:// URL.
bool parse_http_url(std::string_view text, http_url& out, std::string* why = nullptr);

} // namespace imeilock::api
