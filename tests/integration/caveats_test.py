#!/usr/bin/env python3
"""The product text's caveats where the operator acts (issue 13), against the
real daemon: the API's order warnings and GET /v1/sims/{iccid}'s `caveats`,
and the dashboard's SIM page read in headless Chromium.

Real data: multinet (bars take 8 s, locking on activation not allowed) and
roamnet901 (allowed). Checked:
- enabling the lock, and activating with it, answer "Disable IMEI Locking
  before testing the SIM in another device" among the warnings; the page
  shows it beside the lock buttons;
- a Bar order answers the bar lead-time caveat with multinet's configured
  lead time (8s), beside the Bar button and while the bar is pending (placed
  in the dashboard, and raised by a violation over RADIUS: the product text's
  IMEI Locking Bar wording);
- the keep-lock caveat beside "Unbar and keep existing IMEI Lock";
- the activation tick box is rendered for the roamnet901 SIM and absent for
  the multinet one, whose activation with the lock the API refuses;
- a SIGHUP that changes the lead time changes what the page says (and the
  limits GET /v1/fleet shows, which now follow reloads).
"""
import importlib.util
import os
import shutil
import signal
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as h  # noqa: E402

spec = importlib.util.spec_from_file_location("ui_cdp", os.path.join(HERE, "..", "api", "ui_test.py"))
ui = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ui)

A = h.imei15("35349001234567")
B = h.imei15("35209900176148")
DATA_USE = "some data usage may occur before the SIM is barred"
TEST_FIRST = "Disable IMEI Locking before testing the SIM in another device"


def orders_config(bar):
    return f"""
orders:
  networks:
    multinet:
      max_queue: 5000
      lead_times: {{bar: {bar}, unbar: 300ms}}
    roamnet901:
      lead_times: {{activate: 300ms}}
"""


def new_sim(d, imsi, network, status):
    iccid = h.random_iccid()
    st, body = d.api("PUT", f"/v1/sims/{iccid}", {"imsis": [imsi], "msisdn": "447700900123",
                                                  "network": network, "status": status})
    assert st == 201, (st, body)
    return iccid


def observe(d, imsi, imei, n):
    pkt = h.accounting_request(n, imsi, imei, status_type=3, session_id=f"c-{imsi}")
    assert h.response_ok(pkt, h.radius_exchange(d.ports["radius"], pkt))


def locked_to_a(d, imsi, n):
    """A multinet SIM seen in A with the lock enabled: its ICCID, the warnings."""
    iccid = new_sim(d, imsi, "multinet", "active")
    observe(d, imsi, A, n)
    st, res = d.order(iccid, type="enable_imei_lock")
    assert st == 202, (st, res)
    h.wait_until(lambda: d.sim(iccid)["lock"]["state"] == "locked", what=f"{iccid} locked to A")
    return iccid, res.get("warnings") or []


def goto_sim(dt, iccid):
    """Opens another SIM on the page already open (the search box)."""
    dt.js(f"document.getElementById('search-iccid').value = '{iccid}';"
          "document.getElementById('search-btn').click(); true")


def text(dt, element_id):
    return ui.text(dt, element_id) or ""


def visible(dt, element_id):
    return dt.js(f"(() => {{ const e = document.getElementById('{element_id}');"
                 "return !!e && !e.hidden && e.offsetParent !== null; })()")


def main():
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        print("chromium is not installed (scripts/install-deps.sh installs it)")
        return 1
    d = h.Daemon(extra_config=orders_config("8s"), cleanup=True)
    browser = None
    profile = tempfile.mkdtemp(prefix="imeilock-ui-")
    try:
        d.start()
        # -- The API -------------------------------------------------------
        m1, warnings = locked_to_a(d, "234500000000051", 1)
        sim = d.sim(m1)
        caveats = sim["caveats"]
        h.check(sim["bar_lead_time"] == "8s", f"the SIM carries multinet's bar lead time "
                f"({sim['bar_lead_time']})")
        h.check(TEST_FIRST in caveats["test_in_another_device"] and
                "is recommended if testing in another device is required" in
                caveats["test_in_another_device"],
                "GET /v1/sims/{iccid}: the caveat on testing in another device, quoted")
        h.check(caveats["test_in_another_device"] in warnings,
                f"enable_imei_lock answers it among its warnings ({warnings})")
        h.check(DATA_USE in caveats["bar_lead_time"] and
                "multinet's bar lead time: 8s" in caveats["bar_lead_time"] and
                "IMEI Locking Bar order is subject to regular bar lead times" in
                caveats["imei_lock_bar"] and "8s" in caveats["imei_lock_bar"],
                "the bar caveats quote the product text with the configured lead time")
        h.check("(i.e. 3rd) device" in caveats["keep_lock"] and
                "moved back into the original device" in caveats["keep_lock"],
                "the keep-lock caveat (R10) in the product text's words")
        h.check("next seen IMEI" in caveats["lock_on_activation"],
                "the activation caveat (R13)")

        m3, _ = locked_to_a(d, "234500000000053", 3)
        st, res = d.order(m3, type="disable_imei_lock")
        h.check(st == 202 and not any(TEST_FIRST in w for w in res.get("warnings") or []),
                f"disabling the lock carries no such caveat ({res})")
        h.wait_until(lambda: d.sim(m3)["lock"]["state"] == "off", what="the lock off")
        st, res = d.order(m3, type="bar")
        h.check(st == 202 and any(DATA_USE in w and "multinet's bar lead time: 8s" in w
                                  for w in res.get("warnings") or []),
                f"a Bar order answers the lead-time caveat with multinet's 8s ({res})")

        # Activation with the lock: roamnet901 allows it, multinet does not.
        inactive_m = new_sim(d, "234500000000054", "multinet", "inactive")
        st, res = d.order(inactive_m, type="activate", enable_imei_lock=True)
        h.check(st == 422 and res["error"]["code"] == "invalid" and
                "not available" in res["error"]["message"],
                f"multinet: activation with the lock refused with a reason ({st} {res})")
        r2 = new_sim(d, "234500000000055", "roamnet901", "inactive")
        st, res = d.order(r2, type="activate", enable_imei_lock=True)
        h.check(st == 202 and
                d.sim(r2)["caveats"]["test_in_another_device"] in (res.get("warnings") or []),
                f"roamnet901: activation with the lock answers the caveat ({res})")
        st, res = d.order(new_sim(d, "234500000000056", "roamnet901", "inactive"), type="activate")
        h.check(st == 202 and not any(TEST_FIRST in w for w in res.get("warnings") or []),
                "an activation without the lock carries no such caveat")

        # -- The dashboard -------------------------------------------------
        url = f"http://127.0.0.1:{d.ports['api']}"
        browser, dt = ui.start_chromium(chromium, profile)
        ui.open_sim(dt, url, h.EXAMPLE_TOKEN, m1)
        dt.wait(f"document.getElementById('sim-iccid').textContent === '{m1}' && "
                "document.getElementById('caveat-test').textContent !== ''", "the SIM page")
        h.check(text(dt, "caveat-test") == caveats["test_in_another_device"] and
                visible(dt, "caveat-test"),
                "beside Enable/Disable IMEI Locking: the caveat on testing in another device")
        h.check(text(dt, "caveat-bar") == caveats["bar_lead_time"] and visible(dt, "caveat-bar"),
                "beside Bar SIM: the lead-time caveat with 8s")
        h.check(dt.js("document.getElementById('activate-lock') === null") is True and
                "not available for multinet" in text(dt, "activate-lock-unavailable"),
                "multinet: no activation tick box on the page, and why")

        # The operator bars the SIM in the dashboard.
        dt.js("document.getElementById('bar').click(); true")
        dt.wait("document.getElementById('message').className === 'warning'", "the answer")
        msg = text(dt, "message")
        h.check(DATA_USE in msg and "8s" in msg,
                f"the Bar order's answer on the page carries the lead-time caveat ({msg})")
        dt.wait("document.getElementById('bar-state').dataset.state === 'bar_pending'",
                "the bar pending")
        h.check(visible(dt, "caveat-bar-pending") and
                text(dt, "caveat-bar-pending") == caveats["bar_lead_time"],
                "while the bar is pending: it takes effect after multinet's 8s")
        dt.wait("document.getElementById('bar-state').dataset.state === 'barred'",
                "the bar completed", timeout=20)
        h.check(not visible(dt, "caveat-bar-pending"), "once barred, the pending caveat goes")

        # A violation over RADIUS raises the IMEI Locking Bar.
        m2, _ = locked_to_a(d, "234500000000052", 2)
        goto_sim(dt, m2)
        dt.wait(f"document.getElementById('sim-iccid').textContent === '{m2}' && "
                "document.getElementById('lock-state').dataset.state === 'locked'",
                "the locked SIM")
        observe(d, "234500000000052", B, 21)
        dt.wait("document.getElementById('bar-state').dataset.state === 'bar_pending'",
                "the violation's bar pending on the page")
        pending = text(dt, "caveat-bar-pending")
        h.check(visible(dt, "caveat-bar-pending") and
                "N.B. the IMEI Locking Bar order is subject to regular bar lead times" in pending
                and DATA_USE in pending and "multinet's bar lead time: 8s" in pending,
                f"the violation's bar pending: the IMEI Locking Bar caveat with 8s ({pending})")
        h.check(not visible(dt, "caveat-keep"), "no keep-lock caveat before the bar completes")
        dt.wait("document.getElementById('bar-state').dataset.state === 'barred'",
                "the IMEI-lock bar completed", timeout=20)
        dt.wait("document.getElementById('caveat-keep').textContent !== ''", "the keep caveat")
        h.check(visible(dt, "caveat-keep") and text(dt, "caveat-keep") == caveats["keep_lock"] and
                dt.js("document.getElementById('tip-keep').dataset.tip") == caveats["keep_lock"],
                "beside 'Unbar and keep existing IMEI Lock': the keep-lock caveat, shown and as "
                "its tool tip")
        h.check("first device used" in dt.js("document.getElementById('tip-update').dataset.tip"),
                "beside 'Unbar and update to last seen IMEI': its tool tip")

        # roamnet901: the tick box is offered, with its caveat.
        r1 = new_sim(d, "234500000000057", "roamnet901", "inactive")
        goto_sim(dt, r1)
        dt.wait(f"document.getElementById('sim-iccid').textContent === '{r1}' && "
                "document.getElementById('activate-lock') !== null", "the activation tick box")
        h.check(not visible(dt, "activate-lock-unavailable") and
                dt.js("document.getElementById('tip-activate').dataset.tip") ==
                caveats["lock_on_activation"],
                "roamnet901: the 'Enable IMEI Locking' tick box is rendered, with its tool tip")
        dt.js("document.getElementById('activate-lock').click();"
              "document.getElementById('activate').click(); true")
        dt.wait("document.getElementById('message').className === 'warning'", "the answer")
        h.check(TEST_FIRST in text(dt, "message"),
                f"activating with the lock in the dashboard answers the caveat ({text(dt, 'message')})")
        h.wait_until(lambda: d.sim(r1)["lock"]["state"] == "awaiting_first_imei",
                     what="activated, locking to the next seen IMEI")

        # A reload that changes the lead time changes what the page says.
        with open(d.config_path) as f:
            cfg = f.read()
        with open(d.config_path, "w") as f:
            f.write(cfg.replace("bar: 8s,", "bar: 12s,").replace("max_queue: 5000", "max_queue: 7000"))
        d.signal(signal.SIGHUP)
        h.wait_until(lambda: d.sim(m2)["bar_lead_time"] == "12s", what="the reloaded lead time")
        fleet = d.api("GET", "/v1/fleet")[1]
        multinet = next(n for n in fleet["networks"] if n["network"] == "multinet")
        h.check(multinet["orders"]["max_queue"] == 7000,
                f"GET /v1/fleet shows the reloaded limits too ({multinet['orders']})")
        goto_sim(dt, m2)
        dt.wait("document.getElementById('caveat-bar').textContent.includes(\"lead time: 12s\")",
                "the page with the new lead time")
        h.check(True, "after SIGHUP the page quotes multinet's new bar lead time (12s)")
        print("caveats passed")
        return 0
    finally:
        if browser:
            ui.stop_chromium(browser)
        d.kill9()
        shutil.rmtree(profile, ignore_errors=True)
        shutil.rmtree(d.state_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
