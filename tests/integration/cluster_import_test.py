#!/usr/bin/env python3
"""Two imeilockd nodes on one PostgreSQL: POST /v1/sims:import at either node applies
every line at the node serving its SIM's shard, with the per-line answers of one node
(issue 11, docs/cluster.md "Imports").

The real daemon binary, two cluster nodes (5 shards: node-a prefers 0-1, node-b 2-3;
shard 4 is preferred by nobody and nobody takes it during the test: it has no owner).
One import file at node-a: SIMs spread over all five shards, a malformed line, a line of
node-b's shard with a network that is not configured, a SIM of node-b's that exists
already. Asserted: the answer lists every line in input order with its own result
(created, updated, rejected with the reason the owner gave, rejected with code
no_shard_owner and retry for shard 4), HTTP 207 because some lines are to be sent again;
each SIM is stored once (the database), was created by its shard's owner (its audit
record, the owner's answer) and is served there: an observation at the owner is applied
there, not handed over; nothing was forwarded for node-a's own shards. imeilockctl sims
import at node-b: exit 0 for a file whose shards all have an owner, 3 with lines of
shard 4 (to send again).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402

SHARDS = 5
NODES = {"node-a": [0, 1], "node-b": [2, 3]}
OWNER = {0: "node-a", 1: "node-a", 2: "node-b", 3: "node-b"}
HEADER = "iccid,imsis,msisdn,network,status\n"


def imsi_in_shard(shard, i):
    """The i-th test IMSI whose suffix falls in `shard` (2000 suffixes per shard)."""
    return f"2341599{i:04d}{shard * (10000 // SHARDS) + i:04d}"


def main():
    t0 = time.monotonic()
    with h.pg_cluster(NODES, SHARDS, claim_others_after="600s") as (server, nodes):
        a, b = nodes["node-a"], nodes["node-b"]
        leases = {int(s): o for s, o in server.query(
            "imeilock", "SELECT shard, COALESCE(owner, '') FROM cluster_leases")}
        assert leases == {0: "node-a", 1: "node-a", 2: "node-b", 3: "node-b", 4: ""}, leases

        # A SIM of node-b's that exists already: the import updates it.
        existing = h.iccid(7000)
        existing_imsi = imsi_in_shard(3, 999)
        st, _ = b.api("PUT", f"/v1/sims/{existing}",
                      {"imsis": [existing_imsi], "network": "multinet", "status": "inactive"})
        assert st == 201, st

        # -- the file: 40 SIMs per shard, interleaved, plus the odd lines ----------------
        lines = []     # (iccid, imsi, shard or None, expected result)
        for i in range(40):
            for shard in range(SHARDS):
                n = 7001 + i * SHARDS + shard
                lines.append((h.iccid(n), imsi_in_shard(shard, i), shard,
                              "no_shard_owner" if shard == 4 else "created"))
        lines.insert(7, ("8944123", imsi_in_shard(0, 500), None, "malformed"))
        lines.insert(23, (h.iccid(7900), imsi_in_shard(2, 501), 2, "unknown_network"))
        lines.insert(42, (existing, existing_imsi, 3, "updated"))
        body = HEADER
        for iccid, imsi, shard, want in lines:
            network = "nowhere" if want == "unknown_network" else "multinet"
            body += f"{iccid},{imsi},447700900123,{network},active\n"
        before_b = b.metric("imeilock_api_requests_total", route="/v1/sims:import") or 0
        t_import = time.monotonic()
        st, res = a.api("POST", "/v1/sims:import", body, content_type="text/csv", timeout=60)
        import_s = time.monotonic() - t_import
        h.check(st == 207, f"import at node-a with lines of an unowned shard: HTTP 207 ({st})")
        results = res["results"]
        h.check([r["line"] for r in results] == list(range(2, len(lines) + 2)),
                "one result per line, in input order, numbered as the file's lines")
        created = updated = no_owner = 0
        for (iccid, imsi, shard, want), r in zip(lines, results):
            assert r["iccid"] == iccid, (r, iccid)
            if want == "created":
                assert r["result"] == "created", r
                assert r.get("node", "node-a") == OWNER[shard], (r, shard)
                created += 1
            elif want == "updated":
                assert r["result"] == "updated" and r["node"] == "node-b", r
                updated += 1
            elif want == "no_shard_owner":
                assert (r["result"] == "rejected" and r["code"] == "no_shard_owner"
                        and r["retry"] is True and "shard 4" in r["reason"]), r
                no_owner += 1
            elif want == "unknown_network":
                assert (r["result"] == "rejected" and r["node"] == "node-b"
                        and "nowhere" in r["reason"] and "multinet" in r["known_networks"]), r
            elif want == "malformed":
                assert r["result"] == "rejected" and "retry" not in r and "node" not in r, r
        h.check(created == 160 and updated == 1 and no_owner == 40,
                f"160 created (80 by node-b), 1 updated by node-b, 40 without an owner "
                f"({created}, {updated}, {no_owner})")
        h.check(res["imported"] == 161 and res["rejected"] == 42 and res["retry"] == 40,
                f"counts: 161 imported, 42 rejected of which 40 to send again ({res['imported']},"
                f" {res['rejected']}, {res.get('retry')})")
        forwarded = (b.metric("imeilock_api_requests_total", route="/v1/sims:import") or 0)
        h.check(forwarded - before_b == 1, "node-b got node-a's lines of its shards in one request")

        # -- each SIM stored once, created by its owner, served there ------------------
        rows = dict(server.query("imeilock", "SELECT iccid, count(*) FROM sims GROUP BY iccid"))
        for iccid, imsi, shard, want in lines:
            if want in ("created", "updated"):
                assert int(rows.get(iccid, 0)) == 1, (iccid, rows.get(iccid))
            else:
                assert iccid not in rows, iccid
        h.check(len(rows) == 161, f"the store holds the 161 SIMs, each once ({len(rows)})")
        for iccid, imsi, shard, want in lines[:12]:
            if want != "created":
                continue
            for d in (a, b):
                assert d.sim(iccid)["imsis"] == [imsi], iccid
        sent_before = {n: d.metric("imeilock_cluster_handoffs_total", side="sent") or 0
                       for n, d in nodes.items()}
        for shard in (1, 2, 3):
            iccid, imsi = next((c, i) for c, i, s, w in lines if s == shard and w == "created")
            owner = nodes[OWNER[shard]]
            st, _ = owner.order(iccid, type="enable_imei_lock")
            assert st == 202, st
            h.wait_until(lambda: owner.sim(iccid)["lock"]["state"] == "awaiting_first_imei",
                         what="the lock enabled")
            h.check(h.radclient(owner.ports["radius"], imsi, "3534900000000101", "Start",
                                f"imp-{shard}"),
                    f"an observation of an imported SIM of shard {shard} answered by its owner")
            h.wait_until(lambda: owner.sim(iccid)["lock"]["state"] == "locked",
                         what=f"{iccid} locked to the observed IMEI by {OWNER[shard]}")
        sent_after = {n: d.metric("imeilock_cluster_handoffs_total", side="sent") or 0
                      for n, d in nodes.items()}
        h.check(sent_after == sent_before,
                "applied by the owners themselves: nothing handed over through the inbox")

        # -- imeilockctl at node-b -----------------------------------------------------
        owned_file = os.path.join(h.temp_dir("imeilock-import-"), "sims.csv")
        with open(owned_file, "w") as f:
            f.write(HEADER)
            for k, shard in enumerate((0, 1, 2, 3)):
                f.write(f"{h.iccid(7950 + k)},{imsi_in_shard(shard, 600 + k)},,multinet,"
                        "inactive\n")
        r = h.ctl(b, "--json", "sims", "import", owned_file)
        h.check(r.returncode == 0 and r.stdout.count('"created"') == 4,
                f"imeilockctl sims import at node-b, every shard owned: exit 0, 4 created "
                f"({r.returncode} {r.stderr.strip()})")
        for k in range(4):
            assert a.sim(h.iccid(7950 + k))["status"] == "inactive"
        with open(owned_file, "a") as f:
            f.write(f"{h.iccid(7960)},{imsi_in_shard(4, 700)},,multinet,inactive\n")
        r = h.ctl(b, "--json", "sims", "import", owned_file)
        h.check(r.returncode == 3 and r.stdout.count('"updated"') == 4
                and '"no_shard_owner"' in r.stdout,
                "imeilockctl with a line of the unowned shard: exit 3, the rest updated "
                f"({r.returncode})")
        print(f"import of {len(lines)} lines at node-a answered in {import_s * 1000:.0f} ms")
        for d in nodes.values():
            h.check(d.stop() == 0, f"{d.name} stopped cleanly")
        print(f"cluster import test passed in {time.monotonic() - t0:.1f}s")


if __name__ == "__main__":
    main()
