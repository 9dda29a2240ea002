#include "cluster/leases.hpp"

#include "cluster/pq.hpp"

#include <algorithm>
#include <charconv>
#include <memory>

namespace imeilock::cluster {

namespace {

template <class T>
T number(const PGresult* r, int row, int col) {
  T v{};
  const char* text = PQgetvalue(r, row, col);
  std::from_chars(text, text + PQgetlength(r, row, col), v);
  return v;
}

/// $2 and $3 of the statements that name leases held: shards and epochs,
/// by ascending shard.
std::pair<std::string, std::string> held_params(std::span<const shard_epoch> held) {
  std::vector<shard_epoch> sorted{held.begin(), held.end()};
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::uint32_t> shards;
  std::vector<std::int64_t> epochs;
  for (const auto& h : sorted) {
    shards.push_back(h.shard);
    epochs.push_back(h.epoch);
  }
  return {number_array(shards), number_array(epochs)};
}

std::vector<shard_epoch> read_shard_epochs(const PGresult* r) {
  std::vector<shard_epoch> out;
  out.reserve(static_cast<std::size_t>(PQntuples(r)));
  for (int i = 0; i < PQntuples(r); ++i)
    out.push_back({number<std::uint32_t>(r, i, 0), number<std::int64_t>(r, i, 1)});
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::uint32_t> parse_int_array(std::string_view text) {
  // "{1,2,3}" as PostgreSQL prints an integer[].
  std::vector<std::uint32_t> out;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] >= '0' && text[i] <= '9') {
      std::uint32_t v = 0;
      auto [end, err] = std::from_chars(text.data() + i, text.data() + text.size(), v);
      out.push_back(v);
      i = static_cast<std::size_t>(end - text.data());
    } else {
      ++i;
    }
  }
  return out;
}

// Migrations of the cluster tables: entry i takes cluster_schema_version i to i+1.
constexpr const char* migrations[] = {
    R"sql(
CREATE TABLE cluster_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE cluster_leases (
  shard INTEGER PRIMARY KEY CHECK (shard >= 0),
  owner TEXT,
  epoch BIGINT NOT NULL DEFAULT 0,
  acquired_at TIMESTAMPTZ,
  renewed_at TIMESTAMPTZ,
  expires_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity');
CREATE TABLE cluster_nodes (
  node_id TEXT PRIMARY KEY,
  api_url TEXT NOT NULL DEFAULT '',
  preferred INTEGER[] NOT NULL DEFAULT '{}',
  renewed_at TIMESTAMPTZ NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL);
CREATE FUNCTION imeilock_fence(node TEXT, shards INTEGER[], epochs BIGINT[]) RETURNS BOOLEAN
LANGUAGE plpgsql AS $fence$
DECLARE
  held INTEGER;
BEGIN
  -- Share-lock the claimed rows (ascending shard) until the transaction ends:
  -- a takeover's UPDATE waits for our COMMIT.
  SELECT count(*) INTO held FROM (
    SELECT l.shard FROM cluster_leases l
    JOIN unnest(shards, epochs) AS c(shard, epoch) ON l.shard = c.shard
    WHERE l.owner = node AND l.epoch = c.epoch AND l.expires_at > clock_timestamp()
    ORDER BY l.shard FOR SHARE OF l) AS h;
  IF held <> coalesce(cardinality(shards), 0) THEN
    RAISE EXCEPTION USING ERRCODE = 'IL001',
      MESSAGE = format('fenced: node %s does not hold shards %s at epochs %s', node, shards, epochs);
  END IF;
  RETURN TRUE;
END
$fence$;
)sql",
    // 1 -> 2: the handoff inbox (inbox.hpp): observations for a shard another
    // node owns, consumed by the owner in id order per shard.
    R"sql(
CREATE TABLE cluster_inbox (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  shard INTEGER NOT NULL CHECK (shard >= 0),
  sim_key TEXT NOT NULL,
  payload TEXT NOT NULL,
  from_node TEXT NOT NULL,
  enqueued_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp());
CREATE INDEX cluster_inbox_by_shard ON cluster_inbox (shard, id);
)sql",
    // 2 -> 3: bulk jobs on more than one node (jobs.hpp): each shard's part of
    // a job, written by the shard's owner under its lease.
    R"sql(
CREATE TABLE cluster_job_parts (
  job_id BIGINT NOT NULL,
  shard INTEGER NOT NULL CHECK (shard >= 0),
  done BOOLEAN NOT NULL DEFAULT FALSE,
  after_iccid TEXT NOT NULL DEFAULT '',
  processed BIGINT NOT NULL DEFAULT 0,
  placed BIGINT NOT NULL DEFAULT 0,
  refused BIGINT NOT NULL DEFAULT 0,
  refusals TEXT NOT NULL DEFAULT '',
  updated_at_ms BIGINT NOT NULL DEFAULT 0,
  finished_at_ms BIGINT NOT NULL DEFAULT 0,
  node TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (job_id, shard));
)sql",
};
static_assert(std::size(migrations) == cluster_schema_version);

/// One transaction: BEGIN, f(), COMMIT; ROLLBACK when f fails.
template <class F>
expected<void> in_transaction(pg_conn* conn, F&& f) {
  if (auto b = run(conn, "BEGIN", "BEGIN"); !b)
    return b.error();
  auto done = f();
  if (!done) {
    result_ptr rollback{PQexec(conn, "ROLLBACK")}; // best effort: the error is f's
    return done.error();
  }
  if (auto c = run(conn, "COMMIT", "COMMIT"); !c)
    return c.error();
  return {};
}

} // namespace

std::string connection_error(pg_conn* conn) {
  return conn ? one_line(PQerrorMessage(conn)) : std::string{"no connection"};
}

expected<void> migrate(pg_conn* conn, std::uint32_t shards) {
  return in_transaction(conn, [&]() -> expected<void> {
    if (auto r = run(conn, "cluster migration", "SET LOCAL client_min_messages = warning"); !r)
      return r.error();
    // Nodes starting together: one migrates, the others wait and find it done.
    if (auto r = run(conn, "cluster migration lock", "SELECT pg_advisory_xact_lock(7305611)"); !r)
      return r.error();
    if (auto r =
            run(conn, "cluster_schema_version",
                "CREATE TABLE IF NOT EXISTS cluster_schema_version (version INTEGER NOT NULL)");
        !r)
      return r.error();
    auto v = run(conn, "cluster_schema_version",
                 "SELECT COALESCE(MAX(version), 0) FROM cluster_schema_version");
    if (!v)
      return v.error();
    int version = number<int>(v->get(), 0, 0);
    if (version > cluster_schema_version)
      return error{ec::mismatch, "the database's cluster tables are version " +
                                     std::to_string(version) + ", newer than this node's " +
                                     std::to_string(cluster_schema_version)};
    for (int step = version; step < cluster_schema_version; ++step) {
      result_ptr r{PQexec(conn, migrations[step])};
      if (PQresultStatus(r.get()) != PGRES_COMMAND_OK)
        return database_error(conn, r.get(),
                              "cluster migration to version " + std::to_string(step + 1));
      if (auto w = run(conn, "cluster_schema_version", "DELETE FROM cluster_schema_version"); !w)
        return w.error();
      if (auto w = run(conn, "cluster_schema_version",
                       "INSERT INTO cluster_schema_version (version) VALUES ($1::integer)",
                       {std::to_string(step + 1)});
          !w)
        return w.error();
    }
    auto count = std::to_string(shards);
    if (auto r = run(conn, "cluster_settings",
                     "INSERT INTO cluster_settings (key, value) VALUES ('shards', $1) "
                     "ON CONFLICT (key) DO NOTHING",
                     {count});
        !r)
      return r.error();
    auto recorded =
        run(conn, "cluster_settings", "SELECT value FROM cluster_settings WHERE key = 'shards'");
    if (!recorded)
      return recorded.error();
    std::string theirs = PQgetvalue(recorded->get(), 0, 0);
    if (theirs != count)
      return error{ec::mismatch,
                   "the cluster's database is set up for " + theirs + " shards and this node for " +
                       count + ": every node needs the same cluster.shards",
                   "shards"};
    if (auto r =
            run(conn, "cluster_leases",
                "INSERT INTO cluster_leases (shard) SELECT generate_series(0, $1::integer - 1) "
                "ON CONFLICT (shard) DO NOTHING",
                {count});
        !r)
      return r.error();
    return {};
  });
}

expected<std::vector<shard_epoch>> acquire(pg_conn* conn, std::string_view node,
                                           std::span<const std::uint32_t> candidates,
                                           std::chrono::milliseconds duration,
                                           bool unless_preferred_elsewhere) {
  if (candidates.empty())
    return std::vector<shard_epoch>{};
  static constexpr const char* sql = R"sql(
WITH c AS (
  SELECT l.shard FROM cluster_leases l
  WHERE l.shard = ANY($2::integer[])
    AND (l.owner IS NULL OR l.owner = $1 OR l.expires_at <= clock_timestamp())
    AND NOT ($4::boolean AND EXISTS (
      SELECT 1 FROM cluster_nodes n
      WHERE n.node_id <> $1 AND n.expires_at > clock_timestamp() AND l.shard = ANY(n.preferred)))
  ORDER BY l.shard
  FOR UPDATE OF l SKIP LOCKED)
UPDATE cluster_leases l
SET owner = $1, epoch = l.epoch + 1, acquired_at = clock_timestamp(),
    renewed_at = clock_timestamp(), expires_at = clock_timestamp() + $3::bigint * interval '1 millisecond'
FROM c WHERE l.shard = c.shard
RETURNING l.shard, l.epoch)sql";
  auto r = run(conn, "acquire leases", sql,
               {std::string{node}, number_array(candidates), std::to_string(duration.count()),
                unless_preferred_elsewhere ? "true" : "false"});
  if (!r)
    return r.error();
  return read_shard_epochs(r->get());
}

expected<std::vector<shard_epoch>> renew(pg_conn* conn, std::string_view node,
                                         std::span<const shard_epoch> held,
                                         std::chrono::milliseconds duration) {
  if (held.empty())
    return std::vector<shard_epoch>{};
  static constexpr const char* sql = R"sql(
WITH h AS (
  SELECT l.shard FROM cluster_leases l
  JOIN unnest($2::integer[], $3::bigint[]) AS c(shard, epoch) ON l.shard = c.shard AND l.epoch = c.epoch
  WHERE l.owner = $1 AND l.expires_at > clock_timestamp()
  ORDER BY l.shard
  FOR UPDATE OF l)
UPDATE cluster_leases l
SET renewed_at = clock_timestamp(), expires_at = clock_timestamp() + $4::bigint * interval '1 millisecond'
FROM h WHERE l.shard = h.shard
RETURNING l.shard, l.epoch)sql";
  auto [shards, epochs] = held_params(held);
  auto r = run(conn, "renew leases", sql,
               {std::string{node}, shards, epochs, std::to_string(duration.count())});
  if (!r)
    return r.error();
  return read_shard_epochs(r->get());
}

expected<std::optional<std::chrono::milliseconds>>
next_expiry(pg_conn* conn, std::string_view node, std::span<const std::uint32_t> candidates) {
  using result = std::optional<std::chrono::milliseconds>;
  if (candidates.empty())
    return result{};
  auto r = run(conn, "next lease expiry", R"sql(
SELECT ceil(extract(epoch FROM min(expires_at) - clock_timestamp()) * 1000)::bigint
FROM cluster_leases
WHERE shard = ANY($2::integer[]) AND owner <> $1 AND expires_at > clock_timestamp())sql",
               {std::string{node}, number_array(candidates)});
  if (!r)
    return r.error();
  if (PQgetisnull(r->get(), 0, 0))
    return result{};
  return result{std::chrono::milliseconds{number<std::int64_t>(r->get(), 0, 0)}};
}

expected<void> release(pg_conn* conn, std::string_view node, std::span<const shard_epoch> held) {
  if (held.empty())
    return {};
  static constexpr const char* sql = R"sql(
WITH h AS (
  SELECT l.shard FROM cluster_leases l
  JOIN unnest($2::integer[], $3::bigint[]) AS c(shard, epoch) ON l.shard = c.shard AND l.epoch = c.epoch
  WHERE l.owner = $1
  ORDER BY l.shard
  FOR UPDATE OF l)
UPDATE cluster_leases l
SET owner = NULL, renewed_at = clock_timestamp(), expires_at = clock_timestamp()
FROM h WHERE l.shard = h.shard)sql";
  auto [shards, epochs] = held_params(held);
  auto r = run(conn, "release leases", sql, {std::string{node}, shards, epochs});
  if (!r)
    return r.error();
  return {};
}

expected<void> heartbeat(pg_conn* conn, std::string_view node, std::string_view api_url,
                         std::span<const std::uint32_t> preferred,
                         std::chrono::milliseconds duration) {
  static constexpr const char* sql = R"sql(
INSERT INTO cluster_nodes (node_id, api_url, preferred, renewed_at, expires_at)
VALUES ($1, $2, $3::integer[], clock_timestamp(), clock_timestamp() + $4::bigint * interval '1 millisecond')
ON CONFLICT (node_id) DO UPDATE
SET api_url = EXCLUDED.api_url, preferred = EXCLUDED.preferred,
    renewed_at = EXCLUDED.renewed_at, expires_at = EXCLUDED.expires_at)sql";
  auto r = run(conn, "node heartbeat", sql,
               {std::string{node}, std::string{api_url}, number_array(preferred),
                std::to_string(duration.count())});
  if (!r)
    return r.error();
  return {};
}

expected<std::vector<lease_row>> list_leases(pg_conn* conn) {
  auto r = run(conn, "list leases", R"sql(
SELECT shard, coalesce(owner, ''), epoch,
       CASE WHEN isfinite(expires_at)
            THEN (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::bigint
            ELSE -1 END
FROM cluster_leases ORDER BY shard)sql");
  if (!r)
    return r.error();
  std::vector<lease_row> out;
  out.reserve(static_cast<std::size_t>(PQntuples(r->get())));
  for (int i = 0; i < PQntuples(r->get()); ++i)
    out.push_back({number<std::uint32_t>(r->get(), i, 0), PQgetvalue(r->get(), i, 1),
                   number<std::int64_t>(r->get(), i, 2),
                   std::chrono::milliseconds{number<std::int64_t>(r->get(), i, 3)}});
  return out;
}

expected<std::vector<node_row>> list_nodes(pg_conn* conn) {
  auto r = run(conn, "list nodes",
               "SELECT node_id, api_url, preferred, expires_at > clock_timestamp() "
               "FROM cluster_nodes ORDER BY node_id");
  if (!r)
    return r.error();
  std::vector<node_row> out;
  out.reserve(static_cast<std::size_t>(PQntuples(r->get())));
  for (int i = 0; i < PQntuples(r->get()); ++i)
    out.push_back({PQgetvalue(r->get(), i, 0), PQgetvalue(r->get(), i, 1),
                   parse_int_array(PQgetvalue(r->get(), i, 2)),
                   std::string_view{PQgetvalue(r->get(), i, 3)} == "t"});
  return out;
}

std::string_view fence_sql() {
  return "SELECT imeilock_fence($1, $2::integer[], $3::bigint[])";
}

std::vector<std::string> fence_params(std::string_view node, std::span<const shard_epoch> claims) {
  auto [shards, epochs] = held_params(claims);
  return {std::string{node}, std::move(shards), std::move(epochs)};
}

expected<void> check_fence(pg_conn* txn, std::string_view node,
                           std::span<const shard_epoch> claims) {
  auto params = fence_params(node, claims);
  const char* values[] = {params[0].c_str(), params[1].c_str(), params[2].c_str()};
  std::string sql{fence_sql()};
  result_ptr r{PQexecParams(txn, sql.c_str(), 3, nullptr, values, nullptr, nullptr, 0)};
  if (r && PQresultStatus(r.get()) == PGRES_TUPLES_OK)
    return {};
  const char* state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
  if (state && std::string_view{state} == fence_sqlstate)
    return error{ec::fenced, PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY)};
  return database_error(txn, r.get(), "fencing check");
}

} // namespace imeilock::cluster
