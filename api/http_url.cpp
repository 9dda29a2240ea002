#include "api/http_url.hpp"

namespace imeilock::api {

bool parse_http_url(std::string_view text, http_url& out, std::string* why) {
  auto fail = [&](std::string message) {
    if (why)
      *why = std::move(message);
    return false;
  };
  constexpr std::string_view scheme = "http://";
  if (!text.starts_with(scheme))
    return fail("the URL must start with http:// (got \"" + std::string{text} + "\")");
  auto rest = text.substr(scheme.size());
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  http_url url;
  if (slash != std::string_view::npos)
    url.path = std::string{rest.substr(slash)};
  if (authority.starts_with('[')) {
    auto close = authority.find(']');
    if (close == std::string_view::npos)
      return fail("unclosed [ in the URL \"" + std::string{text} + "\"");
    url.host = std::string{authority.substr(1, close - 1)};
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':')
        return fail("expected :port after ] in \"" + std::string{text} + "\"");
      url.port = std::string{after.substr(1)};
    }
  } else {
    auto colon = authority.find(':');
    url.host = std::string{authority.substr(0, colon)};
    if (colon != std::string_view::npos)
      url.port = std::string{authority.substr(colon + 1)};
  }
  if (url.host.empty() || url.port.empty())
    return fail("no host or port in the URL \"" + std::string{text} + "\"");
  out = std::move(url);
  return true;
}

} // namespace imeilock::api
