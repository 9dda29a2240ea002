#include "common/http_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <optional>
#include <type_traits>
#include <utility>

namespace imeilock::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using tls_stream = beast::ssl_stream<tcp::socket>;

class tls_context {
public:
  net::ssl::context ctx{net::ssl::context::tls_client};
};

expected<std::shared_ptr<tls_context>> make_tls_context(const tls_files& files) {
  auto refuse = [](std::string why) -> expected<std::shared_ptr<tls_context>> {
    return error{ec::bad_tls_files, std::move(why)};
  };
  auto fail = [&](const std::string& what, const error_code& code) {
    return refuse(what + ": " + code.message());
  };
  // OpenSSL words a missing file as a bare system error ("asio.ssl error"):
  // say it first.
  for (const auto& [key, file] :
       {std::pair{"ca_file", &files.ca_file}, std::pair{"client_cert", &files.client_cert},
        std::pair{"client_key", &files.client_key}})
    if (!file->empty() && !std::ifstream{*file})
      return refuse(std::string{key} + " '" + *file + "': cannot read");
  auto out = std::make_shared<tls_context>();
  auto& ctx = out->ctx;
  error_code code;
  ctx.set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                      net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                      net::ssl::context::no_tlsv1_1,
                  code);
  ctx.set_verify_mode(net::ssl::verify_peer, code);
  if (!files.ca_file.empty()) {
    if (ctx.load_verify_file(files.ca_file, code); code)
      return fail("ca_file '" + files.ca_file + "'", code);
  } else if (ctx.set_default_verify_paths(code); code) {
    return fail("the system CA store", code);
  }
  if (!files.client_cert.empty()) {
    if (ctx.use_certificate_chain_file(files.client_cert, code); code)
      return fail("client_cert '" + files.client_cert + "'", code);
    if (ctx.use_private_key_file(files.client_key, net::ssl::context::pem, code); code)
      return fail("client_key '" + files.client_key + "'", code);
    if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
      return refuse("client_key '" + files.client_key + "' does not match client_cert '" +
                    files.client_cert + "'");
  }
  return out;
}

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

/// The trust settings of an https exchange without its own: the system CA
/// store, built once.
tls_context& default_tls() {
  static const std::shared_ptr<tls_context> ctx = [] {
    auto c = make_tls_context({});
    // Without a system store nothing verifies: every https exchange then
    // fails its handshake with "unknown CA", which names the problem (the
    // handshake asks for verification whatever the context says).
    return c ? *c : std::make_shared<tls_context>();
  }();
  return *ctx;
}

tcp::socket& raw(tcp::socket& s) {
  return s;
}
tcp::socket& raw(tls_stream& s) {
  return s.next_layer();
}

/// Why the server's certificate was refused, in the operator's words.
std::string verify_reason(long result, const url& to) {
  switch (result) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return "certificate has expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "certificate is not yet valid";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return "hostname mismatch (the certificate is not for " + to.host + ")";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      return std::string{"unknown CA ("} + X509_verify_cert_error_string(result) + ")";
    default:
      return X509_verify_cert_error_string(result);
  }
}

/// One request and its answer: resolve (unless a kept-alive connection is
/// handed in), connect, TLS handshake (https), write, read, all under one
/// deadline and on one strand. Owns copies of everything, so it may outlive
/// its starter. `Stream` is tcp::socket (http) or tls_stream (https).
template <class Stream>
class exchange final : public pending, public std::enable_shared_from_this<exchange<Stream>> {
  static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

public:
  /// Gets the response, the error code behind a failure (for the blocking
  /// client's stale-connection retry) and the connection when it may be reused.
  using finished = std::function<void(response, error_code, std::optional<Stream>)>;

  exchange(net::io_context& io, url to, wire_request req, const options& opt,
           std::optional<Stream> reuse, finished done) :
      strand_(net::make_strand(io)),
      resolver_(strand_),
      deadline_(strand_),
      socket_(reuse ? std::move(*reuse) : fresh(strand_, opt)),
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
  using std::enable_shared_from_this<exchange<Stream>>::shared_from_this;

  static Stream fresh(net::strand<net::io_context::executor_type>& strand, const options& opt) {
    if constexpr (is_tls)
      return Stream{strand, opt.tls ? opt.tls->ctx : default_tls().ctx};
    else
      return Stream{strand};
  }

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
    if (raw(socket_).is_open())
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
    net::async_connect(raw(socket_), results,
                       [self = shared_from_this()](error_code cec, const tcp::endpoint&) {
                         if (self->finished_)
                           return;
                         if (cec)
                           return self->finish(failure::connect, "connect: " + cec.message(), cec);
                         self->handshake();
                       });
  }

  void handshake() {
    if constexpr (!is_tls) {
      write();
    } else {
      // SNI for names (RFC 6066 forbids addresses), and the name or address
      // the certificate must carry.
      SSL* ssl = socket_.native_handle();
      error_code not_ip;
      net::ip::make_address(to_.host, not_ip);
      auto* param = SSL_get0_param(ssl);
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      bool set = false;
      if (not_ip)
        // SSL_set_tlsext_host_name() spelled out: the macro casts C-style.
        set = SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                       const_cast<char*>(to_.host.c_str())) == 1 &&
              X509_VERIFY_PARAM_set1_host(param, to_.host.c_str(), to_.host.size()) == 1;
      else
        set = X509_VERIFY_PARAM_set1_ip_asc(param, to_.host.c_str()) == 1;
      error_code verify_ec;
      socket_.set_verify_mode(net::ssl::verify_peer, verify_ec);
      if (!set || verify_ec)
        return finish(failure::tls, "tls: cannot verify the host name " + to_.host,
                      net::error::invalid_argument);
      socket_.async_handshake(net::ssl::stream_base::client,
                              [self = shared_from_this()](error_code ec) {
                                if (self->finished_)
                                  return;
                                if (ec)
                                  return self->handshake_failed(ec);
                                self->write();
                              });
    }
  }

  void handshake_failed(error_code ec) {
    std::string why = ec.message();
    if constexpr (is_tls) {
      auto result = SSL_get_verify_result(socket_.native_handle());
      if (result != X509_V_OK)
        why = "certificate verify failed: " + verify_reason(result, to_);
    }
    finish(failure::tls, "tls handshake with " + to_.authority() + ": " + why, ec);
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
      return finish(failure::receive,
                    std::string{"read answer: "} +
                        (ec.category() == net::error::get_ssl_category() ? "tls: " : "") +
                        ec.message(),
                    ec);
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
    std::optional<Stream> keep;
    if (why == failure::none && keep_) {
      keep.emplace(std::move(socket_));
    } else {
      // No TLS close_notify: the request is answered or abandoned, and the
      // peer treats the TCP close as the end.
      error_code ignored;
      raw(socket_).shutdown(tcp::socket::shutdown_both, ignored);
      raw(socket_).close(ignored);
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
  Stream socket_;
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
         ec == net::error::broken_pipe || ec == net::error::eof ||
         ec == net::ssl::error::stream_truncated;
}

template <class Stream>
std::shared_ptr<pending> start(net::io_context& io, const url& to, const request& req,
                               const options& opt, std::function<void(response)> done) {
  auto ex = std::make_shared<exchange<Stream>>(
      io, to, build(to, req, opt, false), opt, std::nullopt,
      [done = std::move(done)](response r, error_code, std::optional<Stream>) {
        done(std::move(r));
      });
  ex->start();
  return ex;
}

} // namespace

std::shared_ptr<pending> async_send(net::io_context& io, const url& to, const request& req,
                                    const options& opt, std::function<void(response)> done) {
  if (to.tls())
    return start<tls_stream>(io, to, req, opt, std::move(done));
  return start<tcp::socket>(io, to, req, opt, std::move(done));
}

struct client::impl {
  url server;
  options opt;
  net::io_context io;
  std::optional<tcp::socket> idle;    ///< the kept-alive http connection, if any
  std::optional<tls_stream> idle_tls; ///< the kept-alive https connection, if any

  template <class Stream>
  response send(const wire_request& wire, std::optional<Stream>& idle_conn) {
    for (int round = 0;; ++round) {
      bool reused = idle_conn.has_value();
      auto reuse = std::exchange(idle_conn, std::nullopt);
      response out;
      error_code ec;
      std::make_shared<exchange<Stream>>(io, server, wire, opt, std::move(reuse),
                                         [&](response r, error_code e, std::optional<Stream> s) {
                                           out = std::move(r);
                                           ec = e;
                                           idle_conn = std::move(s);
                                         })
          ->start();
      io.restart();
      io.run();
      if (round == 0 && reused && (out.failed == failure::send || out.failed == failure::receive) &&
          stale(ec))
        continue;
      return out;
    }
  }
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
  if (impl_->server.tls())
    return impl_->send(wire, impl_->idle_tls);
  return impl_->send(wire, impl_->idle);
}

} // namespace imeilock::http
