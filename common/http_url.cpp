#include "common/http_url.hpp"

#include <array>
#include <fstream>

namespace imeilock::http {

namespace {

struct scheme_info {
  std::string_view name;
  std::string_view port;
};

/// The schemes we know.
constexpr std::array<scheme_info, 2> schemes{{{"http", "80"}, {"https", "443"}}};

const scheme_info* find_scheme(std::string_view name) {
  for (const auto& s : schemes)
    if (s.name == name)
      return &s;
  return nullptr;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

} // namespace

std::string_view default_port(std::string_view scheme) {
  const auto* s = find_scheme(scheme);
  return s ? s->port : std::string_view{};
}

std::string url::authority() const {
  auto h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + port;
}

std::string url::host_header() const {
  auto h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != default_port(scheme))
    h += ":" + port;
  return h;
}

expected<void> tls_files::validate() const {
  if (!client_cert.empty() && client_key.empty())
    return error{ec::bad_tls_files, "client_cert needs its private key (client_key)", "client_key"};
  if (client_cert.empty() && !client_key.empty())
    return error{ec::bad_tls_files, "client_key is set but client_cert is not", "client_cert"};
  for (const auto& [key, file] :
       {std::pair{"ca_file", &ca_file}, std::pair{"client_cert", &client_cert},
        std::pair{"client_key", &client_key}})
    if (!file->empty() && !std::ifstream{*file})
      return error{ec::bad_tls_files, "cannot read '" + *file + "'", key};
  return {};
}

expected<url> parse_url(std::string_view text) {
  auto fail = [&](std::string_view what) -> expected<url> {
    return error{ec::bad_url, std::string{what} + " in '" + std::string{text} + "'"};
  };
  auto sep = text.find("://");
  if (sep == std::string_view::npos)
    return fail("expected an http:// or https:// URL");
  url out;
  out.scheme = std::string{text.substr(0, sep)};
  const auto* scheme = find_scheme(out.scheme);
  if (!scheme)
    return fail("expected an http:// or https:// URL, not " + out.scheme + "://");
  auto rest = text.substr(sep + 3);
  auto end = rest.find_first_of("/?#");
  auto authority = rest.substr(0, end);
  if (end != std::string_view::npos) {
    auto target = rest.substr(end);
    target = target.substr(0, target.find('#')); // a fragment never goes on the wire
    // Built by appending: `"/" + std::string{target}` trips GCC 12's -Wrestrict
    // false positive at -O3 (Release builds with warnings as errors).
    if (target.starts_with('/'))
      out.target.clear(); // else keep the default "/" in front
    out.target.append(target);
  }
  if (authority.find('@') != std::string_view::npos)
    return fail("user:password@ is not supported (use a bearer token)");
  std::string_view port;
  bool has_port = false;
  if (authority.starts_with('[')) {
    auto close = authority.find(']');
    if (close == std::string_view::npos)
      return fail("unterminated [IPv6] host");
    out.host = std::string{authority.substr(1, close - 1)};
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':')
        return fail("expected :port after the [IPv6] host");
      port = after.substr(1);
      has_port = true;
    }
  } else {
    auto colon = authority.find(':');
    out.host = std::string{authority.substr(0, colon)};
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      has_port = true;
    }
  }
  if (out.host.empty())
    return fail("no host");
  if (has_port) {
    unsigned value = 0;
    bool digits = !port.empty() && port.size() <= 5;
    for (char c : port) {
      digits = digits && is_digit(c);
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (!digits || value == 0 || value > 65535)
      return fail("bad port '" + std::string{port} + "' (expected 1-65535)");
    out.port = std::string{port};
  } else {
    out.port = std::string{scheme->port};
  }
  return out;
}

} // namespace imeilock::http
