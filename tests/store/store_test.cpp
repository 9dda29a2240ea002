// The store on real SQLite files in a temporary directory.
#include "store/store.hpp"

#include "common/fields.hpp"

#include <catch2/catch.hpp>
#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

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

store::store_config config_for(const temp_dir& dir) {
  store::store_config cfg;
  cfg.path = dir.db();
  return cfg;
}

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

TEST_CASE("a new file is created and migrated to the current schema", "[store]") {
  temp_dir dir;
  {
    store::store db{config_for(dir)};
    CHECK(db.count_sims() == 0);
    CHECK(db.allocate_order_id() == 1);
  }
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open(dir.db().c_str(), &raw) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(raw, "PRAGMA user_version", -1, &st, nullptr);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  CHECK(sqlite3_column_int(st, 0) == store::store::schema_version);
  sqlite3_finalize(st);
  sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &st, nullptr);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))) == "wal");
  sqlite3_finalize(st);
  sqlite3_close(raw);
}

TEST_CASE("a database from a newer daemon is refused", "[store]") {
  temp_dir dir;
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open(dir.db().c_str(), &raw) == SQLITE_OK);
  sqlite3_exec(raw, "PRAGMA user_version=99", nullptr, nullptr, nullptr);
  sqlite3_close(raw);
  CHECK_THROWS_WITH(store::store{config_for(dir)}, Catch::Contains("newer"));
}

TEST_CASE("SIMs, orders and audit records round-trip", "[store]") {
  temp_dir dir;
  store::store db{config_for(dir)};

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

TEST_CASE("the field lists name every column of the schema, in table order", "[store]") {
  temp_dir dir;
  { store::store db{config_for(dir)}; }
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open(dir.db().c_str(), &raw) == SQLITE_OK);
  auto columns = [&](const char* table) {
    std::vector<std::string> out;
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(raw, (std::string("PRAGMA table_info(") + table + ")").c_str(), -1, &st,
                       nullptr);
    while (sqlite3_step(st) == SQLITE_ROW)
      out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 1)));
    sqlite3_finalize(st);
    return out;
  };
  std::vector<std::string> sims;
  fields::for_each_field(lock::sim_identity_fields,
                         [&](const auto& f) { sims.emplace_back(f.name); });
  fields::for_each_field(lock::sim_state_fields, [&](const auto& f) { sims.emplace_back(f.name); });
  CHECK(columns("sims") == sims);
  std::vector<std::string> orders;
  fields::for_each_field(orders::order_fields, [&](const auto& f) { orders.emplace_back(f.name); });
  CHECK(columns("orders") == orders);
  sqlite3_close(raw);
}

TEST_CASE("the audit log's state JSON keeps its stored form", "[store]") {
  temp_dir dir;
  store::store db{config_for(dir)};
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
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open(dir.db().c_str(), &raw) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(raw, "SELECT after FROM audit", -1, &st, nullptr);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  // Byte for byte what earlier versions wrote (and what they read back).
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))) ==
        R"({"status":1,"lock":2,"lock_imei":35349001234567,"last_seen_imei":0,)"
        R"("trigger_imei":0,"bar":0,"reason":0,"pending_order":0,"pending_order_id":12,)"
        R"("pending_unbar":0,"activate_with_lock":true,"updated_at_ms":1700000000123})");
  sqlite3_finalize(st);
  sqlite3_close(raw);
  auto ev = db.list_events(a.iccid, 1);
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].after == a.after);
}

TEST_CASE("order ids continue after a restart", "[store]") {
  temp_dir dir;
  {
    store::store db{config_for(dir)};
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
  store::store db{config_for(dir)};
  CHECK(db.allocate_order_id() == 4);
}

TEST_CASE("list_sims pages by ICCID and filters", "[store]") {
  temp_dir dir;
  store::store db{config_for(dir)};
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

TEST_CASE("the inventory loader hands out every SIM with all its IMSIs", "[store]") {
  temp_dir dir;
  store::store db{config_for(dir)};
  REQUIRE(commit(db, sims_change({sim("8944000000000000001", {234150000000001, 234150000000002}),
                                  sim("8944000000000000002", {234150000000003}),
                                  sim("8944000000000000003", {})})));
  std::vector<std::pair<std::string, std::size_t>> rows;
  db.load_inventory([&](const store::inventory_row& r) {
    rows.emplace_back(std::string(r.iccid), r.imsis.size());
    CHECK(r.network == "multinet");
    CHECK(r.state.status == lock::sim_status::active);
  });
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].second == 2);
  CHECK(rows[1].second == 1);
  CHECK(rows[2].second == 0);
}

TEST_CASE("an IMSI belongs to one SIM: a change that steals it fails alone", "[store]") {
  temp_dir dir;
  store::store db{config_for(dir)};
  REQUIRE(commit(db, sims_change({sim("8944000000000000001", {234150000000001})})));
  CHECK_FALSE(commit(db, sims_change({sim("8944000000000000002", {234150000000001})})));
  CHECK_FALSE(db.get_sim("8944000000000000002"));
  CHECK(db.iccid_of(234150000000001) == "8944000000000000001");
}

TEST_CASE("group commit: dones run in submission order, one transaction for many", "[store]") {
  temp_dir dir;
  store::store db{config_for(dir)};
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

TEST_CASE("an overloaded queue refuses with done(false)", "[store]") {
  temp_dir dir;
  auto cfg = config_for(dir);
  cfg.max_queue = 0;
  store::store db{cfg};
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

TEST_CASE("a change waiting longer than max_queue_wait makes the store refuse until the writer "
          "catches up",
          "[store]") {
  temp_dir dir;
  auto cfg = config_for(dir);
  cfg.commit_delay = std::chrono::milliseconds{1500}; // a slow disk
  cfg.max_queue_wait = std::chrono::milliseconds{100};
  store::store db{cfg};
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

TEST_CASE("a full disk fails the whole batch, loses nothing committed, and recovers", "[store]") {
  temp_dir dir;
  store::store db{config_for(dir)};
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

TEST_CASE("a read-only database fails writes with done(false) and recovers", "[store]") {
  temp_dir dir;
  store::store db{config_for(dir)};
  REQUIRE(commit(db, sims_change({sim("8944000000000000001", {234150000000001})})));
  // query_only makes every write fail with SQLITE_READONLY, as a read-only
  // file does (chmod does not stop root, who runs this suite in CI).
  db.exec_on_writer_for_testing("PRAGMA query_only=1");
  auto s = sim("8944000000000000001", {234150000000001});
  s.state.lock = lock::lock_state::locked;
  CHECK_FALSE(commit(db, sims_change({s})));
  CHECK(db.get_sim(s.iccid)->state.lock == lock::lock_state::off);
  db.exec_on_writer_for_testing("PRAGMA query_only=0");
  CHECK(commit(db, sims_change({s})));
  CHECK(db.get_sim(s.iccid)->state.lock == lock::lock_state::locked);
}

TEST_CASE("a file opened read-only by the OS fails writes with done(false)", "[store]") {
  if (::geteuid() == 0) {
    WARN("running as root: file modes do not stop writes, covered by query_only above");
    return;
  }
  temp_dir dir;
  {
    store::store db{config_for(dir)};
    REQUIRE(commit(db, sims_change({sim("8944000000000000001", {234150000000001})})));
  }
  fs::permissions(dir.db(), fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  // Either the daemon refuses to start on it, or every write is refused:
  // never a write that is reported durable.
  try {
    store::store db{config_for(dir)};
    CHECK_FALSE(commit(db, sims_change({sim("8944000000000000002", {234150000000002})})));
    CHECK(db.get_sim("8944000000000000001"));
  } catch (const std::runtime_error&) {
    SUCCEED("refused to open a read-only database");
  }
}

TEST_CASE("flush waits for everything submitted before it", "[store]") {
  temp_dir dir;
  store::store db{config_for(dir)};
  std::atomic<int> done{0};
  for (int i = 0; i < 100; ++i)
    db.submit(sims_change({sim("89440000000000" + std::to_string(10000 + i),
                               {234150000010000ull + static_cast<std::uint64_t>(i)})}),
              [&](bool) { done.fetch_add(1); });
  db.flush();
  CHECK(done.load() == 100);
  CHECK(db.count_sims() == 100);
}
