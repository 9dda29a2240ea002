#!/usr/bin/env python3
"""Strict mode (imei_lock.strict: true) as an operator meets it: the daemon
bars a locked SIM on any use in a device other than the locked one, not only
on a change event. That closes the caveat of R10: in the default mode a SIM
unbarred with keep_lock while still in the second device is not barred again
there (radius_stories_test.py and diameter_stories_test.py check that half).
Played over RADIUS (radclient) and over Diameter (the Erlang/OTP diameter
client, harness.erlang_story) against the real daemon; the state is
read back through the operator API."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402
import diameter_stories_test as dst  # noqa: E402

LEAD = 1.0  # seconds: bar lead time of the test network
EXTRA = """
imei_lock:
  strict: true
""" + h.lead_times(int(LEAD * 1000))

A = h.imei15("35349001234560")
B = h.imei15("35876502222220")


def violations(d, iccid):
    """Audit records where a violation raised a bar (none -> bar_pending)."""
    return [e for e in d.events(iccid)
            if e["before"]["bar"]["state"] == "none" and e["after"]["bar"]["state"] == "bar_pending"]


def story(d, label, observe, imsi):
    """The R10 caveat story, with `observe(imei, first)` as the network's feed."""
    s = d.new_sim(imsi)
    observe(A, True)
    h.check(d.sim(s)["last_seen_imei"] == A, f"{label}: last seen IMEI A")
    st, _ = d.api("POST", f"/v1/sims/{s}/orders", {"type": "enable_imei_lock"})
    h.check(st == 202, f"{label}: enable_imei_lock accepted")
    h.wait_until(lambda: d.sim(s)["lock"] == {"state": "locked", "imei": A, "scope": "imei"}, what="locked to A")

    observe(A, False)
    h.check(d.sim(s)["bar"]["state"] == "none",
            f"{label}: strict mode, the locked device again (new software version): no bar (R2)")

    observe(B, False)
    h.check(d.sim(s)["bar"]["state"] == "bar_pending", f"{label}: device B: bar pending (R7)")
    h.wait_until(lambda: d.sim(s)["bar"]["state"] == "barred", timeout=LEAD + 15, what="barred")

    # Unbar keeping the lock while the SIM is still in B: the warning says
    # strict enforcement bars it again at its next use there.
    st, o = d.api("POST", f"/v1/sims/{s}/orders", {"type": "unbar", "unbar_mode": "keep_lock"})
    warnings = " ".join(o.get("warnings") or [])
    h.check(st == 202 and "Strict enforcement is on" in warnings and A in warnings and B in warnings,
            f"{label}: keep_lock in device B accepted with the strict-mode warning naming A and B")
    h.wait_until(lambda: d.sim(s)["bar"]["state"] == "none", what="unbarred")
    body = d.sim(s)
    h.check(body["lock"] == {"state": "locked", "imei": A, "scope": "imei"} and body["last_seen_imei"] == B,
            f"{label}: unbarred, the lock kept on A, last seen B")

    # The next use in B is no change event (last seen is B), yet strict mode bars.
    t0 = time.monotonic()
    observe(B, False)
    body = d.sim(s)
    h.check(body["bar"]["state"] == "bar_pending" and body["bar"]["trigger_imei"] == B,
            f"{label}: strict: the next use in device B (no change event) raises a bar again")
    h.wait_until(lambda: d.sim(s)["bar"]["state"] == "barred", timeout=LEAD + 15,
                 what="barred again")
    h.check(time.monotonic() - t0 >= LEAD * 0.8, f"{label}: barred again only after the lead time")
    st, orders = d.api("GET", f"/v1/sims/{s}/orders")
    h.check(len([x for x in orders["items"] if x["type"] == "bar"]) == 2,
            f"{label}: two bar orders in all, one per violation")
    h.check(len(violations(d, s)) == 2, f"{label}: the audit log holds both violations (R14)")


def main():
    with h.erlang_story("strict", lambda state_dir: h.diameter_peer_config(state_dir, EXTRA)) \
            as (d, erl):
        kind, f = h.connect_erlang(d, erl)
        h.check(kind == "up" and f.get("Result-Code") == "2001", "CER/CEA with the Erlang peer")

        port = d.ports["radius"]
        imsi_r = "234520000000001"

        session_time = [0]

        def over_radius(imei, first):
            status = "Start" if first else "Interim-Update"
            sv = "01" if first else "02"
            h.check(h.radclient(port, imsi_r, imei[:14] + sv, status, "strict-r", session_time[0]),
                    f"RADIUS: radclient {status} from {imei} answered")
            session_time[0] += 60

        story(d, "RADIUS", over_radius, imsi_r)

        imsi_d = "234520000000002"
        number = [0]

        def over_diameter(imei, first):
            rtype = dst.START if first else dst.INTERIM
            sv = "01" if first else "02"
            dst.acr(erl, "ctf1;rf;strict", rtype, number[0], imsi_d, dst.uei_ascii(imei[:14] + sv))
            number[0] += 1

        story(d, "Diameter", over_diameter, imsi_d)
    print("strict mode stories passed")


if __name__ == "__main__":
    main()
