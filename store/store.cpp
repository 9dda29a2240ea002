#include "store/store.hpp"

#include "common/fields.hpp"
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
    return {reinterpret_cast<const char*>(p),
            static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))};
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

// -- Generated from the field lists (lock/sim.hpp, orders/order.hpp) ---------------

/// All columns of the sims table, in table order: identity, then lock state.
constexpr std::size_t sim_identity_count = fields::count<decltype(lock::sim_identity_fields)>;
constexpr std::size_t sim_state_count = fields::count<decltype(lock::sim_state_fields)>;
constexpr std::size_t sim_column_count = sim_identity_count + sim_state_count;

/// "a, b, c" of the names of `list`, each with `prefix` in front.
template <class List>
std::string column_list(const List& list, std::string_view prefix = {}) {
  std::string out;
  fields::for_each_field(list, [&](const auto& f) {
    if (!out.empty())
      out += ", ";
    out += prefix;
    out += f.name;
  });
  return out;
}

/// "?first, ?first+1, ..." (n placeholders).
std::string placeholders(std::size_t first, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    if (i > 0)
      out += ", ";
    out += '?';
    out += std::to_string(first + i);
  }
  return out;
}

/// The columns of a sims row, as every statement reads them.
std::string sim_columns(std::string_view prefix = {}) {
  return column_list(lock::sim_identity_fields, prefix) + ", " +
         column_list(lock::sim_state_fields, prefix);
}

/// The statements generated from the field lists, built once. Their texts
/// live as long as the process, so cached statements can key on them.
struct generated_sql {
  std::string upsert_sim;     ///< ?1.. = identity, then state
  std::string update_state;   ///< ?1 = iccid, ?2.. = state
  std::string select_sim;     ///< ?1 = iccid
  std::string list_sims_head; ///< "SELECT <sim columns> FROM sims"
  std::string load_inventory; ///< every SIM joined with its IMSIs (last column)
  std::string upsert_order;   ///< ?1.. = the order fields
  std::string get_order;      ///< ?1 = id
  std::string orders_of_sim;  ///< ?1 = iccid, newest first
  std::string open_orders;    ///< queued or submitted, by id

  generated_sql() {
    upsert_sim = "INSERT INTO sims (" + sim_columns() + ") VALUES (" +
                 placeholders(1, sim_column_count) + ") ON CONFLICT (iccid) DO UPDATE SET ";
    bool first = true;
    auto set_excluded = [&](const auto& f) {
      if (f.name == "iccid")
        return;
      if (!first)
        upsert_sim += ", ";
      first = false;
      upsert_sim.append(f.name).append(" = excluded.").append(f.name);
    };
    fields::for_each_field(lock::sim_identity_fields, set_excluded);
    fields::for_each_field(lock::sim_state_fields, set_excluded);

    update_state = "UPDATE sims SET ";
    fields::for_each_field_indexed(lock::sim_state_fields, [&](const auto& f, std::size_t i) {
      if (i > 0)
        update_state += ", ";
      update_state.append(f.name).append(" = ?").append(std::to_string(i + 2));
    });
    update_state += " WHERE iccid = ?1";

    list_sims_head = "SELECT " + sim_columns() + " FROM sims";
    select_sim = list_sims_head + " WHERE iccid = ?1";
    load_inventory = "SELECT " + sim_columns("s.") +
                     ", i.imsi FROM sims s LEFT JOIN imsis i ON i.iccid = s.iccid ORDER BY s.iccid";

    upsert_order = "INSERT OR REPLACE INTO orders (" + column_list(orders::order_fields) +
                   ") VALUES (" + placeholders(1, fields::count<decltype(orders::order_fields)>) +
                   ")";
    const auto select_order = "SELECT " + column_list(orders::order_fields) + " FROM orders";
    get_order = select_order + " WHERE id = ?1";
    orders_of_sim = select_order + " WHERE iccid = ?1 ORDER BY id DESC";
    open_orders = select_order + " WHERE status < 2 ORDER BY id";
  }
};

const generated_sql& sql() {
  static const generated_sql g;
  return g;
}

/// Binds the fields of `list` from `o`, starting at parameter `first`.
template <class List, class Owner>
void bind_fields(statement& s, int first, const List& list, const Owner& o) {
  fields::for_each_field_indexed(list, [&](const auto& f, std::size_t i) {
    using T = typename std::remove_cvref_t<decltype(f)>::value_type;
    const int at = first + static_cast<int>(i);
    if constexpr (fields::is_text<T>)
      s.bind(at, std::string_view{f.get(o)});
    else
      s.bind(at, fields::to_integer(f.get(o)));
  });
}

/// Reads the fields of `list` into `o`, starting at column `first`.
template <class List, class Owner>
void read_fields(const statement& s, int first, const List& list, Owner& o) {
  fields::for_each_field_indexed(list, [&](const auto& f, std::size_t i) {
    using T = typename std::remove_cvref_t<decltype(f)>::value_type;
    const int at = first + static_cast<int>(i);
    if constexpr (fields::is_text<T>)
      f.get(o) = s.text(at);
    else
      f.get(o) = fields::from_integer<T>(s.i64(at));
  });
}

/// Binds a whole SIM (identity, then state) starting at parameter 1.
void bind_sim(statement& s, const lock::sim_record& r) {
  bind_fields(s, 1, lock::sim_identity_fields, r);
  bind_fields(s, 1 + static_cast<int>(sim_identity_count), lock::sim_state_fields, r.state);
}

/// Reads a whole SIM (without its IMSIs) starting at column `first`.
lock::sim_record read_sim(const statement& s, int first = 0) {
  lock::sim_record r;
  read_fields(s, first, lock::sim_identity_fields, r);
  read_fields(s, first + static_cast<int>(sim_identity_count), lock::sim_state_fields, r.state);
  return r;
}

orders::order read_order(const statement& s) {
  orders::order o;
  read_fields(s, 0, orders::order_fields, o);
  return o;
}

/// The compact JSON of a state in the audit log: the state columns as keys,
/// integers as stored, bool as true/false (on the write path of every change:
/// no JSON library).
std::string state_json(const lock::sim_state& s) {
  std::string out;
  out.reserve(256);
  out += '{';
  fields::for_each_field_indexed(lock::sim_state_fields, [&](const auto& f, std::size_t i) {
    using T = typename std::remove_cvref_t<decltype(f)>::value_type;
    if (i > 0)
      out += ',';
    out += '"';
    out += f.name;
    out += "\":";
    const T& v = f.get(s);
    if constexpr (std::is_same_v<T, bool>) {
      out += v ? "true" : "false";
    } else {
      char buf[24];
      std::to_chars_result r;
      if constexpr (std::is_enum_v<T>)
        r = std::to_chars(buf, buf + sizeof buf, static_cast<int>(v));
      else
        r = std::to_chars(buf, buf + sizeof buf, v);
      out.append(buf, r.ptr);
    }
  });
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
  fields::for_each_field(lock::sim_state_fields, [&](const auto& f) {
    using T = typename std::remove_cvref_t<decltype(f)>::value_type;
    const std::string key{f.name};
    if constexpr (std::is_enum_v<T>)
      f.get(s) = static_cast<T>(static_cast<std::underlying_type_t<T>>(j.value(key, 0)));
    else
      f.get(s) = j.value(key, T{});
  });
  return s;
}

std::int64_t i64(std::uint64_t v) {
  return static_cast<std::int64_t>(v);
}
template <class E>
requires std::is_enum_v<E> std::int64_t i64(E v) {
  return static_cast<std::int64_t>(v);
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
      auto& up = writer->prepare(sql().upsert_sim.c_str());
      {
        reset_guard g{up};
        bind_sim(up, s);
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
      auto& st = writer->prepare(sql().update_state.c_str());
      reset_guard g{st};
      st.bind(1, u.iccid);
      bind_fields(st, 2, lock::sim_state_fields, u.state);
      st.run();
      if (sqlite3_changes(writer->get()) != 1)
        throw sqlite_error(SQLITE_NOTFOUND, "state update for unknown SIM " + u.iccid);
    }
    for (auto& o : c.orders) {
      auto& st = writer->prepare(sql().upsert_order.c_str());
      reset_guard g{st};
      bind_fields(st, 1, orders::order_fields, o);
      st.run();
    }
    for (auto& a : c.audits) {
      auto& st =
          writer->prepare("INSERT INTO audit (iccid, at_ms, cause, before, after, imei, detail) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
      reset_guard g{st};
      st.bind(1, a.iccid)
          .bind(2, a.at_ms)
          .bind(3, a.cause)
          .bind(4, state_json(a.before))
          .bind(5, state_json(a.after))
          .bind(6, i64(a.imei))
          .bind(7, a.detail);
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
  next_order_id_.store(
      static_cast<std::uint64_t>(impl_->writer->scalar("SELECT COALESCE(MAX(id), 0) FROM orders")) +
      1);
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
    if (!impl_->stopping && impl_->queue.size() < impl_->cfg.max_queue &&
        !impl_->waited_too_long()) {
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

std::optional<lock::sim_record> store::get_sim(const std::string& iccid) {
  return impl_->with_reader([&](connection& c) -> std::optional<lock::sim_record> {
    auto& s = c.prepare(sql().select_sim.c_str());
    reset_guard g{s};
    s.bind(1, iccid);
    if (!s.step())
      return std::nullopt;
    auto r = read_sim(s);
    auto& im = c.prepare("SELECT imsi FROM imsis WHERE iccid = ?1 ORDER BY imsi");
    reset_guard g2{im};
    im.bind(1, iccid);
    while (im.step())
      r.imsis.push_back(static_cast<std::uint64_t>(im.i64(0)));
    return r;
  });
}

std::vector<lock::sim_record> store::list_sims(const lock::sim_filter& filter,
                                               const std::string& cursor, std::size_t limit) {
  std::string text = sql().list_sims_head + " WHERE iccid > ?1";
  if (filter.lock)
    text += " AND lock = ?2";
  if (filter.bar)
    text += " AND bar = ?3";
  if (filter.network)
    text += " AND network = ?4";
  text += " ORDER BY iccid LIMIT ?5";
  return impl_->with_reader([&](connection& c) {
    std::vector<lock::sim_record> out;
    statement s{c.get(), text.c_str(), false};
    s.bind(1, cursor).bind(5, static_cast<std::int64_t>(limit));
    if (filter.lock)
      s.bind(2, i64(*filter.lock));
    if (filter.bar)
      s.bind(3, i64(*filter.bar));
    if (filter.network)
      s.bind(4, *filter.network);
    while (s.step())
      out.push_back(read_sim(s));
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

std::optional<orders::order> store::get_order(std::uint64_t id) {
  return impl_->with_reader([&](connection& c) -> std::optional<orders::order> {
    auto& s = c.prepare(sql().get_order.c_str());
    reset_guard g{s};
    s.bind(1, i64(id));
    if (!s.step())
      return std::nullopt;
    return read_order(s);
  });
}

std::vector<orders::order> store::list_orders(const std::string& iccid) {
  return impl_->with_reader([&](connection& c) {
    std::vector<orders::order> out;
    auto& s = c.prepare(sql().orders_of_sim.c_str());
    reset_guard g{s};
    s.bind(1, iccid);
    while (s.step())
      out.push_back(read_order(s));
    return out;
  });
}

std::vector<orders::order> store::open_orders() {
  return impl_->with_reader([&](connection& c) {
    std::vector<orders::order> out;
    auto& s = c.prepare(sql().open_orders.c_str());
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
  return impl_->with_reader([](connection& c) {
    return static_cast<std::uint64_t>(c.scalar("SELECT COUNT(*) FROM sims"));
  });
}

void store::load_inventory(const std::function<void(const inventory_row&)>& fn) {
  impl_->with_reader([&](connection& c) {
    // One pass over sims joined with their IMSIs, grouped by ICCID.
    statement s{c.get(), sql().load_inventory.c_str(), false};
    constexpr int imsi_column = static_cast<int>(sim_column_count);
    lock::sim_record sim;
    bool have = false;
    auto emit = [&] {
      if (have)
        fn(inventory_row{sim.iccid, sim.network, sim.imsis, sim.state});
    };
    while (s.step()) {
      auto id = s.text(0);
      if (!have || id != sim.iccid) {
        emit();
        sim = read_sim(s);
        have = true;
      }
      if (!s.is_null(imsi_column))
        sim.imsis.push_back(static_cast<std::uint64_t>(s.i64(imsi_column)));
    }
    emit();
  });
}

} // namespace imeilock::store
