#include "api/client.hpp"

#include "api/http_url.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace imeilock::api {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;

std::string client_response::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (beast::iequals(k, beast::string_view(name.data(), name.size())))
      return v;
  return {};
}

struct http_client::impl {
  std::string host;
  std::string port = "80";
  std::string prefix;
  std::string parse_error;
  std::chrono::milliseconds timeout;
  net::io_context io;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  /// Runs the asynchronous operations started, with the stream's timeouts.
  void run() {
    io.restart();
    io.run();
  }

  beast::error_code connect() {
    stream.reset();
    buffer.clear();
    beast::error_code ec;
    tcp::resolver resolver{io};
    auto results = resolver.resolve(host, port, ec);
    if (ec)
      return ec;
    stream.emplace(io);
    stream->expires_after(timeout);
    stream->async_connect(results, [&ec](beast::error_code e, const tcp::endpoint&) { ec = e; });
    run();
    return ec;
  }
};

http_client::http_client(std::string base_url, std::chrono::milliseconds timeout)
  : impl_(std::make_unique<impl>()) {
  impl_->timeout = timeout;
  http_url url;
  if (!parse_http_url(base_url, url, &impl_->parse_error))
    return;
  impl_->host = url.host;
  impl_->port = url.port;
  impl_->prefix = url.path;
  // A path prefix (a proxy's) is kept without its trailing slash.
  while (!impl_->prefix.empty() && impl_->prefix.back() == '/')
    impl_->prefix.pop_back();
}

http_client::~http_client() = default;

bool http_client::valid(std::string* why) const {
  if (why)
    *why = impl_->parse_error;
  return impl_->parse_error.empty();
}

client_response http_client::request(const std::string& method, const std::string& target,
                                     const std::string& token, const std::string& body,
                                     const std::string& content_type,
                                     const std::vector<std::pair<std::string, std::string>>& headers) {
  client_response out;
  if (!impl_->parse_error.empty()) {
    out.error = impl_->parse_error;
    return out;
  }
  http::request<http::string_body> req;
  req.version(11);
  req.method_string(method);
  req.target(impl_->prefix + target);
  req.set(http::field::host, impl_->host + ":" + impl_->port);
  req.set(http::field::user_agent, "imeilockctl");
  if (!token.empty())
    req.set(http::field::authorization, "Bearer " + token);
  if (!content_type.empty())
    req.set(http::field::content_type, content_type);
  for (const auto& [k, v] : headers)
    req.set(k, v);
  req.body() = body;
  req.prepare_payload();

  // A kept-alive connection may have been closed by the server: retry once
  // on a fresh one when nothing came back.
  for (int round = 0; round < 2; ++round) {
    bool reused = impl_->stream.has_value();
    beast::error_code ec;
    if (!reused)
      ec = impl_->connect();
    if (ec) {
      out.error = "cannot connect to " + impl_->host + ":" + impl_->port + ": " + ec.message();
      impl_->stream.reset();
      return out;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(1024 * 1024 * 1024);
    impl_->stream->expires_after(impl_->timeout);
    http::async_write(*impl_->stream, req, [&](beast::error_code wec, std::size_t) {
      ec = wec;
      if (wec)
        return;
      impl_->stream->expires_after(impl_->timeout);
      http::async_read(*impl_->stream, impl_->buffer, parser,
                       [&](beast::error_code rec, std::size_t) { ec = rec; });
    });
    impl_->run();
    if (ec) {
      impl_->stream.reset();
      if (reused && (ec == http::error::end_of_stream || ec == net::error::connection_reset ||
                     ec == net::error::broken_pipe || ec == net::error::eof))
        continue;
      out.error = (ec == beast::error::timeout ? std::string{"no answer in time from "}
                                               : std::string{"connection failed to "}) +
                  impl_->host + ":" + impl_->port + ": " + ec.message();
      return out;
    }
    auto res = parser.release();
    out.status = res.result_int();
    auto str = [](beast::string_view v) { return std::string(v.data(), v.size()); };
    out.content_type = str(res[http::field::content_type]);
    for (const auto& f : res)
      out.headers.emplace_back(str(f.name_string()), str(f.value()));
    out.body = std::move(res.body());
    if (!res.keep_alive())
      impl_->stream.reset();
    return out;
  }
  out.error = "the server closed the connection";
  return out;
}

} // namespace imeilock::api
