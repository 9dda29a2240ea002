#!/usr/bin/env python3
"""How fast a bulk job runs on a cluster (issue 11, docs/cluster.md "Bulk jobs on more
than one node"): the same job on one cluster node holding every shard, then on
NODES nodes sharing them.

For each run a throwaway database (tests/integration/pg.py) gets SIMS SIMs written
straight into the store's tables (one IMSI each, their last four digits spread over
every shard); the nodes start on it (SHARDS shards, split evenly), then a bulk bar
by filter ({}: every SIM) is created on the first node and read there until it has
completed. Bar orders complete 10 ms after they are placed, so the job's bound on
open orders (1000) does not hold it back. Printed per run: the time from the POST
to completed, orders per second, and the share of each node.

    IMEILOCKD=build/daemon/imeilockd bench/cluster_jobs.py [SIMS] [NODES] [SHARDS]
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness as h  # noqa: E402
import pg  # noqa: E402

EXTRA = """
orders:
  networks:
    multinet:
      rate_per_second: 100000
      burst: 100000
      max_in_flight: 100000
      max_queue: 100000
      lead_times:
        bar: 10ms
"""


def run(server, db, sims, count, shards):
    conninfo = server.create_database(db)
    per = shards // count
    layout = {f"node-{i}": list(range(i * per, shards if i == count - 1 else (i + 1) * per))
              for i in range(count)}
    nodes = h.cluster_nodes(conninfo, layout, shards, EXTRA, claim_others_after="30s")
    first = next(iter(nodes.values()))
    first.start()  # creates the schema
    assert first.stop() == 0
    server.query(db, f"INSERT INTO sims (iccid, network, status, home_suffix) SELECT '8944' || "
                     f"lpad(i::text, 15, '0'), 'multinet', 1, (i * 7) % 10000 FROM "
                     f"generate_series(1, {sims}) i")
    server.query(db, f"INSERT INTO imsis (imsi, iccid) SELECT 234150000000000 + i * 7, '8944' || "
                     f"lpad(i::text, 15, '0') FROM generate_series(1, {sims}) i")
    server.query(db, "ANALYZE")
    try:
        h.start_all(nodes.values())
        h.wait_until(lambda: len(server.query(db, "SELECT 1 FROM cluster_leases WHERE owner IS "
                                                  "NOT NULL")) == shards, timeout=60,
                     what="every shard held")
        t0 = time.monotonic()
        st, job = first.api("POST", "/v1/orders:bulk", {"type": "bar", "filter": {}})
        assert st == 202, (st, job)

        def ended():
            st, j = first.api("GET", f"/v1/jobs/{job['id']}")
            return j if j["state"] != "running" else None
        done = h.wait_until(ended, timeout=3600, interval=0.05, what="the job to end")
        took = time.monotonic() - t0
        assert done["state"] == "completed" and done["placed"] == sims, done
        by_node = server.query(db, f"SELECT node, sum(placed) FROM cluster_job_parts WHERE "
                                   f"job_id = {int(job['id'])} GROUP BY node ORDER BY node")
        print(f"{sims} SIMs, {count} node(s), {shards} shards: {took:.2f} s from POST to "
              f"completed, {sims / took:.0f} orders/s; placed per node: "
              + ", ".join(f"{n} {p}" for n, p in by_node), flush=True)
    finally:
        for d in nodes.values():
            d.stop()
            d.__exit__(None, None, None)


def main():
    sims = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    shards = int(sys.argv[3]) if len(sys.argv) > 3 else 6
    server = pg.server_or_skip()
    with server:
        run(server, "one", sims, 1, shards)
        run(server, "many", sims, count, shards)


if __name__ == "__main__":
    main()
