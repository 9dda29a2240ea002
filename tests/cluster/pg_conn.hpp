#pragma once
// A libpq connection for the cluster tests, closed at scope end.

#include "tests/support/postgres.hpp"

#include <libpq-fe.h>

#include <catch2/catch.hpp>

#include <memory>
#include <string>

namespace imeilock::test {

struct conn_closer {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using conn_ptr = std::unique_ptr<PGconn, conn_closer>;

inline conn_ptr connect(const std::string& conninfo) {
  conn_ptr c{PQconnectdb(conninfo.c_str())};
  REQUIRE(PQstatus(c.get()) == CONNECTION_OK);
  return c;
}

/// Runs one statement; REQUIREs success; the first column of the first row ("" if none).
inline std::string exec(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  auto st = PQresultStatus(r);
  INFO(sql << ": " << PQresultErrorMessage(r));
  bool ok = st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
  std::string first = ok && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
  PQclear(r);
  REQUIRE(ok);
  return first;
}

/// The shared server, or skip the test case with the reason.
#define IMEILOCK_REQUIRE_POSTGRES(pg)                                                              \
  auto& pg = ::imeilock::test::postgres_server::shared();                                          \
  if (!pg.ok()) {                                                                                  \
    WARN(pg.why_not());                                                                            \
    return;                                                                                        \
  }

} // namespace imeilock::test
