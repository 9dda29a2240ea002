#!/usr/bin/env python3
"""Violation actions per network (issue 13) against the real daemon.

One daemon, two networks: multinet in monitor mode (`alert`), ee on the
default `bar`; imei_lock.actions reloaded with SIGHUP half-way.

- alert, over RADIUS (radclient) and over Diameter (the Erlang/OTP client of
  diameter_stories_test.py): a locked SIM seen in another device is audited
  ("monitor mode: no Bar order"), counted
  (imeilock_sim_violation_actions_total{network, action="alert"}), posted as
  the `violation` webhook with "action": "alert", listed by
  GET /v1/sims?alerted=true; no Bar order, the SIM keeps working and last
  seen moves.
- SIGHUP turns multinet to `bar`: nothing is barred retroactively (the SIM
  still in the device it violated in stays unbarred), the next violation bars.
- The same SIGHUP turns ee (bar at start: nothing disconnects) to
  disconnect_and_bar. Over RADIUS the Disconnect-Request reaches an RFC 5176
  receiver on loopback (pyrad's packet code) for the violating session, its
  ACK is audited, and the Bar order follows; over Diameter (no RFC 5176
  session) the bar alone.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as h  # noqa: E402
import dashboard_story_test as dbt  # noqa: E402  (its webhook and RFC 5176 receivers)
import diameter_stories_test as dst  # noqa: E402
import radius_stories_test as rst  # noqa: E402

A = h.imei15("35349001234560")
B = h.imei15("35876502222220")
C = h.imei15("49015420323751")
LEAD_MS = 800


def extra(actions, hooks_port):
    return f"""
imei_lock:
  actions: {{{actions}}}
orders:
  networks:
    multinet:
      lead_times: {{bar: {LEAD_MS}ms, unbar: 200ms}}
    ee:
      lead_times: {{bar: {LEAD_MS}ms, unbar: 200ms}}
webhooks:
  targets:
    - url: http://127.0.0.1:{hooks_port}/events
      secret: {dbt.WEBHOOK_KEY}
  initial_backoff: 100ms
"""


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok - {what}", flush=True)


def sim(d, iccid):
    st, body = d.api("GET", f"/v1/sims/{iccid}")
    assert st == 200, (st, body)
    return body


def events(d, iccid):
    st, body = d.api("GET", f"/v1/sims/{iccid}/events")
    assert st == 200, (st, body)
    return body["items"]


def bar_orders(d, iccid):
    st, body = d.api("GET", f"/v1/sims/{iccid}/orders")
    assert st == 200, (st, body)
    return [o for o in body["items"] if o["type"] == "bar"]


def alerted_iccids(d):
    st, body = d.api("GET", "/v1/sims?alerted=true")
    assert st == 200, (st, body)
    return {s["iccid"] for s in body["items"]}


def violation_count(d, network, action):
    return d.metric("imeilock_sim_violation_actions_total", network=network, action=action) or 0


def radclient(port, imsi, imeisv, status, session_time, session_id):
    """One Accounting-Request through radclient; True if answered. Each use
    carries its own Acct-Session-Time, as a NAS's Interim-Updates do: the
    daemon treats a record with the same content as a retransmit of it."""
    attrs = (f'User-Name = "{imsi}", Acct-Status-Type = {status}, '
             f'Acct-Session-Id = "{session_id}", NAS-IP-Address = 127.0.0.1, '
             f'3GPP-IMSI = "{imsi}", 3GPP-IMEISV = "{imeisv}", '
             f'Acct-Session-Time = {session_time}')
    r = subprocess.run(["radclient", "-r", "2", "-t", "2", "-q", f"127.0.0.1:{port}", "acct",
                        h.EXAMPLE_RADIUS_SECRET.decode()],
                       input=attrs.encode(), capture_output=True, timeout=20)
    return r.returncode == 0


def radius_feed(d, imsi, session_id):
    """observe(imei, first) over RADIUS for one SIM and session."""
    session_time = [0]

    def observe(imei, first=False):
        status = "Start" if first else "Interim-Update"
        check(radclient(d.ports["radius"], imsi, imei[:14] + "01", status, session_time[0],
                        session_id),
              f"RADIUS {status} of {imsi} from {imei} answered")
        session_time[0] += 60
    return observe


def diameter_feed(erl, imsi, session_id):
    """observe(imei, first) over Diameter Rf (ACR) for one SIM."""
    number = [0]

    def observe(imei, first=False):
        dst.acr(erl, session_id, dst.START if first else dst.INTERIM, number[0], imsi,
                dst.uei_ascii(imei[:14] + "01"))
        number[0] += 1
    return observe


def lock_to_a(d, label, observe, imsi, network):
    s = rst.new_sim(d, imsi, network)
    observe(A, True)
    st, _ = d.api("POST", f"/v1/sims/{s}/orders", {"type": "enable_imei_lock"})
    check(st == 202, f"{label}: enable_imei_lock accepted")
    h.wait_until(lambda: sim(d, s)["lock"] == {"state": "locked", "imei": A}, what="locked to A")
    return s


def alert_story(d, hooks, label, observe, imsi):
    """Monitor mode: the violation is recorded, counted and notified; no bar."""
    s = lock_to_a(d, label, observe, imsi, "multinet")
    check(sim(d, s)["violation_action"] == "alert", f"{label}: the SIM shows its network's action")
    before = violation_count(d, "multinet", "alert")
    observe(B)
    body = sim(d, s)
    check(body["bar"]["state"] == "none" and body["pending_order"] is None,
          f"{label}: violation in monitor mode: no bar pending, no order in flight")
    check(body["alerted"] is True and body["last_seen_imei"] == B
          and body["lock"] == {"state": "locked", "imei": A},
          f"{label}: the SIM is marked alerted, last seen moved to B, still locked to A")
    check(not bar_orders(d, s), f"{label}: no Bar order raised")
    audited = [e for e in events(d, s) if "monitor mode: no Bar order" in (e.get("detail") or "")]
    check(len(audited) == 1 and audited[0]["after"]["alerted"] is True,
          f"{label}: the violation is in the SIM's audit log (R14): 'monitor mode: no Bar order'")
    check(violation_count(d, "multinet", "alert") == before + 1,
          f"{label}: counted in imeilock_sim_violation_actions_total{{network=multinet,action=alert}}")
    h.wait_until(lambda: any(e["event"] == "violation" and e["iccid"] == s for e, _ in hooks.events),
                 timeout=10, what="violation webhook")
    hook = next(e for e, ok in hooks.events if e["event"] == "violation" and e["iccid"] == s)
    check(hook["action"] == "alert" and hook["order_id"] is None and hook["imei"] == B,
          f"{label}: violation webhook with action alert, no order")
    check(s in alerted_iccids(d), f"{label}: GET /v1/sims?alerted=true lists the SIM")
    # The SIM keeps working in B: more use there changes nothing.
    observe(B)
    check(sim(d, s)["bar"]["state"] == "none" and not bar_orders(d, s),
          f"{label}: the SIM keeps working in B (no bar)")
    return s


def after_switch_to_bar(d, label, observe, s):
    """multinet is `bar` now: no retro-bar, the next violation bars."""
    observe(B)
    body = sim(d, s)
    check(body["bar"]["state"] == "none" and not bar_orders(d, s) and body["alerted"] is True,
          f"{label}: after SIGHUP to bar, still in B: not barred retroactively, still listed")
    observe(C)
    body = sim(d, s)
    check(body["bar"]["state"] == "bar_pending" and body["bar"]["trigger_imei"] == C,
          f"{label}: the next violation (device C) raises the bar")
    h.wait_until(lambda: sim(d, s)["bar"]["state"] == "barred", timeout=15, what="barred")
    check(len(bar_orders(d, s)) == 1 and sim(d, s)["alerted"] is False,
          f"{label}: barred by one order; the alerted mark cleared with the bar")


def main():
    if not shutil.which("erl"):
        raise SystemExit("erl not found: install erlang-base and erlang-diameter "
                         "(scripts/install-deps.sh)")
    hooks = dbt.webhook_receiver()
    dae = dbt.dae_receiver(h.EXAMPLE_RADIUS_SECRET)
    work = tempfile.mkdtemp(prefix="imeilock-actions-erl-")
    state_dir = tempfile.mkdtemp(prefix="imeilockd-test-")
    secret = h.EXAMPLE_RADIUS_SECRET.decode()
    base = dst.daemon_config(state_dir)
    assert dst.EXTRA in base, "diameter_stories_test's configuration changed: update this test"
    client = f"      secret: {secret}\n"
    assert client in base, "harness RADIUS client changed: update this test"
    base = base.replace(client, client + f"      disconnect_port: {dae.port}\n"
                        "  disconnect:\n    timeout: 300ms\n    retries: 2\n")

    def config(actions):
        return base.replace(dst.EXTRA, extra(actions, hooks.server_address[1]))

    d = h.Daemon(config_text=config("multinet: alert"), state_dir=state_dir)
    erl = None
    ok = False
    try:
        erl = dst.ErlangClient(work)
        d.start()
        erl.wait_ready()
        kind, f = dst.fields(erl.cmd(f"{{connect, {d.ports['diameter']}, {dst.CLIENT_TW_MS}}}."))
        check(kind == "up" and f.get("Result-Code") == "2001", "CER/CEA with the Erlang peer")

        radius_a = radius_feed(d, "234530000000001", "act-r1")
        s_r = alert_story(d, hooks, "alert/RADIUS", radius_a, "234530000000001")
        diameter_a = diameter_feed(erl, "234530000000002", "ctf1;rf;act1")
        s_d = alert_story(d, hooks, "alert/Diameter", diameter_a, "234530000000002")
        check(not dae.requests, "monitor mode sends no Disconnect-Request")

        # SIGHUP: multinet from alert to bar, ee from bar to disconnect_and_bar.
        with open(d.config_path, "w") as fh:
            fh.write(config("multinet: bar, ee: disconnect_and_bar"))
        d.signal(signal.SIGHUP)
        h.wait_until(lambda: sim(d, s_r)["violation_action"] == "bar", timeout=15,
                     what="the reload applied")
        check(re.search(r"sim_layer\.actions_reloaded", d.log()) is not None,
              "SIGHUP applied the new actions without a restart")
        check({s_r, s_d} <= alerted_iccids(d), "after the switch the alerted SIMs are still listed")
        after_switch_to_bar(d, "bar/RADIUS", radius_a, s_r)
        after_switch_to_bar(d, "bar/Diameter", diameter_a, s_d)
        check(not ({s_r, s_d} & alerted_iccids(d)), "barred SIMs leave the alerted list")

        # The same SIGHUP made ee disconnect_and_bar (no network disconnected at
        # start): over RADIUS the Disconnect first, then the bar.
        radius_e = radius_feed(d, "234530000000003", "act-r3")
        s_e = lock_to_a(d, "disconnect_and_bar/RADIUS", radius_e, "234530000000003", "ee")
        check(sim(d, s_e)["violation_action"] == "disconnect_and_bar",
              "disconnect_and_bar/RADIUS: the SIM shows its network's action")
        radius_e(B)
        h.wait_until(lambda: dae.requests, timeout=10, what="a Disconnect-Request")
        req, verified = dae.requests[0]
        check(verified and req["Acct-Session-Id"] == ["act-r3"]
              and req["User-Name"] == ["234530000000003"],
              "disconnect_and_bar/RADIUS: a signed Disconnect-Request for the violating session")
        body = sim(d, s_e)
        check(body["bar"]["state"] in ("bar_pending", "barred") and body["bar"]["trigger_imei"] == B
              and len(bar_orders(d, s_e)) == 1 and body["alerted"] is False,
              "disconnect_and_bar/RADIUS: then the Bar order (one)")
        h.wait_until(lambda: any(e["cause"] == "disconnect:ack" for e in events(d, s_e)),
                     timeout=10, what="disconnect:ack in the audit log")
        causes = [e["cause"] for e in reversed(events(d, s_e))]  # oldest first
        check(causes.index("observation", causes.index("order_completed:enable_imei_lock"))
              < causes.index("disconnect:ack"),
              "disconnect_and_bar/RADIUS: the Disconnect ACK is audited after the violation (R14)")
        check(violation_count(d, "ee", "disconnect_and_bar") == 1,
              "disconnect_and_bar/RADIUS: counted with action disconnect_and_bar")
        h.wait_until(lambda: sim(d, s_e)["bar"]["state"] == "barred", timeout=15, what="barred")

        diameter_e = diameter_feed(erl, "234530000000004", "ctf1;rf;act4")
        s_de = lock_to_a(d, "disconnect_and_bar/Diameter", diameter_e, "234530000000004", "ee")
        diameter_e(B)
        body = sim(d, s_de)
        check(body["bar"]["state"] == "bar_pending" and len(bar_orders(d, s_de)) == 1,
              "disconnect_and_bar/Diameter: no RADIUS session to disconnect, the bar is raised")
        check(len(dae.requests) == 1, "disconnect_and_bar/Diameter: no Disconnect-Request")

        ok = True
        print("violation action stories passed")
    finally:
        if erl is not None:
            erl.close()
        d.kill9()
        dae.running = False
        hooks.shutdown()
        shutil.rmtree(work, ignore_errors=True)
        if ok:
            shutil.rmtree(state_dir, ignore_errors=True)
        else:
            print(f"kept {state_dir}; daemon log:\n{d.log()[-4000:]}")


if __name__ == "__main__":
    main()
