#!/usr/bin/env python3
"""Two imeilockd nodes on one PostgreSQL: observations that reach the wrong node are
handed to the owner through the inbox (issue 11, DESIGN §6, docs/cluster.md).

The real daemon binary, two cluster nodes (4 shards: node-a prefers 0-1, node-b 2-3)
on one database started by the test (tests/integration/pg.py), and, as the reference,
one standalone node on SQLite. The same R-rule stories run on both: SIMs of every
shard, IMEI lock enabled on some (R4), then Accounting-Requests from the first device,
a second device (R7: bar), no IMEI (R3), back and forth. On the cluster each request
goes to the wrong node half of the time (seeded): that node hands it over and answers
(RADIUS Accounting-Response) once the handoff has committed. A SIM's next request is
sent once the previous one has been applied (as a NAS's interim interval, seconds to
minutes, is far above the handoff latency: the test waits for the inbox to be empty).

Asserted: every request is answered on both; per SIM, the lock, the bar, the last seen
IMEI, the bar orders and the count of observation events are the same on the cluster
as on one node; the inbox is empty at the end; imeilock_cluster_handoffs_total counts
what each node sent and applied (sent at one node = applied at the other). Printed:
the handoff latency (enqueue committed to applied) from the nodes' histograms and as
the test measured it (answer to inbox empty).
"""
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402
import pg  # noqa: E402

SHARDS = 4
NODES = {"node-a": [0, 1], "node-b": [2, 3]}
LEAD_MS = 4000

A = h.imei15("35349001234560")
B = h.imei15("35876502222220")
C = h.imei15("35111103333330")

# Per story: whether the lock is enabled after the first request, then the IMEIs
# (None: no IMEI) of the requests that follow.
STORIES = {
    "second_device": (True, [B, B, A]),          # R7: one bar; R9 last seen frozen at B
    "same_device": (True, [A, A, A]),            # no violation
    "no_imei": (True, [None, A, None]),          # R3: nothing happens
    "lock_off": (False, [B, C, A]),              # no lock: last seen follows
    "third_device": (True, [B, C, B, C]),        # still one bar (R7)
}


def imsi_in_shard(shard, i):
    suffix = shard * (10000 // SHARDS) + i
    return f"23415991{i // 100:03d}{suffix:04d}"


def cluster_config(state_dir, conninfo, node, preferred):
    return h.cluster_node_config(state_dir, conninfo, node, preferred, SHARDS,
                                 h.lead_times(LEAD_MS), claim_others_after="30s",
                                 lease_duration="5s", renew_interval="1s")


def owner_of(shard):
    return next(n for n, shards in NODES.items() if shard in shards)


class Play:
    """One run of the stories against `send` (a request to a node) and `api` (the node
    that may write a SIM)."""

    def __init__(self, nodes, route, settle):
        self.nodes = nodes      # name -> h.Daemon
        self.route = route      # (shard, right node) -> node name to send to
        self.settle = settle    # waits until what was answered is applied
        self.sims = {}          # (story, shard) -> (iccid, imsi)
        self.serial = 0

    def send(self, shard, imsi, imei, status=3):
        self.serial += 1
        node = self.route(shard, owner_of(shard))
        d = self.nodes[node]
        pkt = h.accounting_request(self.serial & 0xFF, imsi, imei, status_type=status,
                                   session_id=f"s{self.serial}")
        resp = h.radius_exchange(d.ports["radius"], pkt, timeout=2, tries=3)
        assert resp is not None and h.response_ok(pkt, resp), \
            f"no answer from {node} for {imsi} (request {self.serial})"
        return node

    def run(self):
        writer = lambda shard: self.nodes[self.route(None, owner_of(shard))]  # noqa: E731
        for story in STORIES:
            for shard in range(SHARDS):
                i = len(self.sims)
                imsi = imsi_in_shard(shard, i)
                iccid = h.iccid(9100 + i)
                st, body = writer(shard).api("PUT", f"/v1/sims/{iccid}", {
                    "imsis": [imsi], "msisdn": "447700900123", "network": "multinet",
                    "status": "active"})
                assert st == 201, (story, shard, st, body)
                self.sims[(story, shard)] = (iccid, imsi)
        # Step 0: every SIM seen in device A (Start).
        for (story, shard), (iccid, imsi) in self.sims.items():
            self.send(shard, imsi, A, status=1)
        self.settle()
        for (story, shard), (iccid, imsi) in self.sims.items():
            if STORIES[story][0]:
                st, body = writer(shard).order(iccid, type="enable_imei_lock")
                assert st == 202, (story, shard, st, body)
        for (story, shard), (iccid, imsi) in self.sims.items():
            if STORIES[story][0]:
                h.wait_until(lambda: writer(shard).sim(iccid)["lock"]["state"] == "locked",
                             timeout=20, what=f"{story}/{shard} locked")
        steps = max(len(s[1]) for s in STORIES.values())
        for k in range(steps):
            for (story, shard), (iccid, imsi) in self.sims.items():
                imeis = STORIES[story][1]
                if k < len(imeis):
                    self.send(shard, imsi, imeis[k])
            self.settle()
        # Bars complete after the lead time.
        time.sleep(LEAD_MS / 1000 + 0.5)
        for (story, shard), (iccid, imsi) in self.sims.items():
            d = writer(shard)
            h.wait_until(lambda: d.sim(iccid)["bar"]["state"] in ("none", "barred"),
                         timeout=20, what=f"{story}/{shard}: no bar pending")

    def outcome(self):
        """(story, shard) -> what the rules decided, as the owner's API reads it."""
        out = {}
        for (story, shard), (iccid, imsi) in self.sims.items():
            d = self.nodes[self.route(None, owner_of(shard))]
            sim = d.sim(iccid)
            bars = d.orders(iccid, "bar")
            observed = [e for e in d.events(iccid) if e["cause"] == "observation"]
            out[(story, shard)] = {"lock": sim["lock"], "bar": sim["bar"]["state"],
                                   "last_seen": sim.get("last_seen_imei"),
                                   "bar_orders": len(bars), "observations": len(observed)}
        return out


def main():
    server = pg.server_or_skip()
    conninfo = server.create_database("imeilock")
    rng = random.Random(int(os.environ.get("CLUSTER_HANDOFF_SEED", "7")))
    nodes = {}
    for node, preferred in NODES.items():
        state_dir = tempfile.mkdtemp(prefix=f"imeilockd-{node}-")
        nodes[node] = h.Daemon(config_text=cluster_config(state_dir, conninfo, node, preferred),
                               state_dir=state_dir, cleanup=True)
    single = h.Daemon(extra_config=h.lead_times(LEAD_MS), cleanup=True)
    try:
        # -- the reference: one node ----------------------------------------------
        single.start()
        ref = Play({"one": single}, lambda shard, right: "one", lambda: None)
        ref.run()
        expected = ref.outcome()
        assert single.stop() == 0, single.log()[-3000:]
        single.proc = None
        bars = sum(1 for o in expected.values() if o["bar"] == "barred")
        # The stories have a bar in them (a second and a third device under the lock).
        assert bars >= SHARDS, f"the reference barred too few SIMs: {expected}"

        # -- two nodes, half of the requests at the wrong one ----------------------
        h.start_all(nodes.values())
        leases = {int(s): o for s, o in server.query(
            "imeilock", "SELECT shard, owner FROM cluster_leases")}
        assert leases == {0: "node-a", 1: "node-a", 2: "node-b", 3: "node-b"}, leases
        # Bulk jobs run on every node (docs/cluster.md; cluster_jobs_test.py): a job
        # that selects no SIM completes at once, and the other node lists it.
        st, body = nodes["node-a"].api("POST", "/v1/orders:bulk",
                                       {"type": "bar", "filter": {"network": "none-such"}})
        assert st == 202 and body["state"] == "completed" and body["total"] == 0, (st, body)
        st, listed = nodes["node-b"].api("GET", "/v1/jobs")
        assert st == 200 and [j["id"] for j in listed["items"]] == [body["id"]], (st, listed)

        wrong = {"count": 0, "total": 0}
        answered_at = []

        def route(shard, right):
            if shard is None:
                return right
            wrong["total"] += 1
            if rng.random() < 0.5:
                wrong["count"] += 1
                answered_at.append(time.monotonic())
                return next(n for n in NODES if n != right)
            return right

        latencies = []

        def settle():
            # Everything answered so far is applied once the inbox is empty.
            h.wait_until(lambda: server.query("imeilock", "SELECT count(*) FROM cluster_inbox")
                         == [["0"]], timeout=20, interval=0.005, what="the inbox drained")
            now = time.monotonic()
            latencies.extend(now - t for t in answered_at)
            answered_at.clear()

        play = Play(nodes, route, settle)
        play.run()
        got = play.outcome()
        print(f"{wrong['count']} of {wrong['total']} requests sent to the wrong node")
        assert wrong["count"] >= wrong["total"] // 4, wrong
        diff = {k: (expected[k], got[k]) for k in expected if expected[k] != got[k]}
        assert not diff, f"outcomes differ from one node: {diff}"
        print(f"{len(got)} SIMs: the same lock, bar, last seen IMEI, bar orders and "
              f"observation events as on one node ({bars} barred)")

        # Every handoff counted where it was sent and where it was applied.
        sent = {n: sum(d.metric("imeilock_cluster_handoffs_total", shard=str(s), side="sent")
                       or 0 for s in range(SHARDS)) for n, d in nodes.items()}
        applied = {n: sum(d.metric("imeilock_cluster_handoffs_total", shard=str(s),
                                   side="applied") or 0 for s in range(SHARDS))
                   for n, d in nodes.items()}
        print(f"handoffs sent {sent}, applied {applied}")
        # (A request answered later than the client's 2 s timeout is sent again: a
        # second handoff, applied as a retransmit.)
        assert sum(sent.values()) >= wrong["count"], (sent, wrong)
        assert sent["node-a"] == applied["node-b"] and sent["node-b"] == applied["node-a"], \
            (sent, applied)
        for n, d in nodes.items():
            for s in NODES[n]:
                assert (d.metric("imeilock_cluster_handoffs_total", shard=str(s), side="sent")
                        or 0) == 0, f"{n} handed off a request of its own shard {s}"
        count = sum(d.metric("imeilock_cluster_handoff_seconds_count") or 0
                    for d in nodes.values())
        total = sum(d.metric("imeilock_cluster_handoff_seconds_sum") or 0
                    for d in nodes.values())
        assert count == sum(sent.values()), (count, sent)
        buckets = {}  # upper bound -> cumulative count, both nodes
        for d in nodes.values():
            for line in d.metrics().splitlines():
                if line.startswith("imeilock_cluster_handoff_seconds_bucket{"):
                    le = line.split('le="')[1].split('"')[0]
                    buckets[float(le)] = buckets.get(float(le), 0) + float(line.split()[-1])

        def quantile(q):
            return next(le for le in sorted(buckets) if buckets[le] >= q * count)

        lat = sorted(latencies)
        print(f"handoff latency (enqueue committed to applied, the nodes' histogram): mean "
              f"{1000 * total / max(count, 1):.1f} ms over {int(count)}, p50 <= "
              f"{1000 * quantile(0.5):g} ms, p99 <= {1000 * quantile(0.99):g} ms (buckets); "
              f"as the test saw it "
              f"(answer to inbox empty, a bound): p50 {1000 * lat[len(lat) // 2]:.1f} ms, "
              f"max {1000 * lat[-1]:.1f} ms")
        for d in nodes.values():
            assert d.stop() == 0, d.log()[-3000:]
    finally:
        for d in list(nodes.values()) + [single]:
            if d.proc is not None:
                d.kill9()
        server.close()


if __name__ == "__main__":
    main()
