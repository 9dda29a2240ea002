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
  http::options opt;
  opt.timeout = timeout;
  opt.body_limit = std::size_t{1} << 30;
  opt.user_agent = "imeilockctl";
  client_.emplace(std::move(*url), std::move(opt));
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
  if (out.status == 0) {
    auto server = client_->server().authority();
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
