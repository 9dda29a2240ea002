#include "store/schema.hpp"

#include "common/assert.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>

namespace imeilock::store::detail {

// Enumerations are stored as their integer values (lock/types.hpp); device ids
// (IMEI TAC+SNR) as integers; before/after states in the audit as compact JSON.
// Migration i takes the schema from version i to i+1. Written in SQLite's
// dialect; to_postgres() translates (keep to what it knows).
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
    // 1 -> 2: a SIM remembers a violation seen in monitor mode (lock::sim_state::alerted).
    R"sql(
ALTER TABLE sims ADD COLUMN alerted INTEGER NOT NULL DEFAULT 0;
)sql",
    // 2 -> 3: when a SIM was last observed, and last with an IMEI (lock::sim_activity).
    R"sql(
ALTER TABLE sims ADD COLUMN observed_s INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sims ADD COLUMN imei_seen_s INTEGER NOT NULL DEFAULT 0;
)sql",
    // 3 -> 4: what a lock holds the SIM to, and what an order enables (R16, lock::lock_scope).
    R"sql(
ALTER TABLE sims ADD COLUMN lock_scope INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN lock_scope INTEGER NOT NULL DEFAULT 0;
)sql",
    // 4 -> 5: bulk order jobs (actors/jobs.hpp): the job and its progress, the
    // ICCIDs of a job given as a list, and the orders each job placed (one per
    // job and SIM: a resumed job never places a second one). The audit log by
    // time: the fleet overview reads its last 24 hours without a full scan.
    R"sql(
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY,
  state INTEGER NOT NULL DEFAULT 0,
  spec TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL DEFAULT 0,
  updated_at_ms INTEGER NOT NULL DEFAULT 0,
  finished_at_ms INTEGER NOT NULL DEFAULT 0,
  after_iccid TEXT NOT NULL DEFAULT '',
  total INTEGER NOT NULL DEFAULT 0,
  processed INTEGER NOT NULL DEFAULT 0,
  placed INTEGER NOT NULL DEFAULT 0,
  refused INTEGER NOT NULL DEFAULT 0,
  refusals TEXT NOT NULL DEFAULT ''
);
CREATE TABLE job_iccids (
  job_id INTEGER NOT NULL,
  iccid TEXT NOT NULL,
  PRIMARY KEY (job_id, iccid)
) WITHOUT ROWID;
CREATE TABLE job_orders (
  job_id INTEGER NOT NULL,
  iccid TEXT NOT NULL,
  order_id INTEGER NOT NULL,
  PRIMARY KEY (job_id, iccid)
) WITHOUT ROWID;
CREATE INDEX audit_by_time ON audit (at_ms);
)sql",
    // 5 -> 6: the fleet overview counts SIMs by network, lock and bar from
    // this covering index, a quarter of the table's size (GET /v1/fleet at
    // 1M SIMs: 0.34 s instead of 1.2 s of scan, sqlite3 on this machine).
    R"sql(
CREATE INDEX sims_by_state ON sims (network, lock, bar);
)sql",
    // 6 -> 7: a SIM's home suffix (its lowest IMSI's last four digits), kept
    // by every upsert and indexed, so that a cluster node taking over a shard
    // reads that shard's SIMs, not every IMSI of the store (the takeover of
    // one shard of 1M SIMs aggregated all 1M IMSIs: 1.7 s).
    R"sql(
ALTER TABLE sims ADD COLUMN home_suffix INTEGER NOT NULL DEFAULT -1;
UPDATE sims SET home_suffix = (SELECT MIN(imsi) % 10000 FROM imsis WHERE imsis.iccid = sims.iccid)
  WHERE EXISTS (SELECT 1 FROM imsis WHERE imsis.iccid = sims.iccid);
CREATE INDEX sims_by_home_suffix ON sims (home_suffix);
)sql",
};
const std::size_t migration_count = std::size(migrations);
static_assert(std::size(migrations) == store::schema_version);

namespace {

/// Replaces every `from` in `s` by `to`.
void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

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

/// The columns of a sims row an upsert writes: identity, then lock state.
std::string sim_columns(std::string_view prefix = {}) {
  return column_list(lock::sim_identity_fields, prefix) + ", " +
         column_list(lock::sim_state_fields, prefix);
}

/// The columns of a sims row as every read selects them: the written ones,
/// then the activity.
std::string sim_select_columns(std::string_view prefix = {}) {
  return sim_columns(prefix) + ", " + column_list(lock::sim_activity_fields, prefix);
}

/// "a = excluded.a, ..." for every field of the lists except `key`.
template <class... Lists>
std::string set_excluded(std::string_view key, const Lists&... lists) {
  std::string out;
  auto one = [&](const auto& f) {
    if (f.name == key)
      return;
    if (!out.empty())
      out += ", ";
    out.append(f.name).append(" = excluded.").append(f.name);
  };
  (fields::for_each_field(lists, one), ...);
  return out;
}

} // namespace

std::string to_postgres(std::string_view sqlite_text) {
  std::string s{sqlite_text};
  IMEILOCK_ASSERT(s.find("INSERT OR") == std::string::npos,
                  "to_postgres: INSERT OR REPLACE has no PostgreSQL form, generate it per dialect");
  replace_all(s, "INTEGER PRIMARY KEY AUTOINCREMENT",
              "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY");
  replace_all(s, "INTEGER", "BIGINT");
  replace_all(s, " WITHOUT ROWID", "");
  // Placeholders: no statement of ours has a '?' inside a literal.
  replace_all(s, "?", "$");
  return s;
}

generated_sql::generated_sql(dialect d) {
  upsert_sim = "INSERT INTO sims (" + sim_columns() + ", home_suffix) VALUES (" +
               placeholders(1, sim_column_count + 1) + ") ON CONFLICT (iccid) DO UPDATE SET " +
               set_excluded("iccid", lock::sim_identity_fields, lock::sim_state_fields) +
               ", home_suffix = excluded.home_suffix";
  delete_imsis = "DELETE FROM imsis WHERE iccid = ?1";
  insert_imsi = "INSERT INTO imsis (imsi, iccid) VALUES (?1, ?2)";

  update_state = "UPDATE sims SET ";
  fields::for_each_field_indexed(lock::sim_state_fields, [&](const auto& f, std::size_t i) {
    if (i > 0)
      update_state += ", ";
    update_state.append(f.name).append(" = ?").append(std::to_string(i + 2));
  });
  update_state += " WHERE iccid = ?1";

  // The columns of sims_by_state (schema 6) among the state's: network is
  // identity. Same numbering as update_state: lock's and bar's parameters
  // are compared in the WHERE clause, not set.
  update_state_same_index = "UPDATE sims SET ";
  std::string same_index_where = " WHERE iccid = ?1";
  fields::for_each_field_indexed(lock::sim_state_fields, [&](const auto& f, std::size_t i) {
    const auto param = "?" + std::to_string(i + 2);
    if (f.name == "lock" || f.name == "bar") {
      same_index_where.append(" AND ").append(f.name).append(" = ").append(param);
      return;
    }
    if (update_state_same_index.back() != ' ')
      update_state_same_index += ", ";
    update_state_same_index.append(f.name).append(" = ").append(param);
  });
  update_state_same_index += same_index_where;

  update_activity = "UPDATE sims SET ";
  fields::for_each_field_indexed(lock::sim_activity_fields, [&](const auto& f, std::size_t i) {
    if (i > 0)
      update_activity += ", ";
    update_activity.append(f.name).append(" = ?").append(std::to_string(i + 2));
  });
  update_activity += " WHERE iccid = ?1";

  list_sims_head = "SELECT " + sim_select_columns() + " FROM sims";
  select_sim = list_sims_head + " WHERE iccid = ?1";
  imsis_of_sim = "SELECT imsi FROM imsis WHERE iccid = ?1 ORDER BY imsi";
  load_inventory = "SELECT " + sim_select_columns("s.") +
                   ", i.imsi FROM sims s LEFT JOIN imsis i ON i.iccid = s.iccid ORDER BY s.iccid";
  load_inventory_suffixes = "SELECT " + sim_select_columns("s.") +
                            ", i.imsi FROM sims s JOIN imsis i ON i.iccid = s.iccid WHERE "
                            "s.home_suffix BETWEEN ?1 AND ?2 ORDER BY s.iccid, i.imsi";
  const auto inventory_sims = "SELECT iccid, network, " + column_list(lock::sim_state_fields) +
                              ", " + column_list(lock::sim_activity_fields) + " FROM sims WHERE ";
  inventory_sims_range = inventory_sims + "iccid >= ?1 AND iccid < ?2 ORDER BY iccid";
  inventory_sims_from = inventory_sims + "iccid >= ?1 ORDER BY iccid";
  // The index on imsis(iccid) holds the IMSI too (SQLite: it is the rowid), so
  // these read the index alone, in order.
  inventory_imsis_range =
      "SELECT iccid, imsi FROM imsis WHERE iccid >= ?1 AND iccid < ?2 ORDER BY iccid, imsi";
  inventory_imsis_from = "SELECT iccid, imsi FROM imsis WHERE iccid >= ?1 ORDER BY iccid, imsi";
  // Two subqueries: each reads one end of the primary key.
  iccid_bounds = "SELECT (SELECT MIN(iccid) FROM sims), (SELECT MAX(iccid) FROM sims)";

  const auto order_columns = column_list(orders::order_fields);
  const auto order_values = placeholders(1, fields::count<decltype(orders::order_fields)>);
  if (d == dialect::sqlite)
    upsert_order =
        "INSERT OR REPLACE INTO orders (" + order_columns + ") VALUES (" + order_values + ")";
  else
    upsert_order = "INSERT INTO orders (" + order_columns + ") VALUES (" + order_values +
                   ") ON CONFLICT (id) DO UPDATE SET " + set_excluded("id", orders::order_fields);
  const auto select_order = "SELECT " + order_columns + " FROM orders";
  get_order = select_order + " WHERE id = ?1";
  orders_of_sim = select_order + " WHERE iccid = ?1 ORDER BY id DESC";
  open_orders = select_order + " WHERE status < 2 ORDER BY id";

  insert_audit = "INSERT INTO audit (iccid, at_ms, cause, before, after, imei, detail) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
  list_events = "SELECT id, iccid, at_ms, cause, before, after, imei, detail FROM audit "
                "WHERE iccid = ?1 ORDER BY id DESC LIMIT ?2";
  iccid_of = "SELECT iccid FROM imsis WHERE imsi = ?1";
  count_sims = "SELECT COUNT(*) FROM sims";
  max_order_id = "SELECT COALESCE(MAX(id), 0) FROM orders";

  const std::string job_columns = "id, state, spec, created_at_ms, updated_at_ms, finished_at_ms, "
                                  "after_iccid, total, processed, placed, refused, refusals";
  insert_job = "INSERT INTO jobs (" + job_columns + ") VALUES (" + placeholders(1, 12) + ")";
  update_job = "UPDATE jobs SET state = ?2, updated_at_ms = ?3, finished_at_ms = ?4, "
               "after_iccid = ?5, total = ?6, processed = ?7, placed = ?8, refused = ?9, "
               "refusals = ?10 WHERE id = ?1";
  insert_job_iccid = "INSERT INTO job_iccids (job_id, iccid) VALUES (?1, ?2)";
  insert_job_order = "INSERT INTO job_orders (job_id, iccid, order_id) VALUES (?1, ?2, ?3)";
  get_job = "SELECT " + job_columns + " FROM jobs WHERE id = ?1";
  list_jobs = "SELECT " + job_columns + " FROM jobs ORDER BY id DESC LIMIT ?1";
  list_jobs_in_state =
      "SELECT " + job_columns + " FROM jobs WHERE state = ?1 ORDER BY id DESC LIMIT ?2";
  max_job_id = "SELECT COALESCE(MAX(id), 0) FROM jobs";
  job_iccids = "SELECT iccid FROM job_iccids WHERE job_id = ?1 AND iccid > ?2 ORDER BY iccid "
               "LIMIT ?3";
  job_orders_by_status = "SELECT o.status, COUNT(*) FROM job_orders j JOIN orders o ON o.id = "
                         "j.order_id WHERE j.job_id = ?1 GROUP BY o.status";
  job_placed = "SELECT 1 FROM job_orders WHERE job_id = ?1 AND iccid = ?2";

  // The fleet overview. A violation's audit record is the one whose detail
  // lock::apply starts with "R7: violation" (monitor mode's included).
  fleet_sims = "SELECT network, lock, bar, COUNT(*) FROM sims GROUP BY network, lock, bar";
  fleet_orders = "SELECT network, status, COUNT(*) FROM orders WHERE status < 2 "
                 "GROUP BY network, status";
  const std::string violation = "detail LIKE 'R7: violation%'";
  fleet_violations = "SELECT (at_ms - ?1) / 3600000, COUNT(*) FROM audit WHERE at_ms >= ?1 AND " +
                     violation + " GROUP BY 1";
  const std::string audit_columns = "SELECT id, iccid, at_ms, cause, before, after, imei, detail "
                                    "FROM audit WHERE at_ms >= ?1 AND ";
  latest_violations = audit_columns + violation + " ORDER BY at_ms DESC, id DESC LIMIT ?2";
  latest_bars =
      audit_columns + "cause = 'order_completed:bar' ORDER BY at_ms DESC, id DESC LIMIT ?2";

  if (d == dialect::postgresql) {
    std::string upsert = upsert_order;
    upsert_order.clear(); // to_postgres refuses INSERT OR; this one is already PostgreSQL's
    for (auto* s : {&upsert_sim,
                    &delete_imsis,
                    &insert_imsi,
                    &update_state,
                    &update_state_same_index,
                    &update_activity,
                    &select_sim,
                    &imsis_of_sim,
                    &list_sims_head,
                    &load_inventory,
                    &load_inventory_suffixes,
                    &inventory_sims_range,
                    &inventory_sims_from,
                    &inventory_imsis_range,
                    &inventory_imsis_from,
                    &iccid_bounds,
                    &get_order,
                    &orders_of_sim,
                    &open_orders,
                    &insert_audit,
                    &list_events,
                    &iccid_of,
                    &count_sims,
                    &max_order_id,
                    &insert_job,
                    &update_job,
                    &insert_job_iccid,
                    &insert_job_order,
                    &get_job,
                    &list_jobs,
                    &list_jobs_in_state,
                    &max_job_id,
                    &job_iccids,
                    &job_orders_by_status,
                    &job_placed,
                    &fleet_sims,
                    &fleet_orders,
                    &fleet_violations,
                    &latest_violations,
                    &latest_bars})
      *s = to_postgres(*s);
    upsert_order = to_postgres(upsert);
  }
}

const generated_sql& sql(dialect d) {
  static const generated_sql sqlite{dialect::sqlite};
  static const generated_sql postgresql{dialect::postgresql};
  return d == dialect::sqlite ? sqlite : postgresql;
}

std::int64_t home_suffix(const std::vector<std::uint64_t>& imsis) {
  if (imsis.empty())
    return -1;
  return static_cast<std::int64_t>(*std::min_element(imsis.begin(), imsis.end()) % 10000);
}

std::vector<std::string> iccid_cuts(std::string_view lowest, std::string_view highest,
                                    std::size_t n) {
  constexpr std::size_t digits = 19; // 10^19 - 1 fits a uint64
  // The first 19 characters as a decimal fraction scaled to an integer; no
  // value when one of them is not a digit.
  auto value = [](std::string_view s) -> std::optional<std::uint64_t> {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < digits; ++i) {
      char c = i < s.size() ? s[i] : '0';
      if (c < '0' || c > '9')
        return std::nullopt;
      v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return v;
  };
  std::vector<std::string> cuts;
  auto lo = value(lowest);
  auto hi = value(highest);
  if (n < 2 || !lo || !hi || *hi < *lo)
    return cuts;
  for (std::size_t i = 1; i < n; ++i) {
    // lo + (hi - lo) * i / n without overflowing: (q n + r) i / n = q i + r i / n.
    const auto span = *hi - *lo;
    auto at = *lo + span / n * i + span % n * i / n;
    std::string cut(digits, '0');
    for (std::size_t d = digits; d-- > 0; at /= 10)
      cut[d] = static_cast<char>('0' + at % 10);
    cuts.push_back(std::move(cut));
  }
  return cuts;
}

namespace {

/// Appends the WHERE conditions of `filter` (after `iccid > cursor` when
/// `cursor` is given) to `text`, their parameters to `params`.
void add_filter(dialect d, std::string& text, const lock::sim_filter& filter,
                std::vector<param>& params, const std::string* cursor) {
  const char mark = d == dialect::sqlite ? '?' : '$';
  auto add = [&](std::string_view condition, param p, std::string_view after = {}) {
    params.push_back(std::move(p));
    text.append(params.size() == 1 ? " WHERE " : " AND ").append(condition);
    text += mark;
    text += std::to_string(params.size());
    text += after;
  };
  if (cursor)
    add("iccid > ", {true, 0, *cursor});
  if (filter.lock)
    add("lock = ", {false, fields::to_integer(*filter.lock), {}});
  if (filter.bar)
    add("bar = ", {false, fields::to_integer(*filter.bar), {}});
  if (filter.network)
    add("network = ", {true, 0, *filter.network});
  if (filter.alerted)
    add("alerted = ", {false, fields::to_integer(*filter.alerted), {}});
  // sim_activity::never_with_imei(), and its negation.
  if (filter.never_with_imei && *filter.never_with_imei)
    add("observed_s <> 0 AND imei_seen_s = ", {false, 0, {}});
  else if (filter.never_with_imei)
    add("(observed_s = 0 OR imei_seen_s <> ", {false, 0, {}}, ")");
  if (filter.awaiting_imei_since_ms) {
    add("lock = ", {false, fields::to_integer(lock::lock_state::awaiting_first_imei), {}});
    add("updated_at_ms <= ", {false, *filter.awaiting_imei_since_ms, {}});
  }
}

} // namespace

std::string list_sims_query(dialect d, const lock::sim_filter& filter, std::vector<param>& params,
                            const std::string& cursor, std::size_t limit) {
  std::string text = sql(d).list_sims_head;
  add_filter(d, text, filter, params, &cursor);
  const char mark = d == dialect::sqlite ? '?' : '$';
  params.push_back({false, static_cast<std::int64_t>(limit), {}});
  text += " ORDER BY iccid LIMIT ";
  text += mark;
  text += std::to_string(params.size());
  return text;
}

std::string count_sims_query(dialect d, const lock::sim_filter& filter,
                             std::vector<param>& params) {
  std::string text = "SELECT COUNT(*) FROM sims";
  add_filter(d, text, filter, params, nullptr);
  return text;
}

std::string state_json(const lock::sim_state& s) {
  // On the write path of every change (twice per audit entry): no JSON
  // library and no growing string. Each key's text ("{\"status\":",
  // ",\"lock\":", ...) is made once; a value is at most 20 digits or "false".
  constexpr std::size_t value_max = 20;
  static const auto keys = [] {
    std::array<std::string, sim_state_count> k;
    fields::for_each_field_indexed(lock::sim_state_fields, [&](const auto& f, std::size_t i) {
      k[i].append(i == 0 ? "{\"" : ",\"").append(f.name).append("\":");
    });
    return k;
  }();
  static const std::size_t longest = [] {
    std::size_t n = 1; // the closing brace
    for (const auto& k : keys)
      n += k.size() + value_max;
    return n;
  }();
  char buf[1024];
  IMEILOCK_ASSERT(longest <= sizeof buf, "state_json: the buffer holds every state");
  char* p = buf;
  fields::for_each_field_indexed(lock::sim_state_fields, [&](const auto& f, std::size_t i) {
    using T = typename std::remove_cvref_t<decltype(f)>::value_type;
    p = std::copy(keys[i].begin(), keys[i].end(), p);
    const T& v = f.get(s);
    if constexpr (std::is_same_v<T, bool>) {
      const std::string_view text = v ? "true" : "false";
      p = std::copy(text.begin(), text.end(), p);
    } else if constexpr (std::is_enum_v<T>) {
      p = std::to_chars(p, p + value_max, static_cast<int>(v)).ptr;
    } else {
      p = std::to_chars(p, p + value_max, v).ptr;
    }
  });
  *p++ = '}';
  return std::string(buf, p);
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

} // namespace imeilock::store::detail
