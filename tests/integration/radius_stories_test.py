#!/usr/bin/env python3
"""The product text's stories, driven entirely over RADIUS with the real
clients radclient (freeradius-utils) and pyrad, against the real daemon; state read back
through the operator API. Rule numbers from the design (R1-R15).

With `--cluster` the same stories run against two cluster nodes on one PostgreSQL
(harness.StoryCluster): the SIMs' shards split between the nodes, each request sent to
the node that does not serve the SIM half of the time (handed to the owner), the API
calls to either node (writes redirected to the owner)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402

# Seconds: bar lead time of the test network (the cluster waits for each handoff to
# be applied before the next request: more of the lead time goes by between two).
LEAD = 3.0 if h.cluster_mode() else 1.5
EXTRA = h.lead_times(int(LEAD * 1000)) + h.network_lead_times("roamnet901", activate_ms=300)

A = h.imei15("35349001234560")
B = h.imei15("35876502222220")
C = h.imei15("35111103333330")


def radclient(d, imsi, imeisv, status="Interim-Update", session="sess-1"):
    """One Accounting-Request through radclient, from a NAS that sends the MSISDN."""
    return d.deliver(imsi, lambda node: h.radclient(node.ports["radius"], imsi, imeisv, status,
                                                    session, msisdn="447700900123"))


def pyrad_send(d, imsi, imeisv, status, session):
    """One Accounting-Request through pyrad; pyrad itself verifies the
    Response Authenticator. True if a valid Accounting-Response came back."""
    return d.deliver(imsi, lambda node: _pyrad_send(node.ports["radius"], imsi, imeisv, status,
                                                    session))


def _pyrad_send(port, imsi, imeisv, status, session):
    from pyrad import client, dictionary, packet
    c = client.Client(server="127.0.0.1", acctport=port, secret=h.EXAMPLE_RADIUS_SECRET,
                      dict=dictionary.Dictionary(h.PYRAD_DICT))
    c.timeout = 2
    c.retries = 2
    req = c.CreateAcctPacket(User_Name=imsi)
    req["Acct-Status-Type"] = status
    req["Acct-Session-Id"] = session
    req["NAS-IP-Address"] = "127.0.0.1"
    req["3GPP-IMSI"] = imsi
    req["3GPP-IMEISV"] = imeisv
    try:
        reply = c.SendPacket(req)
    except client.Timeout:
        return False
    return reply.code == packet.AccountingResponse


def main():
    with h.story_target(EXTRA) as d:

        # Enable on a live SIM with a known last-seen IMEI (R4), then the
        # SIM moves to a 2nd device: exactly one bar, only after the lead time (R7, R8).
        imsi = "234500000000001"
        s = d.new_sim(imsi)
        h.check(radclient(d, imsi, A[:14] + "01", "Start"),
                "radclient Start with 3GPP-IMEISV answered")
        h.check(d.sim(s)["last_seen_imei"] == A, "last seen IMEI learnt from the IMEISV (R2)")
        st, o = d.order(s, type="enable_imei_lock")
        h.check(st == 202, "enable_imei_lock accepted (R1: multinet is eligible)")
        h.wait_until(lambda: d.sim(s)["lock"] == {"state": "locked", "imei": A, "scope": "imei"}, what="locked to A")
        h.check(True, "R4 enable on a live SIM locks to the last seen IMEI")
        h.check(radclient(d, imsi, B[:14] + "02"), "traffic from device B answered")
        t0 = time.monotonic()
        body = d.sim(s)
        h.check(body["bar"]["state"] == "bar_pending" and body["bar"]["reason"] == "imei_lock"
                and body["bar"]["trigger_imei"] == B, "R7 violation: bar pending, trigger IMEI B")
        h.check(radclient(d, imsi, C[:14] + "03"), "R8 SIM keeps working during the lead time")
        h.check(d.sim(s)["last_seen_imei"] == B, "R9 last seen frozen at the trigger IMEI")
        h.wait_until(lambda: d.sim(s)["bar"]["state"] == "barred", timeout=LEAD + 10,
                     what="barred")
        h.check(time.monotonic() - t0 >= LEAD * 0.8, "R8 barred only after the lead time")
        st, orders = d.api("GET", f"/v1/sims/{s}/orders")
        items = orders["items"] if isinstance(orders, dict) else orders
        h.check(len([x for x in items if x["type"] == "bar"]) == 1, "R7 exactly one bar order")

        # Unbar, update to last seen: locked to B, the first device after the bar (R11).
        st, o = d.order(s, type="unbar", unbar_mode="update_to_last_seen")
        h.check(st == 202, "unbar update_to_last_seen accepted")
        h.wait_until(lambda: d.sim(s)["bar"]["state"] == "none", what="unbarred")
        h.check(d.sim(s)["lock"] == {"state": "locked", "imei": B, "scope": "imei"}, "R11 lock moved to B")

        # Disable (R12): the lock is cleared, the SIM moves freely.
        st, o = d.order(s, type="disable_imei_lock")
        h.check(st == 202, "disable_imei_lock accepted")
        h.wait_until(lambda: d.sim(s)["lock"]["state"] == "off", what="lock disabled")
        h.check(radclient(d, imsi, C[:14] + "04"), "traffic from device C answered")
        body = d.sim(s)
        h.check(body["bar"]["state"] == "none" and body["last_seen_imei"] == C
                and len(d.orders(s, "bar")) == 1, "R12 after disable: device C, no bar, last seen C")

        # Unbar keeping the lock while still in the 2nd device (R10).
        imsi2 = "234500000005002"
        s2 = d.new_sim(imsi2)
        radclient(d, imsi2, A[:14] + "01", "Start", session="s2")
        d.order(s2, type="enable_imei_lock")
        h.wait_until(lambda: d.sim(s2)["lock"]["state"] == "locked", what="s2 locked")
        radclient(d, imsi2, B[:14] + "01", session="s2")
        h.wait_until(lambda: d.sim(s2)["bar"]["state"] == "barred", timeout=LEAD + 10,
                     what="s2 barred")
        st, o = d.order(s2, type="unbar", unbar_mode="keep_lock")
        h.check(st == 202 and o.get("warnings"), "R10 keep_lock in the 2nd device: accepted with a warning")
        h.wait_until(lambda: d.sim(s2)["bar"]["state"] == "none", what="s2 unbarred")
        radclient(d, imsi2, B[:14] + "01", session="s2")
        h.check(d.sim(s2)["bar"]["state"] == "none", "R10 not barred again in the 2nd device")
        radclient(d, imsi2, C[:14] + "01", session="s2")
        h.check(d.sim(s2)["bar"]["state"] == "bar_pending", "R10 barred again in a 3rd device")

        # No IMEI in the feed: nothing happens (R3); Stop answered.
        imsi3 = "234500000002503"
        s3 = d.new_sim(imsi3)
        h.check(radclient(d, imsi3, None, "Start", session="s3"), "Start without IMEI answered")
        h.check(d.sim(s3)["last_seen_imei"] is None, "R3 no IMEI, no event")
        h.check(radclient(d, imsi3, None, "Stop", session="s3"), "Stop answered")

        # The same story with pyrad as the NAS: Start in device A, enable,
        # Interim-Update from device B -> IMEI-lock bar (R4, R7).
        imsi4 = "234500000007504"
        s4 = d.new_sim(imsi4)
        h.check(pyrad_send(d, imsi4, A[:14] + "07", "Start", "py-1"), "pyrad Start answered")
        h.check(d.sim(s4)["last_seen_imei"] == A, "pyrad: last seen IMEI learnt")
        d.order(s4, type="enable_imei_lock")
        h.wait_until(lambda: d.sim(s4)["lock"] == {"state": "locked", "imei": A, "scope": "imei"},
                     what="pyrad SIM locked to A")
        h.check(pyrad_send(d, imsi4, B[:14] + "07", "Interim-Update", "py-1"),
                "pyrad Interim-Update from device B answered")
        h.check(d.sim(s4)["bar"]["state"] == "bar_pending" and
                d.sim(s4)["bar"]["trigger_imei"] == B, "pyrad: R7 violation raised the bar")
        h.check(pyrad_send(d, imsi4, B[:14] + "07", "Stop", "py-1"), "pyrad Stop answered")

        # Activation with lock (R13) on a network that allows it: awaiting the first
        # IMEI once active; the first device seen becomes the lock (R6).
        imsi5 = "234500000005005"
        s5 = h.random_iccid()
        st, _ = d.api("PUT", f"/v1/sims/{s5}", {"imsis": [imsi5], "network": "roamnet901",
                                                  "status": "inactive"})
        h.check(st == 201, "inactive SIM on roamnet901 created")
        st, o = d.order(s5, type="activate", enable_imei_lock=True)
        h.check(st == 202, "activate with enable_imei_lock accepted (R13: roamnet901 allows it)")
        h.wait_until(lambda: d.sim(s5)["status"] == "active", what="s5 activated")
        h.check(d.sim(s5)["lock"]["state"] == "awaiting_first_imei",
                "R13 after activation with lock: awaiting the first IMEI")
        h.check(radclient(d, imsi5, A[:14] + "05", "Start", session="s5"), "first use answered")
        h.check(d.sim(s5)["lock"] == {"state": "locked", "imei": A, "scope": "imei"},
                "R6 the first device seen becomes the lock")

        # Unknown IMSI: answered, counted, ignored (R15).
        before = d.metric("imeilock_sim_unknown_imsis_total") or 0
        h.check(radclient(d, "999990000000001", A[:14] + "01"), "unknown IMSI answered")
        h.check(d.metric("imeilock_sim_unknown_imsis_total") == before + 1,
                "R15 unknown IMSI counted")
        print("all RADIUS stories passed")


if __name__ == "__main__":
    main()
