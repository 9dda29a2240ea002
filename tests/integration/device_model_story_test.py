#!/usr/bin/env python3
"""Device-model locks (issue 13, rule R16) against the real daemon.

Over RADIUS (radclient) and over Diameter Rf (the Erlang/OTP client of
diameter_stories_test.py), for a SIM locked with lock_scope device_model:

- the order and the SIM carry the scope (API);
- a move to another device of the same model (same TAC, the IMEI's first 8
  digits) is no violation: no Bar order, last seen moves (R5);
- a move to a device of another model is a violation: one Bar order (R7),
  trigger the new device.
A SIM locked with the default scope (imei) in the same daemon is barred by
the same-model move, as the product text says.

Allowed device models (R17), over RADIUS and Diameter: on a network that lists the TACs
its SIMs may be used in, a SIM awaiting its first IMEI that turns up in a
device of another model is barred (one Bar order, the audit names R17) and
the lock does not take that device; the first allowed device becomes the lock.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as h  # noqa: E402
import diameter_stories_test as dst  # noqa: E402

A = h.imei15("35209900176148")       # model (TAC) 35209900
A2 = h.imei15("35209900123456")      # same model, another device
A3 = h.imei15("35209900654321")      # same model, a third device
OTHER = h.imei15("35693803564380")   # another model

# R17: on network ee, SIMs may be used only in devices of A's model.
ALLOWED_TACS = "imei_lock:\n  allowed_tacs:\n    ee: ['35209900']\n"


def bar_orders(d, iccid):
    st, body = d.api("GET", f"/v1/sims/{iccid}/orders")
    assert st == 200, (st, body)
    return [o for o in body["items"] if o["type"] == "bar"]


def lock(d, label, observe, imsi, scope):
    s = d.new_sim(imsi)
    observe(A)
    body = {"type": "enable_imei_lock"}
    if scope:
        body["lock_scope"] = scope
    st, res = d.api("POST", f"/v1/sims/{s}/orders", body)
    h.check(st == 202 and res["lock_scope"] == (scope or "imei"),
          f"{label}: enable_imei_lock accepted, the order carries lock_scope {scope or 'imei'}")
    h.wait_until(lambda: d.sim(s)["lock"]["state"] == "locked", what="locked")
    h.check(d.sim(s)["lock"] == {"state": "locked", "imei": A, "scope": scope or "imei"},
          f"{label}: the SIM shows its lock: device A, scope {scope or 'imei'}")
    return s


def model_story(d, label, observe, imsi):
    s = lock(d, label, observe, imsi, "device_model")
    observe(A2)
    body = d.sim(s)
    h.check(body["bar"]["state"] == "none" and not bar_orders(d, s)
          and body["last_seen_imei"] == A2 and body["lock"]["imei"] == A,
          f"{label}: moved to another device of the same model: no bar, last seen A2 (R16, R5)")
    observe(A3)
    h.check(d.sim(s)["bar"]["state"] == "none" and not bar_orders(d, s),
          f"{label}: and to a third device of the model: still no bar")
    observe(OTHER)
    body = d.sim(s)
    h.check(body["bar"]["state"] == "bar_pending" and body["bar"]["trigger_imei"] == OTHER
          and len(bar_orders(d, s)) == 1,
          f"{label}: a device of another model raises one Bar order (R16, R7)")


def allowed_models_story(d, erl):
    feeds = (("RADIUS", lambda imsi: h.radius_feed(d, imsi, f"tac-{imsi}")),
             ("Diameter", lambda imsi: dst.feed(erl, imsi, f"ctf1;rf;tac{imsi}")))
    cases = (("234550000000004", 0, OTHER, True), ("234550000000005", 0, A2, False),
             ("234550000000006", 1, OTHER, True), ("234550000000007", 1, A2, False))
    for imsi, feed, first, barred in cases:
        label, make_feed = feeds[feed]
        s = d.new_sim(imsi, network="ee")
        st, res = d.api("POST", f"/v1/sims/{s}/orders", {"type": "enable_imei_lock"})
        h.check(st == 202, f"R17 {label}: enable_imei_lock accepted with no device seen yet")
        h.wait_until(lambda: d.sim(s)["lock"]["state"] == "awaiting_first_imei",
                     what="awaiting its first IMEI")
        make_feed(imsi)(first)
        body = d.sim(s)
        if barred:
            h.check(body["bar"]["state"] == "bar_pending" and body["bar"]["trigger_imei"] == OTHER
                    and len(bar_orders(d, s)) == 1
                    and body["lock"]["state"] == "awaiting_first_imei",
                    f"R17 {label}: awaiting its first IMEI, a device of a model ee does not allow "
                    "raises one Bar order and does not become the lock")
            st, events = d.api("GET", f"/v1/sims/{s}/events")
            h.check(st == 200 and any("R17" in (e.get("detail") or "") for e in events["items"]),
                    f"R17 {label}: the SIM's audit log says why (R17, the model not allowed)")
        else:
            h.check(body["bar"]["state"] == "none" and not bar_orders(d, s)
                    and body["lock"]["state"] == "locked" and body["lock"]["imei"] == A2,
                    f"R17 {label}: a device of the allowed model becomes the lock (R6), no bar")


def main():
    def config(state_dir):
        return h.diameter_peer_config(state_dir, ALLOWED_TACS)

    with h.erlang_story("model", config) as (d, erl):
        kind, f = h.connect_erlang(d, erl)
        h.check(kind == "up" and f.get("Result-Code") == "2001", "CER/CEA with the Erlang peer")

        model_story(d, "RADIUS", h.radius_feed(d, "234550000000001", "model-r1"), "234550000000001")
        model_story(d, "Diameter", dst.feed(erl, "234550000000002", "ctf1;rf;model2"),
                    "234550000000002")

        # The default scope: the product text, the same-model move bars.
        observe = h.radius_feed(d, "234550000000003", "model-r3")
        s = lock(d, "RADIUS, scope imei", observe, "234550000000003", None)
        observe(A2)
        body = d.sim(s)
        h.check(body["bar"]["state"] == "bar_pending" and body["bar"]["trigger_imei"] == A2,
              "scope imei (default): another device of the same model is a violation (R7)")

        st, res = d.api("POST", f"/v1/sims/{s}/orders", {"type": "bar", "lock_scope": "imei"})
        h.check(st == 422 and "lock_scope" in res["error"]["message"],
              "lock_scope on an order that enables no lock is refused with a reason")
        allowed_models_story(d, erl)
        print("device-model lock stories passed")

if __name__ == "__main__":
    main()
