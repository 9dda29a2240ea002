#include "tests/support/postgres.hpp"

#include <libpq-fe.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace imeilock::test {

namespace fs = std::filesystem;

namespace {

/// 'text' quoted for sh.
std::string sh_quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

} // namespace

postgres_server& postgres_server::shared() {
  static postgres_server server;
  return server;
}

postgres_server::postgres_server() {
  const char* env = std::getenv("IMEILOCK_PG_BINDIR");
  bindir_ = env && *env ? env : "/usr/lib/postgresql/15/bin";
  if (!fs::exists(fs::path(bindir_) / "initdb") || !fs::exists(fs::path(bindir_) / "postgres")) {
    why_ = "PostgreSQL is not installed (no initdb/postgres in " + bindir_ +
           "; apt-get install postgresql-15, or set IMEILOCK_PG_BINDIR): PostgreSQL tests skipped";
    return;
  }
  char tmpl[] = "/tmp/imeilock-pg-XXXXXX";
  if (!::mkdtemp(tmpl)) {
    why_ = "cannot create a temporary directory: PostgreSQL tests skipped";
    return;
  }
  dir_ = tmpl;
  if (::geteuid() == 0) {
    // initdb and postgres refuse to run as root: run them as `postgres`.
    const passwd* pw = ::getpwnam("postgres");
    if (!pw || ::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      why_ = "running as root and there is no usable `postgres` user: PostgreSQL tests skipped";
      return;
    }
    as_postgres_ = true;
  }
  std::string initdb = sh_quoted(bindir_ + "/initdb") + " -D " + sh_quoted(dir_ + "/data") +
                       " -N -A trust -U postgres -E UTF8 --locale=C --no-instructions > " +
                       sh_quoted(dir_ + "/initdb.log") + " 2>&1";
  std::string cmd = as_postgres_ ? "runuser -u postgres -- sh -c " + sh_quoted(initdb) : initdb;
  if (std::system(cmd.c_str()) != 0) {
    why_ = "initdb failed (see " + dir_ + "/initdb.log): PostgreSQL tests skipped";
    return;
  }
  if (!launch())
    why_ = "postgres did not start (see " + dir_ + "/postgres.log): PostgreSQL tests skipped";
}

postgres_server::~postgres_server() {
  stop(true);
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

bool postgres_server::launch() {
  // sh starts postgres in the background and waits for EOF on its stdin (our
  // pipe): when we close it, or die, sh stops the server at once.
  std::string server = sh_quoted(bindir_ + "/postgres") + " -D " + sh_quoted(dir_ + "/data") +
                       " -k " + sh_quoted(dir_) +
                       // fsync off: a kill (the outage tests) loses nothing
                       // committed, only a power loss would.
                       " -c listen_addresses= -c fsync=off -c max_connections=200 >> " +
                       sh_quoted(dir_ + "/postgres.log") +
                       " 2>&1 & pid=$!; read _ignored; kill -QUIT $pid; wait $pid";
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return false;
  pid_t child = ::fork();
  if (child < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return false;
  }
  if (child == 0) {
    ::dup2(fds[0], 0);
    ::close(fds[0]);
    ::close(fds[1]);
    if (as_postgres_)
      ::execlp("runuser", "runuser", "-u", "postgres", "--", "sh", "-c", server.c_str(),
               static_cast<char*>(nullptr));
    else
      ::execl("/bin/sh", "sh", "-c", server.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[0]);
  pid_ = child;
  keepalive_ = fds[1];
  auto info = conninfo();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
  while (std::chrono::steady_clock::now() < deadline) {
    if (PQping(info.c_str()) == PQPING_OK) {
      running_ = true;
      return true;
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  stop(true);
  return false;
}

void postgres_server::stop(bool immediate) {
  if (keepalive_ >= 0) {
    if (!immediate && pid_ > 0) {
      // A fast shutdown (SIGINT to the postmaster), then the wrapper's QUIT finds it gone.
      std::string pidfile = dir_ + "/data/postmaster.pid";
      if (FILE* f = std::fopen(pidfile.c_str(), "r")) {
        long pm = 0;
        if (std::fscanf(f, "%ld", &pm) == 1 && pm > 0)
          ::kill(static_cast<pid_t>(pm), SIGINT);
        std::fclose(f);
      }
    }
    ::close(keepalive_);
    keepalive_ = -1;
  }
  if (pid_ > 0) {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  running_ = false;
}

bool postgres_server::start() {
  if (running_)
    return true;
  if (dir_.empty() || !why_.empty())
    return false;
  return launch();
}

std::string postgres_server::conninfo(const std::string& db) const {
  return "host=" + dir_ + " user=postgres dbname=" + db;
}

std::string postgres_server::fresh_database() {
  auto name = "t" + std::to_string(++next_db_);
  pg_query(conninfo(), "CREATE DATABASE " + name);
  return conninfo(name);
}

std::vector<std::vector<std::string>> pg_query(const std::string& conninfo,
                                               const std::string& sql) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string e = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("connect: " + e);
  }
  PGresult* r = PQexec(c, sql.c_str());
  auto st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    std::string e = PQresultErrorMessage(r);
    PQclear(r);
    PQfinish(c);
    throw std::runtime_error(sql + ": " + e);
  }
  std::vector<std::vector<std::string>> rows;
  for (int i = 0; i < PQntuples(r); ++i) {
    auto& row = rows.emplace_back();
    for (int j = 0; j < PQnfields(r); ++j)
      row.emplace_back(PQgetvalue(r, i, j));
  }
  PQclear(r);
  PQfinish(c);
  return rows;
}

} // namespace imeilock::test
