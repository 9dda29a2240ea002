// The store suite, run against both backends: SQLite files in a temporary
// directory and a throwaway PostgreSQL server (tests/support/postgres.hpp).
// Every case is a template over the backend, except the ones that test what
// only SQLite has (a capped file size, file modes): those say so in their name.
#include "store/store.hpp"

#include "common/fields.hpp"
#include "store/schema.hpp"
#include "tests/support/postgres.hpp"

#include <catch2/catch.hpp>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <set>
#include <thread>
#include <tuple>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

using namespace imeilock;
namespace fs = std::filesystem;

namespace {

/// A fresh directory, removed at the end of the test.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("imeilock-store-" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string db() const { return (path / "test.db").string(); }
};

using rows = std::vector<std::vector<std::string>>;

/// The SQLite backend: a file in a temporary directory.
struct sqlite_db {
  static constexpr std::string_view name = "sqlite";
  temp_dir dir;

  bool available() const { return true; }
  std::string why_not() const { return {}; }
  store::store_config config() const {
    store::store_config cfg;
    cfg.path = dir.db();
    return cfg;
  }
  /// Runs `sql` outside the store (a second connection).
  rows query(const std::string& sql) const {
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(dir.db().c_str(), &raw) == SQLITE_OK);
    // Waits for a lock as the store's own connections do (a checkpoint when
    // the store closes its last connection takes the database briefly):
    // without it a read here can fail SQLITE_BUSY and read as no rows.
    sqlite3_busy_timeout(raw, 5000);
    rows out;
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(raw, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
    int rc = SQLITE_ROW;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      auto& r = out.emplace_back();
      for (int i = 0; i < sqlite3_column_count(st); ++i) {
        auto t = sqlite3_column_text(st, i);
        r.emplace_back(t ? reinterpret_cast<const char*>(t) : "");
      }
    }
    sqlite3_finalize(st);
    sqlite3_close(raw);
    INFO(sql << ": " << sqlite3_errstr(rc));
    REQUIRE(rc == SQLITE_DONE); // an error is no empty result
    return out;
  }
  std::string schema_version() const { return query("PRAGMA user_version").at(0).at(0); }
  void set_schema_version(int v) const { query("PRAGMA user_version=" + std::to_string(v)); }
  std::vector<std::string> columns(const std::string& table) const {
    std::vector<std::string> out;
    for (auto& r : query("PRAGMA table_info(" + table + ")"))
      out.push_back(r.at(1));
    return out;
  }
  /// Statements that make the writer's connection refuse writes, and undo it.
  static constexpr const char* read_only_on = "PRAGMA query_only=1";
  static constexpr const char* read_only_off = "PRAGMA query_only=0";
  /// A fence query: the number of SIMs with ICCID ?1 the transaction sees.
  static constexpr const char* count_sql = "SELECT COUNT(*) FROM sims WHERE iccid = ?1";
  /// One row when the index `name` exists.
  static std::string index_sql(const std::string& name) {
    return "SELECT name FROM sqlite_master WHERE type = 'index' AND name = '" + name + "'";
  }
};

/// The PostgreSQL backend: a fresh database on this process's test server.
struct postgres_db {
  static constexpr std::string_view name = "postgresql";
  std::string conninfo;

  postgres_db() {
    auto& server = test::postgres_server::shared();
    if (server.ok())
      conninfo = server.fresh_database();
  }
  bool available() const { return !conninfo.empty(); }
  std::string why_not() const { return test::postgres_server::shared().why_not(); }
  store::store_config config() const {
    store::store_config cfg;
    cfg.backend = store::backend_kind::postgresql;
    cfg.postgresql.conninfo = conninfo;
    return cfg;
  }
  rows query(const std::string& sql) const { return test::pg_query(conninfo, sql); }
  std::string schema_version() const {
    return query("SELECT version FROM schema_version").at(0).at(0);
  }
  void set_schema_version(int v) const {
    query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL); "
          "DELETE FROM schema_version; INSERT INTO schema_version VALUES (" +
          std::to_string(v) + ")");
  }
  std::vector<std::string> columns(const std::string& table) const {
    std::vector<std::string> out;
    for (auto& r : query("SELECT column_name FROM information_schema.columns WHERE table_name = '" +
                         table + "' ORDER BY ordinal_position"))
      out.push_back(r.at(0));
    return out;
  }
  static constexpr const char* read_only_on = "SET default_transaction_read_only = on";
  static constexpr const char* read_only_off = "SET default_transaction_read_only = off";
  static constexpr const char* count_sql = "SELECT COUNT(*) FROM sims WHERE iccid = $1";
  /// One row when the index `name` exists.
  static std::string index_sql(const std::string& name) {
    return "SELECT indexname FROM pg_indexes WHERE indexname = '" + name + "'";
  }
};

/// Skips the test (with the reason) when the backend cannot run here.
#define REQUIRE_BACKEND(db)                                                                        \
  do {                                                                                             \
    if (!(db).available()) {                                                                       \
      WARN((db).why_not());                                                                        \
      return;                                                                                      \
    }                                                                                              \
  } while (false)

lock::sim_record sim(std::string iccid, std::vector<std::uint64_t> imsis,
                     std::string network = "multinet") {
  lock::sim_record r;
  r.iccid = std::move(iccid);
  r.imsis = std::move(imsis);
  r.msisdn = "447700900123";
  r.network = std::move(network);
  r.state.status = lock::sim_status::active;
  return r;
}

/// Opens a store the test needs: fails the test with the store's error.
std::unique_ptr<store::store> open_store(store::store_config cfg) {
  auto s = store::open(std::move(cfg));
  INFO((s ? std::string{} : s.error().describe()));
  REQUIRE(s);
  return std::move(*s);
}

/// What store::open() refused with; fails the test when it opened.
error refusal(store::store_config cfg) {
  auto s = store::open(std::move(cfg));
  REQUIRE_FALSE(s);
  return s.error();
}

/// Submits and waits for the outcome.
bool commit(store::store& db, store::change c) {
  std::promise<bool> p;
  auto f = p.get_future();
  db.submit(std::move(c), [&p](bool ok) { p.set_value(ok); });
  return f.get();
}

store::change sims_change(std::vector<lock::sim_record> sims) {
  store::change c;
  c.sims = std::move(sims);
  return c;
}

} // namespace

#define STORE_TEST(name) TEMPLATE_TEST_CASE(name, "[store]", sqlite_db, postgres_db)

STORE_TEST("a new database is created and migrated to the current schema") {
  TestType db;
  REQUIRE_BACKEND(db);
  {
    auto s = open_store(db.config());
    CHECK(s->count_sims() == 0);
    CHECK(s->allocate_order_id() == 1);
    CHECK(s->counters().connected.load());
  }
  CHECK(db.schema_version() == std::to_string(store::store::schema_version));
  if constexpr (std::is_same_v<TestType, sqlite_db>)
    CHECK(db.query("PRAGMA journal_mode").at(0).at(0) == "wal");
  // Opening it again migrates nothing and keeps the version.
  CHECK(store::open(db.config()));
  CHECK(db.schema_version() == std::to_string(store::store::schema_version));
}

STORE_TEST("a database from a newer daemon is refused") {
  TestType db;
  REQUIRE_BACKEND(db);
  db.set_schema_version(99);
  auto why = refusal(db.config());
  CHECK(why.is(store::ec::newer_schema));
  CHECK_THAT(why.message(), Catch::Contains("newer"));
}

STORE_TEST("SIMs, orders and audit records round-trip") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto opened = open_store(fx.config());
  auto& db = *opened;

  auto s = sim("8944000000000000001", {234150000000001, 234150000000002});
  s.state.lock = lock::lock_state::locked;
  s.state.lock_imei = 35349001234567;
  s.state.last_seen_imei = 35349001234568;
  s.state.trigger_imei = 35349001234568;
  s.state.bar = lock::bar_state::bar_pending;
  s.state.reason = lock::bar_reason::imei_lock;
  s.state.pending_order = lock::order_type::bar;
  s.state.pending_order_id = 7;
  s.state.updated_at_ms = 1'700'000'000'123;

  orders::order o;
  o.id = db.allocate_order_id();
  o.iccid = s.iccid;
  o.network = "multinet";
  o.type = lock::order_type::unbar;
  o.reason = lock::bar_reason::imei_lock;
  o.mode = lock::unbar_mode::update_to_last_seen;
  o.status = orders::order_status::submitted;
  o.created_at_ms = 10;
  o.due_at_ms = 20;
  o.submitted_at_ms = 15;
  o.attempts = 2;
  o.retry_at_ms = 17;
  o.failure_reason = "none yet";

  store::audit_record a;
  a.iccid = s.iccid;
  a.at_ms = 99;
  a.cause = "observation";
  a.after = s.state;
  a.imei = 35349001234568;
  a.detail = "violation";

  store::change c;
  c.sims.push_back(s);
  c.orders.push_back(o);
  c.audits.push_back(a);
  REQUIRE(commit(db, std::move(c)));

  auto got = db.get_sim(s.iccid);
  REQUIRE(got);
  CHECK(got->iccid == s.iccid);
  CHECK(got->imsis == s.imsis);
  CHECK(got->msisdn == s.msisdn);
  CHECK(got->network == "multinet");
  CHECK(got->state == s.state);
  CHECK(db.iccid_of(234150000000002) == s.iccid);
  CHECK_FALSE(db.iccid_of(234150000000003));

  auto go = db.get_order(o.id);
  REQUIRE(go);
  CHECK(go->type == lock::order_type::unbar);
  CHECK(go->mode == lock::unbar_mode::update_to_last_seen);
  CHECK(go->status == orders::order_status::submitted);
  CHECK(go->attempts == 2);
  CHECK(go->failure_reason == "none yet");
  CHECK(go->due_at_ms == 20);
  CHECK(go->retry_at_ms == 17);
  CHECK(go->submitted_at_ms == 15);
  CHECK(db.list_orders(s.iccid).size() == 1);
  CHECK(db.open_orders().size() == 1);

  auto ev = db.list_events(s.iccid, 10);
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].id > 0);
  CHECK(ev[0].cause == "observation");
  CHECK(ev[0].after == s.state);
  CHECK(ev[0].before == lock::sim_state{});
  CHECK(ev[0].imei == 35349001234568);

  SECTION("a state update leaves the identity alone") {
    store::change u;
    auto st = s.state;
    st.bar = lock::bar_state::barred;
    u.states.push_back({s.iccid, st});
    o.status = orders::order_status::completed;
    o.finished_at_ms = 30;
    u.orders.push_back(o);
    REQUIRE(commit(db, std::move(u)));
    auto again = db.get_sim(s.iccid);
    CHECK(again->state.bar == lock::bar_state::barred);
    CHECK(again->imsis == s.imsis);
    CHECK(db.open_orders().empty());
    CHECK(db.get_order(o.id)->finished_at_ms == 30);
  }

  SECTION("a state update for an unknown SIM fails alone") {
    store::change bad;
    bad.states.push_back({"8944999", s.state});
    CHECK_FALSE(commit(db, std::move(bad)));
    CHECK(commit(db, sims_change({sim("8944000000000000002", {234150000000009})})));
  }
}

STORE_TEST("the field lists name every column of the schema, in table order") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  REQUIRE(store::open(fx.config()));
  std::vector<std::string> sims;
  fields::for_each_field(lock::sim_identity_fields,
                         [&](const auto& f) { sims.emplace_back(f.name); });
  fields::for_each_field(lock::sim_state_fields, [&](const auto& f) { sims.emplace_back(f.name); });
  fields::for_each_field(lock::sim_activity_fields,
                         [&](const auto& f) { sims.emplace_back(f.name); });
  // Each migration adds its columns last: the activity (schema 3) comes
  // before the lock scope (schema 4) in the table, after it in the lists.
  // home_suffix (schema 7) is the store's own, derived from the IMSIs: no
  // record carries it.
  auto table = fx.columns("sims");
  REQUIRE(!table.empty());
  CHECK(table.back() == "home_suffix");
  table.pop_back();
  CHECK(std::set<std::string>(table.begin(), table.end()) ==
        std::set<std::string>(sims.begin(), sims.end()));
  CHECK(table.size() == sims.size());
  std::vector<std::string> written(table.begin(), table.end());
  std::erase_if(written,
                [](const std::string& c) { return c == "observed_s" || c == "imei_seen_s"; });
  CHECK(written == std::vector<std::string>(sims.begin(), sims.end() - 2));
  std::vector<std::string> orders;
  fields::for_each_field(orders::order_fields, [&](const auto& f) { orders.emplace_back(f.name); });
  CHECK(fx.columns("orders") == orders);
}

STORE_TEST("SIM activity is written only by its own updates, read back, listed and filtered") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto opened = open_store(fx.config());
  auto& db = *opened;
  auto quiet = sim("8944000000000000001", {234150000000001}); // observed, never an IMEI
  auto seen = sim("8944000000000000002", {234150000000002});  // observed with an IMEI
  auto idle = sim("8944000000000000003", {234150000000003});  // never observed
  quiet.state.lock = lock::lock_state::awaiting_first_imei;
  quiet.state.updated_at_ms = 1'000'000;
  idle.state.lock = lock::lock_state::awaiting_first_imei;
  idle.state.updated_at_ms = 5'000'000;
  REQUIRE(commit(db, sims_change({quiet, seen, idle})));
  CHECK(db.get_sim(quiet.iccid)->activity == lock::sim_activity{});

  store::change c;
  c.activities.push_back({quiet.iccid, {1'800'000'000, 0}});
  c.activities.push_back({seen.iccid, {1'800'000'010, 1'800'000'005}});
  c.activities.push_back({"8944999", {1, 1}}); // a SIM not (or no longer) stored: skipped
  REQUIRE(commit(db, std::move(c)));
  CHECK(db.get_sim(quiet.iccid)->activity == lock::sim_activity{1'800'000'000, 0});
  CHECK(db.get_sim(seen.iccid)->activity == lock::sim_activity{1'800'000'010, 1'800'000'005});

  // A state write or an identity upsert does not take the activity back.
  store::change u;
  auto st = quiet.state;
  st.bar = lock::bar_state::bar_pending;
  u.states.push_back({quiet.iccid, st});
  u.sims.push_back(seen);
  REQUIRE(commit(db, std::move(u)));
  CHECK(db.get_sim(quiet.iccid)->activity == lock::sim_activity{1'800'000'000, 0});
  CHECK(db.get_sim(seen.iccid)->activity == lock::sim_activity{1'800'000'010, 1'800'000'005});

  auto iccids = [&](const lock::sim_filter& f) {
    std::vector<std::string> out;
    for (auto& r : db.list_sims(f, "", 100))
      out.push_back(r.iccid);
    return out;
  };
  lock::sim_filter never;
  never.never_with_imei = true;
  CHECK(iccids(never) == std::vector<std::string>{quiet.iccid});
  never.never_with_imei = false;
  CHECK(iccids(never) == std::vector<std::string>{seen.iccid, idle.iccid});
  lock::sim_filter waiting;
  waiting.awaiting_imei_since_ms = 5'000'000;
  CHECK(iccids(waiting) == std::vector<std::string>{quiet.iccid, idle.iccid});
  waiting.awaiting_imei_since_ms = 4'999'999;
  CHECK(iccids(waiting) == std::vector<std::string>{quiet.iccid});
  waiting.never_with_imei = true;
  waiting.awaiting_imei_since_ms = 9'000'000;
  CHECK(iccids(waiting) == std::vector<std::string>{quiet.iccid});

  std::vector<lock::sim_activity> loaded;
  db.load_inventory([&](const store::inventory_row& r) { loaded.push_back(r.activity); });
  CHECK(loaded ==
        std::vector<lock::sim_activity>{{1'800'000'000, 0}, {1'800'000'010, 1'800'000'005}, {}});
}

STORE_TEST("the audit log's state JSON keeps its stored form") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto opened = open_store(fx.config());
  auto& db = *opened;
  REQUIRE(commit(db, sims_change({sim("8944000000000000001", {234150000000001})})));
  store::audit_record a;
  a.iccid = "8944000000000000001";
  a.cause = "observation";
  a.after.status = lock::sim_status::active;
  a.after.lock = lock::lock_state::locked;
  a.after.lock_imei = 35349001234567;
  a.after.pending_order_id = 12;
  a.after.activate_with_lock = true;
  a.after.updated_at_ms = 1'700'000'000'123;
  store::change c;
  c.audits.push_back(a);
  REQUIRE(commit(db, std::move(c)));
  auto stored = fx.query("SELECT after FROM audit");
  REQUIRE(stored.size() == 1);
  // Byte for byte what earlier versions wrote (and what they read back), plus
  // "alerted" since schema 2 (records without it read back as false), and
  // "lock_scope" last since schema 4 (records without it read back as imei).
  CHECK(stored[0].at(0) ==
        R"({"status":1,"lock":2,"lock_imei":35349001234567,"last_seen_imei":0,)"
        R"("trigger_imei":0,"bar":0,"reason":0,"pending_order":0,"pending_order_id":12,)"
        R"("pending_unbar":0,"activate_with_lock":true,"updated_at_ms":1700000000123,)"
        R"("alerted":false,"lock_scope":0})");
  auto ev = db.list_events(a.iccid, 1);
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].after == a.after);
}

STORE_TEST("order ids continue after a restart") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  {
    auto opened = open_store(fx.config());
    auto& db = *opened;
    REQUIRE(commit(db, sims_change({sim("8944000000000000001", {234150000000001})})));
    store::change c;
    for (int i = 0; i < 3; ++i) {
      orders::order o;
      o.id = db.allocate_order_id();
      o.iccid = "8944000000000000001";
      o.network = "multinet";
      o.type = lock::order_type::bar;
      c.orders.push_back(o);
    }
    REQUIRE(commit(db, std::move(c)));
  }
  auto db_owner = open_store(fx.config());
  auto& db = *db_owner;
  auto next = db.allocate_order_id();
  CHECK(next > 3);
  if constexpr (std::is_same_v<TestType, sqlite_db>)
    CHECK(next == 4); // one node: dense ids
}

namespace {

/// An order of SIM 8944000000000000001 with id `id`, of network `network`.
orders::order order_with_id(std::uint64_t id, std::string network) {
  orders::order o;
  o.id = id;
  o.iccid = "8944000000000000001";
  o.network = std::move(network);
  o.type = lock::order_type::bar;
  return o;
}

} // namespace

TEST_CASE("two stores on one PostgreSQL database never hand out the same order id", "[store]") {
  postgres_db fx;
  REQUIRE_BACKEND(fx);
  auto a_owner = open_store(fx.config());
  auto& a = *a_owner;
  auto b_owner = open_store(fx.config());
  auto& b = *b_owner;
  REQUIRE(commit(a, sims_change({sim("8944000000000000001", {234150000000001})})));

  // Two threads per store, each past several block boundaries (the spare block
  // reserved while the others reserve too).
  constexpr std::size_t per_thread = 2 * store::store::order_id_block + 300;
  std::vector<std::vector<std::uint64_t>> got(4);
  {
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < got.size(); ++t)
      threads.emplace_back([&, t] {
        auto& db = t % 2 == 0 ? a : b;
        for (std::size_t i = 0; i < per_thread; ++i)
          got[t].push_back(db.allocate_order_id());
      });
    for (auto& th : threads)
      th.join();
  }
  std::vector<std::uint64_t> all;
  for (auto& g : got) {
    CHECK(std::is_sorted(g.begin(), g.end())); // increasing per thread
    all.insert(all.end(), g.begin(), g.end());
  }
  std::sort(all.begin(), all.end());
  CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
  CHECK(all.front() >= 1);

  // Orders both nodes commit with their ids are all there, none replaced.
  store::change ca, cb;
  for (int i = 0; i < 5; ++i) {
    ca.orders.push_back(order_with_id(a.allocate_order_id(), "node-a"));
    cb.orders.push_back(order_with_id(b.allocate_order_id(), "node-b"));
  }
  REQUIRE(commit(a, std::move(ca)));
  REQUIRE(commit(b, std::move(cb)));
  CHECK(fx.query("SELECT count(*) FROM orders WHERE network = 'node-a'").at(0).at(0) == "5");
  CHECK(fx.query("SELECT count(*) FROM orders WHERE network = 'node-b'").at(0).at(0) == "5");
}

TEST_CASE("a PostgreSQL store never reserves an order id at or below one already stored",
          "[store]") {
  postgres_db fx;
  REQUIRE_BACKEND(fx);
  {
    auto db_owner = open_store(fx.config());
    auto& db = *db_owner;
    REQUIRE(commit(db, sims_change({sim("8944000000000000001", {234150000000001})})));
    store::change c;
    c.orders.push_back(order_with_id(50'000, "multinet")); // e.g. written by an older daemon
    REQUIRE(commit(db, std::move(c)));
  }
  // The reservation row lags behind the orders table.
  fx.query("UPDATE meta SET value = '1' WHERE key = 'next_order_id'");
  auto db_owner = open_store(fx.config());
  auto& db = *db_owner;
  CHECK(db.allocate_order_id() > 50'000);
}

STORE_TEST("list_sims pages by ICCID and filters") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto opened = open_store(fx.config());
  auto& db = *opened;
  std::vector<lock::sim_record> sims;
  for (int i = 0; i < 25; ++i) {
    auto s = sim("89440000000000001" + std::to_string(10 + i),
                 {234150000000100ull + static_cast<std::uint64_t>(i)}, i % 2 ? "ee" : "multinet");
    if (i % 5 == 0)
      s.state.lock = lock::lock_state::locked;
    sims.push_back(s);
  }
  REQUIRE(commit(db, sims_change(sims)));
  std::vector<std::string> seen;
  std::string cursor;
  for (;;) {
    auto page = db.list_sims({}, cursor, 10);
    for (auto& s : page)
      seen.push_back(s.iccid);
    if (page.size() < 10)
      break;
    cursor = page.back().iccid;
  }
  CHECK(seen.size() == 25);
  CHECK(std::is_sorted(seen.begin(), seen.end()));
  lock::sim_filter f;
  f.lock = lock::lock_state::locked;
  CHECK(db.list_sims(f, "", 100).size() == 5);
  f.network = "ee";
  CHECK(db.list_sims(f, "", 100).size() == 2); // i = 5, 15
  CHECK(db.list_sims(f, "", 100)[0].imsis.size() == 1);
}

/// Takes a database of the current schema back to `version` by undoing the
/// migrations after it, newest first, as if a daemon of that schema had left
/// it (where every migration test starts). One entry per migration:
/// undo[i] takes schema i + 2 back to i + 1.
template <class Db>
void downgrade_to(const Db& fx, int version) {
  static const std::vector<std::vector<std::string>> undo = {
      {"ALTER TABLE sims DROP COLUMN alerted"},
      {"ALTER TABLE sims DROP COLUMN imei_seen_s", "ALTER TABLE sims DROP COLUMN observed_s"},
      {"ALTER TABLE sims DROP COLUMN lock_scope", "ALTER TABLE orders DROP COLUMN lock_scope"},
      {"DROP TABLE job_orders", "DROP TABLE job_iccids", "DROP TABLE jobs",
       "DROP INDEX audit_by_time"},
      {"DROP INDEX sims_by_state"},
      {"DROP INDEX sims_by_home_suffix", "ALTER TABLE sims DROP COLUMN home_suffix"},
  };
  static_assert(store::store::schema_version == 7, "a new migration needs its undo here");
  REQUIRE(undo.size() == static_cast<std::size_t>(store::store::schema_version - 1));
  for (int v = store::store::schema_version; v > version; --v)
    for (const auto& sql : undo[static_cast<std::size_t>(v - 2)])
      fx.query(sql);
  fx.set_schema_version(version);
}

STORE_TEST("schema 3 -> 4: SIMs and orders keep their rows and gain the lock scope imei (R16)") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto s = sim("8944000000000000001", {234150000000001});
  s.state.lock = lock::lock_state::locked;
  s.state.lock_imei = 35209900176148;
  {
    auto opened = open_store(fx.config());
    REQUIRE(commit(*opened, sims_change({s})));
  }
  downgrade_to(fx, 3);

  auto opened = open_store(fx.config());
  auto& db = *opened;
  CHECK(fx.schema_version() == std::to_string(store::store::schema_version));
  auto got = db.get_sim(s.iccid);
  REQUIRE(got);
  CHECK(got->state == s.state);
  CHECK(got->state.scope == lock::lock_scope::imei);
  auto by_model = *got;
  by_model.state.scope = lock::lock_scope::device_model;
  orders::order o;
  o.id = db.allocate_order_id();
  o.iccid = s.iccid;
  o.network = "multinet";
  o.type = lock::order_type::enable_imei_lock;
  o.scope = lock::lock_scope::device_model;
  store::change c;
  c.sims.push_back(by_model);
  c.orders.push_back(o);
  REQUIRE(commit(db, std::move(c)));
  CHECK(db.get_sim(s.iccid)->state.scope == lock::lock_scope::device_model);
  CHECK(db.get_order(o.id)->scope == lock::lock_scope::device_model);
}

STORE_TEST("schema 4 -> 5: SIMs and orders keep their rows, and bulk jobs can be stored") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto s = sim("8944000000000000001", {234150000000001});
  s.state.lock = lock::lock_state::locked;
  orders::order o;
  o.iccid = s.iccid;
  o.network = "multinet";
  o.type = lock::order_type::bar;
  {
    auto opened = open_store(fx.config());
    auto& db = *opened;
    o.id = db.allocate_order_id();
    auto c = sims_change({s});
    c.orders.push_back(o);
    REQUIRE(commit(db, std::move(c)));
  }
  downgrade_to(fx, 4); // no job tables, no audit_by_time
  CHECK(fx.columns("jobs").empty());

  auto opened = open_store(fx.config());
  auto& db = *opened;
  CHECK(fx.schema_version() == std::to_string(store::store::schema_version));
  CHECK(db.get_sim(s.iccid)->state == s.state);
  REQUIRE(db.get_order(o.id));
  CHECK(db.max_job_id() == 0);
  store::job_record job;
  job.id = 1;
  job.spec = R"({"type":"bar","by_list":true})";
  job.total = 1;
  store::change c;
  c.new_jobs.push_back(job);
  c.job_iccids.push_back({1, s.iccid});
  c.job_orders.push_back({1, s.iccid, o.id});
  REQUIRE(commit(db, std::move(c)));
  CHECK(db.job_placed(1, s.iccid));
  CHECK(db.job_orders(1).open == 1);
}

STORE_TEST("schema 5 -> 6: the fleet counts SIMs by network, lock and bar from an index") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto a = sim("8944000000000000001", {234150000000001});
  auto b = sim("8944000000000000002", {234150000000002}, "ee");
  b.state.lock = lock::lock_state::locked;
  b.state.bar = lock::bar_state::barred;
  {
    auto opened = open_store(fx.config());
    REQUIRE(commit(*opened, sims_change({a, b})));
  }
  downgrade_to(fx, 5);
  auto opened = open_store(fx.config());
  auto& db = *opened;
  CHECK(fx.schema_version() == std::to_string(store::store::schema_version));
  CHECK(fx.query(TestType::index_sql("sims_by_state")).size() == 1);
  auto counts = db.fleet(0, 1, 1);
  std::map<std::tuple<std::string, int, int>, std::uint64_t> by_state;
  for (const auto& n : counts.sims)
    by_state[{n.network, static_cast<int>(n.lock), static_cast<int>(n.bar)}] += n.sims;
  CHECK(by_state.size() == 2);
  CHECK(by_state[{"multinet", 0, 0}] == 1);
  CHECK(by_state[{"ee", static_cast<int>(lock::lock_state::locked),
                  static_cast<int>(lock::bar_state::barred)}] == 1);
}

STORE_TEST("a state update writes every state column, and the index by lock and bar follows "
           "whether or not it changes them") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto opened = open_store(fx.config());
  auto& db = *opened;
  REQUIRE(commit(db, sims_change({sim("8944000000000000001", {234150000000001}),
                                  sim("8944000000000000002", {234150000000002}, "ee")})));
  auto fleet = [&] {
    std::map<std::tuple<std::string, lock::lock_state, lock::bar_state>, std::uint64_t> out;
    for (const auto& n : db.fleet(0, 1, 1).sims)
      out[{n.network, n.lock, n.bar}] += n.sims;
    return out;
  };
  auto update = [&](const std::string& iccid, const lock::sim_state& st) {
    store::change c;
    c.states.push_back({iccid, st});
    return commit(db, std::move(c));
  };
  lock::sim_filter locked;
  locked.lock = lock::lock_state::locked;

  // Lock and bar unchanged, every other column new.
  auto st = db.get_sim("8944000000000000001")->state;
  st.lock_imei = 35349001234567;
  st.last_seen_imei = 35349001234568;
  st.trigger_imei = 35349001234569;
  st.reason = lock::bar_reason::imei_lock;
  st.pending_order = lock::order_type::bar;
  st.pending_order_id = 42;
  st.pending_unbar = lock::unbar_mode::update_to_last_seen;
  st.activate_with_lock = true;
  st.alerted = true;
  st.scope = lock::lock_scope::device_model;
  st.updated_at_ms = 1'700'000'000'123;
  REQUIRE(update("8944000000000000001", st));
  CHECK(db.get_sim("8944000000000000001")->state == st);
  CHECK(fleet().at({"multinet", lock::lock_state::off, lock::bar_state::none}) == 1);

  // The lock moves alone, then the bar alone, then both back.
  st.lock = lock::lock_state::locked;
  REQUIRE(update("8944000000000000001", st));
  CHECK(db.get_sim("8944000000000000001")->state == st);
  CHECK(db.count_sims(locked) == 1);
  st.bar = lock::bar_state::barred;
  st.updated_at_ms += 1;
  REQUIRE(update("8944000000000000001", st));
  CHECK(db.get_sim("8944000000000000001")->state == st);
  auto counts = fleet();
  CHECK(counts.size() == 2);
  CHECK(counts[{"multinet", lock::lock_state::locked, lock::bar_state::barred}] == 1);
  CHECK(counts[{"ee", lock::lock_state::off, lock::bar_state::none}] == 1);
  st.lock = lock::lock_state::off;
  st.bar = lock::bar_state::none;
  REQUIRE(update("8944000000000000001", st));
  CHECK(db.get_sim("8944000000000000001")->state == st);
  CHECK(db.count_sims(locked) == 0);
  counts = fleet();
  CHECK(counts.size() == 2);
  CHECK(counts[{"multinet", lock::lock_state::off, lock::bar_state::none}] == 1);

  // An unknown SIM still fails its change alone.
  CHECK_FALSE(update("8944000000000000009", st));
  CHECK(db.get_sim("8944000000000000002")->state.lock == lock::lock_state::off);
  if constexpr (std::is_same_v<TestType, sqlite_db>)
    CHECK(fx.query("PRAGMA integrity_check").at(0).at(0) == "ok");
}

STORE_TEST("schema 2 -> 3: SIMs keep their rows and gain an empty activity") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto s = sim("8944000000000000001", {234150000000001});
  s.state.lock = lock::lock_state::awaiting_first_imei;
  {
    auto opened = open_store(fx.config());
    REQUIRE(commit(*opened, sims_change({s})));
  }
  downgrade_to(fx, 2);

  auto opened = open_store(fx.config());
  auto& db = *opened;
  CHECK(fx.schema_version() == std::to_string(store::store::schema_version));
  auto got = db.get_sim(s.iccid);
  REQUIRE(got);
  CHECK(got->state == s.state);
  CHECK(got->activity == lock::sim_activity{});
  store::change c;
  c.activities.push_back({s.iccid, {1'800'000'000, 0}});
  REQUIRE(commit(db, std::move(c)));
  CHECK(db.get_sim(s.iccid)->activity.never_with_imei());
}

STORE_TEST("schema 1 -> 2: SIMs keep their rows, gain `alerted` (false), and filter by it") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  {
    auto opened = open_store(fx.config());
    auto& db = *opened;
    REQUIRE(commit(db, sims_change({sim("8944000000000000001", {234150000000001}),
                                    sim("8944000000000000002", {234150000000002})})));
  }
  downgrade_to(fx, 1); // no alerted column, nor later ones

  auto opened = open_store(fx.config());
  auto& db = *opened;
  CHECK(fx.schema_version() == std::to_string(store::store::schema_version));
  auto before = db.get_sim("8944000000000000001");
  REQUIRE(before);
  CHECK_FALSE(before->state.alerted);
  CHECK(before->imsis == std::vector<std::uint64_t>{234150000000001});
  auto alerted = *before;
  alerted.state.alerted = true;
  REQUIRE(commit(db, sims_change({alerted})));
  CHECK(db.get_sim("8944000000000000001")->state.alerted);
  lock::sim_filter f;
  f.alerted = true;
  auto only = db.list_sims(f, "", 100);
  REQUIRE(only.size() == 1);
  CHECK(only[0].iccid == "8944000000000000001");
  f.alerted = false;
  auto others = db.list_sims(f, "", 100);
  REQUIRE(others.size() == 1);
  CHECK(others[0].iccid == "8944000000000000002");
}

STORE_TEST("the inventory loader hands out every SIM with all its IMSIs") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto opened = open_store(fx.config());
  auto& db = *opened;
  REQUIRE(commit(db, sims_change({sim("8944000000000000001", {234150000000001, 234150000000002}),
                                  sim("8944000000000000002", {234150000000003}),
                                  sim("8944000000000000003", {})})));
  // IMSI rows of no SIM (a hand-edited store) before, between and after the
  // SIMs' ICCIDs: the loader skips them.
  fx.query("INSERT INTO imsis (imsi, iccid) VALUES (234150000000900, '8944000000000000000'), "
           "(234150000000901, '89440000000000000015'), (234150000000902, '9')");
  std::vector<std::pair<std::string, std::vector<std::uint64_t>>> rows;
  db.load_inventory([&](const store::inventory_row& r) {
    rows.emplace_back(std::string(r.iccid),
                      std::vector<std::uint64_t>(r.imsis.begin(), r.imsis.end()));
    CHECK(r.network == "multinet");
    CHECK(r.state.status == lock::sim_status::active);
  });
  // SQLite's loader threads hand out ICCID ranges in no particular order.
  std::sort(rows.begin(), rows.end());
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].first == "8944000000000000001");
  CHECK(rows[0].second == std::vector<std::uint64_t>{234150000000001, 234150000000002});
  CHECK(rows[1].first == "8944000000000000002");
  CHECK(rows[1].second == std::vector<std::uint64_t>{234150000000003});
  CHECK(rows[2].first == "8944000000000000003");
  CHECK(rows[2].second.empty());
}

TEST_CASE("iccid_cuts: even cuts between the lowest and the highest ICCID, read as decimal "
          "fractions",
          "[store]") {
  using store::detail::iccid_cuts;
  // 20 SIMs in a run: cut in four, ranges of five.
  auto cuts = iccid_cuts("8944000000000000000", "8944000000000000020", 4);
  CHECK(cuts == std::vector<std::string>{"8944000000000000005", "8944000000000000010",
                                         "8944000000000000015"});
  // A 20th digit is past the precision; a shorter ICCID reads as padded with zeros.
  cuts = iccid_cuts("894410", "89442000000000000009", 2);
  CHECK(cuts == std::vector<std::string>{"8944150000000000000"});
  // The cuts are ordered whatever the span, equal when it is narrow.
  cuts = iccid_cuts("8944000000000000001", "8944000000000000002", 4);
  REQUIRE(cuts.size() == 3);
  CHECK(std::is_sorted(cuts.begin(), cuts.end()));
  cuts = iccid_cuts("0000000000000000000", "9999999999999999999", 16);
  REQUIRE(cuts.size() == 15);
  CHECK(std::is_sorted(cuts.begin(), cuts.end()));
  // One range: a non-digit, a single range asked for, or the bounds reversed.
  CHECK(iccid_cuts("8944x", "8945", 4).empty());
  CHECK(iccid_cuts("8944", "8945", 1).empty());
  CHECK(iccid_cuts("8945", "8944", 4).empty());
}

STORE_TEST(
    "the inventory loader hands out thousands of SIMs once each, with their IMSIs and state, "
    "from every ICCID range") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto opened = open_store(fx.config());
  auto& db = *opened;
  struct loaded {
    std::vector<std::uint64_t> imsis;
    std::string network;
    lock::sim_state state;
  };
  // 19- and 20-digit ICCIDs over a wide span (SQLite cuts it into ranges that
  // its loader threads read at once), 0 to 3 IMSIs each, states that differ.
  std::map<std::string, loaded> want;
  std::vector<lock::sim_record> batch;
  std::uint64_t next_imsi = 234150000000000;
  for (std::uint64_t i = 0; i < 3000; ++i) {
    auto iccid = "8944" + std::to_string(100'000'000'000'000ull + 33'331'111'111ull * i);
    if (i % 3 == 0)
      iccid += "7";
    std::vector<std::uint64_t> imsis;
    for (std::uint64_t k = 0; k < i % 4; ++k)
      imsis.push_back(next_imsi += 13);
    auto r = sim(iccid, imsis, i % 5 == 0 ? "othernet" : "multinet");
    r.state.lock = i % 2 == 0 ? lock::lock_state::off : lock::lock_state::locked;
    r.state.last_seen_imei = lock::device_id{i + 1};
    want[iccid] = {imsis, r.network, r.state};
    batch.push_back(std::move(r));
    if (batch.size() == 500)
      REQUIRE(commit(db, sims_change(std::exchange(batch, {}))));
  }
  // IMSIs of no SIM, below, among and above the SIMs' ICCIDs: skipped.
  fx.query("INSERT INTO imsis (imsi, iccid) VALUES (234159000000001, '8944000'), "
           "(234159000000002, '89445000000000000000'), (234159000000003, '9')");
  std::map<std::string, loaded> got;
  db.load_inventory_batches([&](std::span<const store::inventory_row> rows) {
    for (const auto& r : rows) {
      std::vector<std::uint64_t> imsis(r.imsis.begin(), r.imsis.end());
      std::sort(imsis.begin(), imsis.end()); // a set: PostgreSQL's join keeps no order
      auto fresh =
          got.emplace(std::string(r.iccid), loaded{imsis, std::string(r.network), r.state}).second;
      CHECK(fresh); // once each
    }
  });
  REQUIRE(got.size() == want.size());
  for (const auto& [iccid, w] : want) {
    INFO(iccid);
    REQUIRE(got.contains(iccid));
    const auto& g = got[iccid];
    CHECK(g.imsis == w.imsis);
    CHECK(g.network == w.network);
    CHECK(g.state.lock == w.state.lock);
    CHECK(g.state.last_seen_imei == w.state.last_seen_imei);
  }
  // The row-at-a-time form hands out the same SIMs.
  std::size_t rows_seen = 0;
  db.load_inventory([&](const store::inventory_row&) { ++rows_seen; });
  CHECK(rows_seen == want.size());
}

STORE_TEST("the shard loader hands out the SIMs whose lowest IMSI ends in the range, with all "
           "their IMSIs") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto opened = open_store(fx.config());
  auto& db = *opened;
  // Lowest IMSI ...0499 (in 0000..2499) although its other one ends in 7000;
  // lowest ...2500 (not in it) although its other one ends in 0001.
  REQUIRE(commit(db, sims_change({sim("8944000000000000001", {234150000000499, 234150000017000}),
                                  sim("8944000000000000002", {234150000012500, 234150000020001}),
                                  sim("8944000000000000003", {234150000000000}),
                                  sim("8944000000000000004", {234150000009999}),
                                  sim("8944000000000000005", {})})));
  auto load = [&](std::uint32_t first, std::uint32_t last) {
    std::vector<std::pair<std::string, std::size_t>> rows;
    db.load_inventory_suffixes(first, last, [&](const store::inventory_row& r) {
      rows.emplace_back(std::string(r.iccid), r.imsis.size());
    });
    return rows;
  };
  using rows_t = std::vector<std::pair<std::string, std::size_t>>;
  CHECK(load(0, 2499) == rows_t{{"8944000000000000001", 2}, {"8944000000000000003", 1}});
  CHECK(load(2500, 4999) == rows_t{{"8944000000000000002", 2}});
  CHECK(load(5000, 7499).empty());
  CHECK(load(7500, 9999) == rows_t{{"8944000000000000004", 1}});
  // An upsert that changes the SIM's IMSIs moves it with its lowest one.
  REQUIRE(commit(db, sims_change({sim("8944000000000000004", {234150000005000})})));
  CHECK(load(5000, 7499) == rows_t{{"8944000000000000004", 1}});
  CHECK(load(7500, 9999).empty());
}

STORE_TEST("schema 6 -> 7: SIMs gain their home suffix, and the shard loader finds them by it") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  {
    auto opened = open_store(fx.config());
    REQUIRE(
        commit(*opened, sims_change({sim("8944000000000000001", {234150000017000, 234150000000499}),
                                     sim("8944000000000000002", {234150000012500}),
                                     sim("8944000000000000003", {})})));
  }
  downgrade_to(fx, 6);
  auto opened = open_store(fx.config());
  auto& db = *opened;
  CHECK(fx.schema_version() == std::to_string(store::store::schema_version));
  CHECK(fx.query(TestType::index_sql("sims_by_home_suffix")).size() == 1);
  CHECK(fx.query("SELECT iccid, home_suffix FROM sims ORDER BY iccid") ==
        rows{{"8944000000000000001", "499"},
             {"8944000000000000002", "2500"},
             {"8944000000000000003", "-1"}});
  std::vector<std::string> shard;
  db.load_inventory_suffixes(0, 499,
                             [&](const store::inventory_row& r) { shard.emplace_back(r.iccid); });
  CHECK(shard == std::vector<std::string>{"8944000000000000001"});
}

STORE_TEST("an IMSI belongs to one SIM: a change that steals it fails alone") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto opened = open_store(fx.config());
  auto& db = *opened;
  REQUIRE(commit(db, sims_change({sim("8944000000000000001", {234150000000001})})));
  CHECK_FALSE(commit(db, sims_change({sim("8944000000000000002", {234150000000001})})));
  CHECK_FALSE(db.get_sim("8944000000000000002"));
  CHECK(db.iccid_of(234150000000001) == "8944000000000000001");
}

STORE_TEST("group commit: dones run in submission order, one transaction for many") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto opened = open_store(fx.config());
  auto& db = *opened;
  REQUIRE(commit(db, sims_change({sim("8944000000000000001", {234150000000001})})));
  std::mutex m;
  std::vector<int> order;
  std::promise<void> all;
  constexpr int n = 2000;
  auto before = db.counters().commits.load();
  for (int i = 0; i < n; ++i) {
    store::change c;
    store::audit_record a;
    a.iccid = "8944000000000000001";
    a.at_ms = i;
    a.cause = "test";
    c.audits.push_back(a);
    db.submit(std::move(c), [&, i](bool ok) {
      CHECK(ok);
      std::lock_guard g{m};
      order.push_back(i);
      if (order.size() == n)
        all.set_value();
    });
  }
  all.get_future().wait();
  REQUIRE(order.size() == n);
  CHECK(std::is_sorted(order.begin(), order.end()));
  // Many changes per transaction, not one each.
  CHECK(db.counters().commits.load() - before < n);
  CHECK(db.list_events("8944000000000000001", 5000).size() == n);
  CHECK(db.list_events("8944000000000000001", 3).front().at_ms == n - 1);
}

STORE_TEST("an overloaded queue refuses with done(false)") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto cfg = fx.config();
  cfg.max_queue = 0;
  auto opened = open_store(cfg);
  auto& db = *opened;
  bool called = false;
  bool result = true;
  CHECK_FALSE(db.submit(sims_change({sim("8944000000000000001", {1})}), [&](bool ok) {
    called = true;
    result = ok;
  }));
  CHECK(called);
  CHECK_FALSE(result);
  CHECK(db.counters().changes_refused.load() == 1);
}

STORE_TEST("a change waiting longer than max_queue_wait makes the store refuse until the writer "
           "catches up") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto cfg = fx.config();
  cfg.commit_delay = std::chrono::milliseconds{1500}; // a slow disk
  cfg.max_queue_wait = std::chrono::milliseconds{100};
  auto opened = open_store(cfg);
  auto& db = *opened;
  std::promise<bool> a, b, d;
  REQUIRE(
      db.submit(sims_change({sim("8944000000000000001", {1})}), [&](bool ok) { a.set_value(ok); }));
  // Once the writer holds the first change, the second one waits in the queue.
  for (int i = 0; i < 500 && db.counters().queue_depth.load() != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  REQUIRE(
      db.submit(sims_change({sim("8944000000000000002", {2})}), [&](bool ok) { b.set_value(ok); }));
  std::this_thread::sleep_for(std::chrono::milliseconds{300});
  bool refused_ok = true;
  CHECK_FALSE(
      db.submit(sims_change({sim("8944000000000000003", {3})}), [&](bool ok) { refused_ok = ok; }));
  CHECK_FALSE(refused_ok);
  CHECK(db.counters().changes_refused.load() == 1);
  // What was accepted commits; with the queue empty again, changes are taken.
  CHECK(a.get_future().get());
  CHECK(b.get_future().get());
  CHECK(
      db.submit(sims_change({sim("8944000000000000004", {4})}), [&](bool ok) { d.set_value(ok); }));
  CHECK(d.get_future().get());
  CHECK(db.get_sim("8944000000000000002"));
  CHECK_FALSE(db.get_sim("8944000000000000003"));
}

TEST_CASE("SQLite only: under back-to-back commits the WAL stays bounded, and every commit reaches "
          "the database file",
          "[store]") {
  // Checkpoints run on a thread of their own; past wal_max_pages the writer
  // copies the rest itself so that the WAL starts over. Without that the
  // WAL holds every page written since the first commit (about 1,900 here).
  sqlite_db fx;
  auto cfg = fx.config();
  cfg.wal_max_pages = 128;
  cfg.max_batch = 4; // many commits, each a few pages
  constexpr int sims = 50;
  constexpr int rounds = 80;
  const std::string wal = cfg.path + "-wal";
  std::uintmax_t largest = 0;
  {
    auto opened = open_store(cfg);
    auto& db = *opened;
    std::vector<lock::sim_record> all;
    for (int i = 0; i < sims; ++i)
      all.push_back(sim("8944" + std::to_string(100000000000000 + i),
                        {234150000000000ull + static_cast<std::uint64_t>(i)}));
    REQUIRE(commit(db, sims_change(all)));
    std::atomic<int> ok{0};
    for (int r = 0; r < rounds; ++r) {
      for (int i = 0; i < sims; ++i) {
        store::change c;
        auto st = all[static_cast<std::size_t>(i)].state;
        st.last_seen_imei = 35000000000000 + static_cast<std::uint64_t>(r);
        c.states.push_back({all[static_cast<std::size_t>(i)].iccid, st});
        store::audit_record a;
        a.iccid = all[static_cast<std::size_t>(i)].iccid;
        a.at_ms = r;
        a.cause = "test";
        a.after = st;
        a.detail = std::string(2000, 'x'); // half a page per change
        c.audits.push_back(std::move(a));
        REQUIRE(db.submit(std::move(c), [&ok](bool done) { ok += done ? 1 : 0; }));
      }
      db.flush();
      std::error_code ec;
      largest = std::max(largest, fs::file_size(wal, ec));
    }
    CHECK(ok.load() == sims * rounds);
  }
  // A frame is a page (4 KB) and its 24-byte header: at most wal_max_pages and
  // a commit (4 changes: well under 16 pages) beyond it, with room to spare.
  CHECK(largest > 0);
  CHECK(largest <= (128 + 32) * (4096 + 24) + 32);
  CHECK(fx.query("SELECT COUNT(*) FROM audit").at(0).at(0) == std::to_string(sims * rounds));
  CHECK(fx.query("SELECT COUNT(*) FROM sims WHERE last_seen_imei = " +
                 std::to_string(35000000000000 + rounds - 1))
            .at(0)
            .at(0) == std::to_string(sims));
  CHECK(fx.query("PRAGMA integrity_check").at(0).at(0) == "ok");
}

TEST_CASE("SQLite only: a full disk fails the whole batch, loses nothing committed, and recovers",
          "[store]") {
  // PostgreSQL has no per-connection size cap to stand for a full disk.
  sqlite_db fx;
  auto opened = open_store(fx.config());
  auto& db = *opened;
  REQUIRE(commit(db, sims_change({sim("8944000000000000001", {234150000000001})})));
  // Cap the file at its current size: the next write that needs a page fails
  // with SQLITE_FULL, exactly as a full disk does.
  db.exec_on_writer_for_testing("PRAGMA max_page_count=1");
  std::vector<lock::sim_record> many;
  for (int i = 0; i < 300; ++i)
    many.push_back(sim("8945" + std::to_string(100000000000000 + i),
                       {234160000000000ull + static_cast<std::uint64_t>(i)}));
  auto failures = db.counters().commit_failures.load();
  CHECK_FALSE(commit(db, sims_change(many)));
  CHECK(db.counters().commit_failures.load() == failures + 1);
  CHECK(db.get_sim("8944000000000000001"));
  CHECK(db.count_sims() == 1);

  db.exec_on_writer_for_testing("PRAGMA max_page_count=1073741823");
  CHECK(commit(db, sims_change(many)));
  CHECK(db.count_sims() == 301);
}

STORE_TEST("a read-only database fails writes with done(false) and recovers") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto opened = open_store(fx.config());
  auto& db = *opened;
  REQUIRE(commit(db, sims_change({sim("8944000000000000001", {234150000000001})})));
  // SQLite: query_only makes every write fail with SQLITE_READONLY, as a
  // read-only file does (chmod does not stop root, who runs this suite in CI).
  // PostgreSQL: a read-only session, as on a hot standby after a failover.
  db.exec_on_writer_for_testing(TestType::read_only_on);
  auto s = sim("8944000000000000001", {234150000000001});
  s.state.lock = lock::lock_state::locked;
  CHECK_FALSE(commit(db, sims_change({s})));
  CHECK(db.get_sim(s.iccid)->state.lock == lock::lock_state::off);
  db.exec_on_writer_for_testing(TestType::read_only_off);
  CHECK(commit(db, sims_change({s})));
  CHECK(db.get_sim(s.iccid)->state.lock == lock::lock_state::locked);
}

TEST_CASE("SQLite only: a file opened read-only by the OS fails writes with done(false)",
          "[store]") {
  if (::geteuid() == 0) {
    WARN("running as root: file modes do not stop writes, covered by query_only above");
    return;
  }
  sqlite_db fx;
  {
    auto opened = open_store(fx.config());
    auto& db = *opened;
    REQUIRE(commit(db, sims_change({sim("8944000000000000001", {234150000000001})})));
  }
  fs::permissions(fx.dir.db(),
                  fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  // Either the daemon refuses to start on it, or every write is refused:
  // never a write that is reported durable.
  try {
    auto opened = open_store(fx.config());
    auto& db = *opened;
    CHECK_FALSE(commit(db, sims_change({sim("8944000000000000002", {234150000000002})})));
    CHECK(db.get_sim("8944000000000000001"));
  } catch (const std::runtime_error&) {
    SUCCEED("refused to open a read-only database");
  }
}

STORE_TEST("flush waits for everything submitted before it") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto opened = open_store(fx.config());
  auto& db = *opened;
  std::atomic<int> done{0};
  for (int i = 0; i < 100; ++i)
    db.submit(sims_change({sim("89440000000000" + std::to_string(10000 + i),
                               {234150000010000ull + static_cast<std::uint64_t>(i)})}),
              [&](bool) { done.fetch_add(1); });
  db.flush();
  CHECK(done.load() == 100);
  CHECK(db.count_sims() == 100);
}

STORE_TEST("the fencing hook runs inside every committing transaction and can veto it") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto opened = open_store(fx.config());
  auto& db = *opened;
  enum { veto, allow, fail } mode = veto; // set between commits (the writer waits then)
  std::vector<std::string> seen;          // what the fence's query saw, per transaction
  std::size_t batch_size = 0;
  db.set_fence([&](std::span<const store::change* const> batch, const store::txn_query& query) {
    batch_size = batch.size();
    if (mode == fail)
      query("SELECT no_such_column FROM sims", {}); // throws: the commit fails
    seen.push_back(query(TestType::count_sql, {"8944000000000000001"}).value_or("no row"));
    return mode == allow;
  });
  auto one = [] { return sims_change({sim("8944000000000000001", {234150000000001})}); };
  CHECK_FALSE(commit(db, one()));
  REQUIRE(seen.size() == 1);
  CHECK(seen[0] == "1"); // the batch's own row, not committed yet, inside the transaction
  CHECK(batch_size == 1);
  CHECK_FALSE(db.get_sim("8944000000000000001")); // vetoed: nothing of it is visible
  CHECK(db.counters().commit_failures.load() == 1);

  mode = fail;
  CHECK_FALSE(commit(db, one()));
  CHECK_FALSE(db.get_sim("8944000000000000001"));

  mode = allow;
  CHECK(commit(db, one()));
  CHECK(db.get_sim("8944000000000000001"));
  CHECK(seen.back() == "1");
  CHECK(db.counters().commits.load() == 1);
}

TEST_CASE("PostgreSQL only: an unreachable server at startup is an error naming it", "[store]") {
  store::store_config cfg;
  cfg.backend = store::backend_kind::postgresql;
  cfg.postgresql.conninfo = "host=/nonexistent/imeilock-test dbname=imeilock connect_timeout=2";
  auto why = refusal(cfg);
  CHECK(why.is(store::ec::unreachable));
  CHECK_THAT(why.message(),
             Catch::Contains("postgresql") && Catch::Contains("/nonexistent/imeilock-test"));
}

TEST_CASE("PostgreSQL only: the connection string may come from a file not readable by everyone",
          "[store]") {
  postgres_db fx;
  REQUIRE_BACKEND(fx);
  temp_dir dir;
  auto file = (dir.path / "conninfo").string();
  std::ofstream{file} << fx.conninfo << "\n";
  store::store_config cfg = fx.config();
  cfg.postgresql.conninfo.clear();
  cfg.postgresql.conninfo_file = file;
  ::chmod(file.c_str(), 0644);
  auto why = refusal(cfg);
  CHECK(why.is(store::ec::bad_settings));
  CHECK_THAT(why.message(), Catch::Contains(file) && Catch::Contains("readable by everyone"));
  ::chmod(file.c_str(), 0600);
  auto opened = open_store(cfg);
  auto& db = *opened;
  CHECK(commit(db, sims_change({sim("8944000000000000001", {234150000000001})})));
  CHECK(db.count_sims() == 1);
}

TEST_CASE("PostgreSQL only: an outage fails changes and reads, and the store serves again once the "
          "server is back",
          "[store]") {
  postgres_db fx;
  REQUIRE_BACKEND(fx);
  auto& server = test::postgres_server::shared();
  auto opened = open_store(fx.config());
  auto& db = *opened;
  REQUIRE(commit(db, sims_change({sim("8944000000000000001", {234150000000001})})));
  CHECK(db.counters().connected.load());

  server.stop(true); // as pg_ctl stop -m immediate
  // An idle writer notices (it probes every second).
  for (int i = 0; i < 300 && db.counters().connected.load(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  CHECK_FALSE(db.counters().connected.load());
  CHECK(db.counters().disconnects.load() == 1);
  // Changes fail at once, not after a timeout; reads throw store::unavailable.
  auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(commit(db, sims_change({sim("8944000000000000002", {234150000000002})})));
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds{2});
  CHECK_THROWS_AS(db.get_sim("8944000000000000001"), store::unavailable);
  CHECK_THROWS_AS(db.count_sims(), unavailable_error);
  CHECK(db.counters().changes_failed.load() >= 1);

  REQUIRE(server.start());
  // The writer reconnects on its own (backoff at most 5 s), no traffic needed.
  for (int i = 0; i < 1000 && !db.counters().connected.load(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  REQUIRE(db.counters().connected.load());
  CHECK(commit(db, sims_change({sim("8944000000000000003", {234150000000003})})));
  CHECK(db.get_sim("8944000000000000001")); // readers reconnect too
  CHECK_FALSE(db.get_sim("8944000000000000002"));
  CHECK(db.count_sims() == 2);
  CHECK(db.counters().disconnects.load() == 1);
}

TEST_CASE("PostgreSQL only: a batch larger than a pipeline chunk with one refused change commits "
          "the others",
          "[store]") {
  postgres_db fx;
  REQUIRE_BACKEND(fx);
  auto cfg = fx.config();
  auto opened = open_store(cfg);
  auto& db = *opened;
  REQUIRE(commit(db, sims_change({sim("8944000000000000001", {234150000000001})})));
  // Queue them while the writer is busy, so they commit as one group.
  std::vector<std::future<bool>> results;
  std::vector<std::promise<bool>> promises(1500);
  std::thread blocker([&] { db.exec_on_writer_for_testing("SELECT pg_sleep(0.3)"); });
  std::this_thread::sleep_for(std::chrono::milliseconds{50});
  for (int i = 0; i < 1500; ++i) {
    results.push_back(promises[static_cast<std::size_t>(i)].get_future());
    // Change 700 steals the first SIM's IMSI: refused alone.
    auto imsi = i == 700 ? 234150000000001ull : 234160000000000ull + static_cast<std::uint64_t>(i);
    db.submit(sims_change({sim("8945" + std::to_string(100000000000000 + i), {imsi})}),
              [&promises, i](bool ok) { promises[static_cast<std::size_t>(i)].set_value(ok); });
  }
  blocker.join();
  int good = 0;
  for (int i = 0; i < 1500; ++i) {
    bool ok = results[static_cast<std::size_t>(i)].get();
    if (i == 700)
      CHECK_FALSE(ok);
    good += ok ? 1 : 0;
  }
  CHECK(good == 1499);
  CHECK(db.count_sims() == 1500);
  CHECK(db.iccid_of(234150000000001) == "8944000000000000001");
}

STORE_TEST("bulk jobs: the job, its ICCIDs, its progress and the orders it placed round-trip, and "
           "a second order of one job for one SIM fails its change") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto opened = open_store(fx.config());
  auto& db = *opened;
  REQUIRE(commit(db, sims_change({sim("8944000000000000001", {234150000000001}),
                                  sim("8944000000000000002", {234150000000002}, "other")})));
  CHECK(db.count_sims({}) == 2);
  lock::sim_filter other;
  other.network = "other";
  CHECK(db.count_sims(other) == 1);
  other.bar = lock::bar_state::barred;
  CHECK(db.count_sims(other) == 0);

  CHECK(db.max_job_id() == 0);
  store::job_record job;
  job.id = 7;
  job.spec = R"({"type":"bar","by_list":true})";
  job.created_at_ms = 1000;
  job.updated_at_ms = 1000;
  job.total = 3;
  store::change c;
  c.new_jobs.push_back(job);
  for (auto id : {"8944000000000000003", "8944000000000000001", "8944000000000000002"})
    c.job_iccids.push_back({7, id});
  REQUIRE(commit(db, std::move(c)));
  CHECK(db.max_job_id() == 7);
  CHECK(db.job_iccids(7, "", 2) ==
        std::vector<std::string>{"8944000000000000001", "8944000000000000002"});
  CHECK(db.job_iccids(7, "8944000000000000002", 10) ==
        std::vector<std::string>{"8944000000000000003"});

  // An order with its link, in one change; the job's progress.
  orders::order o;
  o.id = db.allocate_order_id();
  o.iccid = "8944000000000000001";
  o.network = "multinet";
  o.type = lock::order_type::bar;
  store::change placed;
  placed.orders.push_back(o);
  placed.job_orders.push_back({7, o.iccid, o.id});
  REQUIRE(commit(db, std::move(placed)));
  job.after_iccid = "8944000000000000001";
  job.processed = 1;
  job.placed = 1;
  job.refusals = R"({"reasons":{}})";
  job.updated_at_ms = 2000;
  job.spec = "ignored by an update";
  store::change progress;
  progress.job_updates.push_back(job);
  REQUIRE(commit(db, std::move(progress)));
  auto back = db.get_job(7);
  REQUIRE(back);
  CHECK(back->spec == R"({"type":"bar","by_list":true})");
  CHECK(back->after_iccid == "8944000000000000001");
  CHECK(back->placed == 1);
  CHECK(back->total == 3);
  CHECK(back->updated_at_ms == 2000);
  CHECK(db.job_placed(7, "8944000000000000001"));
  CHECK_FALSE(db.job_placed(7, "8944000000000000002"));
  auto counts = db.job_orders(7);
  CHECK(counts.open == 1);
  CHECK(counts.completed == 0);
  CHECK(db.list_jobs(0, 10).size() == 1);
  CHECK(db.list_jobs(1, 10).empty());

  // The same job and SIM again: the whole change fails, its order is not written.
  orders::order twice = o;
  twice.id = db.allocate_order_id();
  store::change dup;
  dup.orders.push_back(twice);
  dup.job_orders.push_back({7, o.iccid, twice.id});
  CHECK_FALSE(commit(db, std::move(dup)));
  CHECK_FALSE(db.get_order(twice.id));
  // Progress of a job that does not exist fails too.
  store::change ghost;
  job.id = 8;
  ghost.job_updates.push_back(job);
  CHECK_FALSE(commit(db, std::move(ghost)));
}

STORE_TEST("the fleet: SIMs by network, lock and bar, open orders by network, violations per "
           "hour and the latest violations and bars of the window") {
  TestType fx;
  REQUIRE_BACKEND(fx);
  auto opened = open_store(fx.config());
  auto& db = *opened;
  auto locked = sim("8944000000000000001", {234150000000001});
  locked.state.lock = lock::lock_state::locked;
  locked.state.bar = lock::bar_state::barred;
  REQUIRE(commit(db, sims_change({locked, sim("8944000000000000002", {234150000000002}),
                                  sim("8944000000000000003", {234150000000003}),
                                  sim("8944000000000000004", {234150000000004}, "ee")})));
  store::change c;
  for (auto [status, network] : {std::pair{orders::order_status::queued, "multinet"},
                                 std::pair{orders::order_status::queued, "multinet"},
                                 std::pair{orders::order_status::submitted, "multinet"},
                                 std::pair{orders::order_status::completed, "multinet"},
                                 std::pair{orders::order_status::submitted, "ee"}}) {
    orders::order o;
    o.id = db.allocate_order_id();
    o.iccid = "8944000000000000002";
    o.network = network;
    o.type = lock::order_type::bar;
    o.status = status;
    c.orders.push_back(o);
  }
  // The window starts at 10 h; violations at 9:59 (before), 10:00, 10:30 and 12:00.
  constexpr std::int64_t h = 3'600'000;
  auto audit = [&](std::int64_t at, std::string cause, std::string detail, std::string iccid) {
    store::audit_record a;
    a.iccid = std::move(iccid);
    a.at_ms = at;
    a.cause = std::move(cause);
    a.detail = std::move(detail);
    a.imei = 35209900176148;
    c.audits.push_back(std::move(a));
  };
  audit(10 * h - 1, "observation", "R7: violation, locked to A but seen in B",
        "8944000000000000009");
  audit(10 * h, "observation", "R7: violation, locked to A but seen in B; Bar order raised",
        "8944000000000000001");
  audit(10 * h + h / 2, "observation", "R5: change event", "8944000000000000002");
  audit(10 * h + h / 2, "observation", "R7: violation, locked to A but seen in B; monitor mode",
        "8944000000000000002");
  audit(12 * h, "observation", "R7: violation, locked to A but seen in B", "8944000000000000003");
  audit(12 * h + 5, "order_completed:bar", "", "8944000000000000001");
  audit(9 * h, "order_completed:bar", "", "8944000000000000008");
  REQUIRE(commit(db, std::move(c)));

  auto f = db.fleet(10 * h, 24, 2);
  std::map<std::tuple<std::string, lock::lock_state, lock::bar_state>, std::uint64_t> sims;
  for (auto& s : f.sims)
    sims[{s.network, s.lock, s.bar}] += s.sims;
  CHECK(sims.size() == 3);
  CHECK(sims[{"multinet", lock::lock_state::locked, lock::bar_state::barred}] == 1);
  CHECK(sims[{"multinet", lock::lock_state::off, lock::bar_state::none}] == 2);
  CHECK(sims[{"ee", lock::lock_state::off, lock::bar_state::none}] == 1);
  REQUIRE(f.orders.size() == 2);
  for (auto& o : f.orders) {
    if (o.network == "multinet") {
      CHECK(o.queued == 2);
      CHECK(o.submitted == 1);
    } else {
      CHECK(o.network == "ee");
      CHECK(o.queued == 0);
      CHECK(o.submitted == 1);
    }
  }
  REQUIRE(f.violations_per_hour.size() == 24);
  CHECK(f.violations_per_hour[0] == 2);
  CHECK(f.violations_per_hour[1] == 0);
  CHECK(f.violations_per_hour[2] == 1);
  CHECK(std::accumulate(f.violations_per_hour.begin(), f.violations_per_hour.end(),
                        std::uint64_t{0}) == 3);
  REQUIRE(f.latest_violations.size() == 2); // the limit
  CHECK(f.latest_violations[0].iccid == "8944000000000000003");
  CHECK(f.latest_violations[1].iccid == "8944000000000000002");
  CHECK(f.latest_violations[1].imei == 35209900176148);
  REQUIRE(f.latest_bars.size() == 1); // the one of 9 h is before the window
  CHECK(f.latest_bars[0].iccid == "8944000000000000001");
}
