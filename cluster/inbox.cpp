#include "cluster/inbox.hpp"

#include "cluster/pq.hpp"
#include "common/assert.hpp"
#include "common/log.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace imeilock::cluster {

namespace {

using clock = std::chrono::steady_clock;

log::rate_limiter batch_error_limiter{5, std::chrono::seconds{10}};

/// Advisory lock class of enqueue()'s per-SIM lock (two-key form: its own key space).
constexpr const char* sim_lock_class = "730561";

// -- The payload's text form ------------------------------------------------------

constexpr char field_separator = '|';

void put(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c < '!' || c > '~' || c == field_separator || c == '%') {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else {
      out += ch;
    }
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/// put()'s inverse; nullopt on a bad escape or a byte put() never writes.
std::optional<std::string> take(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '%') {
      if (i + 2 >= s.size())
        return std::nullopt;
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0)
        return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c < '!' || c > '~') {
      return std::nullopt;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

template <class T>
std::optional<T> parse_number(std::string_view s) {
  T v{};
  if (s.empty() || s.front() == '+')
    return std::nullopt;
  auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (err != std::errc{} || end != s.data() + s.size())
    return std::nullopt;
  return v;
}

constexpr std::string_view protocol_name(protocol p) {
  return p == protocol::diameter ? "diameter" : "radius";
}

std::vector<std::string_view> split(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    auto at = text.find(field_separator, start);
    if (at == std::string_view::npos) {
      out.push_back(text.substr(start));
      return out;
    }
    out.push_back(text.substr(start, at - start));
    start = at + 1;
  }
}

error malformed(std::string what) {
  return error{ec::malformed, "handoff payload: " + std::move(what)};
}

} // namespace

// -- Payload -------------------------------------------------------------------------

std::string encode(const observation& o) {
  std::string out = "1";
  auto field = [&](std::string_view s) {
    out += field_separator;
    put(out, s);
  };
  field(std::to_string(o.imsi));
  field(o.msisdn);
  switch (o.imei.status) {
    case lock::imei_status::absent:
      field("-");
      break;
    case lock::imei_status::malformed:
      field("x");
      break;
    case lock::imei_status::ok:
      field(std::to_string(o.imei.device) +
            (o.imei.svn ? "/" + std::to_string(static_cast<int>(*o.imei.svn)) : std::string{}));
      break;
  }
  field(protocol_name(o.source));
  field(o.peer);
  field(std::to_string(o.dedupe_key));
  field(std::to_string(o.at_ms));
  if (!o.disconnect) {
    field("-");
  } else {
    const auto& d = *o.disconnect;
    for (const auto* s : {&d.nas_address, &d.nas_identifier, &d.acct_session_id, &d.user_name,
                          &d.framed_ip, &d.calling_station_id})
      field(*s);
  }
  return out;
}

expected<observation> decode(std::string_view text) {
  auto parts = split(text);
  if (parts.empty() || parts[0] != "1")
    return malformed("unknown version '" + std::string{parts[0].substr(0, 8)} + "'");
  if (parts.size() != 9 && parts.size() != 14)
    return malformed(std::to_string(parts.size()) + " fields, expected 9 or 14");
  std::vector<std::string> f;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    auto v = take(parts[i]);
    if (!v)
      return malformed("field " + std::to_string(i) + " is not percent-encoded ASCII");
    f.push_back(std::move(*v));
  }
  observation o;
  auto imsi = parse_number<std::uint64_t>(f[0]);
  if (!imsi)
    return malformed("imsi '" + f[0] + "' is not a number");
  o.imsi = *imsi;
  o.msisdn = f[1];
  if (f[2] == "-") {
    o.imei.status = lock::imei_status::absent;
  } else if (f[2] == "x") {
    o.imei.status = lock::imei_status::malformed;
  } else {
    std::string_view imei = f[2];
    auto slash = imei.find('/');
    auto device = parse_number<lock::device_id>(imei.substr(0, slash));
    if (!device || *device == lock::no_device)
      return malformed("imei '" + f[2] + "'");
    o.imei.status = lock::imei_status::ok;
    o.imei.device = *device;
    if (slash != std::string_view::npos) {
      auto svn = parse_number<unsigned>(imei.substr(slash + 1));
      if (!svn || *svn > 99)
        return malformed("imei '" + f[2] + "': software version");
      o.imei.svn = static_cast<std::uint8_t>(*svn);
    }
  }
  if (f[3] == "radius")
    o.source = protocol::radius;
  else if (f[3] == "diameter")
    o.source = protocol::diameter;
  else
    return malformed("protocol '" + f[3] + "'");
  o.peer = f[4];
  auto dedupe = parse_number<std::uint64_t>(f[5]);
  auto at = parse_number<std::int64_t>(f[6]);
  if (!dedupe || !at)
    return malformed("dedupe_key or at_ms is not a number");
  o.dedupe_key = *dedupe;
  o.at_ms = *at;
  if (f.size() == 8) {
    if (f[7] != "-")
      return malformed("disconnect field '" + f[7] + "'");
  } else {
    o.disconnect = disconnect_info{f[7], f[8], f[9], f[10], f[11], f[12]};
  }
  return o;
}

// -- Enqueue ------------------------------------------------------------------------

expected<void> enqueue(pg_conn* conn, std::string_view from_node, std::span<const handoff> items) {
  if (items.empty())
    return {};
  std::vector<std::uint32_t> shards;
  std::vector<std::string> payloads;
  std::vector<std::string_view> keys;
  std::vector<std::string_view> payload_views;
  shards.reserve(items.size());
  payloads.reserve(items.size());
  keys.reserve(items.size());
  for (const auto& h : items) {
    shards.push_back(h.shard);
    payloads.push_back(encode(h.obs));
    keys.push_back(h.sim_key);
  }
  payload_views.reserve(payloads.size());
  for (const auto& p : payloads)
    payload_views.push_back(p);
  auto key_array = text_array(keys);
  auto shard_array = number_array(shards);

  if (auto b = run(conn, "inbox enqueue", "BEGIN"); !b)
    return b.error();
  auto failed = [&](const error& e) -> expected<void> {
    rollback(conn);
    return e;
  };
  // One lock per SIM, in a fixed order (no deadlock between enqueuers),
  // held until COMMIT: a SIM's rows get their ids in commit order.
  if (auto r = run(conn, "inbox enqueue: SIM lock",
                   std::string{"SELECT pg_advisory_xact_lock("} + sim_lock_class +
                       ", h) FROM (SELECT DISTINCT hashtext(k) AS h "
                       "FROM unnest($1::text[]) AS k ORDER BY 1) AS s",
                   {key_array});
      !r)
    return failed(r.error());
  if (auto r = run(conn, "inbox enqueue: insert",
                   "INSERT INTO cluster_inbox (shard, sim_key, payload, from_node) "
                   "SELECT s, k, p, $4 FROM unnest($1::integer[], $2::text[], $3::text[]) "
                   "WITH ORDINALITY AS u(s, k, p, n) ORDER BY n",
                   {shard_array, key_array, text_array(payload_views), std::string{from_node}});
      !r)
    return failed(r.error());
  if (auto r = run(conn, "inbox enqueue: notify",
                   "SELECT pg_notify($1, s::text) FROM (SELECT DISTINCT unnest($2::integer[]) "
                   "AS s) AS x",
                   {std::string{inbox_channel}, shard_array});
      !r)
    return failed(r.error());
  return commit(conn, "inbox enqueue");
}

// -- Consumer --------------------------------------------------------------------------

struct inbox_consumer::impl {
  inbox_config cfg;
  std::string conninfo;
  hooks h;
  inbox_stats& stats;

  PGconn* conn = nullptr;
  int wake_fd = -1;
  std::atomic<bool> stopping{false};
  std::atomic<bool> poked{false};
  std::thread thread;
  bool said_disconnected = false;

  impl(inbox_config c, std::string ci, hooks hk, inbox_stats& s) :
      cfg(std::move(c)), conninfo(std::move(ci)), h(std::move(hk)), stats(s) {
    wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    IMEILOCK_ASSERT(wake_fd >= 0, "eventfd for the inbox consumer");
  }
  ~impl() {
    disconnect();
    ::close(wake_fd);
  }

  void wake() {
    std::uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof one);
  }

  void disconnect() {
    if (conn)
      PQfinish(conn);
    conn = nullptr;
  }

  bool connected() const { return conn && PQstatus(conn) == CONNECTION_OK; }

  /// Connects, sets the lock timeout and LISTENs; false (logged once) on failure.
  bool connect() {
    disconnect();
    conn = cluster::connect(conninfo);
    std::string why;
    if (PQstatus(conn) != CONNECTION_OK) {
      why = connection_error(conn);
    } else if (auto r = run(conn, "inbox lock_timeout",
                            "SET lock_timeout = " + std::to_string(cfg.lock_timeout.count()));
               !r) {
      why = r.error().message();
    } else if (auto l = run(conn, "inbox LISTEN", "LISTEN " + std::string{inbox_channel}); !l) {
      why = l.error().message();
    }
    if (!why.empty()) {
      if (!said_disconnected)
        log::warning("cluster.inbox_disconnected", {{"node", cfg.node_id}, {"error", why}});
      said_disconnected = true;
      disconnect();
      return false;
    }
    if (said_disconnected)
      log::notice("cluster.inbox_connected", {{"node", cfg.node_id}});
    said_disconnected = false;
    return true;
  }

  /// Sleeps up to `d` unless woken (stop, poke).
  void pause(std::chrono::milliseconds d) {
    pollfd p{wake_fd, POLLIN, 0};
    (void)::poll(&p, 1, static_cast<int>(d.count()));
    drain_wake();
  }

  void drain_wake() {
    std::uint64_t n = 0;
    while (::read(wake_fd, &n, sizeof n) > 0) {
    }
  }

  /// Shards named by NOTIFYs libpq has read (into `out`).
  void take_notifications(std::set<std::uint32_t>& out) {
    while (PGnotify* n = PQnotifies(conn)) {
      stats.notifications.fetch_add(1, std::memory_order_relaxed);
      if (auto shard = parse_number<std::uint32_t>(n->extra ? n->extra : ""))
        out.insert(*shard);
      PQfreemem(n);
    }
  }

  enum class outcome { drained, more, fenced, failed };

  /// The entries of a read (id, sim_key, from_node, payload, waited µs):
  /// decoded into `entries`; the ids of those that do not decode (logged,
  /// counted) into `malformed`. False when there is none.
  bool read_entries(const PGresult* r, const shard_epoch& claim, std::vector<inbox_entry>& entries,
                    std::vector<std::int64_t>& malformed) {
    int n = PQntuples(r);
    if (n == 0)
      return false;
    entries.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      auto id = parse_number<std::int64_t>(PQgetvalue(r, i, 0)).value_or(0);
      auto obs = decode(PQgetvalue(r, i, 3));
      if (!obs) {
        malformed.push_back(id);
        stats.malformed.fetch_add(1, std::memory_order_relaxed);
        log::error("cluster.inbox_malformed", {{"node", cfg.node_id},
                                               {"shard", claim.shard},
                                               {"id", id},
                                               {"from", PQgetvalue(r, i, 2)},
                                               {"error", obs.error().message()},
                                               {"payload", PQgetvalue(r, i, 3)},
                                               {"action", "dropped"}});
        continue;
      }
      inbox_entry e;
      e.id = id;
      e.shard = claim.shard;
      e.sim_key = PQgetvalue(r, i, 1);
      e.from_node = PQgetvalue(r, i, 2);
      e.obs = std::move(*obs);
      e.waited =
          std::chrono::microseconds{parse_number<std::int64_t>(PQgetvalue(r, i, 4)).value_or(0)};
      entries.push_back(std::move(e));
    }
    return true;
  }

  /// The dispatch mode: reads the shard's first entries (no transaction,
  /// no lock: only this node's consumer reads an owned shard, and the
  /// effects' transactions delete them under the fence), hands them over,
  /// and waits until they are settled.
  outcome dispatch_batch(const shard_epoch& claim) {
    auto rows = run(conn, "inbox read",
                    "SELECT id, sim_key, from_node, payload, "
                    "(extract(epoch FROM clock_timestamp() - enqueued_at) * 1000000)::bigint "
                    "FROM cluster_inbox WHERE shard = $1 ORDER BY id LIMIT $2",
                    {std::to_string(claim.shard), std::to_string(cfg.max_batch)});
    if (!rows)
      return fail(rows.error(), claim);
    int n = PQntuples(rows->get());
    std::vector<inbox_entry> entries;
    std::vector<std::int64_t> dropped;
    if (!read_entries(rows->get(), claim, entries, dropped))
      return outcome::drained;
    rows->reset();
    if (!dropped.empty())
      if (auto d = run(conn, "inbox delete malformed",
                       "DELETE FROM cluster_inbox WHERE id = ANY($1::bigint[])",
                       {number_array(dropped)});
          !d)
        return fail(d.error(), claim);
    if (entries.empty())
      return static_cast<std::size_t>(n) == cfg.max_batch ? outcome::more : outcome::drained;
    struct wait_state {
      std::mutex mtx;
      std::condition_variable cv;
      bool settled = false;
      bool ok = false;
    };
    auto w = std::make_shared<wait_state>();
    auto count = entries.size();
    try {
      h.dispatch(claim.shard, std::move(entries), [w](bool ok) {
        std::lock_guard g{w->mtx};
        w->settled = true;
        w->ok = ok;
        w->cv.notify_all();
      });
    } catch (const std::exception& e) {
      return fail(error{ec::database, std::string{"dispatch threw: "} + e.what()}, claim);
    }
    auto deadline = clock::now() + cfg.settle_timeout;
    std::unique_lock lk{w->mtx};
    while (!w->cv.wait_for(lk, std::chrono::milliseconds{50}, [&] { return w->settled; })) {
      // Given up on stop or after settle_timeout: what was not applied is
      // still in the table (an effect that commits later deletes its entry;
      // read again, an entry already applied fails its delete, not twice).
      if (stopping.load())
        return outcome::failed;
      if (clock::now() >= deadline)
        return fail(error{ec::database, "the batch was not settled within settle_timeout"}, claim);
    }
    if (!w->ok) {
      stats.failed.fetch_add(1, std::memory_order_relaxed);
      return outcome::failed;
    }
    stats.batches.fetch_add(1, std::memory_order_relaxed);
    stats.consumed.fetch_add(count, std::memory_order_relaxed);
    return static_cast<std::size_t>(n) == cfg.max_batch ? outcome::more : outcome::drained;
  }

  /// The fence (cluster/leases.hpp) inside the open transaction: nullopt
  /// while `claim` holds; else the transaction is rolled back and the outcome
  /// is fenced (counted) or failed (the check itself could not run).
  std::optional<outcome> fence(const shard_epoch& claim) {
    const shard_epoch claims[] = {claim};
    auto f = check_fence(conn, cfg.node_id, claims);
    if (f)
      return std::nullopt;
    rollback(conn);
    if (f.error().is(ec::fenced)) {
      stats.fenced.fetch_add(1, std::memory_order_relaxed);
      return outcome::fenced;
    }
    return fail(f.error(), claim);
  }

  /// One transaction over shard `claim.shard`'s first entries.
  outcome batch(const shard_epoch& claim) {
    if (auto b = run(conn, "inbox batch", "BEGIN"); !b)
      return fail(b.error(), claim);
    if (auto stop = fence(claim))
      return *stop;
    auto rows = run(conn, "inbox read",
                    "SELECT id, sim_key, from_node, payload, "
                    "(extract(epoch FROM clock_timestamp() - enqueued_at) * 1000000)::bigint "
                    "FROM cluster_inbox WHERE shard = $1 ORDER BY id LIMIT $2 FOR UPDATE",
                    {std::to_string(claim.shard), std::to_string(cfg.max_batch)});
    if (!rows) {
      rollback(conn);
      return fail(rows.error(), claim);
    }
    int n = PQntuples(rows->get());
    std::vector<inbox_entry> entries;
    std::vector<std::int64_t> ids;
    if (!read_entries(rows->get(), claim, entries, ids)) {
      rollback(conn);
      return outcome::drained;
    }
    for (const auto& e : entries)
      ids.push_back(e.id);
    rows->reset();
    if (!entries.empty()) {
      txn_query query =
          [this](const std::string& sql,
                 const std::vector<std::string>& params) -> expected<std::optional<std::string>> {
        auto q = run(conn, "inbox apply", sql, params);
        if (!q)
          return q.error();
        if (PQntuples(q->get()) == 0 || PQnfields(q->get()) == 0)
          return std::optional<std::string>{};
        return std::make_optional(std::string{PQgetvalue(q->get(), 0, 0)});
      };
      expected<void> applied;
      try {
        applied = h.apply(claim.shard, entries, query);
      } catch (const std::exception& e) {
        applied = error{ec::database, std::string{"apply threw: "} + e.what()};
      }
      if (!applied) {
        rollback(conn);
        return fail(applied.error(), claim);
      }
    }
    if (auto d = run(conn, "inbox delete", "DELETE FROM cluster_inbox WHERE id = ANY($1::bigint[])",
                     {number_array(ids)});
        !d) {
      rollback(conn);
      return fail(d.error(), claim);
    }
    // Again right before COMMIT: the lease may have expired meanwhile.
    if (auto stop = fence(claim))
      return *stop;
    if (auto c = commit(conn, "inbox batch"); !c)
      return fail(c.error(), claim);
    stats.batches.fetch_add(1, std::memory_order_relaxed);
    stats.consumed.fetch_add(entries.size(), std::memory_order_relaxed);
    return static_cast<std::size_t>(n) == cfg.max_batch ? outcome::more : outcome::drained;
  }

  outcome fail(const error& e, const shard_epoch& claim) {
    stats.failed.fetch_add(1, std::memory_order_relaxed);
    log::write_limited(batch_error_limiter, log::level::warning, "cluster.inbox_batch_failed",
                       {{"node", cfg.node_id},
                        {"shard", claim.shard},
                        {"error", e.message()},
                        {"action", "the entries stay; retried"}});
    return outcome::failed;
  }

  /// Drains `shards` (those owned); false when a batch failed (retry soon).
  bool drain(const std::set<std::uint32_t>* only) {
    bool ok = true;
    for (const auto& claim : h.owned()) {
      if (only && !only->contains(claim.shard))
        continue;
      for (;;) {
        if (stopping.load())
          return ok;
        auto o = h.dispatch ? dispatch_batch(claim) : batch(claim);
        if (o == outcome::failed)
          ok = false;
        if (o != outcome::more)
          break;
      }
      if (!connected())
        return false;
    }
    return ok;
  }

  void loop() {
    auto retry = cfg.retry_after;
    bool sweep = true; // everything at start and after a reconnect
    auto next_sweep = clock::now() + cfg.sweep_interval;
    std::set<std::uint32_t> notified;
    while (!stopping.load()) {
      if (!connected()) {
        if (!connect()) {
          pause(retry);
          retry = std::min<std::chrono::milliseconds>(retry * 2, std::chrono::seconds{5});
          continue;
        }
        retry = cfg.retry_after;
        sweep = true;
      }
      if (poked.exchange(false))
        sweep = true;
      bool ok = true;
      if (sweep) {
        notified.clear();
        ok = drain(nullptr);
        sweep = false;
      } else if (!notified.empty()) {
        auto these = std::move(notified);
        notified.clear();
        ok = drain(&these);
      }
      if (!connected())
        continue;
      take_notifications(notified); // read while the batches ran
      if (!notified.empty() && ok)
        continue;
      auto now = clock::now();
      auto until = ok ? next_sweep : std::min(next_sweep, now + cfg.retry_after);
      auto timeout = std::max<std::int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count() + 1);
      pollfd fds[] = {{PQsocket(conn), POLLIN, 0}, {wake_fd, POLLIN, 0}};
      (void)::poll(fds, 2, static_cast<int>(std::min<std::int64_t>(timeout, 60'000)));
      if (fds[1].revents != 0)
        drain_wake();
      if (fds[0].revents != 0) {
        if (PQconsumeInput(conn) == 0) {
          disconnect(); // reconnected (and swept) next round
          continue;
        }
        take_notifications(notified);
      }
      now = clock::now();
      if (!ok && now >= until)
        sweep = true;
      if (now >= next_sweep) {
        stats.sweeps.fetch_add(1, std::memory_order_relaxed);
        sweep = true;
        next_sweep = now + cfg.sweep_interval;
      }
    }
  }
};

inbox_consumer::inbox_consumer(inbox_config cfg, std::string conninfo, hooks h) :
    impl_(std::make_unique<impl>(std::move(cfg), std::move(conninfo), std::move(h), stats_)) {
  IMEILOCK_ASSERT(!impl_->cfg.node_id.empty(), "an inbox consumer needs the node id");
  IMEILOCK_ASSERT(impl_->cfg.max_batch > 0, "inbox max_batch > 0");
  IMEILOCK_ASSERT(impl_->h.owned && (impl_->h.apply != nullptr) != (impl_->h.dispatch != nullptr),
                  "inbox hooks: owned, and one of apply and dispatch");
}

inbox_consumer::~inbox_consumer() {
  stop();
}

void inbox_consumer::start() {
  IMEILOCK_ASSERT(!impl_->thread.joinable(), "start() once");
  impl_->thread = std::thread{[this] { impl_->loop(); }};
}

void inbox_consumer::poke() {
  impl_->poked.store(true);
  impl_->wake();
}

void inbox_consumer::stop() {
  impl_->stopping.store(true);
  impl_->wake();
  if (impl_->thread.joinable())
    impl_->thread.join();
}

// -- Sender ----------------------------------------------------------------------------

struct inbox_sender::impl {
  struct pending {
    observation obs;
    done_fn done;
  };

  sender_config cfg;
  resolve_fn resolve;
  sender_stats& stats;

  std::mutex mtx;
  std::condition_variable cv;
  std::deque<pending> queue; ///< under mtx
  bool stopping = false;     ///< under mtx
  std::thread thread;

  reconnecting_connection db;

  impl(sender_config c, std::string conninfo, resolve_fn r, sender_stats& s) :
      cfg(std::move(c)),
      resolve(std::move(r)),
      stats(s),
      db(std::move(conninfo), cfg.retry_after,
         {"cluster.handoff", cfg.node_id, "handoffs fail (not acknowledged) until it is back"}) {}

  /// Sends one batch: resolves each SIM, enqueues the known ones in one
  /// transaction, answers every item.
  void send(std::vector<pending>& batch) {
    std::vector<handoff> items;
    std::vector<std::size_t> which; // batch index of items[i]
    std::vector<outcome> result(batch.size(), outcome::failed);
    if (auto* conn = db.get()) {
      for (std::size_t i = 0; i < batch.size(); ++i) {
        expected<std::optional<target>> t = error{ec::database, "not resolved"};
        try {
          t = resolve(batch[i].obs.imsi);
        } catch (const std::exception& e) {
          t = error{ec::database, e.what()};
        }
        if (!t)
          continue; // failed: the store cannot be read
        if (!*t) {
          result[i] = outcome::unknown_sim;
          continue;
        }
        items.push_back({(*t)->shard, std::move((*t)->sim_key), batch[i].obs});
        which.push_back(i);
      }
      if (!items.empty()) {
        if (auto ok = enqueue(conn, cfg.node_id, items); ok) {
          for (auto i : which)
            result[i] = outcome::enqueued;
        } else {
          log::write_limited(batch_error_limiter, log::level::warning, "cluster.handoff_failed",
                             {{"node", cfg.node_id},
                              {"handoffs", items.size()},
                              {"error", ok.error().message()},
                              {"action", "not acknowledged: the peers retransmit"}});
          db.drop_if_broken();
        }
      }
    }
    std::size_t k = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      std::uint32_t shard = 0;
      if (k < which.size() && which[k] == i)
        shard = items[k++].shard;
      switch (result[i]) {
        case outcome::enqueued:
          stats.enqueued.fetch_add(1, std::memory_order_relaxed);
          break;
        case outcome::unknown_sim:
          stats.unknown.fetch_add(1, std::memory_order_relaxed);
          break;
        case outcome::failed:
          stats.failed.fetch_add(1, std::memory_order_relaxed);
          break;
      }
      batch[i].done(result[i], shard);
    }
  }

  void loop() {
    std::vector<pending> batch;
    for (;;) {
      {
        std::unique_lock lk{mtx};
        cv.wait(lk, [&] { return stopping || !queue.empty(); });
        if (queue.empty())
          return; // stopping, nothing left
        while (!queue.empty() && batch.size() < cfg.max_batch) {
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
      }
      send(batch);
      batch.clear();
    }
  }
};

inbox_sender::inbox_sender(sender_config cfg, std::string conninfo, resolve_fn resolve) :
    impl_(std::make_unique<impl>(std::move(cfg), std::move(conninfo), std::move(resolve), stats_)) {
  IMEILOCK_ASSERT(!impl_->cfg.node_id.empty(), "an inbox sender needs the node id");
  IMEILOCK_ASSERT(impl_->cfg.max_batch > 0 && impl_->cfg.max_queue > 0, "inbox sender sizes > 0");
  IMEILOCK_ASSERT(impl_->resolve != nullptr, "inbox sender resolve set");
}

inbox_sender::~inbox_sender() {
  stop();
}

void inbox_sender::start() {
  IMEILOCK_ASSERT(!impl_->thread.joinable(), "start() once");
  impl_->thread = std::thread{[this] { impl_->loop(); }};
}

bool inbox_sender::post(observation obs, done_fn done) {
  {
    std::lock_guard g{impl_->mtx};
    if (!impl_->stopping && impl_->queue.size() < impl_->cfg.max_queue) {
      impl_->queue.push_back({std::move(obs), std::move(done)});
      impl_->cv.notify_one();
      return true;
    }
  }
  stats_.refused.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void inbox_sender::stop() {
  {
    std::lock_guard g{impl_->mtx};
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable())
    impl_->thread.join();
  // Never started: nothing sent, every caller answered.
  std::deque<impl::pending> left;
  {
    std::lock_guard g{impl_->mtx};
    left.swap(impl_->queue);
  }
  for (auto& p : left) {
    stats_.failed.fetch_add(1, std::memory_order_relaxed);
    p.done(outcome::failed, 0);
  }
}

// -- The owner's order per SIM -----------------------------------------------------------

struct inbox_gate::impl {
  struct request {
    std::vector<key> keys;
    done_fn done;
  };

  gate_config cfg;
  gate_stats& stats;

  std::mutex mtx;
  std::condition_variable cv;
  std::deque<request> queue; ///< under mtx
  std::map<std::string, std::size_t, std::less<>>
      held;              ///< under mtx: answered pending, not released
  bool stopping = false; ///< under mtx
  std::thread thread;

  reconnecting_connection db;

  impl(gate_config c, std::string conninfo, gate_stats& s) :
      cfg(std::move(c)),
      stats(s),
      db(std::move(conninfo), cfg.retry_after,
         {"cluster.gate", cfg.node_id,
          "observations received directly are not acknowledged until it is back"}) {}

  /// One query for the whole batch: which of its SIMs have entries in the
  /// inbox (by shard, the inbox's index, then by key), or are held.
  void answer(std::vector<request>& batch) {
    std::set<std::string_view> keys;
    std::set<std::uint32_t> shards;
    for (const auto& r : batch)
      for (const auto& k : r.keys) {
        keys.insert(k.sim_key);
        shards.insert(k.shard);
      }
    // Held when the query starts: an observation answered pending whose own
    // enqueue may commit after this query's snapshot.
    std::set<std::string, std::less<>> pending;
    {
      std::lock_guard g{mtx};
      for (auto k : keys)
        if (held.count(k))
          pending.emplace(k);
    }
    bool ok = false;
    if (auto* conn = db.get()) {
      auto rows = run(conn, "inbox gate",
                      "SELECT DISTINCT sim_key FROM cluster_inbox "
                      "WHERE shard = ANY($1::integer[]) AND sim_key = ANY($2::text[])",
                      {number_array(shards), text_array(keys)});
      stats.queries.fetch_add(1, std::memory_order_relaxed);
      if (rows) {
        ok = true;
        for (int i = 0; i < PQntuples(rows->get()); ++i)
          pending.emplace(PQgetvalue(rows->get(), i, 0));
      } else {
        log::write_limited(batch_error_limiter, log::level::warning, "cluster.gate_failed",
                           {{"node", cfg.node_id},
                            {"error", rows.error().message()},
                            {"action", "not acknowledged: the peers retransmit"}});
        db.drop_if_broken();
      }
    }
    for (auto& r : batch) {
      stats.asked.fetch_add(r.keys.size(), std::memory_order_relaxed);
      if (!ok) {
        stats.failed.fetch_add(r.keys.size(), std::memory_order_relaxed);
        r.done(std::nullopt);
        continue;
      }
      std::vector<bool> flags(r.keys.size(), false);
      {
        std::lock_guard g{mtx};
        for (std::size_t i = 0; i < r.keys.size(); ++i)
          if (pending.count(r.keys[i].sim_key)) {
            flags[i] = true;
            ++held[r.keys[i].sim_key];
          }
      }
      stats.pending.fetch_add(
          static_cast<std::uint64_t>(std::count(flags.begin(), flags.end(), true)),
          std::memory_order_relaxed);
      r.done(std::move(flags));
    }
  }

  void loop() {
    std::vector<request> batch;
    for (;;) {
      {
        std::unique_lock lk{mtx};
        cv.wait(lk, [&] { return stopping || !queue.empty(); });
        if (stopping)
          return;
        std::size_t keys = 0;
        while (!queue.empty() && (batch.empty() || keys < cfg.max_batch)) {
          keys += queue.front().keys.size();
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
      }
      answer(batch);
      batch.clear();
    }
  }
};

inbox_gate::inbox_gate(gate_config cfg, std::string conninfo) :
    impl_(std::make_unique<impl>(std::move(cfg), std::move(conninfo), stats_)) {
  IMEILOCK_ASSERT(impl_->cfg.max_batch > 0, "inbox gate batch > 0");
}

inbox_gate::~inbox_gate() {
  stop();
}

void inbox_gate::start() {
  IMEILOCK_ASSERT(!impl_->thread.joinable(), "start() once");
  impl_->thread = std::thread{[this] { impl_->loop(); }};
}

void inbox_gate::check(std::vector<key> keys, done_fn done) {
  {
    std::lock_guard g{impl_->mtx};
    if (!impl_->stopping) {
      impl_->queue.push_back({std::move(keys), std::move(done)});
      impl_->cv.notify_one();
      return;
    }
  }
  stats_.failed.fetch_add(keys.size(), std::memory_order_relaxed);
  done(std::nullopt);
}

void inbox_gate::release(const std::string& sim_key) {
  std::lock_guard g{impl_->mtx};
  auto it = impl_->held.find(sim_key);
  IMEILOCK_ASSERT(it != impl_->held.end(), "inbox gate: release of a key not held");
  if (--it->second == 0)
    impl_->held.erase(it);
}

void inbox_gate::stop() {
  {
    std::lock_guard g{impl_->mtx};
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable())
    impl_->thread.join();
  std::deque<impl::request> left;
  {
    std::lock_guard g{impl_->mtx};
    left.swap(impl_->queue);
  }
  for (auto& r : left) {
    stats_.failed.fetch_add(r.keys.size(), std::memory_order_relaxed);
    r.done(std::nullopt);
  }
}

} // namespace imeilock::cluster
