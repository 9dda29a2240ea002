#pragma once
// A throwaway PostgreSQL server for the tests (store suite, cluster tests):
// initdb into a temporary directory, postgres listening only on a unix socket
// in that directory (listen_addresses=''), fsync off, stopped and removed at
// the end. As root (CI) initdb and postgres run as the `postgres` system user
// (they refuse root). The server is tied to this process through a pipe: if
// the test dies, it stops too.
//
//   auto* pg = test::postgres_server::shared();   // started on first use
//   if (!pg->ok()) { WARN(pg->why_not()); return; }  // skipped, says why
//   auto conninfo = pg->fresh_database();          // "host=/tmp/... dbname=t3"
//
// The binaries come from IMEILOCK_PG_BINDIR, else /usr/lib/postgresql/15/bin.

#include <string>
#include <vector>

#include <sys/types.h>

namespace imeilock::test {

class postgres_server {
public:
  /// One server per test process, started on first call, stopped at exit.
  static postgres_server& shared();

  postgres_server();
  ~postgres_server();
  postgres_server(const postgres_server&) = delete;
  postgres_server& operator=(const postgres_server&) = delete;

  /// Whether the server runs; else why_not() says why (the tests skip).
  bool ok() const { return running_; }
  const std::string& why_not() const { return why_; }

  /// The connection string of database `db` on this server.
  std::string conninfo(const std::string& db = "postgres") const;
  /// A new empty database (t1, t2, ...); its connection string.
  std::string fresh_database();

  /// Stops the server: `immediate` as after a crash (pg_ctl stop -m immediate),
  /// else a fast shutdown. Connections break.
  void stop(bool immediate = true);
  /// Starts it again on the same data directory and socket; false on failure.
  bool start();

  /// The socket directory (also the connection's host).
  const std::string& dir() const { return dir_; }

private:
  bool launch();
  std::string bindir_;
  std::string dir_;
  std::string why_;
  bool as_postgres_ = false;
  bool running_ = false;
  pid_t pid_ = -1;
  int keepalive_ = -1; ///< write end of the pipe whose EOF stops the server
  int next_db_ = 0;
};

/// Runs `sql` on `conninfo` (libpq); the rows as text. Throws on an error.
std::vector<std::vector<std::string>> pg_query(const std::string& conninfo, const std::string& sql);

} // namespace imeilock::test
