#!/usr/bin/env python3
"""Bulk jobs on a cluster (issue 11, docs/cluster.md "Bulk jobs on more than one node").

Three real imeilockd cluster nodes on one PostgreSQL started by the test, 6 shards
(node-a prefers 0-1, node-b 2-3, node-c 4-5), SIMs of every shard.

  - a job by list created on node A over SIMs of every shard: each node places the
    orders of the shards it serves; progress read on node B lies between two reads
    on A (and equals it at the end), the job completes, every SIM has exactly one
    order (in the store: orders and job_orders);
  - kill -9 of a node in the middle of a slower job (the node whose parts have come
    least far, possibly the creator): its shards move to the survivors, which finish
    its parts; the job completes, every SIM has exactly one order of the job, none
    has two; the killed node comes back;
  - a job by filter created on node A, cancelled on node C: every node stops
    placing (the count of its orders stays put), what was placed stays.

Printed: the first job's time and orders per second (SIMs / creation to completed).
"""
import math
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402

SHARDS = 6
NODES = {"node-a": [0, 1], "node-b": [2, 3], "node-c": [4, 5]}

# "multinet" completes orders as fast as the job places them; "paced" and "other"
# complete 50 orders a second per node (50 in flight, 1 s lead time), so that a
# job of 1500 SIMs, which waits while 1000 of its orders are open, runs for seconds.
EXTRA = """
orders:
  networks:
    multinet:
      rate_per_second: 100000
      burst: 100000
      max_in_flight: 100000
      max_queue: 100000
      lead_times:
        bar: 200ms
    paced:
      rate_per_second: 100000
      burst: 100000
      max_in_flight: 50
      max_queue: 100000
      lead_times:
        bar: 1s
    other:
      rate_per_second: 100000
      burst: 100000
      max_in_flight: 50
      max_queue: 100000
      lead_times:
        bar: 1s
"""


def owner_of(shard):
    return next(n for n, shards in NODES.items() if shard in shards)


def imsi_in_shard(shard, n):
    """An IMSI of `shard` (docs/cluster.md: last four digits × shards / 10000)."""
    suffix = math.ceil(shard * 10000 / SHARDS) + n % 1000
    imsi = f"23415{n:06d}{suffix:04d}"
    assert h.shard_of(imsi, SHARDS) == shard, (imsi, shard)
    return imsi


def make_sims(nodes, first, count, network):
    """`count` SIMs over every shard, each PUT at its shard's owner (4 threads).
    Returns {iccid: shard}."""
    sims = {}
    for k in range(count):
        n = first + k
        sims[h.iccid(n)] = (k % SHARDS, imsi_in_shard(k % SHARDS, n))
    items = list(sims.items())
    errors = []

    def put(part):
        for iccid, (shard, imsi) in part:
            st, body = nodes[owner_of(shard)].api("PUT", f"/v1/sims/{iccid}", {
                "imsis": [imsi], "msisdn": "447700900123", "network": network,
                "status": "active"})
            if st != 201:
                errors.append((iccid, st, body))

    threads = [threading.Thread(target=put, args=(items[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    return {iccid: shard for iccid, (shard, imsi) in sims.items()}


def job(d, job_id):
    st, j = d.api("GET", f"/v1/jobs/{job_id}")
    assert st == 200, (st, j)
    return j


def wait_job(d, job_id, timeout=120.0):
    return h.wait_until(lambda: (lambda j: j if j["state"] != "running" else None)(job(d, job_id)),
                        timeout=timeout, interval=0.1, what=f"job {job_id} to end")


def orders_per_sim(server, iccids):
    """{iccid: number of orders} from the store, for `iccids`."""
    rows = server.query("imeilock", "SELECT iccid, count(*) FROM orders GROUP BY iccid")
    got = {iccid: int(n) for iccid, n in rows}
    return {i: got.get(i, 0) for i in iccids}


def job_links(server, job_id):
    """{iccid: links} of job `job_id` in job_orders."""
    rows = server.query("imeilock", f"SELECT iccid, count(*) FROM job_orders WHERE job_id = "
                                    f"{int(job_id)} GROUP BY iccid")
    return {iccid: int(n) for iccid, n in rows}


def leases(server):
    return {int(s): o for s, o in server.query("imeilock",
                                               "SELECT shard, owner FROM cluster_leases")}


def main():
    with h.pg_cluster(NODES, SHARDS, EXTRA, claim_others_after="2s", lease_duration="2s",
                      renew_interval="500ms") as (server, nodes):
        h.wait_until(lambda: leases(server) == {s: owner_of(s) for s in range(SHARDS)},
                     timeout=20, what="each node holds its preferred shards")
        a, b, c = nodes["node-a"], nodes["node-b"], nodes["node-c"]

        # -- 1. a job by list over every shard, created on A ----------------------
        fast = make_sims(nodes, 1000, 600, "multinet")
        unknown = h.iccid(999_999)
        t0 = time.monotonic()
        st, created = a.api("POST", "/v1/orders:bulk",
                            {"type": "bar", "iccids": sorted(fast) + [unknown]})
        h.check(st == 202 and created["state"] == "running" and created["total"] == 601,
                f"a bulk bar over {len(fast)} SIMs of {SHARDS} shards is accepted on node A "
                f"({st}, {created.get('total')})")
        jid = created["id"]
        seen_between = 0
        while True:
            a1 = job(a, jid)
            bj = job(b, jid)
            a2 = job(a, jid)
            assert a1["processed"] <= bj["processed"] <= a2["processed"], (a1, bj, a2)
            if 0 < bj["processed"] < 601:
                seen_between += 1
            if a2["state"] != "running":
                break
            assert time.monotonic() - t0 < 120, "job 1 did not end"
            time.sleep(0.02)
        done = wait_job(a, jid)
        took = time.monotonic() - t0
        h.check(done["state"] == "completed" and done["processed"] == 601 and
                done["placed"] == 600 and done["refused"] == 1,
                f"the job completes: 600 placed, 1 refused ({done['placed']}, {done['refused']})")
        h.check([r["iccid"] for r in done["refusals"]] == [unknown],
                f"the unknown ICCID is the refusal ({done['refusals']})")
        keys = ("state", "total", "processed", "placed", "refused", "finished_at")
        for other in (b, c):
            theirs = job(other, jid)
            h.check(all(theirs.get(k) == done.get(k) for k in keys),
                    f"node {other.name} reads the same progress as node A")
        print(f"progress read on node B between two reads on A {seen_between} times while "
              f"running")
        links = job_links(server, jid)
        counts = orders_per_sim(server, fast)
        h.check(sorted(links) == sorted(fast) and set(links.values()) == {1} and
                set(counts.values()) == {1},
                "every SIM has exactly one order, linked once to the job")
        placed_by = {}
        for node, shard in server.query("imeilock", f"SELECT node, shard FROM cluster_job_parts "
                                                    f"WHERE job_id = {int(jid)}"):
            placed_by.setdefault(node, []).append(int(shard))
        h.check(placed_by == {n: sorted(s) for n, s in NODES.items()} or
                {n: sorted(v) for n, v in placed_by.items()} == NODES,
                f"each node ran the parts of its own shards ({placed_by})")
        print(f"job 1: {len(fast)} SIMs over {len(NODES)} nodes and {SHARDS} shards in "
              f"{took:.2f} s, {len(fast) / took:.0f} orders/s (POST to completed, read on A)")

        # -- 2. kill -9 of a node in the middle of a job ----------------------------
        # 1500 SIMs on "paced": a job waits while 1000 of its orders are open, and
        # they complete at 50 per node and second, so the job runs for seconds.
        paced = make_sims(nodes, 5000, 1500, "paced")
        t0 = time.monotonic()
        st, created = b.api("POST", "/v1/orders:bulk", {"type": "bar", "iccids": sorted(paced)})
        assert st == 202, (st, created)
        jid = created["id"]
        # Past the 1000 open orders: the nodes that began first wait, the others
        # (a node sees a job created elsewhere at its next poll, 1 s) place as
        # orders complete.
        h.wait_until(lambda: job(a, jid)["processed"] >= 1100, timeout=60,
                     what="job 2 under way")
        # The victim: the node whose shards' parts have come least far (not done).
        progress = {n: 0 for n in NODES}
        done_shards = set()
        for shard, processed, is_done in server.query(
                "imeilock", f"SELECT shard, processed, done FROM cluster_job_parts "
                            f"WHERE job_id = {int(jid)}"):
            progress[owner_of(int(shard))] += int(processed)
            if is_done == "t":
                done_shards.add(int(shard))
        victim = min((n for n in NODES if not set(NODES[n]) <= done_shards), key=progress.get)
        nodes[victim].kill9()
        killed_at = time.monotonic()
        open_parts = sorted(set(NODES[victim]) - done_shards)  # its parts not done at the kill
        at_kill = job(next(d for n, d in nodes.items() if n != victim), jid)["processed"]
        alive = [d for n, d in nodes.items() if n != victim]
        h.check(at_kill < len(paced),
                f"{victim} killed with kill -9 while its part ran ({progress[victim]} of its "
                f"{len(paced) // len(NODES)} SIMs, {at_kill} of {len(paced)} in all)")
        h.wait_until(lambda: victim not in leases(server).values(), timeout=30,
                     what=f"{victim}'s shards taken over")
        moved = time.monotonic() - killed_at
        done = wait_job(alive[0], jid, timeout=180)
        h.check(done["state"] == "completed" and done["processed"] == len(paced) and
                done["placed"] == len(paced),
                f"the job completes after the takeover: {done['placed']} of {len(paced)} placed, "
                f"{done['refused']} refused ({done['refused_reasons']})")
        h.check(job(alive[1], jid)["placed"] == len(paced), "the other survivor reads the same")
        links = job_links(server, jid)
        counts = orders_per_sim(server, paced)
        twice = {i: n for i, n in counts.items() if n != 1}
        h.check(sorted(links) == sorted(paced) and set(links.values()) == {1} and not twice,
                f"every SIM has exactly one order of the job, none two ({len(twice)} differ)")
        parts = server.query("imeilock", f"SELECT shard, node, done FROM cluster_job_parts "
                                         f"WHERE job_id = {int(jid)}")
        theirs = [(int(sh), n, dn) for sh, n, dn in parts if int(sh) in open_parts]
        h.check(len(theirs) == len(open_parts) and
                all(n != victim and dn == "t" for sh, n, dn in theirs),
                f"{victim}'s parts not done at the kill (shards {open_parts}) were finished by "
                f"the survivors ({theirs})")
        print(f"job 2: {len(paced)} SIMs, {victim} killed at {at_kill} processed; its shards "
              f"moved {moved:.2f} s after the kill; completed {time.monotonic() - t0:.2f} s "
              f"after creation")
        nodes[victim].start()
        h.wait_until(lambda: nodes[victim].api("GET", "/readyz", token=None)[0] == 200,
                     timeout=30, what=f"{victim} back")

        # -- 3. a job by filter created on A, cancelled on C --------------------------
        # As job 2: it waits at 1000 open orders, which complete within seconds; a
        # runner that missed the cancel would place the rest then.
        other = make_sims(nodes, 20000, 1500, "other")
        st, created = a.api("POST", "/v1/orders:bulk",
                            {"type": "bar", "filter": {"network": "other"}})
        assert st == 202 and created["total"] == len(other), (st, created)
        jid = created["id"]
        h.wait_until(lambda: job(b, jid)["processed"] >= 900, timeout=60, what="job 3 under way")
        st, cancelled = c.api("POST", f"/v1/jobs/{jid}:cancel")
        h.check(st == 200 and cancelled["state"] == "cancelled",
                f"node-c cancels the job node A created ({st}, {cancelled.get('state')})")
        st, again = b.api("POST", f"/v1/jobs/{jid}:cancel")
        h.check(st == 409, f"a second cancel, on node B, answers 409 ({st})")
        time.sleep(1.0)  # the windows in hand are answered
        before = sum(job_links(server, jid).values())
        time.sleep(3.0)  # the open orders complete: a runner still going would place more
        after = sum(job_links(server, jid).values())
        h.check(before == after < len(other),
                f"no node places an order of the cancelled job ({before} then {after} of "
                f"{len(other)})")
        for d in (a, b, c):
            j = job(d, jid)
            h.check(j["state"] == "cancelled" and j["placed"] <= after,
                    f"node {d.name} reads it cancelled with {j['placed']} placed")
        counts = orders_per_sim(server, other)
        h.check(max(counts.values()) <= 1, "no SIM has two orders of it")
        st, running = b.api("GET", "/v1/jobs?state=running")
        h.check(st == 200 and running["items"] == [], "no job is left running")


if __name__ == "__main__":
    main()
