#!/usr/bin/env python3
"""Order per SIM around a fail-over (issue 11, docs/cluster.md "Order per SIM"): a
handoff of a SIM committed to the inbox is applied before an observation of the same
SIM that reaches the owner directly afterwards.

The real daemon binary, two cluster nodes on one PostgreSQL (4 shards: node-a prefers
0-1, node-b 2-3). SIMs of node-a's shards with the IMEI lock enabled, awaiting their
first IMEI.

1. Before the NOTIFY could deliver: the test commits a handoff of SIM X (IMEI1) to the
   inbox exactly as node-b's sender writes it, but without its NOTIFY (as if node-a
   had not been told yet: the consumer's next sweep is seconds away), then sends X's
   next Accounting-Request (IMEI2) straight to node-a. Asserted: node-a's audit log
   holds IMEI1 then IMEI2; the lock went to IMEI1 and the violation (R7, a bar) is
   for IMEI2 after IMEI1; node-a counted the observation as put behind a handoff.
2. Through node-b for real, ten SIMs: an Accounting-Request with IMEI1 at node-b
   (handed off, answered once committed) immediately followed by one with IMEI2 at
   node-a. Asserted for every SIM: the same order.
3. The cost: a stream of observations sent straight to node-a (no handoff pending);
   printed: the inbox check's wait per observation (p50/p99 from node-a's
   imeilock_cluster_order_check_seconds) and the RADIUS round trip; no observation put
   behind a handoff.
"""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402
import pg  # noqa: E402

SHARDS = 4
NODES = {"node-a": [0, 1], "node-b": [2, 3]}
LEAD_MS = 60000  # bars stay pending: the test reads what the rules decided

IMEI1 = h.imei15("35349001111110")
IMEI2 = h.imei15("35876502222220")


def imsi_in_shard(shard, i):
    return f"23415993{i:03d}{shard * (10000 // SHARDS) + i:04d}"


def send(d, imsi, imei, serial, status=3):
    pkt = h.accounting_request(serial & 0xFF, imsi, imei, status_type=status,
                               session_id=f"o{serial}")
    resp = h.radius_exchange(d.ports["radius"], pkt, timeout=2, tries=3)
    assert resp is not None and h.response_ok(pkt, resp), f"no answer for {imsi}"


def observed(d, iccid):
    """The IMEIs of the SIM's observation events, oldest first."""
    events = sorted(d.events(iccid), key=lambda e: e["id"])
    return [e["imei"] for e in events if e["cause"] == "observation"]


def histogram_quantile(d, name, q):
    """The bucket bound at quantile q of a histogram of node d (seconds)."""
    buckets = []
    for line in d.metrics().splitlines():
        if line.startswith(name + "_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    total = buckets[-1][1] if buckets else 0
    for bound, count in buckets:
        if total and count >= q * total:
            return bound
    return None


def main():
    t0 = time.monotonic()
    server = pg.server_or_skip()
    conninfo = server.create_database("imeilock")
    nodes = h.cluster_nodes(conninfo, NODES, SHARDS, h.lead_times(LEAD_MS),
                            claim_others_after="120s")
    a, b = nodes["node-a"], nodes["node-b"]
    serial = [0]

    def next_serial():
        serial[0] += 1
        return serial[0]

    def locked_sim(n, shard):
        iccid, imsi = h.iccid(9300 + n), imsi_in_shard(shard, n)
        st, body = a.api("PUT", f"/v1/sims/{iccid}", {
            "imsis": [imsi], "msisdn": "447700900123", "network": "multinet",
            "status": "active"})
        assert st == 201, (st, body)
        st, body = a.order(iccid, type="enable_imei_lock")
        assert st == 202, (st, body)
        h.wait_until(lambda: a.sim(iccid)["lock"]["state"] == "awaiting_first_imei",
                     what="lock enabled")
        return iccid, imsi

    def check_order(iccid, what):
        h.wait_until(lambda: len(observed(a, iccid)) >= 2 and server.query(
            "imeilock", "SELECT count(*) FROM cluster_inbox") == [["0"]],
            timeout=20, what=f"{what}: both observations applied")
        sim = a.sim(iccid)
        seen = observed(a, iccid)
        h.check(seen == [IMEI1, IMEI2],
                f"{what}: the audit log holds IMEI1 (handed off) then IMEI2 (direct) ({seen})")
        h.check(sim["lock"]["state"] == "locked" and sim["lock"]["imei"] == IMEI1
                and sim["bar"]["state"] in ("bar_pending", "barred"),
                f"{what}: locked to IMEI1, the violation is IMEI2's (a bar) "
                f"({sim['lock']}, {sim['bar']['state']})")

    try:
        h.start_all(nodes.values())
        leases = {int(s): o for s, o in server.query(
            "imeilock", "SELECT shard, owner FROM cluster_leases")}
        assert leases == {0: "node-a", 1: "node-a", 2: "node-b", 3: "node-b"}, leases

        # -- 1. a handoff committed, its NOTIFY not delivered, then the direct one -----
        iccid, imsi = locked_sim(0, 0)
        device = IMEI1[:14]
        payload = (f"1|{int(imsi)}||{int(device)}|radius|127.0.0.1|{random.getrandbits(62)}|"
                   f"{int(time.time() * 1000)}|-")
        behind = a.metric("imeilock_cluster_direct_behind_handoffs_total") or 0
        server.query("imeilock", "INSERT INTO cluster_inbox (shard, sim_key, payload, from_node) "
                     f"VALUES (0, '{iccid}', '{payload}', 'node-b') RETURNING id")
        send(a, imsi, IMEI2, next_serial())
        check_order(iccid, "handoff committed without NOTIFY, then direct")
        h.check((a.metric("imeilock_cluster_direct_behind_handoffs_total") or 0) == behind + 1,
                "node-a put the direct observation behind the handoff (counted)")

        # -- 2. through node-b for real, immediately followed at node-a ---------------
        for n in range(1, 11):
            iccid, imsi = locked_sim(n, n % 2)
            send(b, imsi, IMEI1, next_serial())  # answered once the handoff committed
            send(a, imsi, IMEI2, next_serial())
            check_order(iccid, f"SIM {n}: handed off at node-b, then direct at node-a")
        behind2 = a.metric("imeilock_cluster_direct_behind_handoffs_total")
        print(f"{behind2 - behind - 1:.0f} of 10 direct observations found their handoff "
              "still in the inbox (the others came after it was applied)")

        # -- 3. the cost on the owner's hot path: direct observations only ------------
        behind = a.metric("imeilock_cluster_direct_behind_handoffs_total")
        stream = [locked_sim(20 + n, n % 2) for n in range(10)]
        rtt = []
        for k in range(30):
            for iccid, imsi in stream:
                t = time.monotonic()
                send(a, imsi, IMEI1 if k % 2 == 0 else None, next_serial())
                rtt.append(time.monotonic() - t)
        rtt.sort()
        h.check(a.metric("imeilock_cluster_direct_behind_handoffs_total") == behind,
                "no handoff pending: nothing put behind one")
        p50 = histogram_quantile(a, "imeilock_cluster_order_check_seconds", 0.5)
        p99 = histogram_quantile(a, "imeilock_cluster_order_check_seconds", 0.99)
        print(f"order check at node-a: p50 <= {p50 * 1000:.2f} ms, p99 <= {p99 * 1000:.2f} ms "
              f"(histogram buckets, {len(rtt) + 21:.0f} observations); RADIUS round trip at "
              f"node-a p50 {rtt[len(rtt) // 2] * 1000:.2f} ms, "
              f"p99 {rtt[int(len(rtt) * 0.99)] * 1000:.2f} ms")
        for d in nodes.values():
            h.check(d.stop() == 0, f"{d.name} stopped cleanly")
        print(f"cluster order test passed in {time.monotonic() - t0:.1f}s")
    finally:
        for d in nodes.values():
            if d.proc is not None:
                d.kill9()
        server.close()


if __name__ == "__main__":
    main()
