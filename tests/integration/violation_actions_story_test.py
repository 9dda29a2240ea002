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
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as h  # noqa: E402
import diameter_stories_test as dst  # noqa: E402

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
      secret: {h.EXAMPLE_WEBHOOK_KEY}
  initial_backoff: 100ms
"""


def alerted_iccids(d):
    st, body = d.api("GET", "/v1/sims?alerted=true")
    assert st == 200, (st, body)
    return {s["iccid"] for s in body["items"]}


def violation_count(d, network, action):
    return d.metric("imeilock_sim_violation_actions_total", network=network, action=action) or 0


def lock_to_a(d, label, observe, imsi, network):
    s = d.new_sim(imsi, network)
    observe(A, True)
    st, _ = d.order(s, type="enable_imei_lock")
    h.check(st == 202, f"{label}: enable_imei_lock accepted")
    h.wait_until(lambda: d.sim(s)["lock"] == {"state": "locked", "imei": A, "scope": "imei"}, what="locked to A")
    return s


def alert_story(d, hooks, label, observe, imsi):
    """Monitor mode: the violation is recorded, counted and notified; no bar."""
    s = lock_to_a(d, label, observe, imsi, "multinet")
    h.check(d.sim(s)["violation_action"] == "alert", f"{label}: the SIM shows its network's action")
    before = violation_count(d, "multinet", "alert")
    observe(B)
    body = d.sim(s)
    h.check(body["bar"]["state"] == "none" and body["pending_order"] is None,
            f"{label}: violation in monitor mode: no bar pending, no order in flight")
    h.check(body["alerted"] is True and body["last_seen_imei"] == B
            and body["lock"] == {"state": "locked", "imei": A, "scope": "imei"},
            f"{label}: the SIM is marked alerted, last seen moved to B, still locked to A")
    h.check(not d.orders(s, "bar"), f"{label}: no Bar order raised")
    audited = [e for e in d.events(s) if "monitor mode: no Bar order" in (e.get("detail") or "")]
    h.check(len(audited) == 1 and audited[0]["after"]["alerted"] is True,
            f"{label}: the violation is in the SIM's audit log (R14): 'monitor mode: no Bar order'")
    h.check(violation_count(d, "multinet", "alert") == before + 1,
            f"{label}: counted in imeilock_sim_violation_actions_total{{network=multinet,action=alert}}")
    h.wait_until(lambda: any(e["event"] == "violation" and e["iccid"] == s for e, _ in hooks.events),
                 timeout=10, what="violation webhook")
    hook = next(e for e, ok in hooks.events if e["event"] == "violation" and e["iccid"] == s)
    h.check(hook["action"] == "alert" and hook["order_id"] is None and hook["imei"] == B,
            f"{label}: violation webhook with action alert, no order")
    h.check(s in alerted_iccids(d), f"{label}: GET /v1/sims?alerted=true lists the SIM")
    # The SIM keeps working in B: more use there changes nothing.
    observe(B)
    h.check(d.sim(s)["bar"]["state"] == "none" and not d.orders(s, "bar"),
            f"{label}: the SIM keeps working in B (no bar)")
    return s


def after_switch_to_bar(d, label, observe, s):
    """multinet is `bar` now: no retro-bar, the next violation bars."""
    observe(B)
    body = d.sim(s)
    h.check(body["bar"]["state"] == "none" and not d.orders(s, "bar") and body["alerted"] is True,
            f"{label}: after SIGHUP to bar, still in B: not barred retroactively, still listed")
    observe(C)
    body = d.sim(s)
    h.check(body["bar"]["state"] == "bar_pending" and body["bar"]["trigger_imei"] == C,
            f"{label}: the next violation (device C) raises the bar")
    h.wait_until(lambda: d.sim(s)["bar"]["state"] == "barred", timeout=15, what="barred")
    h.check(len(d.orders(s, "bar")) == 1 and d.sim(s)["alerted"] is False,
            f"{label}: barred by one order; the alerted mark cleared with the bar")


def main():
    hooks = h.webhook_receiver(h.EXAMPLE_WEBHOOK_KEY)
    dae = h.dae_receiver(h.EXAMPLE_RADIUS_SECRET)
    client = f"      secret: {h.EXAMPLE_RADIUS_SECRET.decode()}\n"

    def config(state_dir, actions):
        text = h.diameter_peer_config(state_dir, extra(actions, hooks.server_address[1]))
        assert client in text, "harness RADIUS client changed: update this test"
        return text.replace(client, client + f"      disconnect_port: {dae.port}\n"
                            "  disconnect:\n    timeout: 300ms\n    retries: 2\n")

    try:
        with h.erlang_story("actions", lambda state_dir: config(state_dir, "multinet: alert")) \
                as (d, erl):
            kind, f = h.connect_erlang(d, erl)
            h.check(kind == "up" and f.get("Result-Code") == "2001", "CER/CEA with the Erlang peer")

            radius_a = h.radius_feed(d, "234530000000001", "act-r1")
            s_r = alert_story(d, hooks, "alert/RADIUS", radius_a, "234530000000001")
            diameter_a = dst.feed(erl, "234530000000002", "ctf1;rf;act1")
            s_d = alert_story(d, hooks, "alert/Diameter", diameter_a, "234530000000002")
            h.check(not dae.requests, "monitor mode sends no Disconnect-Request")

            # SIGHUP: multinet from alert to bar, ee from bar to disconnect_and_bar.
            with open(d.config_path, "w") as fh:
                fh.write(config(d.state_dir, "multinet: bar, ee: disconnect_and_bar"))
            d.signal(signal.SIGHUP)
            h.wait_until(lambda: d.sim(s_r)["violation_action"] == "bar", timeout=15,
                         what="the reload applied")
            h.check(re.search(r"sim_layer\.actions_reloaded", d.log()) is not None,
                    "SIGHUP applied the new actions without a restart")
            h.check({s_r, s_d} <= alerted_iccids(d), "after the switch the alerted SIMs are still listed")
            after_switch_to_bar(d, "bar/RADIUS", radius_a, s_r)
            after_switch_to_bar(d, "bar/Diameter", diameter_a, s_d)
            h.check(not ({s_r, s_d} & alerted_iccids(d)), "barred SIMs leave the alerted list")

            # The same SIGHUP made ee disconnect_and_bar (no network disconnected at
            # start): over RADIUS the Disconnect first, then the bar.
            radius_e = h.radius_feed(d, "234530000000003", "act-r3")
            s_e = lock_to_a(d, "disconnect_and_bar/RADIUS", radius_e, "234530000000003", "ee")
            h.check(d.sim(s_e)["violation_action"] == "disconnect_and_bar",
                    "disconnect_and_bar/RADIUS: the SIM shows its network's action")
            radius_e(B)
            h.wait_until(lambda: dae.requests, timeout=10, what="a Disconnect-Request")
            req, verified = dae.requests[0]
            h.check(verified and req["Acct-Session-Id"] == ["act-r3"]
                    and req["User-Name"] == ["234530000000003"],
                    "disconnect_and_bar/RADIUS: a signed Disconnect-Request for the violating session")
            body = d.sim(s_e)
            h.check(body["bar"]["state"] in ("bar_pending", "barred") and body["bar"]["trigger_imei"] == B
                    and len(d.orders(s_e, "bar")) == 1 and body["alerted"] is False,
                    "disconnect_and_bar/RADIUS: then the Bar order (one)")
            h.wait_until(lambda: any(e["cause"] == "disconnect:ack" for e in d.events(s_e)),
                         timeout=10, what="disconnect:ack in the audit log")
            causes = [e["cause"] for e in reversed(d.events(s_e))]  # oldest first
            h.check(causes.index("observation", causes.index("order_completed:enable_imei_lock"))
                    < causes.index("disconnect:ack"),
                    "disconnect_and_bar/RADIUS: the Disconnect ACK is audited after the violation (R14)")
            h.check(violation_count(d, "ee", "disconnect_and_bar") == 1,
                    "disconnect_and_bar/RADIUS: counted with action disconnect_and_bar")
            h.wait_until(lambda: d.sim(s_e)["bar"]["state"] == "barred", timeout=15, what="barred")

            diameter_e = dst.feed(erl, "234530000000004", "ctf1;rf;act4")
            s_de = lock_to_a(d, "disconnect_and_bar/Diameter", diameter_e, "234530000000004", "ee")
            diameter_e(B)
            body = d.sim(s_de)
            h.check(body["bar"]["state"] == "bar_pending" and len(d.orders(s_de, "bar")) == 1,
                    "disconnect_and_bar/Diameter: no RADIUS session to disconnect, the bar is raised")
            h.check(len(dae.requests) == 1, "disconnect_and_bar/Diameter: no Disconnect-Request")

    finally:
        dae.running = False
        hooks.shutdown()
    print("violation action stories passed")


if __name__ == "__main__":
    main()
