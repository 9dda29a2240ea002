#include "cluster/inbox.hpp"

#include "cluster/pq.hpp"
#include "common/assert.hpp"
#include "common/log.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <mutex>
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

// -- libpq helpers (and cluster/pq.hpp) ----------------------------------------------

/// COMMIT, and whether it did: a transaction that had failed answers COMMIT
/// with "ROLLBACK".
expected<void> commit(pg_conn* conn, std::string_view what) {
  auto r = run(conn, what, "COMMIT");
  if (!r)
    return r.error();
  if (std::strcmp(PQcmdStatus(r->get()), "COMMIT") != 0)
    return error{ec::database, std::string{what} + ": the transaction was rolled back"};
  return {};
}

void rollback(pg_conn* conn) {
  result_ptr r{PQexec(conn, "ROLLBACK")}; // best effort: the error is the caller's
}

/// A PostgreSQL array literal of text values ({"a","b\"c"}).
std::string text_array(const std::vector<std::string_view>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i)
      out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\')
        out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
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
    conn = PQconnectdb(conninfo.c_str());
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

  /// One transaction over shard `claim.shard`'s first entries.
  outcome batch(const shard_epoch& claim) {
    const shard_epoch claims[] = {claim};
    if (auto b = run(conn, "inbox batch", "BEGIN"); !b)
      return fail(b.error(), claim);
    if (auto f = check_fence(conn, cfg.node_id, claims); !f) {
      rollback(conn);
      if (f.error().is(ec::fenced)) {
        stats.fenced.fetch_add(1, std::memory_order_relaxed);
        return outcome::fenced;
      }
      return fail(f.error(), claim);
    }
    auto rows = run(conn, "inbox read",
                    "SELECT id, sim_key, from_node, payload, "
                    "(extract(epoch FROM clock_timestamp() - enqueued_at) * 1000000)::bigint "
                    "FROM cluster_inbox WHERE shard = $1 ORDER BY id LIMIT $2 FOR UPDATE",
                    {std::to_string(claim.shard), std::to_string(cfg.max_batch)});
    if (!rows) {
      rollback(conn);
      return fail(rows.error(), claim);
    }
    const PGresult* r = rows->get();
    int n = PQntuples(r);
    if (n == 0) {
      rollback(conn);
      return outcome::drained;
    }
    std::vector<inbox_entry> entries;
    std::vector<std::int64_t> ids;
    entries.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      auto id = parse_number<std::int64_t>(PQgetvalue(r, i, 0)).value_or(0);
      ids.push_back(id);
      auto obs = decode(PQgetvalue(r, i, 3));
      if (!obs) {
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
    if (auto f = check_fence(conn, cfg.node_id, claims); !f) {
      rollback(conn);
      if (f.error().is(ec::fenced)) {
        stats.fenced.fetch_add(1, std::memory_order_relaxed);
        return outcome::fenced;
      }
      return fail(f.error(), claim);
    }
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
        auto o = batch(claim);
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
  IMEILOCK_ASSERT(impl_->h.owned && impl_->h.apply, "inbox hooks set");
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

} // namespace imeilock::cluster
