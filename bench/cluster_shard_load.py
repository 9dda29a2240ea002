#!/usr/bin/env python3
"""How long a cluster node takes to load its shards (issue 11, DESIGN §6).

A throwaway PostgreSQL (tests/integration/pg.py) gets SIMS SIMs written straight
into the store's tables (generate_series: one IMSI each, their last four digits
spread over every shard); one imeilockd node with cluster.enabled, SHARDS shards,
all preferred, then starts on it. Printed: each shard's load time as the node
logs it (cluster.shard_served load_ms, SIMs), their sum, and the time from the
start until /readyz answers 200 (every shard it holds loaded). A takeover loads
the dead node's shards the same way, so a shard's load time is what a takeover
adds to the lease expiry.

    IMEILOCKD=build/daemon/imeilockd bench/cluster_shard_load.py [SIMS] [SHARDS]
"""
import os
import re
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness as h  # noqa: E402
import pg  # noqa: E402


def main():
    sims = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    shards = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    server = pg.server_or_skip()
    conninfo = server.create_database("imeilock")
    state_dir = tempfile.mkdtemp(prefix="imeilockd-bench-")
    cluster = (f"cluster:\n  enabled: true\n  node_id: bench\n  shards: {shards}\n"
               f"  preferred_shards: [\"0-{shards - 1}\"]\n")
    config = h.default_config(state_dir, cluster).replace(
        f"    path: {state_dir}/imeilockd.db",
        f"    backend: postgresql\n    postgresql:\n      conninfo: \"{conninfo}\"")
    d = h.Daemon(config_text=config, state_dir=state_dir, cleanup=True)
    with server:
        d.start()  # creates the schema
        assert d.stop() == 0
        t0 = time.monotonic()
        # IMSI 234150000000000 + i * 7: the last four digits walk every shard.
        # Schema 7 keeps each SIM's home suffix (its lowest IMSI's last four
        # digits) in sims, as the store's upserts do; an older binary's schema
        # has no such column.
        home = server.query("imeilock", "SELECT count(*) FROM information_schema.columns WHERE "
                            "table_name = 'sims' AND column_name = 'home_suffix'") == [["1"]]
        server.query("imeilock", "INSERT INTO sims (iccid, network, status"
                     + (", home_suffix" if home else "") + ") SELECT '8944' || "
                     "lpad(i::text, 15, '0'), 'multinet', 1"
                     + (", (i * 7) % 10000" if home else "")
                     + f" FROM generate_series(1, {sims}) i")
        server.query("imeilock", "INSERT INTO imsis (imsi, iccid) SELECT 234150000000000 + i * 7, "
                     f"'8944' || lpad(i::text, 15, '0') FROM generate_series(1, {sims}) i")
        server.query("imeilock", "ANALYZE")
        print(f"{sims} SIMs written in {time.monotonic() - t0:.1f} s")
        t0 = time.monotonic()
        # The log file holds the first start's lines too (20 shards served
        # with no SIM): only this start's count.
        log_from = len(d.log())
        d.start(timeout=600)
        h.wait_until(lambda: d.api("GET", "/readyz", token=None, timeout=30)[0] == 200,
                     timeout=1200, interval=0.2, what="ready")
        ready = time.monotonic() - t0

        def served():
            return [(int(m.group(1)), int(m.group(2))) for m in re.finditer(
                r"cluster\.shard_served .*?sims=(\d+).*?load_ms=(\d+)", d.log()[log_from:])]
        # /readyz can answer before the last shard's line is in the log.
        h.wait_until(lambda: len(served()) >= shards, timeout=600, interval=0.2,
                     what="every shard's cluster.shard_served line")
        loads = served()
        assert len(loads) == shards, d.log()[-3000:]
        assert sum(n for n, _ in loads) == sims, loads
        ms = sorted(t for _, t in loads)
        print(f"{shards} shards of ~{sims // shards} SIMs: load per shard p50 {ms[len(ms) // 2]} ms,"
              f" max {ms[-1]} ms, sum {sum(ms)} ms; ready {ready:.1f} s after start")
        d.stop()


if __name__ == "__main__":
    main()
