#include "protocols/radius/server.hpp"

#include "common/fault.hpp"
#include "common/log.hpp"
#include "protocols/radius/accounting.hpp"
#include "protocols/radius/clients.hpp"
#include "protocols/radius/codec.hpp"
#include "protocols/radius/response_cache.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/container/small_vector.hpp>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace imeilock::radius {

namespace asio = boost::asio;
using udp = asio::ip::udp;
using clock_type = std::chrono::steady_clock;

std::uint64_t server_stats::discarded_total() const {
  std::uint64_t n = 0;
  for (auto d : discarded)
    n += d;
  return n;
}

namespace {

constexpr std::size_t batch_size = 64;
/// One more than the largest valid packet, so an oversize datagram is seen as such.
constexpr std::size_t recv_buffer_size = max_packet_size + 1;
constexpr std::size_t status_labels = 6;

std::size_t status_index(std::uint32_t status) {
  switch (status) {
    case 1:
      return 0;
    case 2:
      return 1;
    case 3:
      return 2;
    case 7:
      return 3;
    case 8:
      return 4;
    default:
      return 5;
  }
}
constexpr const char* status_names[status_labels] = {"start", "stop", "interim",
                                                     "on",    "off",  "other"};

/// Latency buckets, seconds: 50 µs .. 2 s.
const prometheus::Histogram::BucketBoundaries latency_buckets = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025,   0.05,   0.1,     0.25,   0.5,   1,      2};

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// A peer's socket address, big enough for IPv4 and IPv6.
union peer_address {
  sockaddr sa;
  sockaddr_in v4;
  sockaddr_in6 v6;
};

ip_address to_ip(const peer_address& a, std::uint16_t& port) {
  if (a.sa.sa_family == AF_INET) {
    port = ntohs(a.v4.sin_port);
    return ip_address::from_bytes(bytes{reinterpret_cast<const std::uint8_t*>(&a.v4.sin_addr), 4});
  }
  port = ntohs(a.v6.sin6_port);
  return ip_address::from_bytes(bytes{reinterpret_cast<const std::uint8_t*>(&a.v6.sin6_addr), 16});
}

/// An Accounting-Response: 20 octets, more only with Proxy-State (then on the heap).
using response_bytes = boost::container::small_vector<std::uint8_t, 24>;

/// Everything a worker reads from the configuration; replaced whole on reload.
struct settings {
  std::shared_ptr<client_table> clients;
  user_name_rules user_name;
  clock_type::duration window{};
  std::size_t cache_entries = 0;
  std::uint32_t max_in_flight = 0;
  bool with_disconnect = false;
};

/// Per-client metric handles; they live in the Registry for the process's life.
struct client_metrics {
  std::array<prometheus::Counter*, status_labels> requests{};
  prometheus::Counter* responses = nullptr;
  std::uint32_t id = 0; ///< dense, from 0: a worker's index into its pending counts
};

/// The Prometheus side, shared by all workers.
struct metrics {
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Counter>& responses;
  prometheus::Family<prometheus::Counter>& discards;
  prometheus::Family<prometheus::Counter>& duplicates;
  prometheus::Family<prometheus::Counter>& observations;
  prometheus::Family<prometheus::Histogram>& latency_family;
  std::array<prometheus::Counter*, discard_reason_count> discard{};
  prometheus::Counter& resent;
  prometheus::Counter& in_progress;
  prometheus::Counter& no_imsi;
  std::array<prometheus::Counter*, 6> acks{};
  prometheus::Histogram& latency;
  std::mutex clients_mutex;
  std::map<std::string, std::unique_ptr<client_metrics>> clients;
  std::uint32_t next_client_id = 0; ///< guarded by clients_mutex

  explicit metrics(prometheus::Registry& r) :
      requests(
          prometheus::BuildCounter()
              .Name("imeilock_radius_requests_total")
              .Help(
                  "Valid Accounting-Requests by client and Acct-Status-Type (duplicates excluded)")
              .Register(r)),
      responses(prometheus::BuildCounter()
                    .Name("imeilock_radius_responses_total")
                    .Help("Accounting-Responses sent by client (resent duplicates excluded)")
                    .Register(r)),
      discards(prometheus::BuildCounter()
                   .Name("imeilock_radius_discards_total")
                   .Help("Datagrams silently discarded (RFC 2865 §3), by reason")
                   .Register(r)),
      duplicates(prometheus::BuildCounter()
                     .Name("imeilock_radius_duplicates_total")
                     .Help("Retransmitted requests (RFC 5080 §2.2.2): resent from the cache or "
                           "dropped in progress")
                     .Register(r)),
      observations(prometheus::BuildCounter()
                       .Name("imeilock_radius_observations_total")
                       .Help("Observations handed to the SIM layer, by its answer")
                       .Register(r)),
      latency_family(prometheus::BuildHistogram()
                         .Name("imeilock_radius_processing_seconds")
                         .Help("From reading an Accounting-Request to sending its response")
                         .Register(r)),
      resent(duplicates.Add({{"kind", "resent"}})),
      in_progress(duplicates.Add({{"kind", "in_progress"}})),
      no_imsi(prometheus::BuildCounter()
                  .Name("imeilock_radius_no_imsi_total")
                  .Help("Session records answered without an observation: no usable IMSI")
                  .Register(r)
                  .Add({})),
      latency(latency_family.Add({}, latency_buckets)) {
    for (std::size_t i = 0; i < discard_reason_count; ++i)
      discard[i] =
          &discards.Add({{"reason", std::string{to_string(static_cast<discard_reason>(i))}}});
    const char* ack_names[] = {"ok",           "unknown_sim",   "overloaded",
                               "store_failed", "shutting_down", "not_owner"};
    for (std::size_t i = 0; i < acks.size(); ++i)
      acks[i] = &observations.Add({{"ack", ack_names[i]}});
  }

  /// The handles for a client, made on first sight.
  client_metrics* for_client(const std::string& name) {
    std::lock_guard lock{clients_mutex};
    auto& slot = clients[name];
    if (!slot) {
      slot = std::make_unique<client_metrics>();
      slot->id = next_client_id++;
      for (std::size_t i = 0; i < status_labels; ++i)
        slot->requests[i] = &requests.Add({{"client", name}, {"status", status_names[i]}});
      slot->responses = &responses.Add({{"client", name}});
    }
    return slot.get();
  }
};

/// One response waiting for sendmmsg.
struct outgoing {
  peer_address to{};
  socklen_t to_len = 0;
  response_bytes data;
};

/// What answering one request needs once the SIM layer acknowledged it.
struct request_ctx {
  peer_address from{};
  socklen_t from_len = 0;
  std::size_t socket = 0; ///< index of the receiving socket: the answer leaves by it
  request_key key;
  std::uint64_t seq = 0; ///< the request's ticket in the response cache
  response_bytes response{};
  clock_type::time_point received;
  client_metrics* client = nullptr;
};

thread_local void* current_worker = nullptr;

/// One I/O thread: its io_context, its sockets, its response cache.
struct worker : std::enable_shared_from_this<worker> {
  struct socket_state {
    udp::socket sock;
    std::vector<outgoing> out;
    bool reading = false;
    explicit socket_state(asio::io_context& io) : sock(io) {}
  };

  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(io);
  std::vector<std::unique_ptr<socket_state>> sockets;
  std::thread thread;
  std::size_t index = 0;

  actors::observation_sink& sink;
  metrics& m;
  log::rate_limiter& log_limit;
  std::atomic<std::uint64_t>& generation;
  std::mutex& settings_mutex;
  std::shared_ptr<const settings>& shared_settings;

  std::shared_ptr<const settings> cfg;
  std::uint64_t seen_generation = ~0ull;
  bool stopping = false;
  std::atomic<std::int64_t> in_flight{0};

  // Requests with the SIM layer, by slot: the ack callback carries the slot
  // (small), not the context. Slots are reused through `free_slots`.
  std::vector<request_ctx> pending;
  std::vector<std::uint32_t> free_slots;
  // The observations of one recvmmsg batch, handed to the sink together.
  std::vector<actors::submission> to_submit;
  // Acks from other threads, drained on this one by a single post per batch
  // (a post per ack cost an allocation and a wakeup each).
  std::mutex acks_mutex;
  std::vector<std::pair<std::uint32_t, actors::ack>> acks_in;   ///< guarded by acks_mutex
  bool drain_posted = false;                                    ///< guarded by acks_mutex
  std::vector<std::pair<std::uint32_t, actors::ack>> acks_work; ///< this thread's

  response_cache<response_bytes> cache{0, {}}; ///< limits set from cfg by expire()

  // Batch buffers for recvmmsg.
  std::vector<std::uint8_t> buffers = std::vector<std::uint8_t>(batch_size * recv_buffer_size);
  std::array<mmsghdr, batch_size> msgs{};
  std::array<iovec, batch_size> iovs{};
  std::array<peer_address, batch_size> froms{};

  // Latency accumulated between flushes (the histogram takes a lock).
  std::vector<double> latency_counts = std::vector<double>(latency_buckets.size() + 1, 0.0);
  double latency_sum = 0;
  bool latency_dirty = false;

  // Counter increments not yet added to the Prometheus counters: plain
  // integers on the request path (an Increment is an atomic add on a shared
  // cache line), added by flush_counters() before each batch's answers leave.
  struct client_counts {
    client_metrics* metrics = nullptr;
    std::array<std::uint64_t, status_labels> requests{};
    std::uint64_t responses = 0;
    bool listed = false; ///< in touched_clients
  };
  std::vector<client_counts> client_counts_by_id; ///< by client_metrics::id
  std::vector<std::uint32_t> touched_clients;
  std::array<std::uint64_t, discard_reason_count> discard_counts{};
  std::array<std::uint64_t, 6> ack_counts{};
  std::uint64_t resent_count = 0;
  std::uint64_t in_progress_count = 0;
  std::uint64_t no_imsi_count = 0;
  bool counts_dirty = false;

  // Stats, written by this thread only, read by stats() racily but atomically.
  std::atomic<std::uint64_t> st_received{0}, st_answered{0}, st_resent{0}, st_in_progress{0},
      st_submitted{0}, st_no_imsi{0};
  std::array<std::atomic<std::uint64_t>, discard_reason_count> st_discarded{};

  worker(actors::observation_sink& s, metrics& mm, log::rate_limiter& rl,
         std::atomic<std::uint64_t>& gen, std::mutex& smu, std::shared_ptr<const settings>& ss) :
      sink(s), m(mm), log_limit(rl), generation(gen), settings_mutex(smu), shared_settings(ss) {}

  static void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  void refresh_settings() {
    const std::uint64_t g = generation.load(std::memory_order_acquire);
    if (g == seen_generation)
      return;
    std::lock_guard lock{settings_mutex};
    cfg = shared_settings;
    seen_generation = g;
  }

  void start_reading(std::size_t s) {
    auto& st = *sockets[s];
    if (stopping || st.reading)
      return;
    st.reading = true;
    st.sock.async_wait(udp::socket::wait_read, [this, s](const boost::system::error_code& ec) {
      sockets[s]->reading = false;
      if (ec || stopping)
        return;
      on_readable(s);
      start_reading(s);
    });
  }

  void on_readable(std::size_t s) {
    current_worker = this;
    refresh_settings();
    const int fd = sockets[s]->sock.native_handle();
    // Bounded work per wakeup so several sockets and posted answers interleave.
    for (int round = 0; round < 8; ++round) {
      for (std::size_t i = 0; i < batch_size; ++i) {
        iovs[i].iov_base = buffers.data() + i * recv_buffer_size;
        iovs[i].iov_len = recv_buffer_size;
        msgs[i].msg_hdr = msghdr{};
        msgs[i].msg_hdr.msg_name = &froms[i];
        msgs[i].msg_hdr.msg_namelen = sizeof(peer_address);
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_len = 0;
      }
      const int n = ::recvmmsg(fd, msgs.data(), batch_size, MSG_DONTWAIT, nullptr);
      if (n <= 0)
        break;
      const auto now = clock_type::now();
      const std::int64_t now_ms = unix_ms();
      bump(st_received, static_cast<std::uint64_t>(n));
      for (int i = 0; i < n; ++i) {
        const auto idx = static_cast<std::size_t>(i);
        const bool truncated = (msgs[idx].msg_hdr.msg_flags & MSG_TRUNC) != 0;
        on_datagram(s, bytes{buffers.data() + idx * recv_buffer_size, msgs[idx].msg_len}, truncated,
                    froms[idx], msgs[idx].msg_hdr.msg_namelen, now, now_ms);
      }
      submit_batch();
      if (static_cast<std::size_t>(n) < batch_size)
        break;
    }
    expire(clock_type::now());
    flush_all();
    current_worker = nullptr;
  }

  void discard(discard_reason r, const peer_address& from) {
    const auto i = static_cast<std::size_t>(r);
    bump(st_discarded[i]);
    ++discard_counts[i];
    counts_dirty = true;
    std::uint64_t suppressed = 0;
    if (log::enabled(log::level::notice) && log_limit.allow(suppressed)) {
      std::uint16_t port = 0;
      const ip_address ip = to_ip(from, port);
      if (suppressed)
        log::notice("radius.discard", {{"reason", to_string(r)},
                                       {"from", ip.to_string()},
                                       {"port", port},
                                       {"suppressed", suppressed}});
      else
        log::notice("radius.discard",
                    {{"reason", to_string(r)}, {"from", ip.to_string()}, {"port", port}});
    }
  }

  void queue_send(std::size_t s, const peer_address& to, socklen_t to_len,
                  const response_bytes& data) {
    auto& o = sockets[s]->out.emplace_back();
    o.to = to;
    o.to_len = to_len;
    o.data = data;
  }

  void observe_latency(clock_type::time_point received) {
    const double secs = std::chrono::duration<double>(clock_type::now() - received).count();
    std::size_t b = 0;
    while (b < latency_buckets.size() && secs > latency_buckets[b])
      ++b;
    latency_counts[b] += 1;
    latency_sum += secs;
    latency_dirty = true;
  }

  void on_datagram(std::size_t s, bytes data, bool truncated, const peer_address& from,
                   socklen_t from_len, clock_type::time_point now, std::int64_t now_ms) {
    if (truncated || data.size() > max_packet_size)
      return discard(discard_reason::oversize, from);
    std::uint16_t port = 0;
    const ip_address ip = to_ip(from, port);
    // RFC 2865 §3: requests from unknown clients are silently discarded;
    // checked first so a flood from strangers costs as little as possible.
    const client* c = cfg->clients->find(ip);
    if (!c)
      return discard(discard_reason::unknown_client, from);
    const parse_result pr = parse(data);
    if (!pr.packet)
      return discard(pr.reason, from);
    const packet_view& p = *pr.packet;
    if (p.packet_code() != code::accounting_request)
      return discard(discard_reason::unexpected_code, from);
    const bytes secret = as_bytes(c->cfg.secret);
    // RFC 2866 §3: a request whose authenticator does not verify is discarded.
    if (!verify_request_authenticator(p, secret))
      return discard(discard_reason::bad_authenticator, from);
    const message_auth_status mas = check_request_message_authenticator(p, secret);
    if (mas == message_auth_status::bad ||
        (mas == message_auth_status::absent && c->cfg.require_message_authenticator))
      return discard(discard_reason::bad_message_authenticator, from);

    // RFC 5080 §2.2.2: the same (address, port, Identifier, socket) and
    // authenticator is a retransmit: resend the answer, or drop it while
    // the first copy is still being processed.
    const request_key key{ip, port, p.identifier(), static_cast<std::uint8_t>(s)};
    if (const auto dup = cache.find(key, p.authenticator_bytes());
        dup.what != response_cache<response_bytes>::state::fresh) {
      if (dup.response) {
        bump(st_resent);
        ++resent_count;
        counts_dirty = true;
        queue_send(s, from, from_len, *dup.response);
      } else {
        bump(st_in_progress);
        ++in_progress_count;
        counts_dirty = true;
      }
      return;
    }

    const auto status_attr = p.find(attr::acct_status_type);
    const auto status = status_attr ? read_u32(*status_attr) : std::nullopt;
    if (!status)
      return discard(discard_reason::missing_status_type, from);

    auto* cm = static_cast<client_metrics*>(c->user);
    ++counts_for(cm).requests[status_index(*status)];

    request_ctx ctx;
    ctx.from = from;
    ctx.from_len = from_len;
    ctx.socket = s;
    ctx.key = key;
    ctx.received = now;
    ctx.client = cm;
    ctx.response.resize(accounting_response_size(p));
    ctx.response.resize(
        write_accounting_response(p, secret, {ctx.response.data(), ctx.response.size()}));

    actors::observation obs;
    const bool session = carries_session(*status);
    const bool has_obs = session && make_observation(p, cfg->user_name, ip.to_string(), now_ms, obs,
                                                     cfg->with_disconnect);
    if (!has_obs) {
      // Accounting-On/Off and records we cannot use: RFC 2866 §4.1 asks for
      // an answer once the record is handled; there is nothing to commit.
      if (session) {
        bump(st_no_imsi);
        ++no_imsi_count;
        counts_dirty = true;
      }
      ctx.seq = cache.begin(key, p.authenticator_bytes());
      answer(ctx);
      return;
    }
    if (in_flight.load(std::memory_order_relaxed) >= static_cast<std::int64_t>(cfg->max_in_flight))
      return discard(discard_reason::overloaded, from);

    ctx.seq = cache.begin(key, p.authenticator_bytes());
    in_flight.fetch_add(1, std::memory_order_relaxed);
    bump(st_submitted);
    std::uint32_t slot;
    if (free_slots.empty()) {
      slot = static_cast<std::uint32_t>(pending.size());
      pending.push_back(std::move(ctx));
    } else {
      slot = free_slots.back();
      free_slots.pop_back();
      pending[slot] = std::move(ctx);
    }
    to_submit.push_back({std::move(obs), [self = shared_from_this(), slot](actors::ack a) {
                           self->on_ack(slot, a);
                         }});
  }

  /// Hands the observations read so far to the SIM layer (one call per batch).
  void submit_batch() {
    if (!to_submit.empty())
      sink.submit_many(to_submit);
  }

  /// The SIM layer's answer to the request in `slot`, from any thread.
  void on_ack(std::uint32_t slot, actors::ack a) {
    if (current_worker == this) { // acknowledged inside submit_many()
      complete(slot, a);
      return;
    }
    bool post;
    {
      std::lock_guard lock{acks_mutex};
      acks_in.emplace_back(slot, a);
      post = !drain_posted;
      drain_posted = true;
    }
    // The io_context is this worker's: the handler cannot outlive it.
    if (post)
      asio::post(io, [this] { drain_acks(); });
  }

  /// Completes every ack queued by other threads, then sends the answers together.
  void drain_acks() {
    {
      std::lock_guard lock{acks_mutex};
      acks_work.swap(acks_in);
      drain_posted = false;
    }
    current_worker = this;
    for (const auto& [slot, a] : acks_work)
      complete(slot, a);
    acks_work.clear();
    flush_all();
    current_worker = nullptr;
  }

  void answer(const request_ctx& ctx) {
    cache.answered(ctx.key, ctx.seq, ctx.response, clock_type::now());
    queue_send(ctx.socket, ctx.from, ctx.from_len, ctx.response);
    bump(st_answered);
    ++counts_for(ctx.client).responses;
    observe_latency(ctx.received);
  }

  /// The SIM layer's answer to the request in `slot`, on this thread.
  void complete(std::uint32_t slot, actors::ack a) {
    IMEILOCK_ASSERT(slot < pending.size(), "radius: an ack for a slot never handed out");
    const request_ctx& ctx = pending[slot];
    in_flight.fetch_sub(1, std::memory_order_relaxed);
    ++ack_counts[static_cast<std::size_t>(a)];
    counts_dirty = true;
    if (a == actors::ack::ok || a == actors::ack::unknown_sim) {
      answer(ctx);
    } else {
      // DESIGN §5: not durable or shed: no answer, the NAS retries. Forget the
      // request so that the retransmit is processed afresh.
      cache.forget(ctx.key, ctx.seq);
      const discard_reason r = a == actors::ack::overloaded     ? discard_reason::overloaded
                               : a == actors::ack::store_failed ? discard_reason::not_durable
                               : a == actors::ack::not_owner    ? discard_reason::not_owner
                                                                : discard_reason::shutting_down;
      discard(r, ctx.from);
    }
    free_slots.push_back(slot);
  }

  void expire(clock_type::time_point now) {
    cache.set_limits(cfg->cache_entries, cfg->window);
    cache.evict(now);
  }

  /// This worker's pending counts for a client's counters.
  client_counts& counts_for(client_metrics* cm) {
    if (cm->id < client_counts_by_id.size()) [[likely]] {
      client_counts& cc = client_counts_by_id[cm->id];
      if (cc.listed) [[likely]]
        return cc;
    }
    return list_counts(cm);
  }

  /// counts_for() for a client not yet counted since the last flush.
  client_counts& list_counts(client_metrics* cm) {
    if (cm->id >= client_counts_by_id.size())
      client_counts_by_id.resize(cm->id + 1);
    client_counts& cc = client_counts_by_id[cm->id];
    cc.metrics = cm;
    cc.listed = true;
    touched_clients.push_back(cm->id);
    counts_dirty = true;
    return cc;
  }

  /// Adds `n` to `c` and zeroes it.
  static void add_to(prometheus::Counter& c, std::uint64_t& n) {
    if (n == 0)
      return;
    c.Increment(static_cast<double>(n));
    n = 0;
  }

  /// Adds the counts pending since the last call to the Prometheus counters.
  void flush_counters() {
    if (!counts_dirty)
      return;
    for (std::size_t i = 0; i < discard_reason_count; ++i)
      add_to(*m.discard[i], discard_counts[i]);
    for (std::size_t i = 0; i < ack_counts.size(); ++i)
      add_to(*m.acks[i], ack_counts[i]);
    add_to(m.resent, resent_count);
    add_to(m.in_progress, in_progress_count);
    add_to(m.no_imsi, no_imsi_count);
    for (const std::uint32_t id : touched_clients) {
      client_counts& cc = client_counts_by_id[id];
      for (std::size_t i = 0; i < status_labels; ++i)
        add_to(*cc.metrics->requests[i], cc.requests[i]);
      add_to(*cc.metrics->responses, cc.responses);
      cc.listed = false;
    }
    touched_clients.clear();
    counts_dirty = false;
  }

  void flush_all() {
    // Counters first: whoever reads an answer then scrapes sees it counted.
    flush_counters();
    for (std::size_t s = 0; s < sockets.size(); ++s)
      flush(s);
    if (latency_dirty) {
      m.latency.ObserveMultiple(latency_counts, latency_sum);
      std::fill(latency_counts.begin(), latency_counts.end(), 0.0);
      latency_sum = 0;
      latency_dirty = false;
    }
  }

  void flush(std::size_t s) {
    auto& out = sockets[s]->out;
    if (out.empty())
      return;
    const int fd = sockets[s]->sock.native_handle();
    std::array<mmsghdr, batch_size> hdrs;
    std::array<iovec, batch_size> v;
    std::size_t done = 0;
    while (done < out.size()) {
      const std::size_t n = std::min(batch_size, out.size() - done);
      for (std::size_t i = 0; i < n; ++i) {
        outgoing& o = out[done + i];
        v[i].iov_base = o.data.data();
        v[i].iov_len = o.data.size();
        hdrs[i].msg_hdr = msghdr{};
        hdrs[i].msg_hdr.msg_name = &o.to;
        hdrs[i].msg_hdr.msg_namelen = o.to_len;
        hdrs[i].msg_hdr.msg_iov = &v[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
      }
      const int sent = ::sendmmsg(fd, hdrs.data(), static_cast<unsigned>(n), MSG_DONTWAIT);
      if (sent <= 0) {
        // A full send buffer or an unreachable peer: UDP may lose it; the
        // NAS retransmits and the cache answers.
        if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
          ++done; // skip the datagram the error is about
        else
          break;
        continue;
      }
      done += static_cast<std::size_t>(sent);
    }
    out.clear();
  }
};

} // namespace

struct radius_server::impl {
  radius_config cfg;
  actors::observation_sink& sink;
  metrics m;
  log::rate_limiter log_limit{20, std::chrono::seconds{1}};
  std::atomic<std::uint64_t> generation{0};
  std::mutex settings_mutex;
  std::shared_ptr<const settings> current;
  std::vector<std::shared_ptr<worker>> workers;
  std::vector<config::endpoint> bound;
  bool started = false;
  bool stopped = false;

  impl(const radius_config& c, actors::observation_sink& s, prometheus::Registry& r) :
      cfg(c), sink(s), m(r) {}

  expected<std::shared_ptr<const settings>> make_settings(const radius_config& c) {
    auto st = std::make_shared<settings>();
    auto table = client_table::build(c.clients);
    if (!table)
      return std::move(table.error().within("radius.clients"));
    st->clients = std::move(*table);
    for (client& cl : st->clients->all_mutable())
      cl.user = m.for_client(cl.cfg.name);
    st->user_name = c.user_name;
    st->window = c.duplicate_window;
    st->cache_entries = c.duplicate_cache_entries;
    st->max_in_flight = c.max_in_flight;
    st->with_disconnect = c.disconnect.enabled;
    return std::shared_ptr<const settings>{std::move(st)};
  }
};

radius_server::radius_server(const radius_config& cfg, actors::observation_sink& sink,
                             prometheus::Registry& registry) :
    impl_(std::make_shared<impl>(cfg, sink, registry)) {}

radius_server::~radius_server() {
  stop();
}

expected<void> radius_server::start() {
  impl& d = *impl_;
  IMEILOCK_ASSERT(!d.started, "radius_server::start() called twice");
  if (auto valid = d.cfg.validate(); !valid)
    return std::move(valid.error().within("radius"));
  if (!d.cfg.enabled) {
    log::info("radius.disabled", {});
    return {};
  }
  auto st = d.make_settings(d.cfg);
  if (!st)
    return st.error();
  {
    std::lock_guard lock{d.settings_mutex};
    d.current = std::move(*st);
  }
  d.generation.fetch_add(1, std::memory_order_release);

  for (std::uint32_t t = 0; t < d.cfg.io_threads; ++t) {
    auto w = std::make_shared<worker>(d.sink, d.m, d.log_limit, d.generation, d.settings_mutex,
                                      d.current);
    w->index = t;
    d.workers.push_back(std::move(w));
  }
  for (const config::endpoint& ep : d.cfg.listen) {
    const std::string host = ep.host == "*" ? std::string{"0.0.0.0"} : ep.host;
    boost::system::error_code ec;
    const auto addr = asio::ip::make_address(host, ec);
    if (ec)
      return error{sys_ec::listen_failed,
                   "radius: cannot listen on " + ep.to_string() + ": not an IP address"};
    udp::endpoint where{addr, ep.port};
    for (auto& w : d.workers) {
      auto s = std::make_unique<worker::socket_state>(w->io);
      s->sock.open(where.protocol(), ec);
      if (!ec && addr.is_v6())
        s->sock.set_option(asio::ip::v6_only(true), ec);
      if (!ec)
        s->sock.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>{true},
                           ec);
      if (!ec) {
        boost::system::error_code ignore; // the kernel may cap the buffer sizes; not fatal
        s->sock.set_option(
            asio::socket_base::receive_buffer_size{static_cast<int>(d.cfg.socket_buffer)}, ignore);
        s->sock.set_option(
            asio::socket_base::send_buffer_size{static_cast<int>(d.cfg.socket_buffer)}, ignore);
        s->sock.non_blocking(true, ec);
      }
      if (!ec)
        s->sock.bind(where, ec);
      if (ec) {
        for (auto& ww : d.workers)
          ww->sockets.clear();
        return error{sys_ec::listen_failed,
                     "radius: cannot listen on " + ep.to_string() + ": " + ec.message()};
      }
      // Port 0: the first socket picks the port, the others share it.
      where.port(s->sock.local_endpoint().port());
      w->sockets.push_back(std::move(s));
    }
    d.bound.push_back(config::endpoint{addr.to_string(), where.port()});
  }
  for (auto& w : d.workers) {
    w->refresh_settings();
    worker* raw = w.get();
    for (std::size_t s = 0; s < raw->sockets.size(); ++s)
      raw->start_reading(s);
    raw->thread = std::thread([raw] {
      const std::string name = "radius-io-" + std::to_string(raw->index);
      ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
      run_guarded(fault_site::io_thread, [raw] { raw->io.run(); }); // common/fault.hpp
    });
  }
  d.started = true;
  std::string addrs;
  for (const auto& b : d.bound)
    addrs += (addrs.empty() ? "" : ",") + b.to_string();
  log::info("radius.listening",
            {{"addr", addrs}, {"threads", d.cfg.io_threads}, {"clients", d.cfg.clients.size()}});
  return {};
}

std::vector<config::endpoint> radius_server::local_endpoints() const {
  return impl_->bound;
}

expected<void> radius_server::reload(const radius_config& cfg) {
  impl& d = *impl_;
  if (auto valid = cfg.validate(); !valid)
    return std::move(valid.error().within("radius"));
  auto st = d.make_settings(cfg);
  if (!st)
    return st.error();
  if (!(cfg.listen == d.cfg.listen) || cfg.io_threads != d.cfg.io_threads)
    log::warning("radius.reload_needs_restart", {{"what", "listen/io_threads"}});
  {
    std::lock_guard lock{d.settings_mutex};
    d.current = std::move(*st);
  }
  d.generation.fetch_add(1, std::memory_order_release);
  log::info("radius.reloaded", {{"clients", cfg.clients.size()}});
  return {};
}

void radius_server::stop() {
  impl& d = *impl_;
  if (!d.started || d.stopped)
    return;
  d.stopped = true;
  // Stop reading first, then give the SIM layer time to answer what it has.
  for (auto& w : d.workers) {
    worker* raw = w.get();
    asio::post(raw->io, [raw] {
      raw->stopping = true;
      for (auto& s : raw->sockets) {
        boost::system::error_code ignore;
        s->sock.cancel(ignore);
      }
    });
  }
  const auto deadline = clock_type::now() + d.cfg.drain_timeout;
  for (auto& w : d.workers)
    while (w->in_flight.load() > 0 && clock_type::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds{5});
  for (auto& w : d.workers) {
    worker* raw = w.get();
    asio::post(raw->io, [raw] {
      raw->flush_all();
      for (auto& s : raw->sockets) {
        boost::system::error_code ignore;
        s->sock.close(ignore);
      }
      raw->guard.reset();
      raw->io.stop();
    });
  }
  for (auto& w : d.workers)
    if (w->thread.joinable())
      w->thread.join();
  log::info("radius.stopped", {});
}

server_stats radius_server::stats() const {
  server_stats out;
  for (const auto& w : impl_->workers) {
    out.received += w->st_received.load(std::memory_order_relaxed);
    out.answered += w->st_answered.load(std::memory_order_relaxed);
    out.resent += w->st_resent.load(std::memory_order_relaxed);
    out.in_progress += w->st_in_progress.load(std::memory_order_relaxed);
    out.submitted += w->st_submitted.load(std::memory_order_relaxed);
    out.no_imsi += w->st_no_imsi.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < discard_reason_count; ++i)
      out.discarded[i] += w->st_discarded[i].load(std::memory_order_relaxed);
  }
  return out;
}

} // namespace imeilock::radius
