#!/usr/bin/env python3
"""The whole operator story against the real daemon (issues 4 and 6):

A SIM locked to device A is seen in device B over RADIUS. The daemon raises
the bar, sends an RFC 5176 Disconnect-Request to the NAS (a real receiver
built on pyrad's packet code) and records its ACK in the SIM's audit log,
and posts signed webhooks (violation, bar completed) to a real HTTP server.
The operator opens the dashboard in headless Chromium, sees the bar, picks
"Unbar and update to last seen IMEI", and the page shows the SIM locked to B;
the unbar webhook follows.
"""
import importlib.util
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as h  # noqa: E402

spec = importlib.util.spec_from_file_location("ui_cdp", os.path.join(HERE, "..", "api", "ui_test.py"))
ui = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ui)

WEBHOOK_KEY = h.EXAMPLE_WEBHOOK_KEY
A = h.imei15("35349001234567")
B = h.imei15("35209900176148")
IMSI = "234500000000031"
IMSI_EE = "234500000000033"  # on ee, in monitor mode (imei_lock.actions: {ee: alert})


def main():
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        print("chromium is not installed (scripts/install-deps.sh installs it)")
        return 1
    hooks = h.webhook_receiver(WEBHOOK_KEY)
    dae = h.dae_receiver(h.EXAMPLE_RADIUS_SECRET)
    state = h.temp_dir("imeilockd-test-")
    secret = h.EXAMPLE_RADIUS_SECRET.decode()
    cfg = h.default_config(state).replace(
        f"      secret: {secret}\n",
        f"      secret: {secret}\n      disconnect_port: {dae.port}\n"
        "  disconnect:\n    enabled: true\n    timeout: 300ms\n    retries: 2\n")
    cfg += f"""
imei_lock:
  actions: {{ee: alert}}
orders:
  networks:
    multinet:
      lead_times: {{bar: 1500ms, unbar: 300ms}}
    ee:
      lead_times: {{bar: 300ms}}
webhooks:
  targets:
    - url: http://127.0.0.1:{hooks.server_address[1]}/events
      secret: {WEBHOOK_KEY}
  initial_backoff: 100ms
"""
    d = h.Daemon(config_text=cfg, state_dir=state)
    browser = None
    profile = tempfile.mkdtemp(prefix="imeilock-ui-")
    try:
        d.start()
        iccid = h.random_iccid()
        st, _ = d.api("PUT", f"/v1/sims/{iccid}", {"imsis": [IMSI], "msisdn": "447700900031",
                                                    "network": "multinet", "status": "active"})
        h.check(st == 201, "SIM created")
        port = d.ports["radius"]
        pkt = h.accounting_request(1, IMSI, A, status_type=1, session_id="ui-1")
        h.check(h.response_ok(pkt, h.radius_exchange(port, pkt)), "Start from device A answered")
        st, _ = d.api("POST", f"/v1/sims/{iccid}/orders", {"type": "enable_imei_lock"})
        h.wait_until(lambda: d.api("GET", f"/v1/sims/{iccid}")[1]["lock"]["state"] == "locked",
                     what="locked to A")
        pkt = h.accounting_request(2, IMSI, B, status_type=3, session_id="ui-1")
        h.check(h.response_ok(pkt, h.radius_exchange(port, pkt)), "Interim-Update from device B answered")

        # RFC 5176: the NAS got a Disconnect-Request for the session, and the ACK is audited.
        h.wait_until(lambda: dae.requests, timeout=10, what="a Disconnect-Request")
        req, ok = dae.requests[0]
        h.check(ok, "the Disconnect-Request's authenticator verifies with the NAS secret")
        h.check(req["Acct-Session-Id"] == ["ui-1"], "it names the violating session")
        h.wait_until(lambda: any(e["cause"] == "disconnect:ack" for e in
                                 d.api("GET", f"/v1/sims/{iccid}/events")[1]["items"]),
                     timeout=10, what="disconnect:ack in the audit log")
        h.check(True, "the Disconnect ACK is in the SIM's audit log (R14)")

        # Webhooks: the violation at once, the bar once the lead time has run out.
        h.wait_until(lambda: "bar_completed" in hooks.names(), timeout=15, what="bar_completed")
        h.check("violation" in hooks.names(), "violation webhook delivered")
        v = next(e for e, _ in hooks.events if e["event"] == "violation")
        h.check(v["iccid"] == iccid and v["imei"] == B and v["locked_imei"] == A and v["imsi"] == IMSI,
              f"violation webhook carries iccid, imsi, imei and locked_imei ({v})")
        h.check(v["action"] == "disconnect_and_bar",
              "radius.disconnect.enabled, the old switch, made multinet disconnect_and_bar (alias)")
        h.check(all(ok for _, ok in hooks.events), "every webhook carries a valid HMAC signature")

        # The operator in the dashboard.
        token = h.EXAMPLE_TOKEN
        url = f"http://127.0.0.1:{d.ports['api']}"
        browser, dt = ui.start_chromium(chromium, profile)
        ui.open_sim(dt, url, token, iccid)
        dt.wait("document.getElementById('bar-state').dataset.state === 'barred'", "the bar")
        h.check(ui.text(dt, "lock-imei") == A and ui.text(dt, "trigger-imei") == B,
              "the page shows the bar: locked to A, triggered by B")
        # The activation tick box follows the configured eligibility (R1, R13):
        # a MultiNet SIM may be locked, but not at activation.
        h.check(d.api("GET", f"/v1/sims/{iccid}")[1]["eligibility"] ==
              {"imei_lock": True, "lock_on_activation": False},
              "the SIM carries its network's eligibility (multinet: lock yes, at activation no)")
        h.check(dt.js("document.getElementById('activate-lock') === null") is True,
              "the page renders no 'Enable IMEI Locking' tick box on activation for multinet")
        rn = h.random_iccid()
        d.api("PUT", f"/v1/sims/{rn}", {"imsis": ["234500000000032"], "msisdn": "447700900032",
                                         "network": "roamnet901", "status": "inactive"})
        h.check(d.api("GET", f"/v1/sims/{rn}")[1]["eligibility"]["lock_on_activation"] is True,
              "a roamnet901 SIM may be locked at activation")
        dt.js("document.getElementById('unbar-update').click(); true")
        dt.wait(f"document.getElementById('lock-imei').textContent === '{B}' && "
                "document.getElementById('bar-state').dataset.state === 'none'",
                "the SIM locked to B")
        h.check(True, "after 'Unbar and update to last seen IMEI' the page shows the SIM locked to B")
        sim = d.api("GET", f"/v1/sims/{iccid}")[1]
        h.check(sim["lock"] == {"state": "locked", "imei": B, "scope": "imei"} and sim["bar"]["state"] == "none",
              "the daemon agrees (R11)")
        h.wait_until(lambda: "unbar_completed" in hooks.names(), timeout=10, what="unbar_completed")
        h.check(True, "unbar_completed webhook delivered")

        # Monitor mode (issue 13): ee's action is alert. Its SIM's violation
        # bars nothing; the dashboard lists it so the operator bars it by hand.
        ee = h.random_iccid()
        st, _ = d.api("PUT", f"/v1/sims/{ee}", {"imsis": [IMSI_EE], "msisdn": "447700900033",
                                                 "network": "ee", "status": "active"})
        h.check(st == 201, "an ee SIM created (ee in monitor mode)")
        pkt = h.accounting_request(3, IMSI_EE, A, status_type=1, session_id="ui-2")
        h.check(h.response_ok(pkt, h.radius_exchange(port, pkt)), "ee SIM: Start from device A answered")
        d.api("POST", f"/v1/sims/{ee}/orders", {"type": "enable_imei_lock"})
        h.wait_until(lambda: d.api("GET", f"/v1/sims/{ee}")[1]["lock"]["state"] == "locked",
                     what="ee SIM locked to A")
        requests_before = len(dae.requests)
        pkt = h.accounting_request(4, IMSI_EE, B, status_type=3, session_id="ui-2")
        h.check(h.response_ok(pkt, h.radius_exchange(port, pkt)), "ee SIM: Interim-Update from B answered")
        sim = d.api("GET", f"/v1/sims/{ee}")[1]
        h.check(sim["alerted"] is True and sim["bar"]["state"] == "none",
              "ee SIM violated in monitor mode: alerted, not barred")
        h.check(len(dae.requests) == requests_before,
              "monitor mode sends no Disconnect-Request (the old radius.disconnect alias covers "
              "bar networks only)")
        dt.wait(f"!document.getElementById('alerted').hidden && "
                f"document.getElementById('alerted-list').textContent.includes('{ee}')",
                "the monitor-mode list")
        h.check(iccid not in ui.text(dt, "alerted-list"),
              "the dashboard lists the SIM that violated in monitor mode, and only it")
        dt.js("document.querySelector('#alerted-list tbody tr').click(); true")
        dt.wait(f"document.getElementById('sim-iccid').textContent === '{ee}' && "
                "document.getElementById('violation-action').textContent.includes('monitor mode')",
                "the alerted SIM opened")
        h.check(True, "clicking it opens the SIM, which says it violated in monitor mode")
        dt.js("document.getElementById('bar').click(); true")
        dt.wait("document.getElementById('bar-state').dataset.state === 'barred'", "the manual bar")
        dt.wait("document.getElementById('alerted').hidden", "the list to empty")
        h.check(d.api("GET", f"/v1/sims/{ee}")[1]["alerted"] is False,
              "barred by hand from the dashboard, the SIM leaves the monitor-mode list")
        print("dashboard story passed")
        return 0
    finally:
        if browser:
            ui.stop_chromium(browser)
        d.kill9()
        dae.running = False
        hooks.shutdown()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
