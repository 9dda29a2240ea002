#include "protocols/diameter/server.hpp"

#include "actors/ports.hpp"
#include "common/log.hpp"
#include "protocols/diameter/answer_cache.hpp"
#include "protocols/diameter/key_set.hpp"
#include "protocols/diameter/messages.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <list>
#include <mutex>
#include <random>
#include <unordered_map>

namespace imeilock::diameter {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
using strand_t = asio::strand<asio::io_context::executor_type>;

namespace {

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

log::rate_limiter frame_log_limiter{10, std::chrono::seconds{1}};
log::rate_limiter evict_log_limiter{10, std::chrono::seconds{1}};

/// True if `addr` is in one of `prefixes`.
bool in_prefixes(const std::vector<address_prefix>& prefixes, const asio::ip::address& addr) {
  unsigned char buf[16];
  std::size_t len = 0;
  if (addr.is_v4()) {
    auto b = addr.to_v4().to_bytes();
    std::memcpy(buf, b.data(), 4);
    len = 4;
  } else {
    auto b = addr.to_v6().to_bytes();
    std::memcpy(buf, b.data(), 16);
    len = 16;
  }
  for (const auto& pre : prefixes)
    if (prefix_contains(pre, buf, len))
      return true;
  return false;
}

} // namespace

// Internal types of the server; a named namespace because server_impl (declared
// in the header) holds them.
namespace detail {

/// The server's Prometheus families (names imeilock_diameter_*).
struct server_metrics {
  explicit server_metrics(prometheus::Registry& reg) :
      peers(prometheus::BuildGauge()
                .Name("imeilock_diameter_peers")
                .Help("Configured Diameter peers by state (open: at least one connection past CER)")
                .Register(reg)),
      connections(prometheus::BuildGauge()
                      .Name("imeilock_diameter_connections")
                      .Help("Diameter transport connections by state")
                      .Register(reg)),
      requests(prometheus::BuildCounter()
                   .Name("imeilock_diameter_requests_total")
                   .Help("Diameter requests received, by command")
                   .Register(reg)),
      answers(prometheus::BuildCounter()
                  .Name("imeilock_diameter_answers_total")
                  .Help("Diameter answers sent, by command and Result-Code")
                  .Register(reg)),
      watchdog(prometheus::BuildCounter()
                   .Name("imeilock_diameter_watchdog_failures_total")
                   .Help("Peers closed because they did not answer a DWR within Tw (RFC 3539)")
                   .Register(reg)
                   .Add({})),
      discarded(prometheus::BuildCounter()
                    .Name("imeilock_diameter_discarded_frames_total")
                    .Help("Diameter frames discarded (and their connection closed), by reason")
                    .Register(reg)),
      rejected(prometheus::BuildCounter()
                   .Name("imeilock_diameter_rejected_connections_total")
                   .Help("Connections refused at accept or CER, or evicted while waiting for CER, "
                         "by reason")
                   .Register(reg)),
      duplicates(
          prometheus::BuildCounter()
              .Name("imeilock_diameter_duplicates_total")
              .Help("Retransmitted ACR/CCR answered again without a second observation, by kind")
              .Register(reg)),
      observations(prometheus::BuildCounter()
                       .Name("imeilock_diameter_observations_total")
                       .Help("ACR/CCR handed to the SIM layer, by IMEI status")
                       .Register(reg)),
      latency_family(prometheus::BuildHistogram()
                         .Name("imeilock_diameter_processing_seconds")
                         .Help("ACR/CCR processing time, frame received to answer queued")
                         .Register(reg)),
      latency(latency_family.Add(
          {}, prometheus::Histogram::BucketBoundaries{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                      0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5})),
      imei_ok(observations.Add({{"imei", "ok"}})),
      imei_absent(observations.Add({{"imei", "absent"}})),
      imei_malformed(observations.Add({{"imei", "malformed"}})),
      no_imsi(observations.Add({{"imei", "no_imsi"}})),
      dup_cache(duplicates.Add({{"kind", "answered_from_cache"}})),
      dup_in_flight(duplicates.Add({{"kind", "in_flight"}})) {}

  prometheus::Counter& answer(std::uint32_t cmd, std::uint32_t rc) {
    const std::uint64_t key = (std::uint64_t{cmd} << 32) | rc;
    auto it = answer_cache.find(key);
    if (it != answer_cache.end())
      return *it->second;
    auto& c = answers.Add(
        {{"command", std::string{command_name(cmd)} + "A"}, {"result_code", std::to_string(rc)}});
    answer_cache.emplace(key, &c);
    return c;
  }
  prometheus::Counter& request(std::uint32_t cmd) {
    auto it = request_cache.find(cmd);
    if (it != request_cache.end())
      return *it->second;
    auto& c = requests.Add({{"command", std::string{command_name(cmd)} + "R"}});
    request_cache.emplace(cmd, &c);
    return c;
  }
  void discard(std::string_view reason) {
    discarded.Add({{"reason", std::string{reason}}}).Increment();
  }
  void reject(std::string_view reason) {
    rejected.Add({{"reason", std::string{reason}}}).Increment();
  }

  prometheus::Family<prometheus::Gauge>& peers;
  prometheus::Family<prometheus::Gauge>& connections;
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Counter>& answers;
  prometheus::Counter& watchdog;
  prometheus::Family<prometheus::Counter>& discarded;
  prometheus::Family<prometheus::Counter>& rejected;
  prometheus::Family<prometheus::Counter>& duplicates;
  prometheus::Family<prometheus::Counter>& observations;
  prometheus::Family<prometheus::Histogram>& latency_family;
  prometheus::Histogram& latency;
  prometheus::Counter& imei_ok;
  prometheus::Counter& imei_absent;
  prometheus::Counter& imei_malformed;
  prometheus::Counter& no_imsi;
  prometheus::Counter& dup_cache;
  prometheus::Counter& dup_in_flight;
  std::unordered_map<std::uint64_t, prometheus::Counter*> answer_cache;
  std::unordered_map<std::uint32_t, prometheus::Counter*> request_cache;
};

/// A configured peer with its addresses parsed.
struct peer_entry {
  peer_config cfg;
  std::vector<address_prefix> prefixes;
  std::uint32_t open_connections = 0;
};

enum class conn_state : std::uint8_t { wait_cer, open, closing, closed };
std::string_view to_string(conn_state s) {
  switch (s) {
    case conn_state::wait_cer:
      return "wait_cer";
    case conn_state::open:
      return "open";
    case conn_state::closing:
      return "closing";
    case conn_state::closed:
      return "closed";
  }
  return "unknown";
}

struct connection;

/// An ACR/CCR waiting for the SIM layer.
struct pending_request {
  answer_context ctx;
  std::uint64_t record = 0;
  std::uint64_t e2e = 0;
  steady::time_point received;
  std::weak_ptr<connection> conn;
};

} // namespace detail

using namespace detail;

struct server_impl : std::enable_shared_from_this<server_impl> {
  server_impl(asio::io_context& io_, const diameter_config& cfg_, actors::observation_sink& sink_,
              prometheus::Registry& reg) :
      io(io_),
      strand(asio::make_strand(io_)),
      cfg(cfg_),
      sink(sink_),
      metrics(reg),
      cache(cfg_.limits.duplicate_cache_entries, cfg_.limits.duplicate_window),
      stop_timer(strand),
      rng(static_cast<std::uint32_t>(unix_ms())) {
    self.origin_host = cfg.origin_host;
    self.origin_realm = cfg.origin_realm;
    self.origin_state_id = static_cast<std::uint32_t>(unix_ms() / 1000);
    self.vendor_id = cfg.vendor_id;
    lim.max_avp_depth = cfg.limits.max_avp_depth;
    set_peers(cfg.peers);
    next_e2e = (static_cast<std::uint32_t>(unix_ms() / 1000) & 0xfffU) << 20;
    next_hbh = rng();
    for (auto s : {conn_state::wait_cer, conn_state::open, conn_state::closing})
      conn_gauges[static_cast<int>(s)] =
          &metrics.connections.Add({{"state", std::string{to_string(s)}}});
    peers_open = &metrics.peers.Add({{"state", "open"}});
    peers_down = &metrics.peers.Add({{"state", "down"}});
    update_peer_gauges();
  }

  void set_peers(const std::vector<peer_config>& list) {
    std::vector<peer_entry> next;
    for (const auto& p : list) {
      peer_entry e;
      e.cfg = p;
      for (const auto& a : p.addresses)
        if (auto pre = parse_prefix(a)) // validate() refused the others
          e.prefixes.push_back(*pre);
      // Keep the connection count of peers that stay.
      for (const auto& old : peers)
        if (iequals(old.cfg.origin_host, p.origin_host))
          e.open_connections = old.open_connections;
      next.push_back(std::move(e));
    }
    peers = std::move(next);
  }

  peer_entry* find_peer(std::string_view host) {
    for (auto& p : peers)
      if (iequals(p.cfg.origin_host, host))
        return &p;
    return nullptr;
  }

  void update_peer_gauges() {
    double open = 0;
    for (const auto& p : peers)
      if (p.open_connections > 0)
        open += 1;
    peers_open->Set(open);
    peers_down->Set(static_cast<double>(peers.size()) - open);
  }

  std::uint32_t jittered_tw_ms() {
    // RFC 3539 §3.4.1: Tw is jittered by a random value in [-2 s, +2 s].
    const auto tw = static_cast<std::int64_t>(cfg.watchdog.count());
    const std::int64_t j = static_cast<std::int64_t>(rng() % 4001) - 2000;
    return static_cast<std::uint32_t>(std::max<std::int64_t>(tw + j, 1000));
  }

  /// True if `addr` is in the address list of a configured peer.
  bool configured_address(const asio::ip::address& addr) const {
    return std::any_of(peers.begin(), peers.end(),
                       [&](const peer_entry& p) { return in_prefixes(p.prefixes, addr); });
  }

  /// Issue 9: at max_connections, the connection a newcomer from `from` may
  /// take the slot of: the oldest one still waiting for CER from an address no
  /// peer is configured with; for a newcomer from a configured peer's address,
  /// else the oldest one waiting for CER at all. Null: refuse the newcomer.
  std::shared_ptr<connection> cer_wait_victim(const asio::ip::address& from);

  void accept(tcp::acceptor& acc);
  void on_ack(const std::shared_ptr<pending_request>& p, actors::ack a);

  /// Hands the ACR/CCRs read so far to the SIM layer (one call per read),
  /// then answers those it acknowledged inline, inside submit_many (an
  /// unchanged observation is decided on the calling thread).
  void submit_batch() {
    if (to_submit.empty())
      return;
    submitting = true;
    sink.submit_many(to_submit);
    submitting = false;
    if (acks_inline.empty())
      return;
    acks_inline_work.swap(acks_inline);
    for (const auto& [p, a] : acks_inline_work)
      on_ack(p, a);
    acks_inline_work.clear();
  }

  /// The SIM layer's answer, from any thread. Inside our own submit_many (on
  /// the strand): kept for submit_batch() to answer when submit_many returns,
  /// with no lock and no post. Otherwise queued, and one post onto the strand
  /// drains whatever is queued by then (a post per answer cost an allocation
  /// and a wakeup each).
  void deliver(std::shared_ptr<pending_request> p, actors::ack a) {
    // running_in_this_thread() first: only the strand's thread reads `submitting`.
    if (strand.running_in_this_thread() && submitting) {
      acks_inline.emplace_back(std::move(p), a);
      return;
    }
    bool post;
    {
      std::lock_guard lock{acks_mutex};
      acks_in.emplace_back(std::move(p), a);
      post = !drain_posted;
      drain_posted = true;
    }
    if (post)
      asio::post(strand, [self = shared_from_this()] { self->drain_acks(); });
  }

  void drain_acks() {
    {
      std::lock_guard lock{acks_mutex};
      acks_work.swap(acks_in);
      drain_posted = false;
    }
    write_batch batch{*this};
    for (const auto& [p, a] : acks_work)
      on_ack(p, a);
    acks_work.clear();
  }

  /// While one is alive (on the strand), answers queued on a connection are
  /// written when it ends: one write per read or per drain of acks instead of
  /// a first write holding one answer and a second the rest.
  struct write_batch {
    explicit write_batch(server_impl& s) : srv(s) { ++srv.batch_depth; }
    ~write_batch() {
      if (--srv.batch_depth == 0)
        srv.flush_writes();
    }
    write_batch(const write_batch&) = delete;
    write_batch& operator=(const write_batch&) = delete;
    server_impl& srv;
  };
  /// Starts the writes the batch held back.
  void flush_writes();
  void finish_stop_if_done();
  void remove(connection* c);

  asio::io_context& io;
  strand_t strand;
  diameter_config cfg;
  local_identity self;
  decode_limits lim;
  actors::observation_sink& sink;
  server_metrics metrics;
  answer_cache cache;
  key_set in_flight; ///< dedupe keys (record and end-to-end) with the SIM layer
  std::vector<actors::submission> to_submit; ///< read, not yet handed to the sink
  std::mutex acks_mutex;
  std::vector<std::pair<std::shared_ptr<pending_request>, actors::ack>>
      acks_in;               ///< answers from the SIM layer; guarded by acks_mutex
  bool drain_posted = false; ///< guarded by acks_mutex
  std::vector<std::pair<std::shared_ptr<pending_request>, actors::ack>> acks_work; ///< strand's
  bool submitting = false; ///< strand's: inside sink.submit_many()
  std::vector<std::pair<std::shared_ptr<pending_request>, actors::ack>>
      acks_inline; ///< strand's: acknowledged inside submit_many()
  std::vector<std::pair<std::shared_ptr<pending_request>, actors::ack>> acks_inline_work;
  int batch_depth = 0;                             ///< strand's: open write_batch scopes
  std::vector<std::shared_ptr<connection>> unsent; ///< strand's: writes held by the batch
  std::vector<std::uint8_t> scratch;               ///< strand's: an answer being built
  std::vector<peer_entry> peers;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::list<std::shared_ptr<connection>> conns;
  prometheus::Gauge* conn_gauges[3] = {nullptr, nullptr, nullptr};
  prometheus::Gauge* peers_open = nullptr;
  prometheus::Gauge* peers_down = nullptr;
  bool stopping = false;
  std::function<void()> stop_done;
  asio::steady_timer stop_timer;
  std::minstd_rand rng;
  std::uint32_t next_hbh = 0;
  std::uint32_t next_e2e = 0;
};

namespace detail {

/// One transport connection with a peer (RFC 6733 §5.6 responder side).
struct connection : std::enable_shared_from_this<connection> {
  connection(std::shared_ptr<server_impl> s, tcp::socket sock_) :
      srv(std::move(s)),
      sock(std::move(sock_)),
      watchdog_timer(srv->strand),
      cer_timer(srv->strand),
      close_timer(srv->strand) {
    rbuf.resize(std::min<std::size_t>(srv->cfg.limits.max_message_size, 65536));
  }

  void start() {
    boost::system::error_code ec;
    // Small answers must leave at once: Nagle + delayed ACK costs 40 ms per answer.
    sock.set_option(tcp::no_delay(true), ec);
    auto remote = sock.remote_endpoint(ec);
    if (!ec)
      remote_addr = remote.address();
    auto local = sock.local_endpoint(ec);
    if (!ec)
      local_addr = local.address();
    set_state(conn_state::wait_cer);
    cer_timer.expires_after(srv->cfg.cer_timeout);
    cer_timer.async_wait([self = shared_from_this()](boost::system::error_code e) {
      if (!e && self->state == conn_state::wait_cer) {
        self->srv->metrics.discard("cer_timeout");
        self->close();
      }
    });
    do_read();
  }

  void set_state(conn_state s) {
    if (state != conn_state::closed)
      srv->conn_gauges[static_cast<int>(state)]->Decrement();
    if (state == conn_state::open && peer) {
      if (peer->open_connections > 0)
        --peer->open_connections;
      srv->update_peer_gauges();
    }
    state = s;
    if (s != conn_state::closed)
      srv->conn_gauges[static_cast<int>(s)]->Increment();
    if (s == conn_state::open && peer) {
      ++peer->open_connections;
      srv->update_peer_gauges();
    }
  }

  // -- reading ---------------------------------------------------------------

  void do_read() {
    if (reading || state == conn_state::closed || close_after_write || read_paused())
      return;
    if (rlen == rbuf.size()) {
      // Only a frame whose declared length fits max_message_size gets here
      // (check_frame ran first), so growth is bounded by the limit.
      rbuf.resize(std::min<std::size_t>(rbuf.size() * 2, srv->cfg.limits.max_message_size));
    }
    reading = true;
    sock.async_read_some(asio::buffer(rbuf.data() + rlen, rbuf.size() - rlen),
                         [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                           self->reading = false;
                           self->on_read(ec, n);
                         });
  }

  bool read_paused() const {
    return wpend.size() + wwrite.size() > srv->cfg.limits.max_write_buffer;
  }

  void on_read(boost::system::error_code ec, std::size_t n) {
    server_impl::write_batch batch{*srv};
    read_frames(ec, n);
    // The ACR/CCRs of everything just read go to the SIM layer together
    // (one message per shard), whichever way read_frames() left.
    srv->submit_batch();
  }

  void read_frames(boost::system::error_code ec, std::size_t n) {
    if (state == conn_state::closed)
      return;
    if (ec) {
      if (ec != asio::error::eof && ec != asio::error::operation_aborted)
        log::debug("diameter.read_error", {{"peer", peer_name()}, {"error", ec.message()}});
      close();
      return;
    }
    rlen += n;
    last_rx = steady::now();
    std::size_t off = 0;
    while (state != conn_state::closed) {
      std::uint32_t len = 0;
      const auto st =
          check_frame(bytes{rbuf.data() + off, rlen - off}, srv->cfg.limits.max_message_size, len);
      if (st == frame_status::need_more) {
        if (st == frame_status::need_more && len > rbuf.size() && rlen - off >= 4) {
          // A complete header announced a frame larger than the buffer: grow once to its length.
          if (off > 0) {
            std::memmove(rbuf.data(), rbuf.data() + off, rlen - off);
            rlen -= off;
            off = 0;
          }
          rbuf.resize(len);
        }
        break;
      }
      if (st != frame_status::complete) {
        srv->metrics.discard(to_string(st));
        std::uint64_t suppressed = 0;
        if (frame_log_limiter.allow(suppressed))
          log::warning(
              "diameter.framing_error",
              {{"peer", peer_name()}, {"reason", to_string(st)}, {"suppressed", suppressed}});
        close();
        return;
      }
      handle(bytes{rbuf.data() + off, len});
      off += len;
      // A refused CER: nothing after it is read; the connection closes once the CEA is out.
      if (close_after_write)
        return;
    }
    if (state == conn_state::closed)
      return;
    if (off > 0) {
      std::memmove(rbuf.data(), rbuf.data() + off, rlen - off);
      rlen -= off;
    }
    // Keep the buffer small again after a large frame.
    if (rlen == 0 && rbuf.size() > 65536)
      rbuf.resize(65536);
    do_read();
  }

  // -- dispatch ----------------------------------------------------------------

  void handle(bytes msg) {
    const header h = decode_header(msg);
    const message_kind kind = classify(h);
    if (h.is_request())
      srv->metrics.request(h.command).Increment();
    if (state == conn_state::wait_cer) {
      // RFC 6733 §5.6: in Wait-CER only a CER is acceptable.
      if (kind != message_kind::cer) {
        srv->metrics.discard("before_cer");
        close();
        return;
      }
      handle_cer(msg, h);
      return;
    }
    switch (kind) {
      case message_kind::cer:
        handle_cer(msg, h);
        return;
      case message_kind::dwr:
        handle_dwr(msg, h);
        return;
      case message_kind::dpr:
        handle_dpr(msg, h);
        return;
      case message_kind::acr:
      case message_kind::ccr:
        handle_charging(msg, h);
        return;
      case message_kind::dwa:
        if (dwr_outstanding && h.hop_by_hop == dwr_hbh)
          dwr_outstanding = false;
        return;
      case message_kind::dpa:
        if (dpr_sent && h.hop_by_hop == dpr_hbh)
          close();
        return;
      case message_kind::other_request: {
        auto err = check_request_header(h);
        if (!err)
          err.result_code = result::command_unsupported;
        answer_error(msg, h, err);
        return;
      }
      case message_kind::cea:
      case message_kind::other_answer:
        // We send no request other than DWR/DPR; a stray answer is dropped (RFC 6733 §6.2.2).
        srv->metrics.discard("unexpected_answer");
        return;
    }
  }

  void answer_error(bytes msg, const header& h, const request_error& err) {
    avp sid;
    std::string_view session;
    if (find_avp(msg.subspan(header_size), avp_code::session_id, 0, sid))
      session = sid.text();
    std::vector<std::uint8_t> out;
    build_error_answer(out, h, session, srv->self, err.result_code, err.failed_avp, err.message);
    srv->metrics.answer(h.command, err.result_code).Increment();
    send(out);
  }

  std::vector<host_address> host_addresses() const {
    host_address a;
    auto addr = local_addr;
    if (addr.is_v6() && addr.to_v6().is_v4_mapped())
      addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
    if (addr.is_v4()) {
      a.family = 1;
      auto b = addr.to_v4().to_bytes();
      a.addr.assign(b.begin(), b.end());
    } else {
      a.family = 2;
      auto b = addr.to_v6().to_bytes();
      a.addr.assign(b.begin(), b.end());
    }
    return {a};
  }

  void refuse_cer(const header& h, std::uint32_t rc, std::string_view reason,
                  std::string_view message) {
    std::vector<std::uint8_t> out;
    build_cea(out, h, srv->self, rc, host_addresses(), {}, message);
    srv->metrics.answer(h.command, rc).Increment();
    srv->metrics.reject(reason);
    log::warning("diameter.cer_refused", {{"peer", peer_name()},
                                          {"origin_host", cer_host},
                                          {"remote", remote_addr.to_string()},
                                          {"result_code", rc},
                                          {"reason", reason}});
    send(out);
    close_after_write = true;
    start_write(); // now, not at the end of the read batch: close() below would drop the CEA
    if (!writing)
      close();
  }

  bool address_allowed(const peer_entry& p) const {
    return p.prefixes.empty() || in_prefixes(p.prefixes, remote_addr);
  }

  void handle_cer(bytes msg, const header& h) {
    if (auto err = check_request_header(h)) {
      answer_error(msg, h, err);
      close_after_write = true;
      return;
    }
    cer_info info;
    auto err = parse_cer(msg, info);
    cer_host = info.origin_host;
    if (err) {
      std::vector<std::uint8_t> out;
      build_cea(out, h, srv->self, err.result_code, host_addresses(), err.failed_avp, err.message);
      srv->metrics.answer(h.command, err.result_code).Increment();
      srv->metrics.reject("invalid_cer");
      send(out);
      close_after_write = true;
      return;
    }
    peer_entry* p = srv->find_peer(info.origin_host);
    // RFC 6733 §5.3: a CER from an unknown peer is answered 3010 and the connection closed.
    if (!p || (!p->cfg.realm.empty() && !iequals(p->cfg.realm, info.origin_realm)) ||
        !address_allowed(*p)) {
      refuse_cer(h, result::unknown_peer, p ? "address_or_realm" : "unknown_peer", "unknown peer");
      return;
    }
    bool common = false;
    for (auto lists : {&info.auth_applications, &info.acct_applications})
      for (auto app : *lists)
        if (app == application::accounting || app == application::credit_control ||
            app == application::relay)
          common = true;
    // RFC 6733 §5.3: no common application -> 5010 DIAMETER_NO_COMMON_APPLICATION, then close.
    if (!common) {
      refuse_cer(h, result::no_common_application, "no_common_application",
                 "no common application");
      return;
    }
    if (state == conn_state::wait_cer &&
        p->open_connections >= srv->cfg.limits.max_connections_per_peer) {
      refuse_cer(h, result::unable_to_comply, "peer_connection_limit",
                 "too many connections from this peer");
      return;
    }
    std::vector<std::uint8_t> out;
    build_cea(out, h, srv->self, result::success, host_addresses());
    srv->metrics.answer(h.command, result::success).Increment();
    if (state == conn_state::wait_cer) {
      peer = p;
      peer_host = p->cfg.origin_host;
      cer_timer.cancel();
      set_state(conn_state::open);
      log::info("diameter.peer_open", {{"peer", peer_host},
                                       {"remote", remote_addr.to_string()},
                                       {"product", info.product_name}});
      arm_watchdog(srv->jittered_tw_ms());
    }
    // After the state change, so whoever reads the CEA sees the peer open.
    send(out);
  }

  void handle_dwr(bytes msg, const header& h) {
    if (auto err = check_request_header(h))
      return answer_error(msg, h, err);
    base_info info;
    auto err = parse_base(msg, info);
    std::vector<std::uint8_t> out;
    build_dwa(out, h, srv->self, err ? err.result_code : result::success);
    srv->metrics.answer(h.command, err ? err.result_code : result::success).Increment();
    send(out);
  }

  void handle_dpr(bytes msg, const header& h) {
    if (auto err = check_request_header(h))
      return answer_error(msg, h, err);
    base_info info;
    auto err = parse_base(msg, info);
    std::vector<std::uint8_t> out;
    build_dpa(out, h, srv->self, err ? err.result_code : result::success);
    srv->metrics.answer(h.command, err ? err.result_code : result::success).Increment();
    send(out);
    if (err)
      return;
    log::info("diameter.peer_disconnect",
              {{"peer", peer_name()}, {"cause", info.disconnect_cause}});
    // RFC 6733 §5.4: the DPR sender closes after our DPA; close ourselves if it does not.
    set_state(conn_state::closing);
    close_timer.expires_after(srv->cfg.dpr_timeout);
    close_timer.async_wait([self = shared_from_this()](boost::system::error_code e) {
      if (!e)
        self->close();
    });
  }

  // -- Rf / Gy -----------------------------------------------------------------

  void handle_charging(bytes msg, const header& h) {
    const auto received = steady::now();
    if (auto err = check_request_header(h))
      return answer_error(msg, h, err);
    charging_request req;
    if (auto err = parse_charging_request(msg, srv->lim, req)) {
      std::vector<std::uint8_t> out;
      build_charging_answer(out, req.ctx, srv->self, err.result_code, err.failed_avp, err.message);
      srv->metrics.answer(h.command, err.result_code).Increment();
      send(out);
      return;
    }
    const std::int64_t now_ms = unix_ms();
    const std::uint64_t rec = record_key(req.ctx.session_id, h.command, req.ctx.record_number);
    const std::uint64_t e2e = end_to_end_key(req.origin_host, h.end_to_end);
    // RFC 6733 §9.4 / §3: a retransmitted record gets the same answer, no second observation.
    auto cached = srv->cache.find(rec, now_ms);
    if (!cached)
      cached = srv->cache.find(e2e, now_ms);
    if (cached) {
      auto& out = srv->scratch;
      out.assign(cached->begin(), cached->end());
      store_u32(out.data() + 12, h.hop_by_hop);
      srv->metrics.dup_cache.Increment();
      srv->metrics.answer(h.command, result::success).Increment();
      send(out);
      return;
    }
    if (srv->in_flight.contains(rec) || srv->in_flight.contains(e2e)) {
      // The original is still with the SIM layer; its answer will follow on its connection.
      srv->metrics.dup_in_flight.Increment();
      return;
    }
    if (srv->stopping || pending >= srv->cfg.limits.max_pending_per_connection) {
      // DESIGN §5: shed load the protocol's way.
      std::vector<std::uint8_t> out;
      build_charging_answer(out, req.ctx, srv->self, result::too_busy);
      srv->metrics.answer(h.command, result::too_busy).Increment();
      send(out);
      return;
    }
    auto p = std::make_shared<pending_request>();
    p->record = rec;
    p->e2e = e2e;
    p->received = received;
    p->conn = weak_from_this();
    const std::uint64_t imsi = imsi_to_integer(req.imsi);
    if (imsi == 0) {
      // Nothing to learn without an IMSI; the record is still accounted for.
      srv->metrics.no_imsi.Increment();
      p->ctx = std::move(req.ctx);
      srv->on_ack(p, actors::ack::ok);
      return;
    }
    switch (req.imei.status) {
      case lock::imei_status::ok:
        srv->metrics.imei_ok.Increment();
        break;
      case lock::imei_status::absent:
        srv->metrics.imei_absent.Increment();
        break;
      case lock::imei_status::malformed:
        srv->metrics.imei_malformed.Increment();
        break;
    }
    actors::observation obs;
    obs.imsi = imsi;
    obs.msisdn = std::move(req.msisdn);
    obs.imei = req.imei;
    obs.source = actors::source_kind::diameter;
    obs.peer = std::move(req.origin_host);
    obs.dedupe_key = rec;
    obs.at_ms = now_ms;
    p->ctx = std::move(req.ctx);
    srv->in_flight.insert(rec);
    srv->in_flight.insert(e2e);
    ++pending;
    // Acknowledged from any thread, possibly inside submit_many(): deliver()
    // hops back onto our strand.
    srv->to_submit.push_back(
        {std::move(obs), [s = srv, p = std::move(p)](actors::ack a) { s->deliver(p, a); }});
  }

  void on_answered() {
    if (pending > 0)
      --pending;
    if (dpr_wanted && pending == 0)
      send_dpr(dpr_cause);
  }

  // -- watchdog (RFC 3539) -----------------------------------------------------

  void arm_watchdog(std::uint32_t ms) {
    watchdog_timer.expires_after(std::chrono::milliseconds{ms});
    watchdog_timer.async_wait([self = shared_from_this()](boost::system::error_code e) {
      if (!e)
        self->on_watchdog();
    });
  }

  void on_watchdog() {
    if (state != conn_state::open)
      return;
    const auto now = steady::now();
    const auto tw = std::chrono::milliseconds{srv->jittered_tw_ms()};
    if (dwr_outstanding && now - dwr_sent_at >= std::chrono::milliseconds{srv->cfg.watchdog}) {
      // RFC 3539 §3.4: no DWA within Tw of our DWR -> the peer is down; close it.
      srv->metrics.watchdog.Increment();
      log::warning("diameter.watchdog_failure", {{"peer", peer_name()}});
      close();
      return;
    }
    if (!dwr_outstanding && now - last_rx >= tw - std::chrono::milliseconds{1}) {
      // RFC 3539 §3.4.1: Tw without any traffic from the peer -> send a DWR.
      std::vector<std::uint8_t> out;
      dwr_hbh = srv->next_hbh++;
      build_dwr(out, srv->self, dwr_hbh, srv->next_e2e++);
      send(out);
      dwr_outstanding = true;
      dwr_sent_at = now;
      arm_watchdog(static_cast<std::uint32_t>(srv->cfg.watchdog.count()));
      return;
    }
    if (dwr_outstanding) {
      const auto left = std::chrono::milliseconds{srv->cfg.watchdog} - (now - dwr_sent_at);
      arm_watchdog(static_cast<std::uint32_t>(std::max<std::int64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(left).count(), 1)));
      return;
    }
    const auto left = tw - (now - last_rx);
    arm_watchdog(static_cast<std::uint32_t>(std::max<std::int64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(left).count(), 1)));
  }

  // -- DPR we send ---------------------------------------------------------------

  /// Sends DPR once nothing is pending (answers first, RFC 6733 §5.4).
  void request_disconnect(std::uint32_t cause) {
    if (state == conn_state::wait_cer) {
      close();
      return;
    }
    if (state != conn_state::open)
      return;
    dpr_cause = cause;
    if (pending == 0)
      send_dpr(cause);
    else
      dpr_wanted = true;
  }

  void send_dpr(std::uint32_t cause) {
    if (dpr_sent || state == conn_state::closed)
      return;
    dpr_wanted = false;
    dpr_sent = true;
    std::vector<std::uint8_t> out;
    dpr_hbh = srv->next_hbh++;
    build_dpr(out, srv->self, dpr_hbh, srv->next_e2e++, cause);
    send(out);
    set_state(conn_state::closing);
  }

  // -- writing -------------------------------------------------------------------

  void send(const std::vector<std::uint8_t>& msg) {
    if (state == conn_state::closed)
      return;
    wpend.insert(wpend.end(), msg.begin(), msg.end());
    if (writing)
      return; // the write in progress sends wpend next
    if (srv->batch_depth > 0) {
      if (!write_held) {
        write_held = true;
        srv->unsent.push_back(shared_from_this());
      }
      return;
    }
    start_write();
  }

  void start_write() {
    if (writing || wpend.empty() || state == conn_state::closed)
      return;
    wwrite.swap(wpend);
    wpend.clear();
    writing = true;
    asio::async_write(sock, asio::buffer(wwrite),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        self->writing = false;
                        self->wwrite.clear();
                        if (ec) {
                          self->close();
                          return;
                        }
                        if (!self->wpend.empty()) {
                          self->start_write();
                        } else if (self->close_after_write) {
                          self->close();
                          return;
                        }
                        self->do_read(); // resumes a read paused by a full write buffer
                      });
  }

  void close() {
    if (state == conn_state::closed)
      return;
    if (state == conn_state::open)
      log::info("diameter.peer_closed", {{"peer", peer_name()}});
    set_state(conn_state::closed);
    boost::system::error_code ec;
    sock.shutdown(tcp::socket::shutdown_both, ec);
    sock.close(ec);
    watchdog_timer.cancel();
    cer_timer.cancel();
    close_timer.cancel();
    srv->remove(this);
  }

  std::string peer_name() const { return peer_host.empty() ? remote_addr.to_string() : peer_host; }

  std::shared_ptr<server_impl> srv;
  tcp::socket sock;
  asio::steady_timer watchdog_timer;
  asio::steady_timer cer_timer;
  asio::steady_timer close_timer;
  conn_state state = conn_state::closed;
  peer_entry* peer = nullptr; // into srv->peers; reset on reload
  std::string peer_host;
  std::string cer_host;
  asio::ip::address remote_addr;
  asio::ip::address local_addr;
  std::vector<std::uint8_t> rbuf;
  std::size_t rlen = 0;
  bool reading = false;
  std::vector<std::uint8_t> wpend;
  std::vector<std::uint8_t> wwrite;
  bool writing = false;
  bool write_held = false; ///< in srv->unsent: the read batch writes wpend when it ends
  bool close_after_write = false;
  steady::time_point last_rx = steady::now();
  bool dwr_outstanding = false;
  std::uint32_t dwr_hbh = 0;
  steady::time_point dwr_sent_at;
  bool dpr_wanted = false;
  bool dpr_sent = false;
  std::uint32_t dpr_hbh = 0;
  std::uint32_t dpr_cause = 0;
  std::uint32_t pending = 0;
};

} // namespace detail

void server_impl::accept(tcp::acceptor& acc) {
  // The new socket is created on our strand, so all its handlers are serialised.
  acc.async_accept(strand, [self = shared_from_this(), &acc](boost::system::error_code ec,
                                                             tcp::socket sock) {
    if (ec == asio::error::operation_aborted || self->stopping)
      return;
    if (!ec) {
      if (self->conns.size() >= self->cfg.limits.max_connections) {
        // Issue 9: make room by evicting a connection still waiting for CER, if the policy allows.
        boost::system::error_code rec;
        const auto from = sock.remote_endpoint(rec);
        auto victim = rec ? nullptr : self->cer_wait_victim(from.address());
        std::uint64_t suppressed = 0;
        if (evict_log_limiter.allow(suppressed))
          log::warning(victim ? "diameter.evicted_in_cer_wait" : "diameter.connection_limit",
                       {{"from", rec ? std::string{"?"} : from.address().to_string()},
                        {"evicted", victim ? victim->remote_addr.to_string() : std::string{"-"}},
                        {"max_connections", self->cfg.limits.max_connections},
                        {"suppressed", suppressed}});
        if (victim) {
          self->metrics.reject("evicted_in_cer_wait");
          victim->close();
        }
      }
      if (self->conns.size() >= self->cfg.limits.max_connections) {
        self->metrics.reject("connection_limit");
        boost::system::error_code ignored;
        sock.close(ignored);
      } else {
        auto c = std::make_shared<connection>(self, std::move(sock));
        self->conns.push_back(c);
        c->start();
      }
    } else {
      // E.g. EMFILE: log (rate-limited) and retry a little later instead of spinning.
      std::uint64_t suppressed = 0;
      if (frame_log_limiter.allow(suppressed))
        log::warning("diameter.accept_error",
                     {{"error", ec.message()}, {"suppressed", suppressed}});
      auto t = std::make_shared<asio::steady_timer>(self->strand, std::chrono::milliseconds{100});
      t->async_wait([self, t, &acc](boost::system::error_code) { self->accept(acc); });
      return;
    }
    self->accept(acc);
  });
}

std::shared_ptr<connection> server_impl::cer_wait_victim(const asio::ip::address& from) {
  std::shared_ptr<connection> oldest_waiting;
  for (const auto& c : conns) { // accept order: oldest first
    if (c->state != conn_state::wait_cer)
      continue;
    if (!configured_address(c->remote_addr))
      return c;
    if (!oldest_waiting)
      oldest_waiting = c;
  }
  return configured_address(from) ? oldest_waiting : nullptr;
}

void server_impl::on_ack(const std::shared_ptr<pending_request>& p, actors::ack a) {
  in_flight.erase(p->record);
  in_flight.erase(p->e2e);
  const std::uint32_t rc = (a == actors::ack::ok || a == actors::ack::unknown_sim) ? result::success
                           : a == actors::ack::not_owner ? result::unable_to_deliver
                                                         : result::too_busy;
  metrics.answer(p->ctx.request.command, rc).Increment();
  metrics.latency.Observe(std::chrono::duration<double>(steady::now() - p->received).count());
  auto c = p->conn.lock();
  if (rc == result::success) {
    // Kept for retransmissions (RFC 6733 §9.4), so built in its own buffer.
    auto answer = std::make_shared<std::vector<std::uint8_t>>();
    build_charging_answer(*answer, p->ctx, self, rc);
    const std::int64_t now_ms = unix_ms();
    cache.insert(p->record, answer, now_ms);
    cache.insert(p->e2e, answer, now_ms);
    if (c)
      c->send(*answer);
  } else if (c) {
    scratch.clear();
    build_charging_answer(scratch, p->ctx, self, rc);
    c->send(scratch);
  }
  if (c)
    c->on_answered();
}

void server_impl::flush_writes() {
  // Index loop: a write started here may complete only later (never inline),
  // but stay safe if a handler appends.
  for (std::size_t i = 0; i < unsent.size(); ++i) {
    auto& c = *unsent[i];
    c.write_held = false;
    c.start_write();
  }
  unsent.clear();
}

void server_impl::remove(connection* c) {
  for (auto it = conns.begin(); it != conns.end(); ++it) {
    if (it->get() == c) {
      // Keep the object alive until the handlers it is inside of have returned.
      asio::post(strand, [keep = *it] {});
      conns.erase(it);
      break;
    }
  }
  finish_stop_if_done();
}

void server_impl::finish_stop_if_done() {
  if (!stopping || !conns.empty() || !stop_done)
    return;
  stop_timer.cancel();
  auto done = std::move(stop_done);
  stop_done = nullptr;
  log::info("diameter.stopped");
  done();
}

diameter_server::diameter_server(boost::asio::io_context& io, const diameter_config& cfg,
                                 actors::observation_sink& sink, prometheus::Registry& registry) :
    impl_(std::make_shared<server_impl>(io, cfg, sink, registry)) {}

diameter_server::~diameter_server() {
  // Best effort if stop() was not awaited: close everything on the strand.
  auto s = impl_;
  asio::post(s->strand, [s] {
    s->stopping = true;
    for (auto& a : s->acceptors) {
      boost::system::error_code ec;
      a->close(ec);
    }
    auto copy = s->conns;
    for (auto& c : copy)
      c->close();
  });
}

expected<void> diameter_server::start() {
  auto& s = *impl_;
  for (const auto& ep : s.cfg.listen) {
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(ep.host, ec);
    if (ec)
      return error{sys_ec::listen_failed,
                   "diameter: cannot listen on " + ep.to_string() + ": not an IP address"};
    tcp::endpoint endpoint{addr, ep.port};
    auto acc = std::make_unique<tcp::acceptor>(s.strand);
    acc->open(endpoint.protocol(), ec);
    if (!ec)
      acc->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && addr.is_v6())
      acc->set_option(asio::ip::v6_only(true), ec);
    if (!ec)
      acc->bind(endpoint, ec);
    if (!ec)
      acc->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      s.acceptors.clear();
      return error{sys_ec::listen_failed,
                   "diameter: cannot listen on " + ep.to_string() + ": " + ec.message()};
    }
    s.acceptors.push_back(std::move(acc));
  }
  for (auto& acc : s.acceptors) {
    auto local = acc->local_endpoint();
    log::info("diameter.listening",
              {{"addr", local.address().to_string() + ":" + std::to_string(local.port())},
               {"origin_host", s.self.origin_host}});
    asio::post(s.strand, [impl = impl_, a = acc.get()] { impl->accept(*a); });
  }
  return {};
}

std::vector<config::endpoint> diameter_server::local_endpoints() const {
  std::vector<config::endpoint> out;
  for (const auto& acc : impl_->acceptors) {
    boost::system::error_code ec;
    auto local = acc->local_endpoint(ec);
    if (!ec)
      out.push_back({local.address().to_string(), local.port()});
  }
  return out;
}

void diameter_server::stop(std::function<void()> done) {
  auto s = impl_;
  asio::post(s->strand, [s, done = std::move(done)]() mutable {
    if (s->stopping && !s->stop_done) {
      if (done)
        asio::post(s->strand, std::move(done));
      return;
    }
    s->stopping = true;
    s->stop_done = done ? std::move(done) : [] {};
    for (auto& a : s->acceptors) {
      boost::system::error_code ec;
      a->close(ec);
    }
    log::info("diameter.stopping", {{"connections", s->conns.size()}});
    auto copy = s->conns;
    for (auto& c : copy)
      c->request_disconnect(disconnect_cause::rebooting);
    s->stop_timer.expires_after(s->cfg.dpr_timeout);
    s->stop_timer.async_wait([s](boost::system::error_code ec) {
      if (ec)
        return;
      auto left = s->conns;
      if (!left.empty())
        log::warning("diameter.stop_timeout", {{"connections", left.size()}});
      for (auto& c : left)
        c->close();
      s->finish_stop_if_done();
    });
    s->finish_stop_if_done();
  });
}

void diameter_server::reload(const diameter_config& cfg) {
  auto s = impl_;
  asio::post(s->strand, [s, cfg] {
    s->cfg.peers = cfg.peers;
    s->cfg.watchdog = cfg.watchdog;
    s->cfg.cer_timeout = cfg.cer_timeout;
    s->cfg.dpr_timeout = cfg.dpr_timeout;
    s->cfg.limits = cfg.limits;
    s->lim.max_avp_depth = cfg.limits.max_avp_depth;
    s->cache.set_limits(cfg.limits.duplicate_cache_entries, cfg.limits.duplicate_window);
    s->set_peers(cfg.peers);
    // Re-point connections at the new peer table; drop peers no longer configured.
    auto copy = s->conns;
    for (auto& c : copy) {
      if (c->state == conn_state::wait_cer)
        continue;
      c->peer = s->find_peer(c->peer_host);
      if (!c->peer) {
        log::notice("diameter.peer_removed", {{"peer", c->peer_host}});
        c->request_disconnect(disconnect_cause::do_not_want_to_talk_to_you);
      }
    }
    // Recount open connections per peer from scratch.
    for (auto& p : s->peers)
      p.open_connections = 0;
    for (auto& c : s->conns)
      if (c->state == conn_state::open && c->peer)
        ++c->peer->open_connections;
    s->update_peer_gauges();
    log::info("diameter.reloaded", {{"peers", s->peers.size()}});
  });
}

} // namespace imeilock::diameter
