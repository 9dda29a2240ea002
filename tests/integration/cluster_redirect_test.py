#!/usr/bin/env python3
"""Two imeilockd nodes on one PostgreSQL: an operator write at a node that does not
serve the SIM's shard is redirected to the node that does (issue 11, docs/cluster.md
"Serving").

The real daemon binary, two cluster nodes (4 shards: node-a prefers 0-1, node-b 2-3),
each advertising its API (cluster.api_url). Asserted: a SIM upsert and an order sent to
the wrong node answer 307 Temporary Redirect with Location = the owner's api_url + the
same path and query and a body naming the shard and its owner, and change nothing
there; followed (the test's client, and imeilockctl) they are done once, by the owner;
reads answer on both nodes; writes of the node's own shards are not redirected; a shard
with no live owner (its node stopped) answers 503 with Retry-After; the redirects are
counted (imeilock_api_owner_redirects_total).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402

SHARDS = 4
NODES = {"node-a": [0, 1], "node-b": [2, 3]}


def imsi_in_shard(shard, i):
    return f"23415992{i:03d}{shard * (10000 // SHARDS) + i:04d}"


def sim_body(imsi, status="active"):
    return {"imsis": [imsi], "msisdn": "447700900123", "network": "multinet", "status": status}


def main():
    t0 = time.monotonic()
    with h.pg_cluster(NODES, SHARDS, claim_others_after="120s") as (server, nodes):
        a, b = nodes["node-a"], nodes["node-b"]
        url_of = {n: f"http://127.0.0.1:{d.ports['api']}" for n, d in nodes.items()}
        st, cl = a.api("GET", "/v1/cluster")
        assert st == 200 and {n["node_id"]: n["api_url"] for n in cl["nodes"]} == url_of, cl

        # -- an upsert at the wrong node: 307 to the owner, nothing done here ----------
        iccid = h.iccid(9201)
        imsi = imsi_in_shard(2, 1)  # node-b's
        path = f"/v1/sims/{iccid}"
        st, body = a.api("PUT", path, sim_body(imsi), follow=False)
        h.check(st == 307 and body["owner"] == "node-b" and body["shard"] == 2
                and body["location"] == url_of["node-b"] + path,
                f"PUT at node-a for a SIM of shard 2: 307 to node-b's api_url ({body})")
        h.check(a.api("GET", path)[0] == 404, "nothing created by the node that redirected")
        st, body = a.api("PUT", path, sim_body(imsi))
        h.check(st == 201 and body["iccid"] == iccid, "followed: created by node-b (201)")
        for d in (a, b):
            h.check(d.sim(iccid)["imsis"] == [imsi], "reads answer on both nodes")

        # -- orders: 307 with the query kept, then placed once by the owner ------------
        orders = f"/v1/sims/{iccid}/orders"
        st, body = a.api("POST", orders, {"type": "bar"}, follow=False)
        h.check(st == 307 and body["location"] == url_of["node-b"] + orders,
                "POST orders at node-a: 307 to node-b, the same path")
        h.check(a.orders(iccid) == [], "no order placed by the node that redirected")
        st, body = a.order(iccid, type="enable_imei_lock")
        h.check(st == 202 and body["type"] == "enable_imei_lock",
                "followed: enable_imei_lock accepted by node-b (202, the owner's answer)")
        st, body = a.order(iccid, type="enable_imei_lock")
        h.check(st == 409, f"the owner's refusal comes back through the redirect (409: {body})")
        h.check(len(a.orders(iccid, "enable_imei_lock")) == 1, "the order exists once")
        # The owner's rules answer: an unbar with nothing to unbar is refused there.
        st, body = b.api("POST", orders, {"type": "unbar", "unbar_mode": "keep_lock"})
        h.check(st == 409, "unbar without a bar refused at the owner (409)")

        # -- imeilockctl follows the redirect (same method and body) -------------------
        r = h.ctl(a, "--json", "order", "disable", iccid)
        h.check(r.returncode == 0 and '"disable_imei_lock"' in r.stdout,
                "imeilockctl order disable at node-a: followed to node-b "
                f"({r.returncode} {r.stderr.strip()})")
        h.wait_until(lambda: a.sim(iccid)["lock"]["state"] == "off", what="lock disabled")
        iccid2 = h.iccid(9202)
        r = h.ctl(a, "--json", "sims", "put", iccid2, "--imsi", imsi_in_shard(3, 2),
                  "--network", "multinet", "--status", "inactive")
        h.check(r.returncode == 0 and b.sim(iccid2)["status"] == "inactive",
                f"imeilockctl sims put at node-a: created by node-b ({r.returncode} "
                f"{r.stderr.strip()})")

        # -- the node's own shards: no redirect ----------------------------------------
        iccid3 = h.iccid(9203)
        st, _ = a.api("PUT", f"/v1/sims/{iccid3}", sim_body(imsi_in_shard(0, 3)), follow=False)
        h.check(st == 201, "a SIM of node-a's own shard is created by node-a (201)")
        st, _ = a.api("POST", f"/v1/sims/{iccid3}/orders", {"type": "enable_imei_lock"},
                      follow=False)
        h.check(st == 202, "an order of node-a's own SIM is placed by node-a (202)")
        # ... and the other way round, from node-b.
        st, body = b.api("POST", f"/v1/sims/{iccid3}/orders", {"type": "bar"}, follow=False)
        h.check(st == 307 and body["owner"] == "node-a"
                and body["location"].startswith(url_of["node-a"]), "node-b redirects to node-a")
        redirected = a.metric("imeilock_api_owner_redirects_total", outcome="redirected")
        h.check(redirected == 7, f"node-a counted its 7 redirects ({redirected})")
        h.check((b.metric("imeilock_api_owner_redirects_total", outcome="redirected") or 0) == 1,
                "node-b counted its one")

        # -- no live owner: 503 with Retry-After ---------------------------------------
        h.check(b.stop() == 0, "node-b stopped cleanly (its leases released)")
        leases = {int(s): o for s, o in server.query(
            "imeilock", "SELECT shard, COALESCE(owner, '') FROM cluster_leases")}
        assert leases[2] == "" and leases[3] == "", leases  # node-a waits claim_others_after
        st, body = a.api("POST", orders, {"type": "bar"})
        h.check(st == 503 and body["error"]["code"] == "no_shard_owner" and body["shard"] == 2,
                f"an order for a shard with no live owner: 503 no_shard_owner ({body})")
        h.check(a.sim(iccid)["iccid"] == iccid, "reads still answer (the store)")
        h.check(a.metric("imeilock_api_owner_redirects_total", outcome="no_owner") == 1,
                "counted as no_owner")
        h.check(a.stop() == 0, "node-a stopped cleanly")
        print(f"cluster redirect test passed in {time.monotonic() - t0:.1f}s")


if __name__ == "__main__":
    main()
