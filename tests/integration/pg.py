"""A throwaway PostgreSQL server for the integration tests (the C++ twin is
tests/support/postgres.hpp; the cluster tests reuse both).

initdb into a temporary directory, postgres listening only on a unix socket in
that directory (listen_addresses=''), fsync off (a kill loses nothing
committed; only a power loss would), started and stopped with pg_ctl. As root
(CI) initdb, pg_ctl and postgres run as the `postgres` system user: they refuse
root.

    with pg.PostgresServer() as server:        # skips the test (exit 77) if it cannot run
        conninfo = server.create_database("imeilock")
        server.stop("immediate")                  # pg_ctl stop -m immediate
        server.start()
        rows = server.query("imeilock", "SELECT count(*) FROM sims")

The binaries come from $IMEILOCK_PG_BINDIR, else /usr/lib/postgresql/15/bin.
"""
import atexit
import os
import pwd
import shutil
import subprocess
import sys
import tempfile

BINDIR = os.environ.get("IMEILOCK_PG_BINDIR") or "/usr/lib/postgresql/15/bin"
SKIP = 77  # ctest SKIP_RETURN_CODE of the tests that use this


class Unavailable(Exception):
    """PostgreSQL cannot run here; the message says why."""


class PostgresServer:
    def __init__(self):
        if not all(os.path.exists(os.path.join(BINDIR, b)) for b in ("initdb", "pg_ctl", "psql")):
            raise Unavailable(f"PostgreSQL is not installed (no initdb/pg_ctl/psql in {BINDIR}; "
                              "apt-get install postgresql-15, or set IMEILOCK_PG_BINDIR)")
        self.dir = tempfile.mkdtemp(prefix="imeilock-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.dir, ignore_errors=True)
                raise Unavailable("running as root and there is no `postgres` user to run "
                                  "initdb/postgres as") from None
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.running = False
        atexit.register(self.close)
        r = self._run([os.path.join(BINDIR, "initdb"), "-D", self.data, "-N", "-A", "trust",
                       "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-instructions"])
        if r.returncode != 0:
            self.close()
            raise Unavailable(f"initdb failed: {r.stdout[-2000:]}")
        self.start()

    def _run(self, argv, timeout=60):
        if self.as_postgres:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def start(self):
        """pg_ctl start on the same data directory and socket; waits until it accepts."""
        opts = f"-k {self.dir} -c listen_addresses='' -c fsync=off -c max_connections=200"
        r = self._run([os.path.join(BINDIR, "pg_ctl"), "-D", self.data, "-o", opts,
                       "-l", self.log_path, "-w", "-t", "30", "start"])
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {r.stdout}\n{self.log()}")
        self.running = True

    def stop(self, mode="fast"):
        """pg_ctl stop -m MODE (immediate: as a crash; connections break)."""
        if not self.running:
            return
        r = self._run([os.path.join(BINDIR, "pg_ctl"), "-D", self.data, "-m", mode, "-w",
                       "-t", "30", "stop"])
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {r.stdout}")
        self.running = False

    def conninfo(self, db="postgres"):
        return f"host={self.dir} user=postgres dbname={db}"

    def create_database(self, name):
        self.query("postgres", f"CREATE DATABASE {name}")
        return self.conninfo(name)

    def query(self, db, sql):
        """Rows of `sql` on database `db`, each a list of strings (psql -At)."""
        r = subprocess.run([os.path.join(BINDIR, "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-At",
                            "-F", "\t", "-d", self.conninfo(db), "-c", sql],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError(f"psql: {sql}: {r.stderr}")
        return [line.split("\t") for line in r.stdout.splitlines() if line]

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        try:
            self.stop("immediate")
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def server_or_skip():
    """A started server, or exit 77 (ctest: skipped) saying why."""
    try:
        return PostgresServer()
    except Unavailable as e:
        print(f"SKIP: {e}", file=sys.stderr)
        sys.exit(SKIP)
