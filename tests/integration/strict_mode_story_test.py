#!/usr/bin/env python3
"""Strict mode (imei_lock.strict: true) as an operator meets it: the daemon
bars a locked SIM on any use in a device other than the locked one, not only
on a change event. That closes the caveat of R10: in the default mode a SIM
unbarred with keep_lock while still in the second device is not barred again
there (radius_stories_test.py and diameter_stories_test.py check that half).
Played over RADIUS (radclient) and over Diameter (the Erlang/OTP diameter
client of diameter_stories_test.py) against the real daemon; the state is
read back through the operator API."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402
import diameter_stories_test as dst  # noqa: E402
import radius_stories_test as rst  # noqa: E402

LEAD = 1.0  # seconds: bar lead time of the test network
EXTRA = f"""
imei_lock:
  strict: true
orders:
  networks:
    multinet:
      lead_times:
        bar: {int(LEAD * 1000)}ms
        unbar: 200ms
"""

A = h.imei15("35349001234560")
B = h.imei15("35876502222220")


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok - {what}", flush=True)


def sim(d, iccid):
    st, body = d.api("GET", f"/v1/sims/{iccid}")
    assert st == 200, (st, body)
    return body


def violations(d, iccid):
    """Audit records where a violation raised a bar (none -> bar_pending)."""
    st, events = d.api("GET", f"/v1/sims/{iccid}/events")
    assert st == 200, (st, events)
    return [e for e in events["items"]
            if e["before"]["bar"]["state"] == "none" and e["after"]["bar"]["state"] == "bar_pending"]


def radclient(port, imsi, imeisv, status, session_time):
    """One Accounting-Request through radclient; True if answered. Each use
    carries its own Acct-Session-Time, as a NAS's Interim-Updates do: the
    daemon treats a record with the same content as a retransmit of it."""
    attrs = (f'User-Name = "{imsi}", Acct-Status-Type = {status}, '
             f'Acct-Session-Id = "strict-r", NAS-IP-Address = 127.0.0.1, '
             f'3GPP-IMSI = "{imsi}", 3GPP-IMEISV = "{imeisv}", '
             f'Acct-Session-Time = {session_time}')
    r = subprocess.run(["radclient", "-r", "2", "-t", "2", "-q", f"127.0.0.1:{port}", "acct",
                        h.EXAMPLE_RADIUS_SECRET.decode()],
                       input=attrs.encode(), capture_output=True, timeout=20)
    return r.returncode == 0


def story(d, label, observe, imsi):
    """The R10 caveat story, with `observe(imei, first)` as the network's feed."""
    s = rst.new_sim(d, imsi)
    observe(A, True)
    check(sim(d, s)["last_seen_imei"] == A, f"{label}: last seen IMEI A")
    st, _ = d.api("POST", f"/v1/sims/{s}/orders", {"type": "enable_imei_lock"})
    check(st == 202, f"{label}: enable_imei_lock accepted")
    h.wait_until(lambda: sim(d, s)["lock"] == {"state": "locked", "imei": A}, what="locked to A")

    observe(A, False)
    check(sim(d, s)["bar"]["state"] == "none",
          f"{label}: strict mode, the locked device again (new software version): no bar (R2)")

    observe(B, False)
    check(sim(d, s)["bar"]["state"] == "bar_pending", f"{label}: device B: bar pending (R7)")
    h.wait_until(lambda: sim(d, s)["bar"]["state"] == "barred", timeout=LEAD + 15, what="barred")

    # Unbar keeping the lock while the SIM is still in B: the warning says
    # strict enforcement bars it again at its next use there.
    st, o = d.api("POST", f"/v1/sims/{s}/orders", {"type": "unbar", "unbar_mode": "keep_lock"})
    warnings = " ".join(o.get("warnings") or [])
    check(st == 202 and "Strict enforcement is on" in warnings and A in warnings and B in warnings,
          f"{label}: keep_lock in device B accepted with the strict-mode warning naming A and B")
    h.wait_until(lambda: sim(d, s)["bar"]["state"] == "none", what="unbarred")
    body = sim(d, s)
    check(body["lock"] == {"state": "locked", "imei": A} and body["last_seen_imei"] == B,
          f"{label}: unbarred, the lock kept on A, last seen B")

    # The next use in B is no change event (last seen is B), yet strict mode bars.
    t0 = time.monotonic()
    observe(B, False)
    body = sim(d, s)
    check(body["bar"]["state"] == "bar_pending" and body["bar"]["trigger_imei"] == B,
          f"{label}: strict: the next use in device B (no change event) raises a bar again")
    h.wait_until(lambda: sim(d, s)["bar"]["state"] == "barred", timeout=LEAD + 15,
                 what="barred again")
    check(time.monotonic() - t0 >= LEAD * 0.8, f"{label}: barred again only after the lead time")
    st, orders = d.api("GET", f"/v1/sims/{s}/orders")
    check(len([x for x in orders["items"] if x["type"] == "bar"]) == 2,
          f"{label}: two bar orders in all, one per violation")
    check(len(violations(d, s)) == 2, f"{label}: the audit log holds both violations (R14)")


def main():
    if not shutil.which("erl"):
        raise SystemExit("erl not found: install erlang-base and erlang-diameter "
                         "(scripts/install-deps.sh)")
    work = tempfile.mkdtemp(prefix="imeilock-strict-erl-")
    state_dir = tempfile.mkdtemp(prefix="imeilockd-test-")
    text = dst.daemon_config(state_dir)
    assert dst.EXTRA in text, "diameter_stories_test's configuration changed: update this test"
    d = h.Daemon(config_text=text.replace(dst.EXTRA, EXTRA), state_dir=state_dir)
    erl = None
    ok = False
    try:
        erl = dst.ErlangClient(work)
        d.start()
        erl.wait_ready()
        kind, f = dst.fields(erl.cmd(f"{{connect, {d.ports['diameter']}, {dst.CLIENT_TW_MS}}}."))
        check(kind == "up" and f.get("Result-Code") == "2001", "CER/CEA with the Erlang peer")

        port = d.ports["radius"]
        imsi_r = "234520000000001"

        session_time = [0]

        def over_radius(imei, first):
            status = "Start" if first else "Interim-Update"
            sv = "01" if first else "02"
            check(radclient(port, imsi_r, imei[:14] + sv, status, session_time[0]),
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
        ok = True
        print("strict mode stories passed")
    finally:
        if erl is not None:
            erl.close()
        d.kill9()
        shutil.rmtree(work, ignore_errors=True)
        if ok:
            shutil.rmtree(state_dir, ignore_errors=True)
        else:
            print(f"kept {state_dir}; daemon log:\n{d.log()[-4000:]}")


if __name__ == "__main__":
    main()
