#!/usr/bin/env python3
"""SIMs that never report an IMEI (issue 13) against the real daemon.

The product text: "If no IMEI is provided by the Network, no change event can
be triggered and so Mobile Manager will not bar the SIM." Over RADIUS
(radclient) and over Diameter Rf (the Erlang/OTP client of
diameter_stories_test.py):

- accounting records without an IMEI: the SIM shows last_observed_at and a
  null last_imei_at (written behind every sim_layer.activity_flush), and
  GET /v1/sims?never_with_imei=true lists it;
- enabling the lock on it is accepted with a warning saying so; the lock waits
  for its first IMEI (R4), GET /v1/sims?awaiting_imei_for=D lists it once it
  has waited D, and imeilock_sims_awaiting_imei counts it;
- a SIM observed with an IMEI gets no such warning;
- the first record with an IMEI locks the SIM (R6), sets last_imei_at, and
  takes it out of the list and the gauge;
- with a write-behind interval of an hour, a clean stop still writes the
  last observation (and a restart reads it back).
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as h  # noqa: E402
import diameter_stories_test as dst  # noqa: E402

A = h.imei15("35349001234560")
B = h.imei15("35876502222220")


def listed(d, query):
    st, body = d.api("GET", f"/v1/sims?{query}&limit=1000")
    assert st == 200, (st, body)
    return {s["iccid"] for s in body["items"]}


def gauge(d):
    return d.metric("imeilock_sims_awaiting_imei")


def no_imei_story(d, label, observe, imsi, awaiting_before):
    """Records without an IMEI, then the lock enabled on the SIM."""
    s = d.new_sim(imsi)
    body = d.sim(s)
    h.check(body["last_observed_at"] is None and body["last_imei_at"] is None,
          f"{label}: a SIM never observed shows neither time")
    observe()
    observe()
    h.wait_until(lambda: d.sim(s)["last_observed_at"] is not None, timeout=10,
                 what="last_observed_at written behind")
    body = d.sim(s)
    h.check(body["last_imei_at"] is None and body["last_seen_imei"] is None,
          f"{label}: observed without an IMEI: last_observed_at set, last_imei_at null")
    h.check(s in listed(d, "never_with_imei=true") and s not in listed(d, "never_with_imei=false"),
          f"{label}: GET /v1/sims?never_with_imei=true lists it")

    st, res = d.api("POST", f"/v1/sims/{s}/orders", {"type": "enable_imei_lock"})
    h.check(st == 202, f"{label}: enable_imei_lock accepted")
    warnings = res.get("warnings") or []
    h.check(any("never with an IMEI" in w and "no change event can bar the SIM" in w
              for w in warnings),
          f"{label}: the order carries the warning that the SIM never reported an IMEI")
    h.wait_until(lambda: d.sim(s)["lock"]["state"] == "awaiting_first_imei",
                 what="awaiting its first IMEI")
    h.check(True, f"{label}: R4 with no IMEI ever seen: the lock awaits its first IMEI")
    h.wait_until(lambda: gauge(d) == awaiting_before + 1, timeout=10,
                 what="imeilock_sims_awaiting_imei counts it")
    h.check(True, f"{label}: imeilock_sims_awaiting_imei = {awaiting_before + 1}")
    # More records without an IMEI change nothing about the lock (R3).
    observe()
    h.check(d.sim(s)["lock"]["state"] == "awaiting_first_imei",
          f"{label}: another record without an IMEI changes nothing (R3)")
    return s


def main():
    anchor = "sim_layer:\n"

    def config(state_dir, flush):
        base = h.diameter_peer_config(state_dir)
        assert anchor in base, "harness configuration changed: update this test"
        return base.replace(anchor, anchor + f"  activity_flush: {flush}\n")

    with h.erlang_story("noimei", lambda state_dir: config(state_dir, "200ms")) as (d, erl):
        kind, f = h.connect_erlang(d, erl)
        h.check(kind == "up" and f.get("Result-Code") == "2001", "CER/CEA with the Erlang peer")
        h.check(gauge(d) == 0, "imeilock_sims_awaiting_imei starts at 0")

        radius_s = h.radius_feed(d, "234540000000001", "noimei-r1")
        s_r = no_imei_story(d, "RADIUS", radius_s, "234540000000001", 0)
        diameter_s = dst.feed(erl, "234540000000002", "ctf1;rf;noimei2")
        s_d = no_imei_story(d, "Diameter", diameter_s, "234540000000002", 1)

        # awaiting_imei_for: counted from the state change that set the lock waiting.
        time.sleep(2.2)
        waiting = listed(d, "awaiting_imei_for=2s")
        h.check({s_r, s_d} <= waiting, "GET /v1/sims?awaiting_imei_for=2s lists both after 2 s")
        h.check(not ({s_r, s_d} & listed(d, "awaiting_imei_for=1h")),
              "GET /v1/sims?awaiting_imei_for=1h lists neither")

        # A SIM that did report an IMEI: no warning.
        radius_c = h.radius_feed(d, "234540000000003", "noimei-r3")
        s_c = d.new_sim("234540000000003")
        radius_c(A)
        h.wait_until(lambda: d.sim(s_c)["last_imei_at"] is not None, timeout=10,
                     what="last_imei_at written behind")
        st, res = d.api("POST", f"/v1/sims/{s_c}/orders", {"type": "enable_imei_lock"})
        h.check(st == 202 and not any("never with an IMEI" in w for w in res.get("warnings") or []),
              "a SIM observed with an IMEI: enable_imei_lock without the warning")
        h.wait_until(lambda: d.sim(s_c)["lock"] == {"state": "locked", "imei": A, "scope": "imei"},
                     what="locked to A")
        h.check(s_c not in listed(d, "never_with_imei=true") and gauge(d) == 2,
              "a SIM observed with an IMEI is neither listed nor counted")

        # The first record with an IMEI: R6, and out of the list and the gauge.
        radius_s(A)
        h.wait_until(lambda: d.sim(s_r)["lock"] == {"state": "locked", "imei": A, "scope": "imei"},
                     what="RADIUS SIM locked")
        h.check(True, "RADIUS: the first record with an IMEI sets the lock (R6)")
        diameter_s(B)
        h.wait_until(lambda: d.sim(s_d)["lock"] == {"state": "locked", "imei": B, "scope": "imei"},
                     what="Diameter SIM locked")
        h.check(True, "Diameter: the first record with an IMEI sets the lock (R6)")
        h.wait_until(lambda: d.sim(s_r)["last_imei_at"] is not None
                     and d.sim(s_d)["last_imei_at"] is not None, timeout=10,
                     what="last_imei_at written behind")
        h.check(not ({s_r, s_d} & listed(d, "never_with_imei=true")),
              "SIMs that reported an IMEI leave the never_with_imei list")
        h.wait_until(lambda: gauge(d) == 0, timeout=10, what="the gauge back to 0")
        h.check(True, "imeilock_sims_awaiting_imei back to 0")

        # Write-behind of an hour: only the clean stop writes the observation.
        h.check(d.stop() == 0, "clean stop")
        with open(d.config_path, "w") as fh:
            fh.write(config(d.state_dir, "1h"))
        d.start()
        erl.close()
        erl = None
        before = d.sim(s_r)["last_observed_at"]
        time.sleep(1.1)
        radius_s(A)
        time.sleep(0.5)
        h.check(d.sim(s_r)["last_observed_at"] == before,
              "activity_flush 1h: an observation that changes nothing is not written at once")
        h.check(d.stop() == 0, "clean stop")
        d.start()
        after = d.sim(s_r)["last_observed_at"]
        h.check(after is not None and after > before,
              f"the clean stop wrote the last observation ({before} -> {after})")
        print("no-IMEI stories passed")

if __name__ == "__main__":
    main()
