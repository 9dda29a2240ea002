#pragma once
// Inside store/: the schema and the statements both backends run, generated
// from the field lists (lock/sim.hpp, orders/order.hpp) and written once in
// SQLite's dialect; the PostgreSQL backend translates them (placeholders
// ?N -> $N, INTEGER -> BIGINT, AUTOINCREMENT -> IDENTITY, see to_postgres()).

#include "common/fields.hpp"
#include "lock/sim.hpp"
#include "orders/order.hpp"
#include "store/store.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace imeilock::store::detail {

/// The versioned migrations: entry i takes the schema from version i to i+1.
/// In SQLite's dialect; to_postgres() gives the PostgreSQL text.
extern const char* const migrations[];
extern const std::size_t migration_count;

/// Which dialect a generated statement is in.
enum class dialect { sqlite, postgresql };

/// A statement or DDL text of SQLite's dialect in PostgreSQL's: ?N -> $N,
/// INTEGER -> BIGINT, "INTEGER PRIMARY KEY AUTOINCREMENT" -> an identity
/// column, "WITHOUT ROWID" dropped, "INSERT OR REPLACE" refused (generated
/// per dialect instead). Asserts on what it cannot translate.
std::string to_postgres(std::string_view sqlite_text);

/// Columns of the sims table, in table order: identity, then lock state.
constexpr std::size_t sim_identity_count = fields::count<decltype(lock::sim_identity_fields)>;
constexpr std::size_t sim_state_count = fields::count<decltype(lock::sim_state_fields)>;
constexpr std::size_t sim_column_count = sim_identity_count + sim_state_count;
/// The activity columns (lock::sim_activity_fields) follow; reads select
/// them after the written ones, only activity_update writes them.
constexpr std::size_t sim_activity_count = fields::count<decltype(lock::sim_activity_fields)>;
constexpr std::size_t sim_select_count = sim_column_count + sim_activity_count;

/// The statements generated from the field lists, built once per dialect.
/// Their texts live as long as the process, so cached statements can key on them.
struct generated_sql {
  /// ?1.. = identity, then state, then home_suffix(its IMSIs) (bind_sim):
  /// one write of the row and its indexes per SIM
  std::string upsert_sim;
  std::string delete_imsis; ///< ?1 = iccid
  std::string insert_imsi;  ///< ?1 = imsi, ?2 = iccid
  std::string update_state; ///< ?1 = iccid, ?2.. = state
  /// update_state for a SIM whose lock and bar stay as they are (SQLite):
  /// SQLite rewrites an index entry whenever an UPDATE sets one of its
  /// columns, changed or not, so this one sets every state column but those
  /// of sims_by_state (lock, bar), and only where they already hold the
  /// values bound (update_state's parameters). No row changed: lock or bar
  /// differ (or no such SIM), and update_state writes the row instead. Most
  /// changes (a new last-seen IMEI, a pending order) take one statement.
  std::string update_state_same_index;
  std::string update_activity; ///< ?1 = iccid, ?2.. = activity
  std::string select_sim;      ///< ?1 = iccid
  std::string imsis_of_sim;    ///< ?1 = iccid, ordered
  std::string list_sims_head;  ///< "SELECT <sim columns> FROM sims"
  std::string load_inventory;  ///< every SIM joined with its IMSIs (last column)
  /// load_inventory of the SIMs whose lowest IMSI ends in ?1..?2 (a cluster
  /// shard), found through the index of sims.home_suffix (schema 7)
  std::string load_inventory_suffixes;
  /// The startup loader's scans of one ICCID range, ?1 <= iccid < ?2 (`_from`:
  /// ?1 <= iccid): the SIMs (iccid, network, state, activity) ordered by
  /// ICCID, and (iccid, imsi) ordered by ICCID then IMSI.
  std::string inventory_sims_range;
  std::string inventory_sims_from;
  std::string inventory_imsis_range;
  std::string inventory_imsis_from;
  std::string iccid_bounds;  ///< the lowest and the highest ICCID (NULLs when none)
  std::string upsert_order;  ///< ?1.. = the order fields
  std::string get_order;     ///< ?1 = id
  std::string orders_of_sim; ///< ?1 = iccid, newest first
  std::string open_orders;   ///< queued or submitted, by id
  std::string insert_audit;  ///< ?1..?7 = iccid, at_ms, cause, before, after, imei, detail
  std::string list_events;   ///< ?1 = iccid, ?2 = limit
  std::string iccid_of;      ///< ?1 = imsi
  std::string count_sims;
  std::string max_order_id;
  std::string insert_job;         ///< ?1..?12 = bind_job's columns
  std::string update_job;         ///< ?1 = id, ?2..?10 = progress
  std::string insert_job_iccid;   ///< ?1 = job id, ?2 = iccid
  std::string insert_job_order;   ///< ?1 = job id, ?2 = iccid, ?3 = order id
  std::string get_job;            ///< ?1 = id
  std::string list_jobs;          ///< ?1 = limit, newest first
  std::string list_jobs_in_state; ///< ?1 = state, ?2 = limit, newest first
  std::string max_job_id;
  std::string job_iccids;           ///< ?1 = job id, ?2 = after, ?3 = limit
  std::string job_orders_by_status; ///< ?1 = job id: (status, count) rows
  std::string job_placed;           ///< ?1 = job id, ?2 = iccid
  std::string fleet_sims;           ///< (network, lock, bar, count) rows
  std::string fleet_orders;         ///< (network, status, count) rows of open orders
  std::string fleet_violations;     ///< ?1 = since: (hour index, count) rows
  std::string latest_violations;    ///< ?1 = since, ?2 = limit: audit rows, newest first
  std::string latest_bars;          ///< ?1 = since, ?2 = limit: audit rows, newest first

  explicit generated_sql(dialect d);
};

/// The statements of a dialect.
const generated_sql& sql(dialect d);

/// The last four digits of a SIM's lowest IMSI (the sims.home_suffix column,
/// schema 7: a cluster shard is a range of them, docs/cluster.md); -1 for a
/// SIM without IMSIs (in no shard).
std::int64_t home_suffix(const std::vector<std::uint64_t>& imsis);

/// Where to cut the ICCIDs from `lowest` to `highest` into `n` ranges of
/// about as many SIMs each when they are spread evenly (they are issued in
/// runs): n - 1 non-decreasing cut points, range i being
/// cut[i-1] <= iccid < cut[i] (the first open below, the last above). Read
/// as decimal fractions (the first 19 digits; a shorter ICCID as if padded
/// with zeros) and interpolated. Empty (one range) when either has a
/// non-digit in its first 19 characters, or n < 2. Any cut points partition
/// the ICCIDs; these only balance them.
std::vector<std::string> iccid_cuts(std::string_view lowest, std::string_view highest,
                                    std::size_t n);

/// One parameter of a list_sims query.
struct param {
  bool is_text = false;
  std::int64_t integer = 0;
  std::string text;
};

/// The list_sims query for `filter` (parameters numbered in order of use).
std::string list_sims_query(dialect d, const lock::sim_filter& filter, std::vector<param>& params,
                            const std::string& cursor, std::size_t limit);

/// The COUNT(*) of SIMs matching `filter` (parameters numbered in order of use).
std::string count_sims_query(dialect d, const lock::sim_filter& filter, std::vector<param>& params);

/// The compact JSON of a state in the audit log: the state columns as keys,
/// integers as stored, bool as true/false.
std::string state_json(const lock::sim_state& s);
/// Its inverse; a malformed text reads as the default state (never throws).
lock::sim_state parse_state_json(std::string_view text);

/// Binds the fields of `list` from `o` as parameters first, first+1, ... of
/// `s` (anything with bind(int, std::int64_t) and bind(int, std::string_view)).
template <class Stmt, class List, class Owner>
void bind_fields(Stmt& s, int first, const List& list, const Owner& o) {
  fields::for_each_field_indexed(list, [&](const auto& f, std::size_t i) {
    using T = typename std::remove_cvref_t<decltype(f)>::value_type;
    const int at = first + static_cast<int>(i);
    if constexpr (fields::is_text<T>)
      s.bind(at, std::string_view{f.get(o)});
    else
      s.bind(at, fields::to_integer(f.get(o)));
  });
}

/// Reads the fields of `list` into `o` from columns first, first+1, ... of a
/// row (anything with text(int) -> string_view and i64(int)).
template <class Row, class List, class Owner>
void read_fields(const Row& s, int first, const List& list, Owner& o) {
  fields::for_each_field_indexed(list, [&](const auto& f, std::size_t i) {
    using T = typename std::remove_cvref_t<decltype(f)>::value_type;
    const int at = first + static_cast<int>(i);
    if constexpr (fields::is_text<T>)
      f.get(o) = s.text(at);
    else
      f.get(o) = fields::from_integer<T>(s.i64(at));
  });
}

/// Binds a whole SIM for generated_sql::upsert_sim (identity, then state,
/// then its home suffix) starting at parameter 1.
template <class Stmt>
void bind_sim(Stmt& s, const lock::sim_record& r) {
  bind_fields(s, 1, lock::sim_identity_fields, r);
  bind_fields(s, 1 + static_cast<int>(sim_identity_count), lock::sim_state_fields, r.state);
  s.bind(1 + static_cast<int>(sim_column_count), home_suffix(r.imsis));
}

/// Reads a whole SIM (without its IMSIs) starting at column `first`: the
/// written columns, then the activity.
template <class Row>
lock::sim_record read_sim(const Row& s, int first = 0) {
  lock::sim_record r;
  read_fields(s, first, lock::sim_identity_fields, r);
  read_fields(s, first + static_cast<int>(sim_identity_count), lock::sim_state_fields, r.state);
  read_fields(s, first + static_cast<int>(sim_column_count), lock::sim_activity_fields, r.activity);
  return r;
}

template <class Row>
orders::order read_order(const Row& s) {
  orders::order o;
  read_fields(s, 0, orders::order_fields, o);
  return o;
}

/// An audit row of list_events' columns.
template <class Row>
audit_record read_audit(const Row& s) {
  return {static_cast<std::uint64_t>(s.i64(0)),
          std::string(s.text(1)),
          s.i64(2),
          std::string(s.text(3)),
          parse_state_json(s.text(4)),
          parse_state_json(s.text(5)),
          static_cast<std::uint64_t>(s.i64(6)),
          std::string(s.text(7))};
}

/// Binds an audit record as ?1..?7 of insert_audit.
template <class Stmt>
void bind_audit(Stmt& s, const audit_record& a) {
  s.bind(1, std::string_view{a.iccid});
  s.bind(2, a.at_ms);
  s.bind(3, std::string_view{a.cause});
  s.bind(4, std::string_view{state_json(a.before)});
  s.bind(5, std::string_view{state_json(a.after)});
  s.bind(6, static_cast<std::int64_t>(a.imei));
  s.bind(7, std::string_view{a.detail});
}

/// Adds a fleet_sims row; a row with a lock or bar value this code does not
/// know (a damaged store) is left out (the last enumerators of lock/types.hpp).
inline void add_fleet_sims(fleet_counts& out, std::string_view network, std::int64_t lock,
                           std::int64_t bar, std::uint64_t n) {
  if (lock < 0 || lock > fields::to_integer(lock::lock_state::locked) || bar < 0 ||
      bar > fields::to_integer(lock::bar_state::unbar_pending))
    return;
  out.sims.push_back({std::string{network}, fields::from_integer<lock::lock_state>(lock),
                      fields::from_integer<lock::bar_state>(bar), n});
}

/// Adds a fleet_orders row (the query returns the rows of a network together
/// only by chance: they are merged by name).
inline void add_fleet_orders(fleet_counts& out, std::string_view network, std::int64_t status,
                             std::uint64_t n) {
  auto it = std::find_if(out.orders.begin(), out.orders.end(),
                         [&](const auto& o) { return o.network == network; });
  if (it == out.orders.end())
    it = out.orders.insert(out.orders.end(), {std::string{network}, 0, 0});
  if (status == fields::to_integer(orders::order_status::queued))
    it->queued += n;
  else if (status == fields::to_integer(orders::order_status::submitted))
    it->submitted += n;
}

/// Adds a fleet_violations row: hour `hour` after the window's start.
inline void add_fleet_violations(fleet_counts& out, std::int64_t hour, std::uint64_t n) {
  if (hour >= 0 && static_cast<std::size_t>(hour) < out.violations_per_hour.size())
    out.violations_per_hour[static_cast<std::size_t>(hour)] += n;
}

/// Adds `n` orders of stored status `status` to `counts`.
inline void add_status_count(job_order_counts& counts, std::int64_t status, std::uint64_t n) {
  switch (static_cast<orders::order_status>(status)) {
    case orders::order_status::queued:
    case orders::order_status::submitted:
      counts.open += n;
      break;
    case orders::order_status::completed:
      counts.completed += n;
      break;
    case orders::order_status::failed:
      counts.failed += n;
      break;
  }
}

/// Binds a whole job as ?1..?12 of insert_job.
template <class Stmt>
void bind_job(Stmt& s, const job_record& j) {
  s.bind(1, static_cast<std::int64_t>(j.id));
  s.bind(2, static_cast<std::int64_t>(j.state));
  s.bind(3, std::string_view{j.spec});
  s.bind(4, j.created_at_ms);
  s.bind(5, j.updated_at_ms);
  s.bind(6, j.finished_at_ms);
  s.bind(7, std::string_view{j.after_iccid});
  s.bind(8, static_cast<std::int64_t>(j.total));
  s.bind(9, static_cast<std::int64_t>(j.processed));
  s.bind(10, static_cast<std::int64_t>(j.placed));
  s.bind(11, static_cast<std::int64_t>(j.refused));
  s.bind(12, std::string_view{j.refusals});
}

/// Binds a job's progress as ?1..?10 of update_job.
template <class Stmt>
void bind_job_progress(Stmt& s, const job_record& j) {
  s.bind(1, static_cast<std::int64_t>(j.id));
  s.bind(2, static_cast<std::int64_t>(j.state));
  s.bind(3, j.updated_at_ms);
  s.bind(4, j.finished_at_ms);
  s.bind(5, std::string_view{j.after_iccid});
  s.bind(6, static_cast<std::int64_t>(j.total));
  s.bind(7, static_cast<std::int64_t>(j.processed));
  s.bind(8, static_cast<std::int64_t>(j.placed));
  s.bind(9, static_cast<std::int64_t>(j.refused));
  s.bind(10, std::string_view{j.refusals});
}

/// A job row of get_job's columns.
template <class Row>
job_record read_job(const Row& s) {
  job_record j;
  j.id = static_cast<std::uint64_t>(s.i64(0));
  j.state = static_cast<int>(s.i64(1));
  j.spec = std::string(s.text(2));
  j.created_at_ms = s.i64(3);
  j.updated_at_ms = s.i64(4);
  j.finished_at_ms = s.i64(5);
  j.after_iccid = std::string(s.text(6));
  j.total = static_cast<std::uint64_t>(s.i64(7));
  j.processed = static_cast<std::uint64_t>(s.i64(8));
  j.placed = static_cast<std::uint64_t>(s.i64(9));
  j.refused = static_cast<std::uint64_t>(s.i64(10));
  j.refusals = std::string(s.text(11));
  return j;
}

} // namespace imeilock::store::detail
