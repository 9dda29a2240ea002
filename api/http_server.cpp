#include "api/http_server.hpp"

#include "api/router.hpp"
#include "common/log.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

namespace imeilock::api {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;

namespace {

/// Limits and timeouts a connection reads per request (swapped on reload).
struct limits {
  std::uint32_t max_header_bytes = 0;
  std::uint32_t max_body_bytes = 0;
  std::chrono::milliseconds idle_timeout{};
  std::chrono::milliseconds header_timeout{};
  std::chrono::milliseconds request_timeout{};
  std::uint32_t max_connections = 0;
  std::uint32_t max_connections_per_source = 0;
};

limits limits_of(const api_config& cfg) {
  return {cfg.max_header_bytes,
          cfg.max_body_bytes,
          cfg.idle_timeout,
          cfg.header_timeout,
          cfg.request_timeout,
          cfg.max_connections,
          cfg.max_connections_per_source};
}

/// The address a per-source limit counts: IPv4 as is, IPv6 by its /64 (one
/// site's prefix: a host that owns a /64 must not get 2^64 sources).
net::ip::address source_of(const net::ip::address& a) {
  if (!a.is_v6())
    return a;
  auto v6 = a.to_v6();
  if (v6.is_v4_mapped())
    return net::ip::make_address_v4(net::ip::v4_mapped, v6);
  auto bytes = v6.to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return net::ip::address_v6(bytes);
}

std::string str(beast::string_view s) {
  return std::string(s.data(), s.size());
}

config::endpoint to_endpoint(const tcp::endpoint& ep) {
  return {ep.address().to_string(), ep.port()};
}

/// "address:port" of the remote end, for logs; "?" if the socket is gone.
std::string peer_of(const tcp::socket& socket) {
  beast::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  return ec ? std::string{"?"} : config::endpoint{to_endpoint(ep)}.to_string();
}

class session;

} // namespace

/// Everything the connections share; kept alive by them.
///
/// Slot policy (issue 9): a connection is "trusted" once a request head with
/// a valid token arrived on it. Untrusted connections hold their slot only
/// until someone needs it: when the server (or a source address) is full, a
/// new connection evicts the oldest untrusted one. So clients without a token
/// can delay nobody who has one, whatever they open.
struct http_server::impl : std::enable_shared_from_this<http_server::impl> {
  impl(net::io_context& io_context, const api_config& config, actors::sim_service& service,
       prometheus::Registry& registry) :
      io(io_context),
      cfg(config),
      routes(service),
      lim(limits_of(config)),
      requests(prometheus::BuildCounter()
                   .Name("imeilock_api_requests_total")
                   .Help("HTTP API requests answered, by method, route template and status code")
                   .Register(registry)),
      latency(prometheus::BuildHistogram()
                  .Name("imeilock_api_request_duration_seconds")
                  .Help("HTTP API time from a complete request to its answer, by route template")
                  .Register(registry)),
      connections(prometheus::BuildGauge()
                      .Name("imeilock_api_connections")
                      .Help("HTTP API connections open")
                      .Register(registry)
                      .Add({})),
      rejected_connections(
          prometheus::BuildCounter()
              .Name("imeilock_api_connections_rejected_total")
              .Help("HTTP API connections closed at once, every slot held by a connection with a "
                    "valid token, by the limit reached (max_connections, per_source)")
              .Register(registry)),
      evicted_connections(
          prometheus::BuildCounter()
              .Name("imeilock_api_connections_evicted_total")
              .Help("HTTP API connections without a valid token closed to make room for a new one, "
                    "by the limit reached (max_connections, per_source)")
              .Register(registry)),
      owner_redirects(
          prometheus::BuildCounter()
              .Name("imeilock_api_owner_redirects_total")
              .Help("More than one node: operator writes for a SIM whose cluster shard another "
                    "node serves, by outcome (redirected: 307 to the owner's api_url; no_owner, "
                    "no_api_url: 503)")
              .Register(registry)),
      header_timeouts(prometheus::BuildCounter()
                          .Name("imeilock_api_header_timeouts_total")
                          .Help("HTTP API connections closed for not sending a complete request "
                                "head within api.header_timeout")
                          .Register(registry)
                          .Add({})) {
    routes.set_ui(config.ui);
  }

  void count(const std::string& method, const std::string& route, unsigned status, double seconds) {
    // Label values come from a bounded set, whatever clients send.
    static const std::array<std::string_view, 6> methods{"GET",  "HEAD",   "PUT",
                                                         "POST", "DELETE", "PATCH"};
    auto known = std::find(methods.begin(), methods.end(), method) != methods.end();
    requests
        .Add({{"method", known ? method : std::string{"other"}},
              {"route", route},
              {"code", std::to_string(status)}})
        .Increment();
    static const prometheus::Histogram::BucketBoundaries buckets{
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    latency.Add({{"route", route}}, buckets).Observe(seconds);
  }

  limits current_limits() {
    std::lock_guard lock{mutex};
    return lim;
  }

  void do_accept(const std::shared_ptr<tcp::acceptor>& acceptor);
  /// Gives `socket` a slot (evicting if the policy says so) and starts it.
  void admit(tcp::socket socket);
  /// The session no longer holds its slot (closed, or evicted). Idempotent.
  void release(session* s);
  /// A request with a valid token arrived on `s`: it keeps its slot from now on.
  void trust(session* s);

  /// One open connection's slot.
  struct slot {
    std::weak_ptr<session> conn;
    net::ip::address source; ///< see source_of()
    std::uint64_t seq = 0;   ///< accept order: lower is older
    bool trusted = false;
  };
  /// The connections of one source address.
  struct source_slots {
    std::uint32_t open = 0;
    std::set<std::uint64_t> untrusted; ///< their seqs, oldest first
  };
  /// Removes `it` from every index; returns the session to close.
  std::shared_ptr<session> unlink(std::unordered_map<session*, slot>::iterator it);

  net::io_context& io;
  api_config cfg;
  router routes;
  std::mutex mutex; ///< guards lim, acceptors, the slot indexes, stopped
  limits lim;
  std::vector<std::shared_ptr<tcp::acceptor>> acceptors;
  std::unordered_map<session*, slot> sessions;      ///< every connection holding a slot
  std::map<std::uint64_t, session*> untrusted;      ///< by seq, oldest first
  std::map<net::ip::address, source_slots> sources; ///< by source_of()
  std::uint64_t next_seq = 0;
  bool stopped = false;
  /// False once the http_server is destroyed: the registry may be gone next.
  std::atomic<bool> metrics_alive{true};

  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Histogram>& latency;
  prometheus::Gauge& connections;
  prometheus::Family<prometheus::Counter>& rejected_connections;
  prometheus::Family<prometheus::Counter>& evicted_connections;
  prometheus::Family<prometheus::Counter>& owner_redirects;
  prometheus::Counter& header_timeouts;
};

namespace {

/// One HTTP connection: read a request, hand it to the router, write the
/// answer, repeat while keep-alive. Runs on its own strand.
class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket socket, std::shared_ptr<http_server::impl> server) :
      stream_(std::move(socket)), server_(std::move(server)), timer_(stream_.get_executor()) {
    server_->connections.Increment();
  }

  ~session() {
    // Sessions may be destroyed with the io_context, after the registry:
    // the server says whether its metrics are still there.
    if (server_->metrics_alive.load())
      server_->connections.Decrement();
    server_->release(this);
  }

  void run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&session::read_request, shared_from_this()));
  }

  /// Closes the connection from any thread (server stop).
  void close() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      self->closing_ = true;
      beast::error_code ignored;
      self->timer_.cancel();
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
      self->stream_.close();
    });
  }

private:
  void read_request() {
    if (closing_)
      return;
    lim_ = server_->current_limits();
    parser_.emplace();
    parser_->header_limit(lim_.max_header_bytes);
    parser_->body_limit(lim_.max_body_bytes);
    if (!served_ || buffer_.size() > 0)
      return read_header();
    // Keep-alive: idle_timeout until the next request starts, then
    // header_timeout for its head.
    stream_.expires_after(lim_.idle_timeout);
    stream_.async_read_some(buffer_.prepare(first_read_bytes),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (ec)
                                return self->on_read_error(ec);
                              self->buffer_.commit(n);
                              self->read_header();
                            });
  }

  void read_header() {
    stream_.expires_after(lim_.header_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&session::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (ec == beast::error::timeout && !closing_) {
      server_->header_timeouts.Increment();
      static log::rate_limiter limiter;
      log::write_limited(limiter, log::level::info, "api.header_timeout",
                         {{"peer", peer_}, {"header_timeout_ms", lim_.header_timeout.count()}});
    }
    if (ec)
      return on_read_error(ec);
    served_ = true;
    auto& req = parser_->get();
    if (!trusted_ && server_->routes.authenticate(str(req[http::field::authorization])) !=
                         router::access::none) {
      trusted_ = true;
      server_->trust(this);
    }
    if (beast::iequals(req[http::field::expect], "100-continue") && !parser_->is_done()) {
      // RFC 9110 §10.1.1: tell the client to send the body.
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_,
                                                                     req.version());
      http::async_write(stream_, *cont,
                        [self = shared_from_this(), cont](beast::error_code wec, std::size_t) {
                          if (wec)
                            return self->on_read_error(wec);
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    if (parser_->is_done())
      return on_request();
    stream_.expires_after(lim_.idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec)
                         return self->on_read_error(ec);
                       self->on_request();
                     });
  }

  void on_read_error(beast::error_code ec) {
    if (ec == http::error::body_limit)
      return reply_and_close(
          error_response(413, "body_too_large",
                         "the body is larger than " + std::to_string(lim_.max_body_bytes) +
                             " bytes (api.max_body_bytes): split the import into smaller files"));
    if (ec == http::error::header_limit)
      return reply_and_close(error_response(431, "header_too_large",
                                            "the request head is larger than " +
                                                std::to_string(lim_.max_header_bytes) +
                                                " bytes (api.max_header_bytes)"));
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset || closing_)
      return close_now();
    if (ec.category() == http::make_error_code(http::error::bad_method).category())
      return reply_and_close(
          error_response(400, "bad_request", "malformed HTTP request: " + ec.message()));
    close_now();
  }

  void on_request() {
    stream_.expires_never();
    auto& msg = parser_->get();
    started_ = std::chrono::steady_clock::now();
    method_ = str(msg.method_string());
    keep_alive_ = msg.keep_alive();
    version_ = msg.version();
    head_ = msg.method() == http::verb::head;
    request req;
    req.method = method_;
    req.target = str(msg.target());
    req.authorization = str(msg[http::field::authorization]);
    req.content_type = str(msg[http::field::content_type]);
    req.forwarded_by =
        str(msg[beast::string_view{forwarded_header.data(), forwarded_header.size()}]);
    req.body = std::move(msg.body());
    answered_ = std::make_shared<std::atomic<bool>>(false);
    auto answered = answered_;
    // The SIM layer answers from its own threads: come back to our strand.
    timer_.expires_after(lim_.request_timeout);
    timer_.async_wait([self = shared_from_this(), answered](beast::error_code ec) {
      if (ec || answered->exchange(true))
        return;
      auto r = error_response(504, "timeout", "the SIM layer did not answer in time: retry");
      self->route_ = "timeout";
      self->keep_alive_ = false;
      self->write(std::move(r));
    });
    server_->routes.handle(std::move(req), [self = shared_from_this(), answered](response r) {
      if (answered->exchange(true))
        return;
      net::post(self->stream_.get_executor(), [self, r = std::move(r)]() mutable {
        self->timer_.cancel();
        self->write(std::move(r));
      });
    });
  }

  void reply_and_close(response r) {
    keep_alive_ = false;
    version_ = 11;
    method_ = parser_ && !parser_->get().method_string().empty()
                  ? str(parser_->get().method_string())
                  : std::string{"-"};
    started_ = std::chrono::steady_clock::now();
    write(std::move(r));
  }

  void write(response r) {
    if (closing_)
      return;
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_);
    server_->count(method_, route_.empty() ? r.route : route_, r.status, elapsed.count());
    if (!r.owner_outcome.empty())
      server_->owner_redirects.Add({{"outcome", std::string{r.owner_outcome}}}).Increment();
    route_.clear();
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(version_);
    res->result(r.status);
    res->set(http::field::server, "imeilockd");
    res->set(http::field::content_type, r.content_type);
    for (auto& [name, value] : r.headers)
      res->set(name, value);
    res->keep_alive(keep_alive_);
    if (head_) {
      res->content_length(r.body.size());
    } else {
      res->body() = std::move(r.body);
      res->prepare_payload();
    }
    head_ = false;
    stream_.expires_after(lim_.idle_timeout);
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
                        if (ec || !res->keep_alive())
                          return self->close_now();
                        self->read_request();
                      });
  }

  void close_now() {
    beast::error_code ignored;
    timer_.cancel();
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  /// What the keep-alive wait reads: the start of the next request.
  static constexpr std::size_t first_read_bytes = 1024;

  beast::tcp_stream stream_;
  std::shared_ptr<http_server::impl> server_;
  std::string peer_ = peer_of(stream_.socket());
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  limits lim_;
  std::shared_ptr<std::atomic<bool>> answered_;
  std::chrono::steady_clock::time_point started_;
  std::string method_;
  std::string route_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_ = false;
  bool closing_ = false;
  bool served_ = false;  ///< a complete request head arrived on this connection
  bool trusted_ = false; ///< a request head carried a valid token
};

} // namespace

void http_server::impl::do_accept(const std::shared_ptr<tcp::acceptor>& acceptor) {
  acceptor->async_accept(net::make_strand(io), [this, acceptor, self = shared_from_this()](
                                                   beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor->is_open())
      return;
    if (!ec) {
      admit(std::move(socket));
    } else {
      static log::rate_limiter limiter;
      log::write_limited(limiter, log::level::warning, "api.accept_failed",
                         {{"error", ec.message()}});
    }
    do_accept(acceptor);
  });
}

void http_server::impl::admit(tcp::socket socket) {
  beast::error_code ec;
  auto remote = socket.remote_endpoint(ec);
  if (ec) { // already reset by the peer
    socket.close(ec);
    return;
  }
  auto source = source_of(remote.address());
  std::shared_ptr<session> victim;
  std::shared_ptr<session> s;
  const char* limit = nullptr;
  {
    std::lock_guard lock{mutex};
    if (stopped) {
      socket.close(ec);
      return;
    }
    auto& per_source = sources[source];
    std::optional<std::unordered_map<session*, slot>::iterator> evict;
    if (per_source.open >= lim.max_connections_per_source) {
      limit = "per_source";
      if (!per_source.untrusted.empty())
        evict = sessions.find(untrusted.at(*per_source.untrusted.begin()));
    } else if (sessions.size() >= lim.max_connections) {
      limit = "max_connections";
      if (!untrusted.empty())
        evict = sessions.find(untrusted.begin()->second);
    }
    if (evict)
      victim = unlink(*evict); // may erase `per_source`
    if (limit == nullptr || evict) {
      s = std::make_shared<session>(std::move(socket), shared_from_this());
      auto seq = next_seq++;
      sessions.emplace(s.get(), slot{s, source, seq, false});
      untrusted.emplace(seq, s.get());
      auto& src = sources[source];
      ++src.open;
      src.untrusted.insert(seq);
    } else {
      if (per_source.open == 0)
        sources.erase(source);
      socket.close(ec); // refused: no slot and none to evict
    }
  }
  if (limit) {
    static log::rate_limiter limiter;
    log::write_limited(
        limiter, log::level::warning, s ? "api.connection_evicted" : "api.connection_rejected",
        {{"limit", limit}, {"peer", config::endpoint{to_endpoint(remote)}.to_string()}});
    (s ? evicted_connections : rejected_connections).Add({{"limit", limit}}).Increment();
  }
  if (victim)
    victim->close();
  if (s)
    s->run();
}

std::shared_ptr<session>
http_server::impl::unlink(std::unordered_map<session*, slot>::iterator it) {
  auto& entry = it->second;
  auto src = sources.find(entry.source);
  assert(src != sources.end() && src->second.open > 0);
  if (!entry.trusted) {
    untrusted.erase(entry.seq);
    src->second.untrusted.erase(entry.seq);
  }
  if (--src->second.open == 0)
    sources.erase(src);
  auto conn = entry.conn.lock();
  sessions.erase(it);
  return conn;
}

void http_server::impl::release(session* s) {
  std::lock_guard lock{mutex};
  if (auto it = sessions.find(s); it != sessions.end())
    unlink(it);
}

void http_server::impl::trust(session* s) {
  std::lock_guard lock{mutex};
  auto it = sessions.find(s);
  if (it == sessions.end() || it->second.trusted)
    return; // evicted meanwhile: it is closing
  auto& entry = it->second;
  entry.trusted = true;
  untrusted.erase(entry.seq);
  sources.at(entry.source).untrusted.erase(entry.seq);
}

http_server::http_server(net::io_context& io, const api_config& cfg, actors::sim_service& service,
                         prometheus::Registry& registry) :
    impl_(std::make_shared<impl>(io, cfg, service, registry)) {
  // More than one node: an import's lines of other nodes' shards go to their
  // owners from here, on the API's io_context; bounded by request_timeout
  // (the caller's answer waits for them).
  imeilock::http::options opt;
  opt.timeout = cfg.request_timeout;
  opt.body_limit = std::size_t{64} << 20; // an owner's per-line answers to forward_chunk_lines
  impl_->routes.set_forwarder([&io, opt](const imeilock::http::url& to,
                                         const imeilock::http::request& req,
                                         std::function<void(imeilock::http::response)> done) {
    imeilock::http::async_send(io, to, req, opt, std::move(done));
  });
}

http_server::~http_server() {
  stop();
  impl_->metrics_alive.store(false);
}

expected<void> http_server::start() {
  auto resolved = resolve_tokens(impl_->cfg);
  if (!resolved)
    return std::move(resolved.error().within("api"));
  auto tokens = std::move(*resolved);
  if (tokens.empty())
    log::warning("api.no_tokens",
                 {{"hint", "every /v1 request will get 401: set api.tokens or api.token_file"}});
  impl_->routes.set_tokens(std::move(tokens));
  std::vector<std::shared_ptr<tcp::acceptor>> bound;
  for (const auto& ep : impl_->cfg.listen) {
    auto name = ep.to_string();
    beast::error_code ec;
    std::vector<tcp::endpoint> targets;
    auto address = net::ip::make_address(ep.host, ec);
    if (!ec) {
      targets.emplace_back(address, ep.port);
    } else {
      tcp::resolver resolver{impl_->io};
      auto results = resolver.resolve(ep.host, std::to_string(ep.port), ec);
      if (ec)
        return error{sys_ec::listen_failed,
                     "api: cannot resolve listen address " + name + ": " + ec.message()};
      for (const auto& r : results)
        targets.push_back(r.endpoint());
    }
    for (const auto& target : targets) {
      auto acceptor = std::make_shared<tcp::acceptor>(net::make_strand(impl_->io));
      acceptor->open(target.protocol(), ec);
      if (!ec && target.address().is_v6())
        acceptor->set_option(net::ip::v6_only(true), ec); // [::] and 0.0.0.0 may both be listed
      if (!ec)
        acceptor->set_option(net::socket_base::reuse_address(true), ec);
      if (!ec)
        acceptor->bind(target, ec);
      if (!ec)
        acceptor->listen(net::socket_base::max_listen_connections, ec);
      if (ec) {
        for (auto& a : bound) {
          beast::error_code ignored;
          a->close(ignored);
        }
        return error{sys_ec::listen_failed, "api: cannot listen on " + name + ": " + ec.message()};
      }
      bound.push_back(std::move(acceptor));
    }
  }
  {
    std::lock_guard lock{impl_->mutex};
    impl_->stopped = false;
    impl_->acceptors = bound;
  }
  for (auto& a : bound) {
    log::info("api.listening",
              {{"addr", config::endpoint{to_endpoint(a->local_endpoint())}.to_string()}});
    impl_->do_accept(a);
  }
  return {};
}

std::vector<config::endpoint> http_server::local_endpoints() const {
  std::lock_guard lock{impl_->mutex};
  std::vector<config::endpoint> out;
  for (const auto& a : impl_->acceptors) {
    beast::error_code ec;
    auto ep = a->local_endpoint(ec);
    if (!ec)
      out.push_back(to_endpoint(ep));
  }
  return out;
}

void http_server::stop() {
  std::vector<std::shared_ptr<tcp::acceptor>> acceptors;
  std::vector<std::shared_ptr<session>> live;
  {
    std::lock_guard lock{impl_->mutex};
    if (impl_->stopped)
      return;
    impl_->stopped = true;
    acceptors.swap(impl_->acceptors);
    for (auto& [ptr, entry] : impl_->sessions)
      if (auto s = entry.conn.lock())
        live.push_back(std::move(s));
  }
  for (auto& a : acceptors)
    net::post(a->get_executor(), [a] {
      beast::error_code ignored;
      a->close(ignored);
    });
  for (auto& s : live)
    s->close();
}

void http_server::set_ready(bool ready) {
  impl_->routes.set_ready(ready);
}

expected<void> http_server::reload(const api_config& cfg) {
  auto resolved = resolve_tokens(cfg);
  if (!resolved) // the previous tokens stay in force
    return std::move(resolved.error().within("api"));
  auto tokens = std::move(*resolved);
  if (cfg.listen != impl_->cfg.listen)
    log::warning("api.listen_changed", {{"hint", "api.listen takes effect at the next restart"}});
  impl_->routes.set_tokens(std::move(tokens));
  impl_->routes.set_ui(cfg.ui);
  std::lock_guard lock{impl_->mutex};
  impl_->lim = limits_of(cfg);
  return {};
}

} // namespace imeilock::api
