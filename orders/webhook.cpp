#include "orders/webhook.hpp"

#include "common/log.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace imeilock::orders {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

bool parse_http_url(const std::string& url, http_url& out, std::string& error) {
  constexpr std::string_view scheme = "http://";
  if (url.rfind(scheme, 0) != 0) {
    error = "expected an http:// URL (plain HTTP; no TLS), got '" + url + "'";
    return false;
  }
  std::string_view rest{url};
  rest.remove_prefix(scheme.size());
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  http_url parsed;
  parsed.target = slash == std::string_view::npos ? "/" : std::string{rest.substr(slash)};
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "unterminated [IPv6] host in '" + url + "'";
      return false;
    }
    parsed.host = std::string{authority.substr(1, close - 1)};
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        error = "unexpected text after the host in '" + url + "'";
        return false;
      }
      port = after.substr(1);
    }
  } else {
    auto colon = authority.find(':');
    parsed.host = std::string{authority.substr(0, colon)};
    if (colon != std::string_view::npos)
      port = authority.substr(colon + 1);
  }
  if (parsed.host.empty() || authority.find('@') != std::string_view::npos) {
    error = "expected http://host[:port][/path], got '" + url + "'";
    return false;
  }
  if (!port.empty() || authority.ends_with(':')) {
    unsigned value = 0;
    bool digits = !port.empty() && port.size() <= 5;
    for (char c : port) {
      digits = digits && std::isdigit(static_cast<unsigned char>(c));
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (!digits || value == 0 || value > 65535) {
      error = "bad port in '" + url + "'";
      return false;
    }
    parsed.port = std::string{port};
  }
  out = std::move(parsed);
  return true;
}

namespace {

/// One POST: resolve, connect, write, read, all under one deadline. Owns
/// copies of everything it needs, so it may outlive the backend.
class request_session : public std::enable_shared_from_this<request_session> {
public:
  request_session(net::io_context& io, const http_url& url, std::chrono::milliseconds timeout,
                  http::request<http::string_body> req, submit_done done)
    : stream_(net::make_strand(io)),
      resolver_(stream_.get_executor()),
      deadline_(stream_.get_executor()),
      url_(url),
      timeout_(timeout),
      req_(std::move(req)),
      done_(std::move(done)) {
    parser_.body_limit(64 * 1024);
  }

  void start() {
    // Hop onto the strand: every member is touched only from there.
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->begin(); });
  }

private:
  void begin() {
    deadline_.expires_after(timeout_);
    deadline_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec)
        self->finish({false, "timeout after " + std::to_string(self->timeout_.count()) + "ms", 0});
    });
    resolver_.async_resolve(url_.host, url_.port,
                            [self = shared_from_this()](beast::error_code ec,
                                                        tcp::resolver::results_type results) {
                              self->on_resolve(ec, std::move(results));
                            });
  }

  void on_resolve(beast::error_code ec, const tcp::resolver::results_type& results) {
    if (finished_)
      return;
    if (ec)
      return finish({false, "resolve " + url_.host + ": " + ec.message(), 0});
    stream_.async_connect(results, [self = shared_from_this()](beast::error_code cec,
                                                               const tcp::endpoint&) {
      self->on_connect(cec);
    });
  }

  void on_connect(beast::error_code ec) {
    if (finished_)
      return;
    if (ec)
      return finish({false, "connect: " + ec.message(), 0});
    http::async_write(stream_, req_, [self = shared_from_this()](beast::error_code wec,
                                                                 std::size_t) {
      self->on_write(wec);
    });
  }

  void on_write(beast::error_code ec) {
    if (finished_)
      return;
    if (ec)
      return finish({false, "send: " + ec.message(), 0});
    http::async_read(stream_, buffer_, parser_, [self = shared_from_this()](beast::error_code rec,
                                                                            std::size_t) {
      self->on_read(rec);
    });
  }

  void on_read(beast::error_code ec) {
    if (finished_)
      return;
    if (ec)
      return finish({false, "read answer: " + ec.message(), 0});
    const auto status = static_cast<int>(parser_.get().result_int());
    if (status >= 200 && status < 300)
      return finish({true, {}, status});
    finish({false, "http " + std::to_string(status), status});
  }

  void finish(submit_result result) {
    if (finished_)
      return;
    finished_ = true;
    deadline_.cancel();
    resolver_.cancel();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
    auto done = std::move(done_);
    done(std::move(result));
  }

  beast::tcp_stream stream_;
  tcp::resolver resolver_;
  net::steady_timer deadline_;
  http_url url_;
  std::chrono::milliseconds timeout_;
  http::request<http::string_body> req_;
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
  submit_done done_;
  bool finished_ = false;
};

class webhook_backend final : public provisioning_backend {
public:
  webhook_backend(net::io_context& io, std::string url_text, http_url url,
                  std::chrono::milliseconds timeout, std::string bearer_token)
    : io_(io),
      url_text_(std::move(url_text)),
      url_(std::move(url)),
      timeout_(timeout),
      bearer_token_(std::move(bearer_token)) {
    host_header_ = url_.host.find(':') != std::string::npos ? "[" + url_.host + "]" : url_.host;
    if (url_.port != "80")
      host_header_ += ":" + url_.port;
  }

  void submit(const order& o, submit_done done) override {
    http::request<http::string_body> req{http::verb::post, url_.target, 11};
    req.set(http::field::host, host_header_);
    req.set(http::field::user_agent, "imeilockd");
    req.set(http::field::content_type, "application/json");
    req.set(http::field::connection, "close");
    if (!bearer_token_.empty())
      req.set(http::field::authorization, "Bearer " + bearer_token_);
    req.body() = to_json(o);
    req.prepare_payload();
    std::make_shared<request_session>(io_, url_, timeout_, std::move(req), std::move(done))
      ->start();
  }

  std::string describe() const override { return "webhook " + url_text_; }

private:
  net::io_context& io_;
  std::string url_text_;
  http_url url_;
  std::chrono::milliseconds timeout_;
  std::string bearer_token_;
  std::string host_header_;
};

std::string read_token(const std::string& file_name) {
  std::ifstream in{file_name};
  if (!in)
    throw std::runtime_error("cannot read bearer_token_file '" + file_name + "'");
  std::stringstream buf;
  buf << in.rdbuf();
  auto token = buf.str();
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  token.erase(token.begin(), std::find_if(token.begin(), token.end(), not_space));
  token.erase(std::find_if(token.rbegin(), token.rend(), not_space).base(), token.end());
  if (token.empty())
    throw std::runtime_error("bearer_token_file '" + file_name + "' is empty");
  for (unsigned char c : token)
    if (c < 0x21 || c > 0x7e)
      throw std::runtime_error("bearer_token_file '" + file_name +
                               "' holds characters not allowed in a header");
  return token;
}

} // namespace

std::unique_ptr<provisioning_backend> make_webhook_backend(const backend_config& cfg,
                                                           net::io_context& io) {
  http_url url;
  std::string error;
  if (!parse_http_url(cfg.url, url, error))
    throw std::runtime_error("webhook url: " + error);
  std::string token;
  if (!cfg.bearer_token_file.empty())
    token = read_token(cfg.bearer_token_file);
  return std::make_unique<webhook_backend>(io, cfg.url, std::move(url), cfg.timeout,
                                           std::move(token));
}

std::unique_ptr<provisioning_backend> make_backend(const backend_config& cfg,
                                                   net::io_context& io, std::uint64_t seed) {
  if (cfg.type == backend_config::kind::webhook)
    return make_webhook_backend(cfg, io);
  return std::make_unique<simulated_backend>(cfg, seed);
}

} // namespace imeilock::orders
