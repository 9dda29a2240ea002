#include "cluster/jobs.hpp"

#include "cluster/pq.hpp"

#include <charconv>
#include <cstring>
#include <span>

namespace imeilock::cluster {

namespace {

template <class T>
T number(const PGresult* r, int row, int col) {
  T v{};
  const char* text = PQgetvalue(r, row, col);
  std::from_chars(text, text + PQgetlength(r, row, col), v);
  return v;
}

std::string text_of(const PGresult* r, int row, int col) {
  return {PQgetvalue(r, row, col), static_cast<std::size_t>(PQgetlength(r, row, col))};
}

/// BEGIN, f(), COMMIT; ROLLBACK when f fails.
template <class F>
auto in_transaction(pg_conn* conn, std::string_view what, F&& f) -> decltype(f()) {
  if (auto b = run(conn, what, "BEGIN"); !b)
    return b.error();
  auto out = f();
  if (!out) {
    rollback(conn); // best effort: the error is f's
    return out;
  }
  if (auto c = commit(conn, what); !c)
    return c.error();
  return out;
}

/// The ICCIDs of a job's list inserted per statement.
constexpr std::size_t iccids_per_insert = 5000;

/// Reserves the next job id: meta row `next_job_id`, never below the
/// highest stored id + 1 (jobs created on one node before). The row lock
/// serialises creating nodes until COMMIT.
constexpr const char* reserve_job_id =
    "INSERT INTO meta (key, value) SELECT 'next_job_id', (COALESCE(MAX(id), 0) + 2)::text FROM "
    "jobs ON CONFLICT (key) DO UPDATE SET value = (GREATEST(meta.value::bigint, (SELECT "
    "COALESCE(MAX(id), 0) + 1 FROM jobs)) + 1)::text RETURNING value::bigint - 1";

constexpr const char* insert_job =
    "INSERT INTO jobs (id, state, spec, created_at_ms, updated_at_ms, finished_at_ms, "
    "after_iccid, total, processed, placed, refused, refusals) VALUES ($1::bigint, $2::integer, "
    "$3, $4::bigint, $4::bigint, $5::bigint, '', $6::bigint, 0, 0, 0, $7)";

constexpr const char* insert_iccids =
    "INSERT INTO job_iccids (job_id, iccid) SELECT $1::bigint, unnest($2::text[])";

constexpr const char* part_columns = "job_id, shard, done, after_iccid, processed, placed, "
                                     "refused, refusals, updated_at_ms, finished_at_ms, node";

constexpr const char* upsert_part =
    "INSERT INTO cluster_job_parts (job_id, shard, done, after_iccid, processed, placed, refused, "
    "refusals, updated_at_ms, finished_at_ms, node) VALUES ($1::bigint, $2::integer, "
    "$3::boolean, $4, $5::bigint, $6::bigint, $7::bigint, $8, $9::bigint, $10::bigint, $11) ON "
    "CONFLICT (job_id, shard) DO UPDATE SET done = excluded.done, after_iccid = "
    "excluded.after_iccid, processed = excluded.processed, placed = excluded.placed, refused = "
    "excluded.refused, refusals = excluded.refusals, updated_at_ms = excluded.updated_at_ms, "
    "finished_at_ms = excluded.finished_at_ms, node = excluded.node";

/// "(home BETWEEN $a AND $b OR ($c AND home < 0))" with `home` and the
/// parameter numbers given.
std::string home_condition(std::string_view home, int first) {
  auto p = [&](int i) { return "$" + std::to_string(first + i); };
  std::string h{home};
  return "((" + h + " BETWEEN " + p(0) + "::integer AND " + p(1) + "::integer) OR (" + p(2) +
         "::boolean AND " + h + " < 0))";
}

std::vector<job_sim> read_sims(const PGresult* r) {
  std::vector<job_sim> out;
  out.reserve(static_cast<std::size_t>(PQntuples(r)));
  for (int i = 0; i < PQntuples(r); ++i)
    out.push_back({text_of(r, i, 0), number<int>(r, i, 1)});
  return out;
}

} // namespace

job_store::job_store(std::string conninfo, std::string node_id) :
    conninfo_(std::move(conninfo)), node_(std::move(node_id)) {}

job_store::~job_store() {
  if (conn_)
    PQfinish(conn_);
}

template <class F>
auto job_store::with_conn(F&& f) -> decltype(f(static_cast<pg_conn*>(nullptr))) {
  std::lock_guard g{mtx_};
  if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
    if (conn_)
      PQfinish(conn_);
    conn_ = cluster::connect(conninfo_);
    if (PQstatus(conn_) != CONNECTION_OK) {
      auto why = connection_error(conn_);
      PQfinish(conn_);
      conn_ = nullptr;
      return error{ec::database, "bulk jobs: the cluster database cannot be reached: " + why};
    }
  }
  auto out = f(conn_);
  if (PQstatus(conn_) != CONNECTION_OK || PQtransactionStatus(conn_) != PQTRANS_IDLE) {
    PQfinish(conn_); // broken, or left inside a transaction: start afresh
    conn_ = nullptr;
  }
  return out;
}

expected<std::uint64_t> job_store::create(const new_job& job,
                                          const std::vector<std::string>& iccids) {
  return with_conn([&](pg_conn* conn) {
    return in_transaction(conn, "job create", [&]() -> expected<std::uint64_t> {
      auto id_row = run(conn, "job id", reserve_job_id);
      if (!id_row)
        return id_row.error();
      auto id = number<std::uint64_t>(id_row->get(), 0, 0);
      auto ids = std::to_string(id);
      if (auto r =
              run(conn, "job insert", insert_job,
                  {ids, std::to_string(job.state), job.spec, std::to_string(job.created_at_ms),
                   std::to_string(job.finished_at_ms), std::to_string(job.total), job.refusals});
          !r)
        return r.error();
      for (std::size_t from = 0; from < iccids.size(); from += iccids_per_insert) {
        auto to = std::min(iccids.size(), from + iccids_per_insert);
        if (auto r = run(conn, "job ICCIDs", insert_iccids,
                         {ids, text_array(std::span{iccids}.subspan(from, to - from))});
            !r)
          return r.error();
      }
      return id;
    });
  });
}

expected<std::vector<job_part>> job_store::parts(std::uint64_t job_id) {
  return with_conn([&](pg_conn* conn) -> expected<std::vector<job_part>> {
    auto r = run(conn, "job parts",
                 std::string{"SELECT "} + part_columns +
                     " FROM cluster_job_parts WHERE job_id = $1::bigint ORDER BY shard",
                 {std::to_string(job_id)});
    if (!r)
      return r.error();
    std::vector<job_part> out;
    const auto* res = r->get();
    for (int i = 0; i < PQntuples(res); ++i) {
      job_part p;
      p.job_id = number<std::uint64_t>(res, i, 0);
      p.shard = number<std::uint32_t>(res, i, 1);
      p.done = text_of(res, i, 2) == "t";
      p.after_iccid = text_of(res, i, 3);
      p.processed = number<std::uint64_t>(res, i, 4);
      p.placed = number<std::uint64_t>(res, i, 5);
      p.refused = number<std::uint64_t>(res, i, 6);
      p.refusals = text_of(res, i, 7);
      p.updated_at_ms = number<std::int64_t>(res, i, 8);
      p.finished_at_ms = number<std::int64_t>(res, i, 9);
      p.node = text_of(res, i, 10);
      out.push_back(std::move(p));
    }
    return out;
  });
}

expected<void> job_store::save(const job_part& part, std::int64_t epoch) {
  return with_conn([&](pg_conn* conn) {
    return in_transaction(conn, "job part", [&]() -> expected<void> {
      if (auto r =
              run(conn, "job part", upsert_part,
                  {std::to_string(part.job_id), std::to_string(part.shard),
                   part.done ? "true" : "false", part.after_iccid, std::to_string(part.processed),
                   std::to_string(part.placed), std::to_string(part.refused), part.refusals,
                   std::to_string(part.updated_at_ms), std::to_string(part.finished_at_ms), node_});
          !r)
        return r.error();
      shard_epoch claim{part.shard, epoch};
      return check_fence(conn, node_, {&claim, 1});
    });
  });
}

expected<bool> job_store::end(std::uint64_t job_id, int state, std::int64_t at_ms) {
  return with_conn([&](pg_conn* conn) -> expected<bool> {
    auto r = run(conn, "job end",
                 "UPDATE jobs SET state = $2::integer, finished_at_ms = $3::bigint, updated_at_ms "
                 "= $3::bigint WHERE id = $1::bigint AND state = 0",
                 {std::to_string(job_id), std::to_string(state), std::to_string(at_ms)});
    if (!r)
      return r.error();
    return std::string_view{PQcmdTuples(r->get())} == "1";
  });
}

expected<std::vector<job_sim>> job_store::sims_by_list(std::uint64_t job_id, suffix_bounds bounds,
                                                       bool homeless, const std::string& after,
                                                       std::size_t limit) {
  return with_conn([&](pg_conn* conn) -> expected<std::vector<job_sim>> {
    auto sql = "SELECT j.iccid, COALESCE(s.home_suffix, -1) FROM job_iccids j LEFT JOIN sims s "
               "ON s.iccid = j.iccid WHERE j.job_id = $1::bigint AND j.iccid > $2 AND " +
               home_condition("COALESCE(s.home_suffix, -1)", 3) +
               " ORDER BY j.iccid LIMIT $6::bigint";
    auto r = run(conn, "job SIMs", sql,
                 {std::to_string(job_id), after, std::to_string(bounds.first),
                  std::to_string(bounds.last), homeless ? "true" : "false", std::to_string(limit)});
    if (!r)
      return r.error();
    return read_sims(r->get());
  });
}

expected<std::vector<job_sim>> job_store::sims_by_filter(const job_filter& filter,
                                                         suffix_bounds bounds, bool homeless,
                                                         const std::string& after,
                                                         std::size_t limit) {
  return with_conn([&](pg_conn* conn) -> expected<std::vector<job_sim>> {
    std::vector<std::string> params{after, std::to_string(bounds.first),
                                    std::to_string(bounds.last), homeless ? "true" : "false"};
    std::string sql = "SELECT iccid, home_suffix FROM sims WHERE iccid > $1 AND " +
                      home_condition("home_suffix", 2);
    auto add = [&](std::string_view column, std::string value, std::string_view type) {
      params.push_back(std::move(value));
      sql.append(" AND ").append(column).append(" = $").append(std::to_string(params.size()));
      sql.append("::").append(type);
    };
    if (filter.lock)
      add("lock", std::to_string(*filter.lock), "integer");
    if (filter.bar)
      add("bar", std::to_string(*filter.bar), "integer");
    if (filter.network)
      add("network", *filter.network, "text");
    if (filter.alerted)
      add("alerted", *filter.alerted ? "1" : "0", "integer");
    params.push_back(std::to_string(limit));
    sql += " ORDER BY iccid LIMIT $" + std::to_string(params.size()) + "::bigint";
    auto r = run(conn, "job SIMs", sql, params);
    if (!r)
      return r.error();
    return read_sims(r->get());
  });
}

} // namespace imeilock::cluster
