#include "api/client.hpp"

namespace imeilock::api {

http_client::http_client(const std::string& base_url, std::chrono::milliseconds timeout) {
  auto url = http::parse_url(base_url);
  if (!url) {
    parse_error_ = url.error().message();
    return;
  }
  // A path prefix (a proxy's) is kept without its trailing slash.
  prefix_ = url->target;
  while (!prefix_.empty() && prefix_.back() == '/')
    prefix_.pop_back();
  options_.timeout = timeout;
  options_.body_limit = std::size_t{1} << 30;
  options_.user_agent = "imeilockctl";
  client_.emplace(std::move(*url), options_);
}

http_client::~http_client() = default;

expected<void> http_client::valid() const {
  if (!client_)
    return error{http::ec::bad_url, parse_error_};
  return {};
}

client_response http_client::request(const std::string& method, const std::string& target,
                                     const std::string& token, const std::string& body,
                                     const std::string& content_type,
                                     const http::header_list& headers) {
  if (!client_) {
    client_response out;
    out.error = parse_error_;
    return out;
  }
  http::request req{method, prefix_ + target, {}, body};
  if (!token.empty())
    req.headers.emplace_back("Authorization", "Bearer " + token);
  if (!content_type.empty())
    req.headers.emplace_back("Content-Type", content_type);
  req.headers.insert(req.headers.end(), headers.begin(), headers.end());
  auto out = client_->send(req);
  auto server = client_->server().authority();
  if (out.status == 307 || out.status == 308) {
    // Followed once, keeping the method and body (RFC 9110 15.4.8).
    auto location = out.header("Location");
    if (auto to = http::parse_url(location); to) {
      server = to->authority();
      req.target = to->target;
      http::client other{std::move(*to), options_};
      out = other.send(req);
    } else {
      out.error = "the redirect's Location is not a URL: \"" + location + "\"";
    }
  }
  if (out.status == 0) {
    switch (out.failed) {
      case http::failure::resolve:
      case http::failure::connect:
        out.error = "cannot connect to " + server + ": " + out.error;
        break;
      case http::failure::timeout:
        out.error = "no answer in time from " + server + ": " + out.error;
        break;
      default:
        out.error = "connection failed to " + server + ": " + out.error;
        break;
    }
  }
  return out;
}

} // namespace imeilock::api
