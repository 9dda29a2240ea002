#include "common/http_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <optional>

namespace imeilock::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

std::string response::header(std::string_view name) const {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  for (const auto& [k, v] : headers) {
    if (k.size() != name.size())
      continue;
    bool same = true;
    for (std::size_t i = 0; same && i < k.size(); ++i)
      same = lower(k[i]) == lower(name[i]);
    if (same)
      return v;
  }
  return {};
}

namespace {

using wire_request = bhttp::request<bhttp::string_body>;

wire_request build(const url& to, const request& req, const options& opt, bool keep_alive) {
  wire_request r;
  r.version(11);
  r.method_string(req.method);
  r.target(req.target.empty() ? to.target : req.target);
  r.set(bhttp::field::host, to.host_header());
  r.set(bhttp::field::user_agent, opt.user_agent);
  if (!keep_alive)
    r.set(bhttp::field::connection, "close");
  for (const auto& [k, v] : req.headers)
    r.set(k, v);
  r.body() = req.body;
  r.prepare_payload();
  return r;
}

std::string str(beast::string_view v) {
  return {v.data(), v.size()};
}

/// One request and its answer: resolve (unless a kept-alive socket is
/// handed in), connect, write, read, all under one deadline and on one
/// strand. Owns copies of everything, so it may outlive its starter.
class exchange final : public pending, public std::enable_shared_from_this<exchange> {
public:
  /// Gets the response, the error code behind a failure (for the blocking
  /// client's stale-connection retry) and the socket when it may be reused.
  using finished = std::function<void(response, error_code, std::optional<tcp::socket>)>;

  exchange(net::io_context& io, url to, wire_request req, const options& opt,
           std::optional<tcp::socket> reuse, finished done) :
      strand_(net::make_strand(io)),
      resolver_(strand_),
      deadline_(strand_),
      socket_(reuse ? std::move(*reuse) : tcp::socket{strand_}),
      to_(std::move(to)),
      timeout_(opt.timeout),
      req_(std::move(req)),
      done_(std::move(done)) {
    parser_.body_limit(opt.body_limit);
  }

  void start() {
    // Every member is touched only from the strand.
    net::post(strand_, [self = shared_from_this()] { self->begin(); });
  }

  void cancel() override {
    net::post(strand_, [self = shared_from_this()] {
      self->finish(failure::cancelled, "cancelled", net::error::operation_aborted);
    });
  }

private:
  void begin() {
    if (finished_)
      return;
    deadline_.expires_after(timeout_);
    deadline_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec)
        self->finish(failure::timeout,
                     "timeout after " + std::to_string(self->timeout_.count()) + "ms",
                     net::error::timed_out);
    });
    if (socket_.is_open())
      return write();
    resolver_.async_resolve(
        to_.host, to_.port,
        [self = shared_from_this()](error_code ec, const tcp::resolver::results_type& results) {
          self->on_resolve(ec, results);
        });
  }

  void on_resolve(error_code ec, const tcp::resolver::results_type& results) {
    if (finished_)
      return;
    if (ec)
      return finish(failure::resolve, "resolve " + to_.host + ": " + ec.message(), ec);
    net::async_connect(socket_, results,
                       [self = shared_from_this()](error_code cec, const tcp::endpoint&) {
                         if (self->finished_)
                           return;
                         if (cec)
                           return self->finish(failure::connect, "connect: " + cec.message(), cec);
                         self->write();
                       });
  }

  void write() {
    bhttp::async_write(socket_, req_, [self = shared_from_this()](error_code ec, std::size_t) {
      if (self->finished_)
        return;
      if (ec)
        return self->finish(failure::send, "send: " + ec.message(), ec);
      bhttp::async_read(self->socket_, self->buffer_, self->parser_,
                        [self](error_code rec, std::size_t) { self->on_read(rec); });
    });
  }

  void on_read(error_code ec) {
    if (finished_)
      return;
    if (ec)
      return finish(failure::receive, "read answer: " + ec.message(), ec);
    auto& msg = parser_.get();
    res_.status = msg.result_int();
    res_.content_type = str(msg[bhttp::field::content_type]);
    for (const auto& f : msg)
      res_.headers.emplace_back(str(f.name_string()), str(f.value()));
    res_.body = std::move(msg.body());
    keep_ = msg.keep_alive();
    finish(failure::none, {}, {});
  }

  void finish(failure why, std::string error, error_code ec) {
    if (finished_)
      return;
    finished_ = true;
    deadline_.cancel();
    resolver_.cancel();
    std::optional<tcp::socket> keep;
    if (why == failure::none && keep_) {
      keep.emplace(std::move(socket_));
    } else {
      error_code ignored;
      socket_.shutdown(tcp::socket::shutdown_both, ignored);
      socket_.close(ignored);
    }
    if (why != failure::none) {
      res_ = response{};
      res_.failed = why;
      res_.error = std::move(error);
    }
    auto done = std::move(done_);
    done(std::move(res_), ec, std::move(keep));
  }

  net::strand<net::io_context::executor_type> strand_;
  tcp::resolver resolver_;
  net::steady_timer deadline_;
  tcp::socket socket_;
  url to_;
  std::chrono::milliseconds timeout_;
  wire_request req_;
  beast::flat_buffer buffer_;
  bhttp::response_parser<bhttp::string_body> parser_;
  finished done_;
  response res_;
  bool keep_ = false;
  bool finished_ = false;
};

/// A kept-alive connection the server closed meanwhile: worth one retry.
bool stale(error_code ec) {
  return ec == bhttp::error::end_of_stream || ec == net::error::connection_reset ||
         ec == net::error::broken_pipe || ec == net::error::eof;
}

} // namespace

std::shared_ptr<pending> async_send(net::io_context& io, const url& to, request req,
                                    const options& opt, std::function<void(response)> done) {
  auto ex = std::make_shared<exchange>(
      io, to, build(to, req, opt, false), opt, std::nullopt,
      [done = std::move(done)](response r, error_code, std::optional<tcp::socket>) {
        done(std::move(r));
      });
  ex->start();
  return ex;
}

struct client::impl {
  url server;
  options opt;
  net::io_context io;
  std::optional<tcp::socket> idle; ///< the kept-alive connection, if any
};

client::client(url server, options opt) : impl_(std::make_unique<impl>()) {
  impl_->server = std::move(server);
  impl_->opt = std::move(opt);
}

client::~client() = default;

const url& client::server() const {
  return impl_->server;
}

response client::send(const request& req) {
  auto wire = build(impl_->server, req, impl_->opt, true);
  for (int round = 0;; ++round) {
    bool reused = impl_->idle.has_value();
    auto reuse = std::move(impl_->idle);
    impl_->idle.reset();
    response out;
    error_code ec;
    std::make_shared<exchange>(impl_->io, impl_->server, wire, impl_->opt, std::move(reuse),
                               [&](response r, error_code e, std::optional<tcp::socket> s) {
                                 out = std::move(r);
                                 ec = e;
                                 impl_->idle = std::move(s);
                               })
        ->start();
    impl_->io.restart();
    impl_->io.run();
    if (round == 0 && reused && (out.failed == failure::send || out.failed == failure::receive) &&
        stale(ec))
      continue;
    return out;
  }
}

} // namespace imeilock::http
