#include "orders/webhook.hpp"

#include "common/http_client.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace imeilock::orders {

namespace {

class webhook_backend final : public provisioning_backend {
public:
  webhook_backend(boost::asio::io_context& io, std::string url_text, http::url url,
                  std::chrono::milliseconds timeout, const std::string& bearer_token,
                  std::shared_ptr<http::tls_context> tls) :
      io_(io), url_text_(std::move(url_text)), url_(std::move(url)) {
    options_.timeout = timeout;
    options_.tls = std::move(tls);
    options_.body_limit = 64 * 1024;
    headers_.emplace_back("Content-Type", "application/json");
    if (!bearer_token.empty())
      headers_.emplace_back("Authorization", "Bearer " + bearer_token);
  }

  void submit(const order& o, submit_done done) override {
    http::request req{"POST", {}, headers_, to_json(o)};
    http::async_send(io_, url_, req, options_, [done = std::move(done)](http::response r) {
      if (r.ok())
        return done({true, {}, static_cast<int>(r.status)});
      if (r.status != 0)
        return done({false, "http " + std::to_string(r.status), static_cast<int>(r.status)});
      done({false, std::move(r.error), 0});
    });
  }

  std::string describe() const override { return "webhook " + url_text_; }

private:
  boost::asio::io_context& io_;
  std::string url_text_;
  http::url url_;
  http::options options_;
  http::header_list headers_;
};

/// The bearer token in `file_name`, without surrounding blanks.
expected<std::string> read_token(const std::string& file_name) {
  auto refuse = [](std::string why) { return error{ec::backend_failed, std::move(why)}; };
  std::ifstream in{file_name};
  if (!in)
    return refuse("cannot read bearer_token_file '" + file_name + "'");
  std::stringstream buf;
  buf << in.rdbuf();
  auto token = buf.str();
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  token.erase(token.begin(), std::find_if(token.begin(), token.end(), not_space));
  token.erase(std::find_if(token.rbegin(), token.rend(), not_space).base(), token.end());
  if (token.empty())
    return refuse("bearer_token_file '" + file_name + "' is empty");
  for (unsigned char c : token)
    if (c < 0x21 || c > 0x7e)
      return refuse("bearer_token_file '" + file_name +
                    "' holds characters not allowed in a header");
  return token;
}

} // namespace

expected<std::unique_ptr<provisioning_backend>> make_webhook_backend(const backend_config& cfg,
                                                                     boost::asio::io_context& io) {
  auto url = http::parse_url(cfg.url);
  if (!url)
    return error{ec::backend_failed, "webhook url: " + url.error().message()};
  std::string token;
  if (!cfg.bearer_token_file.empty()) {
    auto read = read_token(cfg.bearer_token_file);
    if (!read)
      return std::move(read.error());
    token = std::move(*read);
  }
  std::shared_ptr<http::tls_context> tls;
  if (url->tls()) {
    auto made = http::make_tls_context(cfg.tls);
    if (!made)
      return error{ec::backend_failed, "webhook tls." + made.error().message()};
    tls = std::move(*made);
  }
  return std::unique_ptr<provisioning_backend>{std::make_unique<webhook_backend>(
      io, cfg.url, std::move(*url), cfg.timeout, std::move(token), std::move(tls))};
}

expected<std::unique_ptr<provisioning_backend>>
make_backend(const backend_config& cfg, boost::asio::io_context& io, std::uint64_t seed) {
  if (cfg.type == backend_config::kind::webhook)
    return make_webhook_backend(cfg, io);
  return std::unique_ptr<provisioning_backend>{std::make_unique<simulated_backend>(cfg, seed)};
}

} // namespace imeilock::orders
