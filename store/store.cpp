#include "store/store.hpp"

#include "common/log.hpp"

#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <cassert>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace imeilock::store {

namespace {

// -- A thin SQLite layer --------------------------------------------------------

/// A failed SQLite call; `code` is the extended result code.
struct sqlite_error : std::runtime_error {
  sqlite_error(int c, const std::string& what) : std::runtime_error(what), code(c) {}
  int code;
};

/// One prepared statement, reset after each use.
class statement {
public:
  statement(sqlite3* db, const char* sql, bool persistent) : db_(db) {
    const unsigned flags = persistent ? SQLITE_PREPARE_PERSISTENT : 0;
    int rc = sqlite3_prepare_v3(db, sql, -1, flags, &stmt_, nullptr);
    if (rc != SQLITE_OK)
      throw sqlite_error(rc, std::string("prepare: ") + sqlite3_errmsg(db) + ": " + sql);
  }
  ~statement() { sqlite3_finalize(stmt_); }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  statement& bind(int i, std::int64_t v) {
    check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  statement& bind(int i, std::string_view v) {
    check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  /// True while a row is available.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW)
      return true;
    if (rc == SQLITE_DONE)
      return false;
    throw sqlite_error(sqlite3_extended_errcode(db_), sqlite3_errmsg(db_));
  }
  void run() {
    while (step()) {
    }
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::int64_t i64(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string_view text(int col) const {
    auto p = sqlite3_column_text(stmt_, col);
    if (p == nullptr)
      return {};
    return {reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))};
  }
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

private:
  void check(int rc) {
    if (rc != SQLITE_OK)
      throw sqlite_error(rc, sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

/// Resets a statement when the scope ends, whatever happened.
struct reset_guard {
  statement& s;
  ~reset_guard() { s.reset(); }
};

/// One connection with its cached statements (keyed by the SQL literal).
class connection {
public:
  connection(const std::string& path, bool create, std::chrono::milliseconds busy) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close(db_);
      db_ = nullptr;
      throw sqlite_error(rc, "cannot open " + path + ": " + msg);
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, static_cast<int>(busy.count()));
  }
  ~connection() {
    cache_.clear();
    sqlite3_close(db_);
  }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  sqlite3* get() const { return db_; }

  void exec(const char* sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::string msg = err ? err : sqlite3_errstr(rc);
      sqlite3_free(err);
      throw sqlite_error(sqlite3_extended_errcode(db_), msg + " (" + sql + ")");
    }
  }
  void exec(const std::string& sql) { exec(sql.c_str()); }

  /// The cached statement for a string literal.
  statement& prepare(const char* sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end())
      it = cache_.emplace(sql, std::make_unique<statement>(db_, sql, true)).first;
    return *it->second;
  }

  std::int64_t scalar(const char* sql) {
    auto& s = prepare(sql);
    reset_guard g{s};
    return s.step() ? s.i64(0) : 0;
  }

private:
  sqlite3* db_ = nullptr;
  std::map<const char*, std::unique_ptr<statement>> cache_;
};

// -- Schema ---------------------------------------------------------------------

// Enumerations are stored as their integer values (lock/types.hpp); device ids
// (IMEI TAC+SNR) as integers; before/after states in the audit as compact JSON.
// Migration i takes the schema from user_version i to i+1.
const char* const migrations[] = {
  R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE sims (
  iccid TEXT PRIMARY KEY,
  msisdn TEXT NOT NULL DEFAULT '',
  network TEXT NOT NULL,
  status INTEGER NOT NULL DEFAULT 0,
  lock INTEGER NOT NULL DEFAULT 0,
  lock_imei INTEGER NOT NULL DEFAULT 0,
  last_seen_imei INTEGER NOT NULL DEFAULT 0,
  trigger_imei INTEGER NOT NULL DEFAULT 0,
  bar INTEGER NOT NULL DEFAULT 0,
  reason INTEGER NOT NULL DEFAULT 0,
  pending_order INTEGER NOT NULL DEFAULT 0,
  pending_order_id INTEGER NOT NULL DEFAULT 0,
  pending_unbar INTEGER NOT NULL DEFAULT 0,
  activate_with_lock INTEGER NOT NULL DEFAULT 0,
  updated_at_ms INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE imsis (imsi INTEGER PRIMARY KEY, iccid TEXT NOT NULL);
CREATE INDEX imsis_by_iccid ON imsis (iccid);
CREATE TABLE orders (
  id INTEGER PRIMARY KEY,
  iccid TEXT NOT NULL,
  network TEXT NOT NULL,
  type INTEGER NOT NULL,
  reason INTEGER NOT NULL DEFAULT 0,
  mode INTEGER NOT NULL DEFAULT 0,
  with_lock INTEGER NOT NULL DEFAULT 0,
  status INTEGER NOT NULL DEFAULT 0,
  created_at_ms INTEGER NOT NULL DEFAULT 0,
  due_at_ms INTEGER NOT NULL DEFAULT 0,
  submitted_at_ms INTEGER NOT NULL DEFAULT 0,
  completed_at_ms INTEGER NOT NULL DEFAULT 0,
  retry_at_ms INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  failure_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX orders_by_iccid ON orders (iccid, id);
CREATE INDEX orders_open ON orders (status) WHERE status < 2;
CREATE TABLE audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  iccid TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  cause TEXT NOT NULL,
  before TEXT NOT NULL,
  after TEXT NOT NULL,
  imei INTEGER NOT NULL DEFAULT 0,
  detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_by_iccid ON audit (iccid, id);
)sql",
};
static_assert(std::size(migrations) == store::schema_version);

/// The compact JSON of a state in the audit log (hand-written: it is on the
/// write path of every change).
std::string state_json(const lock::sim_state& s) {
  std::string out;
  out.reserve(256);
  auto field = [&](const char* key, auto value, bool first = false) {
    if (!first)
      out += ',';
    out += '"';
    out += key;
    out += "\":";
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, value);
    out.append(buf, r.ptr);
  };
  out += '{';
  field("status", static_cast<int>(s.status), true);
  field("lock", static_cast<int>(s.lock));
  field("lock_imei", s.lock_imei);
  field("last_seen_imei", s.last_seen_imei);
  field("trigger_imei", s.trigger_imei);
  field("bar", static_cast<int>(s.bar));
  field("reason", static_cast<int>(s.reason));
  field("pending_order", static_cast<int>(s.pending_order));
  field("pending_order_id", s.pending_order_id);
  field("pending_unbar", static_cast<int>(s.pending_unbar));
  out += ",\"activate_with_lock\":";
  out += s.activate_with_lock ? "true" : "false";
  field("updated_at_ms", s.updated_at_ms);
  out += '}';
  return out;
}

lock::sim_state parse_state_json(std::string_view text) {
  lock::sim_state s;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object())
    return s;
  // A field of the wrong type (a corrupted or hand-edited row) would make
  // value() throw: such a record reads as the default state, never throws.
  for (const auto& [key, v] : j.items())
    if (!v.is_number() && !v.is_boolean())
      return s;
  auto u8 = [&](const char* k) { return static_cast<std::uint8_t>(j.value(k, 0)); };
  s.status = static_cast<lock::sim_status>(u8("status"));
  s.lock = static_cast<lock::lock_state>(u8("lock"));
  s.lock_imei = j.value("lock_imei", std::uint64_t{0});
  s.last_seen_imei = j.value("last_seen_imei", std::uint64_t{0});
  s.trigger_imei = j.value("trigger_imei", std::uint64_t{0});
  s.bar = static_cast<lock::bar_state>(u8("bar"));
  s.reason = static_cast<lock::bar_reason>(u8("reason"));
  s.pending_order = static_cast<lock::order_type>(u8("pending_order"));
  s.pending_order_id = j.value("pending_order_id", std::uint64_t{0});
  s.pending_unbar = static_cast<lock::unbar_mode>(u8("pending_unbar"));
  s.activate_with_lock = j.value("activate_with_lock", false);
  s.updated_at_ms = j.value("updated_at_ms", std::int64_t{0});
  return s;
}

std::int64_t i64(std::uint64_t v) { return static_cast<std::int64_t>(v); }
std::int64_t i64(bool v) { return v ? 1 : 0; }
template <class E>
  requires std::is_enum_v<E>
std::int64_t i64(E v) { return static_cast<std::int64_t>(v); }

// The state columns, in this order, everywhere a sims row is read.
#define SIM_STATE_COLUMNS                                                                  \
  "status, lock, lock_imei, last_seen_imei, trigger_imei, bar, reason, pending_order, "    \
  "pending_order_id, pending_unbar, activate_with_lock, updated_at_ms"

/// Binds the 12 state columns starting at parameter `first`.
void bind_state(statement& s, int first, const lock::sim_state& st) {
  s.bind(first + 0, i64(st.status)).bind(first + 1, i64(st.lock))
    .bind(first + 2, i64(st.lock_imei)).bind(first + 3, i64(st.last_seen_imei))
    .bind(first + 4, i64(st.trigger_imei)).bind(first + 5, i64(st.bar))
    .bind(first + 6, i64(st.reason)).bind(first + 7, i64(st.pending_order))
    .bind(first + 8, i64(st.pending_order_id)).bind(first + 9, i64(st.pending_unbar))
    .bind(first + 10, i64(st.activate_with_lock)).bind(first + 11, st.updated_at_ms);
}

/// Reads the 12 state columns starting at column `first`.
lock::sim_state read_state(const statement& s, int first) {
  lock::sim_state st;
  auto u8 = [&](int c) { return static_cast<std::uint8_t>(s.i64(first + c)); };
  auto u64 = [&](int c) { return static_cast<std::uint64_t>(s.i64(first + c)); };
  st.status = static_cast<lock::sim_status>(u8(0));
  st.lock = static_cast<lock::lock_state>(u8(1));
  st.lock_imei = u64(2);
  st.last_seen_imei = u64(3);
  st.trigger_imei = u64(4);
  st.bar = static_cast<lock::bar_state>(u8(5));
  st.reason = static_cast<lock::bar_reason>(u8(6));
  st.pending_order = static_cast<lock::order_type>(u8(7));
  st.pending_order_id = u64(8);
  st.pending_unbar = static_cast<lock::unbar_mode>(u8(9));
  st.activate_with_lock = s.i64(first + 10) != 0;
  st.updated_at_ms = s.i64(first + 11);
  return st;
}

#define ORDER_COLUMNS                                                                      \
  "id, iccid, network, type, reason, mode, with_lock, status, created_at_ms, due_at_ms, "  \
  "submitted_at_ms, completed_at_ms, retry_at_ms, attempts, failure_reason"

order_record read_order(const statement& s) {
  order_record o;
  o.id = static_cast<std::uint64_t>(s.i64(0));
  o.iccid = s.text(1);
  o.network = s.text(2);
  o.type = static_cast<lock::order_type>(s.i64(3));
  o.reason = static_cast<lock::bar_reason>(s.i64(4));
  o.mode = static_cast<lock::unbar_mode>(s.i64(5));
  o.with_lock = s.i64(6) != 0;
  o.status = static_cast<order_status>(s.i64(7));
  o.created_at_ms = s.i64(8);
  o.due_at_ms = s.i64(9);
  o.submitted_at_ms = s.i64(10);
  o.completed_at_ms = s.i64(11);
  o.retry_at_ms = s.i64(12);
  o.attempts = static_cast<std::uint32_t>(s.i64(13));
  o.failure_reason = s.text(14);
  return o;
}

/// Errors after which the whole transaction is gone or the disk is unusable:
/// every change of the batch fails. Others (constraints) fail one change.
bool is_fatal(int code) {
  switch (code & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_NOMEM:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CORRUPT:
    case SQLITE_CANTOPEN:
    case SQLITE_NOTADB:
    case SQLITE_PROTOCOL:
      return true;
    default:
      return false;
  }
}

log::rate_limiter write_error_limiter{5, std::chrono::seconds{10}};

} // namespace

// -- The implementation -------------------------------------------------------

struct store::impl {
  struct item {
    change chg;
    done_fn done;
    std::function<void()> special; ///< flush marker / testing hook instead of a change
    std::chrono::steady_clock::time_point queued = std::chrono::steady_clock::now();
  };

  /// Whether the oldest change still waiting for the writer has waited past
  /// max_queue_wait. Under `mtx`.
  bool waited_too_long() const {
    return cfg.max_queue_wait.count() > 0 && !queue.empty() &&
           std::chrono::steady_clock::now() - queue.front().queued > cfg.max_queue_wait;
  }

  store_config cfg;
  stats& counters;
  std::unique_ptr<connection> writer;

  std::mutex mtx;
  std::condition_variable cv;
  std::deque<item> queue;
  bool stopping = false;
  std::thread thread;
  std::function<void(double, std::size_t, bool)> observer;

  struct reader {
    std::mutex mtx;
    std::unique_ptr<connection> conn;
  };
  std::vector<std::unique_ptr<reader>> readers;
  std::atomic<std::size_t> next_reader{0};

  impl(store_config c, stats& s) : cfg(std::move(c)), counters(s) {}

  void open() {
    writer = std::make_unique<connection>(cfg.path, true, cfg.busy_timeout);
    writer->exec("PRAGMA journal_mode=WAL");
    writer->exec(cfg.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    writer->exec("PRAGMA foreign_keys=OFF");
    migrate();
    for (std::size_t i = 0; i < std::max<std::size_t>(1, cfg.readers); ++i) {
      auto r = std::make_unique<reader>();
      r->conn = std::make_unique<connection>(cfg.path, false, cfg.busy_timeout);
      r->conn->exec("PRAGMA query_only=1");
      readers.push_back(std::move(r));
    }
  }

  void migrate() {
    auto version = static_cast<int>(writer->scalar("PRAGMA user_version"));
    if (version > schema_version)
      throw std::runtime_error(cfg.path + ": schema version " + std::to_string(version) +
                               " is newer than this daemon's " + std::to_string(schema_version));
    for (int v = version; v < schema_version; ++v) {
      writer->exec("BEGIN IMMEDIATE");
      try {
        writer->exec(migrations[v]);
        writer->exec("PRAGMA user_version=" + std::to_string(v + 1));
        writer->exec("COMMIT");
      } catch (...) {
        writer->exec("ROLLBACK");
        throw;
      }
      log::notice("store.migrated", {{"path", cfg.path}, {"to_version", v + 1}});
    }
  }

  /// Runs `fn` on a reader connection (round robin; waits if all are busy).
  template <class F>
  auto with_reader(F&& fn) {
    auto& r = *readers[next_reader.fetch_add(1, std::memory_order_relaxed) % readers.size()];
    std::lock_guard g{r.mtx};
    return fn(*r.conn);
  }

  // -- Writer -----------------------------------------------------------------

  void run() {
    std::vector<item> batch;
    for (;;) {
      {
        std::unique_lock lk{mtx};
        cv.wait(lk, [&] { return stopping || !queue.empty(); });
        if (queue.empty() && stopping)
          return;
        auto n = std::min(queue.size(), std::max<std::size_t>(1, cfg.max_batch));
        for (std::size_t i = 0; i < n; ++i) {
          // A special item runs alone, in order, between transactions.
          if (queue.front().special && !batch.empty())
            break;
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
          if (batch.back().special)
            break;
        }
        counters.queue_depth.store(queue.size(), std::memory_order_relaxed);
      }
      if (batch.size() == 1 && batch.front().special) {
        batch.front().special();
      } else {
        if (cfg.commit_delay.count() > 0)
          std::this_thread::sleep_for(cfg.commit_delay); // test knob: a slow disk
        commit(batch);
      }
      batch.clear();
    }
  }

  /// Runs one cached statement that returns no rows.
  void run(const char* sql) {
    auto& st = writer->prepare(sql);
    reset_guard g{st};
    st.run();
  }

  enum class attempt_result { committed, needs_savepoints, failed };

  /// One try at committing `batch`. Without savepoints (the fast path) any
  /// constraint error undoes the batch and asks for the careful path; with
  /// them, a change that violates a constraint is dropped alone.
  attempt_result attempt(std::vector<item>& batch, std::vector<bool>& ok, bool savepoints,
                         std::string& error) {
    try {
      run("BEGIN IMMEDIATE");
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (savepoints)
          run("SAVEPOINT c");
        try {
          apply(batch[i].chg);
        } catch (const sqlite_error& e) {
          if (is_fatal(e.code) || sqlite3_get_autocommit(writer->get()))
            throw;
          if (!savepoints) {
            run("ROLLBACK");
            return attempt_result::needs_savepoints;
          }
          run("ROLLBACK TO c");
          ok[i] = false;
          log::write_limited(write_error_limiter, log::level::warning, "store.change_rejected",
                             {{"error", e.what()}});
        }
        if (savepoints)
          run("RELEASE c");
      }
      run("COMMIT");
      return attempt_result::committed;
    } catch (const std::exception& e) {
      error = e.what();
      if (!sqlite3_get_autocommit(writer->get())) {
        char* err = nullptr;
        sqlite3_exec(writer->get(), "ROLLBACK", nullptr, nullptr, &err);
        sqlite3_free(err);
      }
      return attempt_result::failed;
    }
  }

  void commit(std::vector<item>& batch) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<bool> ok(batch.size(), true);
    std::string error;
    auto result = attempt(batch, ok, false, error);
    if (result == attempt_result::needs_savepoints)
      result = attempt(batch, ok, true, error);
    bool all_failed = result != attempt_result::committed;
    auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (all_failed) {
      counters.commit_failures.fetch_add(1, std::memory_order_relaxed);
      counters.changes_failed.fetch_add(batch.size(), std::memory_order_relaxed);
      log::write_limited(write_error_limiter, log::level::err, "store.commit_failed",
                         {{"path", cfg.path}, {"changes", batch.size()}, {"error", error}});
    } else {
      counters.commits.fetch_add(1, std::memory_order_relaxed);
      std::size_t good = 0;
      for (bool b : ok)
        good += b ? 1 : 0;
      counters.changes_committed.fetch_add(good, std::memory_order_relaxed);
      counters.changes_failed.fetch_add(batch.size() - good, std::memory_order_relaxed);
    }
    if (observer)
      observer(seconds, batch.size(), !all_failed);
    for (std::size_t i = 0; i < batch.size(); ++i)
      if (batch[i].done)
        batch[i].done(!all_failed && ok[i]);
  }

  void apply(const change& c) {
    for (auto& s : c.sims) {
      auto& up = writer->prepare(
        "INSERT INTO sims (iccid, msisdn, network, " SIM_STATE_COLUMNS ") "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) "
        "ON CONFLICT (iccid) DO UPDATE SET msisdn = excluded.msisdn, network = excluded.network, "
        "status = excluded.status, lock = excluded.lock, lock_imei = excluded.lock_imei, "
        "last_seen_imei = excluded.last_seen_imei, trigger_imei = excluded.trigger_imei, "
        "bar = excluded.bar, reason = excluded.reason, pending_order = excluded.pending_order, "
        "pending_order_id = excluded.pending_order_id, pending_unbar = excluded.pending_unbar, "
        "activate_with_lock = excluded.activate_with_lock, updated_at_ms = excluded.updated_at_ms");
      {
        reset_guard g{up};
        up.bind(1, s.iccid).bind(2, s.msisdn).bind(3, s.network);
        bind_state(up, 4, s.state);
        up.run();
      }
      auto& del = writer->prepare("DELETE FROM imsis WHERE iccid = ?1");
      {
        reset_guard g{del};
        del.bind(1, s.iccid).run();
      }
      auto& ins = writer->prepare("INSERT INTO imsis (imsi, iccid) VALUES (?1, ?2)");
      for (auto imsi : s.imsis) {
        reset_guard g{ins};
        ins.bind(1, i64(imsi)).bind(2, s.iccid).run();
      }
    }
    for (auto& u : c.states) {
      auto& st = writer->prepare(
        "UPDATE sims SET status = ?2, lock = ?3, lock_imei = ?4, last_seen_imei = ?5, "
        "trigger_imei = ?6, bar = ?7, reason = ?8, pending_order = ?9, pending_order_id = ?10, "
        "pending_unbar = ?11, activate_with_lock = ?12, updated_at_ms = ?13 WHERE iccid = ?1");
      reset_guard g{st};
      st.bind(1, u.iccid);
      bind_state(st, 2, u.state);
      st.run();
      if (sqlite3_changes(writer->get()) != 1)
        throw sqlite_error(SQLITE_NOTFOUND, "state update for unknown SIM " + u.iccid);
    }
    for (auto& o : c.orders) {
      auto& st = writer->prepare(
        "INSERT OR REPLACE INTO orders (" ORDER_COLUMNS ") "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)");
      reset_guard g{st};
      st.bind(1, i64(o.id)).bind(2, o.iccid).bind(3, o.network).bind(4, i64(o.type))
        .bind(5, i64(o.reason)).bind(6, i64(o.mode)).bind(7, i64(o.with_lock))
        .bind(8, i64(o.status)).bind(9, o.created_at_ms).bind(10, o.due_at_ms)
        .bind(11, o.submitted_at_ms).bind(12, o.completed_at_ms).bind(13, o.retry_at_ms)
        .bind(14, static_cast<std::int64_t>(o.attempts)).bind(15, o.failure_reason);
      st.run();
    }
    for (auto& a : c.audits) {
      auto& st = writer->prepare(
        "INSERT INTO audit (iccid, at_ms, cause, before, after, imei, detail) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
      reset_guard g{st};
      st.bind(1, a.iccid).bind(2, a.at_ms).bind(3, a.cause).bind(4, state_json(a.before))
        .bind(5, state_json(a.after)).bind(6, i64(a.imei)).bind(7, a.detail);
      st.run();
    }
  }
};

store::store(store_config cfg) : impl_(std::make_unique<impl>(std::move(cfg), stats_)) {
  try {
    impl_->open();
  } catch (const sqlite_error& e) {
    throw std::runtime_error(impl_->cfg.path + ": " + e.what());
  }
  next_order_id_.store(static_cast<std::uint64_t>(
                         impl_->writer->scalar("SELECT COALESCE(MAX(id), 0) FROM orders")) + 1);
  impl_->thread = std::thread([this] { impl_->run(); });
}

store::~store() {
  {
    std::lock_guard g{impl_->mtx};
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable())
    impl_->thread.join();
}

bool store::submit(change chg, done_fn done) {
  {
    std::lock_guard g{impl_->mtx};
    if (!impl_->stopping && impl_->queue.size() < impl_->cfg.max_queue && !impl_->waited_too_long()) {
      impl_->queue.push_back({std::move(chg), std::move(done), {}});
      stats_.queue_depth.store(impl_->queue.size(), std::memory_order_relaxed);
      impl_->cv.notify_one();
      return true;
    }
  }
  stats_.changes_refused.fetch_add(1, std::memory_order_relaxed);
  if (done)
    done(false);
  return false;
}

void store::flush() {
  std::promise<void> p;
  auto f = p.get_future();
  {
    std::lock_guard g{impl_->mtx};
    if (impl_->stopping)
      return;
    impl_->queue.push_back({{}, {}, [&p] { p.set_value(); }});
  }
  impl_->cv.notify_one();
  f.wait();
}

void store::exec_on_writer_for_testing(const std::string& sql) {
  std::promise<void> p;
  auto f = p.get_future();
  {
    std::lock_guard g{impl_->mtx};
    impl_->queue.push_back({{}, {}, [&] {
                              try {
                                impl_->writer->exec(sql);
                              } catch (...) {
                              }
                              p.set_value();
                            }});
  }
  impl_->cv.notify_one();
  f.wait();
}

void store::set_commit_observer(std::function<void(double, std::size_t, bool)> fn) {
  impl_->observer = std::move(fn);
}

std::optional<sim_record> store::get_sim(const std::string& iccid) {
  return impl_->with_reader([&](connection& c) -> std::optional<sim_record> {
    auto& s = c.prepare("SELECT iccid, msisdn, network, " SIM_STATE_COLUMNS
                        " FROM sims WHERE iccid = ?1");
    reset_guard g{s};
    s.bind(1, iccid);
    if (!s.step())
      return std::nullopt;
    sim_record r{std::string(s.text(0)), {}, std::string(s.text(1)), std::string(s.text(2)),
                 read_state(s, 3)};
    auto& im = c.prepare("SELECT imsi FROM imsis WHERE iccid = ?1 ORDER BY imsi");
    reset_guard g2{im};
    im.bind(1, iccid);
    while (im.step())
      r.imsis.push_back(static_cast<std::uint64_t>(im.i64(0)));
    return r;
  });
}

std::vector<sim_record> store::list_sims(const sim_filter& filter, const std::string& cursor,
                                         std::size_t limit) {
  std::string sql = "SELECT iccid, msisdn, network, " SIM_STATE_COLUMNS
                    " FROM sims WHERE iccid > ?1";
  if (filter.lock)
    sql += " AND lock = ?2";
  if (filter.bar)
    sql += " AND bar = ?3";
  if (filter.network)
    sql += " AND network = ?4";
  sql += " ORDER BY iccid LIMIT ?5";
  return impl_->with_reader([&](connection& c) {
    std::vector<sim_record> out;
    statement s{c.get(), sql.c_str(), false};
    s.bind(1, cursor).bind(5, static_cast<std::int64_t>(limit));
    if (filter.lock)
      s.bind(2, i64(*filter.lock));
    if (filter.bar)
      s.bind(3, i64(*filter.bar));
    if (filter.network)
      s.bind(4, *filter.network);
    while (s.step())
      out.push_back({std::string(s.text(0)), {}, std::string(s.text(1)), std::string(s.text(2)),
                     read_state(s, 3)});
    auto& im = c.prepare("SELECT imsi FROM imsis WHERE iccid = ?1 ORDER BY imsi");
    for (auto& r : out) {
      reset_guard g{im};
      im.bind(1, r.iccid);
      while (im.step())
        r.imsis.push_back(static_cast<std::uint64_t>(im.i64(0)));
    }
    return out;
  });
}

std::optional<order_record> store::get_order(std::uint64_t id) {
  return impl_->with_reader([&](connection& c) -> std::optional<order_record> {
    auto& s = c.prepare("SELECT " ORDER_COLUMNS " FROM orders WHERE id = ?1");
    reset_guard g{s};
    s.bind(1, i64(id));
    if (!s.step())
      return std::nullopt;
    return read_order(s);
  });
}

std::vector<order_record> store::list_orders(const std::string& iccid) {
  return impl_->with_reader([&](connection& c) {
    std::vector<order_record> out;
    auto& s = c.prepare("SELECT " ORDER_COLUMNS " FROM orders WHERE iccid = ?1 ORDER BY id DESC");
    reset_guard g{s};
    s.bind(1, iccid);
    while (s.step())
      out.push_back(read_order(s));
    return out;
  });
}

std::vector<order_record> store::open_orders() {
  return impl_->with_reader([&](connection& c) {
    std::vector<order_record> out;
    auto& s = c.prepare("SELECT " ORDER_COLUMNS " FROM orders WHERE status < 2 ORDER BY id");
    reset_guard g{s};
    while (s.step())
      out.push_back(read_order(s));
    return out;
  });
}

std::vector<audit_record> store::list_events(const std::string& iccid, std::size_t limit) {
  return impl_->with_reader([&](connection& c) {
    std::vector<audit_record> out;
    auto& s = c.prepare("SELECT id, iccid, at_ms, cause, before, after, imei, detail FROM audit "
                        "WHERE iccid = ?1 ORDER BY id DESC LIMIT ?2");
    reset_guard g{s};
    s.bind(1, iccid).bind(2, static_cast<std::int64_t>(limit));
    while (s.step())
      out.push_back({static_cast<std::uint64_t>(s.i64(0)), std::string(s.text(1)), s.i64(2),
                     std::string(s.text(3)), parse_state_json(s.text(4)),
                     parse_state_json(s.text(5)), static_cast<std::uint64_t>(s.i64(6)),
                     std::string(s.text(7))});
    return out;
  });
}

std::optional<std::string> store::iccid_of(std::uint64_t imsi) {
  return impl_->with_reader([&](connection& c) -> std::optional<std::string> {
    auto& s = c.prepare("SELECT iccid FROM imsis WHERE imsi = ?1");
    reset_guard g{s};
    s.bind(1, i64(imsi));
    if (!s.step())
      return std::nullopt;
    return std::string(s.text(0));
  });
}

std::uint64_t store::count_sims() {
  return impl_->with_reader(
    [](connection& c) { return static_cast<std::uint64_t>(c.scalar("SELECT COUNT(*) FROM sims")); });
}

void store::load_inventory(const std::function<void(const inventory_row&)>& fn) {
  impl_->with_reader([&](connection& c) {
    // One pass over sims joined with their IMSIs, grouped by ICCID.
    statement s{c.get(),
                "SELECT s.iccid, s.network, " SIM_STATE_COLUMNS ", i.imsi FROM sims s "
                "LEFT JOIN imsis i ON i.iccid = s.iccid ORDER BY s.iccid",
                false};
    std::string iccid;
    std::string network;
    lock::sim_state state;
    std::vector<std::uint64_t> imsis;
    bool have = false;
    auto emit = [&] {
      if (have)
        fn(inventory_row{iccid, network, imsis, state});
    };
    while (s.step()) {
      auto id = s.text(0);
      if (!have || id != iccid) {
        emit();
        iccid = id;
        network = s.text(1);
        state = read_state(s, 2);
        imsis.clear();
        have = true;
      }
      if (!s.is_null(14))
        imsis.push_back(static_cast<std::uint64_t>(s.i64(14)));
    }
    emit();
  });
}

} // namespace imeilock::store
