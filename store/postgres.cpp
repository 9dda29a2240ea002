// The PostgreSQL backend (libpq): one writer connection that commits a group
// of changes as one transaction sent in pipeline mode (a round trip per chunk
// of statements, not per statement), reader connections for everyone else,
// the same schema and migrations as SQLite (schema.hpp, translated), the
// version in a schema_version table. A connection that breaks is reported to
// the store (batch_result::connection_lost, store::unavailable from reads);
// the store decides when to reconnect.

#include "common/log.hpp"
#include "store/backend.hpp"
#include "store/schema.hpp"

#include <libpq-fe.h>

#include <atomic>
#include <charconv>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include <sys/stat.h>

namespace imeilock::store::detail {

namespace {

log::rate_limiter reject_limiter{5, std::chrono::seconds{10}};

/// Statements sent in one pipeline chunk before their results are read: bounds
/// what sits in the socket buffers (no deadlock on a large batch).
constexpr std::size_t pipeline_chunk = 512;

/// Serialises concurrent migrations of nodes sharing one database.
constexpr const char* migration_lock = "SELECT pg_advisory_xact_lock(7239402119)";

/// The next order id no node has reserved: meta row `next_order_id`, created
/// at open from max(orders.id) (a database written before it existed).
constexpr const char* seed_order_ids =
    "INSERT INTO meta (key, value) SELECT 'next_order_id', (COALESCE(MAX(id), 0) + 1)::text "
    "FROM orders ON CONFLICT (key) DO NOTHING";
/// Reserves $1 ids: the row lock serialises nodes, the statement commits on
/// its own (a reader connection is in autocommit). Never below max(orders.id)
/// + 1, so an order written without a reservation cannot be handed out again.
constexpr const char* reserve_order_ids_sql =
    "UPDATE meta SET value = (GREATEST(value::bigint, (SELECT COALESCE(MAX(id), 0) + 1 FROM "
    "orders)) + $1::bigint)::text WHERE key = 'next_order_id' RETURNING value::bigint - $1::bigint";

struct conn_deleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using conn_ptr = std::unique_ptr<PGconn, conn_deleter>;

struct result_deleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using result_ptr = std::unique_ptr<PGresult, result_deleter>;

/// A read that failed because the connection is gone (retried or turned
/// into store::unavailable by with_reader).
struct connection_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// libpq's message without its trailing newline.
std::string message_of(PGconn* c) {
  std::string m = c ? PQerrorMessage(c) : "out of memory";
  while (!m.empty() && (m.back() == '\n' || m.back() == ' '))
    m.pop_back();
  return m;
}

std::string message_of(PGresult* r) {
  std::string m = PQresultErrorMessage(r);
  while (!m.empty() && (m.back() == '\n' || m.back() == ' '))
    m.pop_back();
  return m;
}

std::string sqlstate_of(PGresult* r) {
  const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  return s ? s : "";
}

/// An error that means the server or the connection is gone: libpq says so,
/// or the error has no SQLSTATE (libpq's own, e.g. "server closed the
/// connection unexpectedly"), or the server says it is going away.
bool is_connection_error(PGconn* c, PGresult* r) {
  if (PQstatus(c) != CONNECTION_OK || !r)
    return true;
  auto state = sqlstate_of(r);
  return state.empty() || state.starts_with("08") || state.starts_with("57P");
}

/// An error one change causes alone (a constraint, a value PostgreSQL
/// refuses): that change fails, the others of the batch commit.
bool is_change_error(PGresult* r) {
  auto state = sqlstate_of(r);
  return state.starts_with("23") || state.starts_with("22");
}

/// Text PostgreSQL accepts: valid UTF-8 without NUL. Anything else (bytes a
/// peer sent, kept in an audit detail) becomes '?', as SQLite would keep it
/// as bytes; identifiers are validated digits long before they get here.
void append_text(std::string& out, std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    unsigned char c = p[i];
    std::size_t len = c < 0x80           ? 1
                      : (c >> 5) == 0x6  ? 2
                      : (c >> 4) == 0xe  ? 3
                      : (c >> 3) == 0x1e ? 4
                                         : 0;
    bool ok = len > 0 && i + len <= n && c != 0;
    for (std::size_t k = 1; ok && k < len; ++k)
      ok = (p[i + k] & 0xc0) == 0x80;
    if (ok && len == 2)
      ok = c >= 0xc2;
    if (ok && len == 3) {
      unsigned cp = ((c & 0x0fu) << 12) | ((p[i + 1] & 0x3fu) << 6) | (p[i + 2] & 0x3fu);
      ok = cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff);
    }
    if (ok && len == 4) {
      unsigned cp = ((c & 0x07u) << 18) | ((p[i + 1] & 0x3fu) << 12) | ((p[i + 2] & 0x3fu) << 6) |
                    (p[i + 3] & 0x3fu);
      ok = cp >= 0x10000 && cp <= 0x10ffff;
    }
    if (ok) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      out += '?';
      ++i;
    }
  }
}

/// Parameters of one statement, in text format (bind() as SQLite's statement).
class params {
public:
  params& bind(int i, std::int64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    slot(i).assign(buf, r.ptr);
    return *this;
  }
  params& bind(int i, std::string_view v) {
    auto& s = slot(i);
    s.clear();
    append_text(s, v);
    return *this;
  }
  int size() const { return static_cast<int>(values_.size()); }
  const char* const* values() {
    ptrs_.clear();
    for (auto& v : values_)
      ptrs_.push_back(v.c_str());
    return ptrs_.data();
  }

private:
  std::string& slot(int i) {
    if (values_.size() < static_cast<std::size_t>(i))
      values_.resize(static_cast<std::size_t>(i));
    return values_[static_cast<std::size_t>(i - 1)];
  }
  std::vector<std::string> values_;
  std::vector<const char*> ptrs_;
};

/// One row of a text-format result (text()/i64() as SQLite's statement).
struct row {
  PGresult* r;
  int n;
  std::string_view text(int col) const {
    return {PQgetvalue(r, n, col), static_cast<std::size_t>(PQgetlength(r, n, col))};
  }
  std::int64_t i64(int col) const {
    std::int64_t v = 0;
    auto t = text(col);
    std::from_chars(t.data(), t.data() + t.size(), v);
    return v;
  }
  bool is_null(int col) const { return PQgetisnull(r, n, col) != 0; }
};

/// The writer's prepared statements (name, text).
struct prepared {
  const char* name;
  const std::string* text;
};

const generated_sql& q() {
  return sql(dialect::postgresql);
}

std::vector<prepared> writer_statements() {
  return {{"upsert_sim", &q().upsert_sim},
          {"delete_imsis", &q().delete_imsis},
          {"insert_imsi", &q().insert_imsi},
          {"update_state", &q().update_state},
          {"update_activity", &q().update_activity},
          {"upsert_order", &q().upsert_order},
          {"insert_audit", &q().insert_audit},
          {"insert_job", &q().insert_job},
          {"update_job", &q().update_job},
          {"insert_job_iccid", &q().insert_job_iccid},
          {"insert_job_order", &q().insert_job_order}};
}

/// One statement of a change, ready to send.
struct command {
  const char* name; ///< a prepared statement, or nullptr: `text`
  params p;
  bool expect_one = false;    ///< must affect exactly one row (a state update)
  const char* text = nullptr; ///< unprepared (its table may not exist on one node)
  const char* when_missing = "state update for an unknown SIM"; ///< expect_one's error
};

/// A handoff inbox entry applied (store::change::inbox_done): the table is
/// the cluster's (cluster/leases.cpp migrates it), so not prepared.
constexpr const char* delete_inbox_entry = "DELETE FROM cluster_inbox WHERE id = $1";

/// The statements that carry out `c`, in order.
template <class Emit>
void commands_of(const change& c, Emit&& emit) {
  for (auto& s : c.sims) {
    command up{"upsert_sim", {}};
    bind_sim(up.p, s);
    emit(up);
    command del{"delete_imsis", {}};
    del.p.bind(1, std::string_view{s.iccid});
    emit(del);
    for (auto imsi : s.imsis) {
      command ins{"insert_imsi", {}};
      ins.p.bind(1, static_cast<std::int64_t>(imsi)).bind(2, std::string_view{s.iccid});
      emit(ins);
    }
  }
  for (auto& u : c.states) {
    command st{"update_state", {}, true};
    st.p.bind(1, std::string_view{u.iccid});
    bind_fields(st.p, 2, lock::sim_state_fields, u.state);
    emit(st);
  }
  for (auto& a : c.activities) {
    command st{"update_activity", {}};
    st.p.bind(1, std::string_view{a.iccid});
    bind_fields(st.p, 2, lock::sim_activity_fields, a.activity);
    emit(st);
  }
  for (auto& o : c.orders) {
    command st{"upsert_order", {}};
    bind_fields(st.p, 1, orders::order_fields, o);
    emit(st);
  }
  for (auto& a : c.audits) {
    command st{"insert_audit", {}};
    bind_audit(st.p, a);
    emit(st);
  }
  for (auto& j : c.new_jobs) {
    command st{"insert_job", {}};
    bind_job(st.p, j);
    emit(st);
  }
  for (auto& j : c.job_iccids) {
    command st{"insert_job_iccid", {}};
    st.p.bind(1, static_cast<std::int64_t>(j.job_id)).bind(2, std::string_view{j.iccid});
    emit(st);
  }
  for (auto& j : c.job_updates) {
    command st{"update_job", {}, true};
    bind_job_progress(st.p, j);
    emit(st);
  }
  for (auto& l : c.job_orders) {
    command st{"insert_job_order", {}};
    st.p.bind(1, static_cast<std::int64_t>(l.job_id))
        .bind(2, std::string_view{l.iccid})
        .bind(3, static_cast<std::int64_t>(l.order_id));
    emit(st);
  }
  for (auto id : c.inbox_done) {
    command st{nullptr, {}, true, delete_inbox_entry, "handoff inbox entry applied already"};
    st.p.bind(1, id);
    emit(st);
  }
}

/// The connection string from the configuration (the file read now).
expected<std::string> read_conninfo(const postgresql_config& cfg) {
  if (cfg.conninfo_file.empty())
    return cfg.conninfo;
  struct stat st {};
  if (::stat(cfg.conninfo_file.c_str(), &st) != 0)
    return error{ec::bad_settings,
                 cfg.conninfo_file +
                     ": cannot read the PostgreSQL connection string: " + std::strerror(errno)};
  if ((st.st_mode & S_IROTH) != 0)
    return error{ec::bad_settings, cfg.conninfo_file +
                                       ": readable by everyone, and it holds the database "
                                       "password: chmod o-r it (0600 or 0640 for the daemon's "
                                       "user)"};
  std::ifstream in{cfg.conninfo_file};
  std::stringstream text;
  text << in.rdbuf();
  if (!in)
    return error{ec::bad_settings,
                 cfg.conninfo_file + ": cannot read the PostgreSQL connection string"};
  auto s = text.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
    s.pop_back();
  return s;
}

class postgres_backend final : public backend {
private:
  /// Runs `fn` on a reader connection (round robin; waits if all are busy).
  /// A broken connection is replaced once while the writer is connected;
  /// otherwise the read throws store::unavailable.
  template <class F>
  auto with_reader(F&& fn) {
    auto& r = *readers_[next_reader_.fetch_add(1, std::memory_order_relaxed) % readers_.size()];
    std::lock_guard g{r.mtx};
    for (int attempt = 0;; ++attempt) {
      if (!r.conn || PQstatus(r.conn.get()) != CONNECTION_OK) {
        std::string error = "the writer lost the connection";
        if (counters_.connected.load())
          r.conn = connect(error);
        if (!r.conn)
          throw unavailable(name_ + ": the database cannot be reached: " + error);
      }
      try {
        return fn(r.conn.get());
      } catch (const connection_failure& e) {
        r.conn.reset();
        if (attempt > 0 || !counters_.connected.load())
          throw unavailable(name_ + ": the database cannot be reached: " + e.what());
      }
    }
  }

public:
  postgres_backend(const store_config& cfg, stats& counters, std::string conninfo) :
      cfg_(cfg), counters_(counters), conninfo_(std::move(conninfo)) {}

  /// Connects the writer, migrates, prepares, connects the readers; each
  /// message names the server.
  expected<void> open() {
    std::string failure;
    writer_ = connect(failure);
    if (!writer_)
      return error{ec::unreachable, "postgresql: " + failure};
    name_ = describe(writer_.get());
    if (auto migrated = migrate(); !migrated)
      return migrated;
    try {
      prepare_writer();
    } catch (const std::exception& e) {
      return error{ec::migration_failed, e.what()};
    }
    for (std::size_t i = 0; i < std::max<std::size_t>(1, cfg_.readers); ++i) {
      auto r = std::make_unique<reader>();
      r->conn = connect(failure);
      if (!r->conn)
        return error{ec::unreachable, name_ + ": " + failure};
      readers_.push_back(std::move(r));
    }
    return {};
  }

  const std::string& describe() const override { return name_; }

  // -- Writer ---------------------------------------------------------------------

  batch_result commit(std::span<const change* const> batch, std::vector<bool>& ok,
                      const fence_fn& fence) override {
    batch_result r;
    if (!writer_ || PQstatus(writer_.get()) != CONNECTION_OK) {
      r.connection_lost = true;
      r.error = "not connected";
      return r;
    }
    auto s = pipelined(batch, r.error);
    if (s == outcome::change_failed)
      s = careful(batch, ok, r.error);
    if (s == outcome::ok)
      s = finish(batch, fence, r.error);
    r.committed = s == outcome::ok;
    r.connection_lost = s == outcome::lost;
    if (!r.committed && !r.connection_lost)
      rollback();
    return r;
  }

  bool ping() override {
    if (!writer_)
      return false;
    result_ptr r{PQexec(writer_.get(), "SELECT 1")};
    return PQresultStatus(r.get()) == PGRES_TUPLES_OK;
  }

  expected<void> reconnect() override {
    writer_.reset();
    std::string failure;
    auto c = connect(failure);
    if (!c)
      return error{ec::unreachable, name_ + ": " + failure};
    writer_ = std::move(c);
    auto migrated = migrate();
    if (migrated) {
      try {
        prepare_writer();
      } catch (const std::exception& e) {
        migrated = error{ec::migration_failed, e.what()};
      }
    }
    if (!migrated)
      writer_.reset();
    return migrated;
  }

  bool needs_probe() const override { return true; }

  void exec_for_testing(const std::string& sql) override {
    result_ptr r{PQexec(writer_.get(), sql.c_str())};
    auto st = PQresultStatus(r.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
      throw std::runtime_error(message_of(r.get()));
  }

  // -- Readers ----------------------------------------------------------------------

  std::optional<std::uint64_t> reserve_order_ids(std::uint64_t n) override {
    return with_reader([&](PGconn* c) -> std::optional<std::uint64_t> {
      params p;
      p.bind(1, static_cast<std::int64_t>(n));
      std::optional<std::uint64_t> first;
      read(c, reserve_order_ids_sql, p,
           [&](const row& r) { first = static_cast<std::uint64_t>(r.i64(0)); });
      if (!first)
        throw std::runtime_error(name_ + ": meta row next_order_id is missing");
      return first;
    });
  }

  std::uint64_t max_order_id() override {
    return with_reader([](PGconn* c) {
      std::uint64_t id = 0;
      read(c, q().max_order_id, {},
           [&](const row& r) { id = static_cast<std::uint64_t>(r.i64(0)); });
      return id;
    });
  }

  std::optional<lock::sim_record> get_sim(const std::string& iccid) override {
    return with_reader([&](PGconn* c) -> std::optional<lock::sim_record> {
      std::optional<lock::sim_record> out;
      params p;
      p.bind(1, std::string_view{iccid});
      read(c, q().select_sim, p, [&](const row& r) { out = read_sim(r); });
      if (out)
        add_imsis(c, *out);
      return out;
    });
  }

  std::vector<lock::sim_record> list_sims(const lock::sim_filter& filter, const std::string& cursor,
                                          std::size_t limit) override {
    std::vector<param> list;
    auto text = list_sims_query(dialect::postgresql, filter, list, cursor, limit);
    params p;
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (list[i].is_text)
        p.bind(static_cast<int>(i + 1), std::string_view{list[i].text});
      else
        p.bind(static_cast<int>(i + 1), list[i].integer);
    }
    return with_reader([&](PGconn* c) {
      std::vector<lock::sim_record> out;
      read(c, text, p, [&](const row& r) { out.push_back(read_sim(r)); });
      for (auto& s : out)
        add_imsis(c, s);
      return out;
    });
  }

  std::optional<orders::order> get_order(std::uint64_t id) override {
    return with_reader([&](PGconn* c) {
      std::optional<orders::order> out;
      params p;
      p.bind(1, static_cast<std::int64_t>(id));
      read(c, q().get_order, p, [&](const row& r) { out = read_order(r); });
      return out;
    });
  }

  std::vector<orders::order> list_orders(const std::string& iccid) override {
    return with_reader([&](PGconn* c) {
      std::vector<orders::order> out;
      params p;
      p.bind(1, std::string_view{iccid});
      read(c, q().orders_of_sim, p, [&](const row& r) { out.push_back(read_order(r)); });
      return out;
    });
  }

  std::vector<orders::order> open_orders() override {
    return with_reader([&](PGconn* c) {
      std::vector<orders::order> out;
      read(c, q().open_orders, {}, [&](const row& r) { out.push_back(read_order(r)); });
      return out;
    });
  }

  std::vector<audit_record> list_events(const std::string& iccid, std::size_t limit) override {
    return with_reader([&](PGconn* c) {
      std::vector<audit_record> out;
      params p;
      p.bind(1, std::string_view{iccid}).bind(2, static_cast<std::int64_t>(limit));
      read(c, q().list_events, p, [&](const row& r) { out.push_back(read_audit(r)); });
      return out;
    });
  }

  std::optional<std::string> iccid_of(std::uint64_t imsi) override {
    return with_reader([&](PGconn* c) {
      std::optional<std::string> out;
      params p;
      p.bind(1, static_cast<std::int64_t>(imsi));
      read(c, q().iccid_of, p, [&](const row& r) { out = std::string(r.text(0)); });
      return out;
    });
  }

  std::uint64_t count_sims() override {
    return with_reader([](PGconn* c) {
      std::uint64_t n = 0;
      read(c, q().count_sims, {}, [&](const row& r) { n = static_cast<std::uint64_t>(r.i64(0)); });
      return n;
    });
  }

  std::uint64_t count_sims(const lock::sim_filter& filter) override {
    std::vector<param> list;
    auto text = count_sims_query(dialect::postgresql, filter, list);
    params p;
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (list[i].is_text)
        p.bind(static_cast<int>(i + 1), std::string_view{list[i].text});
      else
        p.bind(static_cast<int>(i + 1), list[i].integer);
    }
    return with_reader([&](PGconn* c) {
      std::uint64_t n = 0;
      read(c, text, p, [&](const row& r) { n = static_cast<std::uint64_t>(r.i64(0)); });
      return n;
    });
  }

  std::optional<job_record> get_job(std::uint64_t id) override {
    return with_reader([&](PGconn* c) {
      std::optional<job_record> out;
      params p;
      p.bind(1, static_cast<std::int64_t>(id));
      read(c, q().get_job, p, [&](const row& r) { out = read_job(r); });
      return out;
    });
  }

  std::vector<job_record> list_jobs(std::optional<int> state, std::size_t limit) override {
    return with_reader([&](PGconn* c) {
      std::vector<job_record> out;
      params p;
      if (state)
        p.bind(1, static_cast<std::int64_t>(*state)).bind(2, static_cast<std::int64_t>(limit));
      else
        p.bind(1, static_cast<std::int64_t>(limit));
      read(c, state ? q().list_jobs_in_state : q().list_jobs, p,
           [&](const row& r) { out.push_back(read_job(r)); });
      return out;
    });
  }

  std::uint64_t max_job_id() override {
    return with_reader([](PGconn* c) {
      std::uint64_t id = 0;
      read(c, q().max_job_id, {}, [&](const row& r) { id = static_cast<std::uint64_t>(r.i64(0)); });
      return id;
    });
  }

  std::vector<std::string> job_iccids(std::uint64_t job_id, const std::string& after,
                                      std::size_t limit) override {
    return with_reader([&](PGconn* c) {
      std::vector<std::string> out;
      params p;
      p.bind(1, static_cast<std::int64_t>(job_id))
          .bind(2, std::string_view{after})
          .bind(3, static_cast<std::int64_t>(limit));
      read(c, q().job_iccids, p, [&](const row& r) { out.emplace_back(r.text(0)); });
      return out;
    });
  }

  job_order_counts job_orders(std::uint64_t job_id) override {
    return with_reader([&](PGconn* c) {
      job_order_counts out;
      params p;
      p.bind(1, static_cast<std::int64_t>(job_id));
      read(c, q().job_orders_by_status, p, [&](const row& r) {
        add_status_count(out, r.i64(0), static_cast<std::uint64_t>(r.i64(1)));
      });
      return out;
    });
  }

  bool job_placed(std::uint64_t job_id, const std::string& iccid) override {
    return with_reader([&](PGconn* c) {
      bool found = false;
      params p;
      p.bind(1, static_cast<std::int64_t>(job_id)).bind(2, std::string_view{iccid});
      read(c, q().job_placed, p, [&](const row&) { found = true; });
      return found;
    });
  }

  fleet_counts fleet(std::int64_t since_ms, std::size_t hours, std::size_t latest) override {
    return with_reader([&](PGconn* c) {
      fleet_counts out;
      out.violations_per_hour.assign(hours, 0);
      read(c, q().fleet_sims, {}, [&](const row& r) {
        add_fleet_sims(out, r.text(0), r.i64(1), r.i64(2), static_cast<std::uint64_t>(r.i64(3)));
      });
      read(c, q().fleet_orders, {}, [&](const row& r) {
        add_fleet_orders(out, r.text(0), r.i64(1), static_cast<std::uint64_t>(r.i64(2)));
      });
      params since;
      since.bind(1, since_ms);
      read(c, q().fleet_violations, since, [&](const row& r) {
        add_fleet_violations(out, r.i64(0), static_cast<std::uint64_t>(r.i64(1)));
      });
      params p;
      p.bind(1, since_ms).bind(2, static_cast<std::int64_t>(latest));
      read(c, q().latest_violations, p,
           [&](const row& r) { out.latest_violations.push_back(read_audit(r)); });
      read(c, q().latest_bars, p, [&](const row& r) { out.latest_bars.push_back(read_audit(r)); });
      return out;
    });
  }

  void load_inventory(const std::function<void(const inventory_row&)>& fn) override {
    read_inventory(q().load_inventory, {}, fn);
  }

  void load_inventory_suffixes(std::uint32_t first, std::uint32_t last,
                               const std::function<void(const inventory_row&)>& fn) override {
    params p;
    p.bind(1, static_cast<std::int64_t>(first)).bind(2, static_cast<std::int64_t>(last));
    read_inventory(q().load_inventory_suffixes, std::move(p), fn);
  }

private:
  void read_inventory(const std::string& sql, params p,
                      const std::function<void(const inventory_row&)>& fn) {
    with_reader([&](PGconn* c) {
      // One pass, a row at a time (single-row mode: 10 million SIMs are not
      // held in memory as one result), grouped by ICCID.
      if (PQsendQueryParams(c, sql.c_str(), p.size(), nullptr, p.size() > 0 ? p.values() : nullptr,
                            nullptr, nullptr, 0) != 1)
        throw connection_failure(message_of(c));
      PQsetSingleRowMode(c);
      constexpr int imsi_column = static_cast<int>(sim_select_count);
      inventory_grouper sims{fn};
      std::string error;
      bool lost = false;
      while (result_ptr res{PQgetResult(c)}) {
        auto st = PQresultStatus(res.get());
        if (st == PGRES_SINGLE_TUPLE) {
          if (!error.empty())
            continue; // drain after a callback failure
          row r{res.get(), 0};
          sims.add(
              r.text(0), [&] { return read_sim(r); },
              r.is_null(imsi_column)
                  ? std::nullopt
                  : std::optional{static_cast<std::uint64_t>(r.i64(imsi_column))});
        } else if (st != PGRES_TUPLES_OK) {
          error = message_of(res.get());
          lost = is_connection_error(c, res.get());
        }
      }
      if (!error.empty()) {
        if (lost)
          throw connection_failure(error);
        throw std::runtime_error(name_ + ": " + error);
      }
      sims.finish();
      return 0;
    });
  }

  enum class outcome { ok, change_failed, failed, lost };

  conn_ptr connect(std::string& error) const {
    // Defaults first: the connection string overrides them.
    const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
    const char* values[] = {"5", "imeilockd", conninfo_.c_str(), nullptr};
    conn_ptr c{PQconnectdbParams(keys, values, 1)};
    if (!c || PQstatus(c.get()) != CONNECTION_OK) {
      error = message_of(c.get());
      return nullptr;
    }
    PQsetNoticeProcessor(
        c.get(), [](void*, const char*) {}, nullptr);
    auto set = "SET lock_timeout = " + std::to_string(cfg_.busy_timeout.count());
    result_ptr r{PQexec(c.get(), set.c_str())};
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
      error = message_of(r.get());
      return nullptr;
    }
    return c;
  }

  static std::string describe(PGconn* c) {
    std::string host = PQhost(c) ? PQhost(c) : "";
    return "postgresql host=" + host + " port=" + std::string(PQport(c) ? PQport(c) : "") +
           " dbname=" + std::string(PQdb(c) ? PQdb(c) : "") +
           " user=" + std::string(PQuser(c) ? PQuser(c) : "");
  }

  /// Runs a statement without parameters on the writer; throws its error.
  void exec(const std::string& sql) {
    result_ptr r{PQexec(writer_.get(), sql.c_str())};
    auto st = PQresultStatus(r.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
      throw std::runtime_error(name_ + ": " + message_of(r.get()) + " (" + sql.substr(0, 80) + ")");
  }

  /// In one transaction under the migration lock, so that nodes starting
  /// together migrate once; rolled back whole on an error.
  expected<void> migrate() {
    auto rollback_with = [&](ec code, std::string message) -> expected<void> {
      result_ptr r{PQexec(writer_.get(), "ROLLBACK")};
      return error{code, std::move(message)};
    };
    int v = 0;
    try {
      exec("BEGIN");
      exec(migration_lock);
      exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
      result_ptr r{PQexec(writer_.get(), "SELECT COALESCE(MAX(version), 0) FROM schema_version")};
      if (PQresultStatus(r.get()) != PGRES_TUPLES_OK)
        throw std::runtime_error(name_ + ": " + message_of(r.get()));
      v = std::atoi(PQgetvalue(r.get(), 0, 0));
    } catch (const std::exception& e) {
      return rollback_with(ec::migration_failed, e.what());
    }
    if (v > store::schema_version)
      return rollback_with(ec::newer_schema, name_ + ": schema version " + std::to_string(v) +
                                                 " is newer than this daemon's " +
                                                 std::to_string(store::schema_version));
    try {
      for (; v < store::schema_version; ++v) {
        exec(to_postgres(migrations[v]));
        exec("DELETE FROM schema_version");
        exec("INSERT INTO schema_version (version) VALUES (" + std::to_string(v + 1) + ")");
        log::notice("store.migrated", {{"store", name_}, {"to_version", v + 1}});
      }
      exec(seed_order_ids);
      exec("COMMIT");
    } catch (const std::exception& e) {
      return rollback_with(ec::migration_failed, e.what());
    }
    return {};
  }

  void prepare_writer() {
    for (auto& s : writer_statements()) {
      result_ptr r{PQprepare(writer_.get(), s.name, s.text->c_str(), 0, nullptr)};
      if (PQresultStatus(r.get()) != PGRES_COMMAND_OK)
        throw std::runtime_error(name_ + ": prepare " + s.name + ": " + message_of(r.get()));
    }
  }

  void rollback() {
    if (writer_ && PQstatus(writer_.get()) == CONNECTION_OK &&
        PQtransactionStatus(writer_.get()) != PQTRANS_IDLE)
      result_ptr r{PQexec(writer_.get(), "ROLLBACK")};
  }

  /// An outcome for a failed result on the writer.
  outcome classify(PGresult* r, std::string& error) {
    error = r ? message_of(r) : message_of(writer_.get());
    if (is_connection_error(writer_.get(), r))
      return outcome::lost;
    return r && is_change_error(r) ? outcome::change_failed : outcome::failed;
  }

  /// Runs a statement without parameters on the writer, as an outcome.
  outcome simple(const char* sql, std::string& error) {
    result_ptr r{PQexec(writer_.get(), sql)};
    if (PQresultStatus(r.get()) == PGRES_COMMAND_OK)
      return outcome::ok;
    return classify(r.get(), error);
  }

  /// The fast path: BEGIN and every statement of the batch in pipeline
  /// mode, results read per chunk. ok: all applied, the transaction open;
  /// change_failed: one change was refused, everything rolled back.
  outcome pipelined(std::span<const change* const> batch, std::string& error) {
    PGconn* w = writer_.get();
    if (PQenterPipelineMode(w) != 1)
      return classify(nullptr, error);
    std::vector<const char*> expect_one; // per statement in flight: expect_one's error, or null
    outcome worst = outcome::ok;
    auto note = [&](outcome o, PGresult* r) {
      if (o > worst) {
        worst = o;
        error = r ? message_of(r) : message_of(w);
      }
    };
    // Reads the results of the statements in flight and the sync after them.
    auto drain = [&] {
      if (PQpipelineSync(w) != 1) {
        note(outcome::lost, nullptr);
        return;
      }
      for (const char* one : expect_one) {
        result_ptr r{PQgetResult(w)};
        if (!r) {
          note(PQstatus(w) != CONNECTION_OK ? outcome::lost : outcome::failed, nullptr);
          return;
        }
        auto st = PQresultStatus(r.get());
        if (st == PGRES_FATAL_ERROR) {
          std::string e;
          note(classify(r.get(), e), r.get());
        } else if (st == PGRES_COMMAND_OK && one && std::strcmp(PQcmdTuples(r.get()), "1") != 0) {
          note(outcome::change_failed, nullptr);
          error = one;
        }
        while (result_ptr extra{PQgetResult(w)}) {
        }
      }
      expect_one.clear();
      for (int nulls = 0;;) {
        result_ptr r{PQgetResult(w)};
        if (r && PQresultStatus(r.get()) == PGRES_PIPELINE_SYNC)
          return;
        if (!r && (PQstatus(w) != CONNECTION_OK || ++nulls > 2)) {
          note(outcome::lost, nullptr);
          return;
        }
      }
    };
    auto send = [&](const char* name, const char* text, params* p, const char* one) {
      int n = p ? p->size() : 0;
      int rc = name
                   ? PQsendQueryPrepared(w, name, n, p ? p->values() : nullptr, nullptr, nullptr, 0)
                   : PQsendQueryParams(w, text, n, nullptr, n > 0 ? p->values() : nullptr, nullptr,
                                       nullptr, 0);
      if (rc != 1) {
        note(outcome::lost, nullptr);
        return false;
      }
      expect_one.push_back(one);
      if (expect_one.size() >= pipeline_chunk)
        drain();
      return worst == outcome::ok;
    };
    if (send(nullptr, "BEGIN", nullptr, nullptr))
      for (const change* c : batch) {
        bool going = true;
        commands_of(*c, [&](command& cmd) {
          if (going)
            going = send(cmd.name, cmd.text, &cmd.p, cmd.expect_one ? cmd.when_missing : nullptr);
        });
        if (!going)
          break;
      }
    if (worst != outcome::lost)
      drain();
    if (worst != outcome::lost && PQexitPipelineMode(w) != 1)
      note(outcome::lost, nullptr);
    if (worst == outcome::change_failed) {
      rollback();
      if (PQstatus(w) != CONNECTION_OK)
        return outcome::lost;
    }
    return worst;
  }

  /// The careful path after a refused change: one statement at a time, each
  /// change inside a savepoint, a refused change rolled back alone.
  outcome careful(std::span<const change* const> batch, std::vector<bool>& ok, std::string& error) {
    if (auto o = simple("BEGIN", error); o != outcome::ok)
      return o == outcome::change_failed ? outcome::failed : o;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (auto o = simple("SAVEPOINT c", error); o != outcome::ok)
        return o == outcome::change_failed ? outcome::failed : o;
      outcome result = outcome::ok;
      std::string change_error;
      commands_of(*batch[i], [&](command& cmd) {
        if (result != outcome::ok)
          return;
        result_ptr r{cmd.name ? PQexecPrepared(writer_.get(), cmd.name, cmd.p.size(),
                                               cmd.p.values(), nullptr, nullptr, 0)
                              : PQexecParams(writer_.get(), cmd.text, cmd.p.size(), nullptr,
                                             cmd.p.values(), nullptr, nullptr, 0)};
        if (PQresultStatus(r.get()) != PGRES_COMMAND_OK)
          result = classify(r.get(), change_error);
        else if (cmd.expect_one && std::strcmp(PQcmdTuples(r.get()), "1") != 0) {
          result = outcome::change_failed;
          change_error = std::string(cmd.when_missing) + " " + std::string(cmd.p.values()[0]);
        }
      });
      if (result == outcome::change_failed) {
        ok[i] = false;
        log::write_limited(reject_limiter, log::level::warning, "store.change_rejected",
                           {{"error", change_error}});
        if (auto o = simple("ROLLBACK TO SAVEPOINT c", error); o != outcome::ok)
          return o == outcome::change_failed ? outcome::failed : o;
      } else if (result != outcome::ok) {
        error = change_error;
        return result;
      }
      if (auto o = simple("RELEASE SAVEPOINT c", error); o != outcome::ok)
        return o == outcome::change_failed ? outcome::failed : o;
    }
    return outcome::ok;
  }

  /// The fence, then COMMIT.
  outcome finish(std::span<const change* const> batch, const fence_fn& fence, std::string& error) {
    if (fence) {
      bool allowed = false;
      try {
        allowed =
            fence(batch, [this](const std::string& sql, const std::vector<std::string>& values) {
              params p;
              for (std::size_t i = 0; i < values.size(); ++i)
                p.bind(static_cast<int>(i + 1), std::string_view{values[i]});
              result_ptr r{PQexecParams(writer_.get(), sql.c_str(), p.size(), nullptr, p.values(),
                                        nullptr, nullptr, 0)};
              auto st = PQresultStatus(r.get());
              if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
                throw std::runtime_error(message_of(r.get()));
              if (st != PGRES_TUPLES_OK || PQntuples(r.get()) == 0)
                return std::optional<std::string>{};
              return std::optional<std::string>{PQgetvalue(r.get(), 0, 0)};
            });
        if (!allowed)
          error = "the fencing check vetoed the commit";
      } catch (const std::exception& e) {
        error = std::string("the fencing check failed: ") + e.what();
      }
      if (!allowed)
        return PQstatus(writer_.get()) != CONNECTION_OK ? outcome::lost : outcome::failed;
    }
    result_ptr r{PQexec(writer_.get(), "COMMIT")};
    // COMMIT of a transaction in error answers ROLLBACK without an error.
    if (PQresultStatus(r.get()) == PGRES_COMMAND_OK &&
        std::strcmp(PQcmdStatus(r.get()), "COMMIT") == 0)
      return outcome::ok;
    auto o = classify(r.get(), error);
    return o == outcome::change_failed ? outcome::failed : o;
  }

  /// Runs `sql` on a reader connection, calling `fn` per row.
  template <class F>
  static void read(PGconn* c, const std::string& sql, params p, F&& fn) {
    result_ptr r{PQexecParams(c, sql.c_str(), p.size(), nullptr, p.size() ? p.values() : nullptr,
                              nullptr, nullptr, 0)};
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
      if (is_connection_error(c, r.get()))
        throw connection_failure(message_of(r.get()));
      throw std::runtime_error("postgresql: " + message_of(r.get()));
    }
    for (int i = 0, n = PQntuples(r.get()); i < n; ++i)
      fn(row{r.get(), i});
  }

  static void add_imsis(PGconn* c, lock::sim_record& s) {
    params p;
    p.bind(1, std::string_view{s.iccid});
    read(c, q().imsis_of_sim, p,
         [&](const row& r) { s.imsis.push_back(static_cast<std::uint64_t>(r.i64(0))); });
  }

  struct reader {
    std::mutex mtx;
    conn_ptr conn;
  };

  store_config cfg_;
  stats& counters_;
  std::string conninfo_;
  std::string name_ = "postgresql";
  conn_ptr writer_;
  std::vector<std::unique_ptr<reader>> readers_;
  std::atomic<std::size_t> next_reader_{0};
};

} // namespace

expected<std::unique_ptr<backend>> open_postgres(const store_config& cfg, stats& counters) {
  auto conninfo = read_conninfo(cfg.postgresql);
  if (!conninfo)
    return std::move(conninfo.error());
  auto b = std::make_unique<postgres_backend>(cfg, counters, std::move(*conninfo));
  if (auto opened = b->open(); !opened)
    return std::move(opened.error());
  return std::unique_ptr<backend>{std::move(b)};
}

} // namespace imeilock::store::detail

namespace imeilock::store {

std::string resolve_conninfo(const postgresql_config& cfg) {
  auto conninfo = detail::read_conninfo(cfg);
  if (!conninfo)
    throw std::runtime_error(conninfo.error().message());
  return std::move(*conninfo);
}

} // namespace imeilock::store
