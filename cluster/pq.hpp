#pragma once
// What cluster/'s libpq code shares (leases.cpp, inbox.cpp): running a
// statement with text parameters, the error of a failed one, PostgreSQL array
// literals. Internal to cluster/; the public functions take a pg_conn*.

#include "cluster/leases.hpp"
#include "common/error.hpp"

#include <libpq-fe.h>

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
