#pragma once
// What cluster/'s libpq code shares (leases.cpp, inbox.cpp, jobs.cpp): running
// a statement with text parameters, the error of a failed one, COMMIT and
// ROLLBACK, PostgreSQL array literals, a connection that comes back with
// backoff. Internal to cluster/; the public functions take a pg_conn*.

#include "cluster/leases.hpp"
#include "common/error.hpp"

#include <libpq-fe.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace imeilock::cluster {

struct result_deleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
/// A statement's result, cleared when it goes.
using result_ptr = std::unique_ptr<PGresult, result_deleter>;

/// Connects with `conninfo` (a connection string or URI). A server that does
/// not answer fails the attempt after 5 s unless `conninfo` sets its own
/// connect_timeout: libpq's default is to wait for the kernel's TCP timeout,
/// minutes during which a lease could not be renewed nor a job answered.
/// Never null (libpq's rule): check PQstatus.
pg_conn* connect(const std::string& conninfo);

/// libpq's messages span lines ("server closed the connection\n\tThis
/// probably means..."): one line for the log.
std::string one_line(std::string message);

/// The error of a failed statement (ec::database): `what`, then the server's
/// message, else the connection's.
error database_error(pg_conn* conn, const PGresult* r, std::string_view what);

/// Runs `sql` with text parameters; the result (rows or a command's status),
/// or the error naming `what`.
expected<result_ptr> run(pg_conn* conn, std::string_view what, const char* sql,
                         const std::vector<std::string>& params = {});
inline expected<result_ptr> run(pg_conn* conn, std::string_view what, const std::string& sql,
                                const std::vector<std::string>& params = {}) {
  return run(conn, what, sql.c_str(), params);
}

/// COMMIT, and whether it did: a transaction that had failed answers COMMIT
/// with "ROLLBACK".
expected<void> commit(pg_conn* conn, std::string_view what);

/// ROLLBACK, best effort: the error that led to it is the caller's to report.
void rollback(pg_conn* conn);

/// A PostgreSQL array literal of text values ({"a","b\"c"}) from any range of
/// strings or string_views.
template <class Texts>
std::string text_array(const Texts& values) {
  std::string out = "{";
  bool first = true;
  for (std::string_view v : values) {
    if (!first)
      out += ',';
    first = false;
    out += '"';
    for (char c : v) {
      if (c == '"' || c == '\\')
        out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

/// A connection of a background thread that comes back by itself: get()
/// connects when there is no usable connection, at most once per backoff
/// period (doubling from `first_retry` up to 5 s), and logs the loss once
/// and the return once. Not thread-safe: one owning thread.
class reconnecting_connection {
public:
  /// What the log says: `<event>_disconnected` with `action`, then
  /// `<event>_connected` ("cluster.gate" -> cluster.gate_connected).
  struct log_events {
    std::string event;
    std::string node_id;
    std::string action; ///< what fails while the database is away
  };

  reconnecting_connection(std::string conninfo, std::chrono::milliseconds first_retry,
                          log_events events);
  ~reconnecting_connection();
  reconnecting_connection(const reconnecting_connection&) = delete;
  reconnecting_connection& operator=(const reconnecting_connection&) = delete;

  /// A usable connection, or null until the next attempt is due.
  pg_conn* get();
  /// Drops the connection if a failed statement left it broken (the next
  /// get() reconnects); a statement's own error keeps it.
  void drop_if_broken();

private:
  void close();

  std::string conninfo_;
  std::chrono::milliseconds first_retry_;
  std::chrono::milliseconds retry_;
  log_events events_;
  pg_conn* conn_ = nullptr;
  bool said_disconnected_ = false;
  std::chrono::steady_clock::time_point next_attempt_{};
};

/// A PostgreSQL array literal of numbers ({1,2,3}) from a vector or a span.
template <class Numbers>
std::string number_array(const Numbers& values) {
  std::string out = "{";
  for (const auto& v : values) {
    if (out.size() > 1)
      out += ',';
    out += std::to_string(v);
  }
  return out + "}";
}

} // namespace imeilock::cluster
