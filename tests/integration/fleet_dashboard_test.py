#!/usr/bin/env python3
"""The fleet overview against the real daemon (issue 13): GET /v1/fleet and
the dashboard's first page, read in headless Chromium.

Real data: SIMs on three networks; two SIMs locked to device A are seen in
device B over RADIUS (two violations, two IMEI-lock bars completed); a bulk
bar over 1100 SIMs of a network whose bars take two minutes keeps running
with 1000 of its orders open (600 in flight against max_in_flight 600, 400
queued). The API and the page must show each of these numbers; the page
polls (a third violation appears without a reload) and its ICCIDs open the
SIM.
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

A = h.imei15("35349001234567")
B = h.imei15("35209900176148")
SLOW = 1100

EXTRA = """
orders:
  networks:
    multinet:
      lead_times: {bar: 300ms, unbar: 300ms}
    slow:
      rate_per_second: 100000
      burst: 100000
      max_in_flight: 600
      max_queue: 5000
      lead_times: {bar: 120s}
"""


def fleet(d):
    st, f = d.api("GET", "/v1/fleet")
    assert st == 200, (st, f)
    return f


def network(f, name):
    return next(n for n in f["networks"] if n["network"] == name)


def violate(d, imsi, n):
    """A SIM locked to A, then seen in B: its ICCID (the violation raises a bar)."""
    iccid = d.new_sim(imsi)
    port = d.ports["radius"]
    pkt = h.accounting_request(10 * n + 1, imsi, A, status_type=1, session_id=f"f-{n}")
    assert h.response_ok(pkt, h.radius_exchange(port, pkt))
    st, body = d.order(iccid, type="enable_imei_lock")
    assert st in (200, 202), (st, body)
    h.wait_until(lambda: d.sim(iccid)["lock"]["state"] == "locked", what=f"SIM {n} locked to A")
    pkt = h.accounting_request(10 * n + 2, imsi, B, status_type=3, session_id=f"f-{n}")
    assert h.response_ok(pkt, h.radius_exchange(port, pkt))
    return iccid


def main():
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        print("chromium is not installed (scripts/install-deps.sh installs it)")
        return 1
    d = h.Daemon(extra_config=EXTRA, cleanup=True)
    browser = None
    profile = tempfile.mkdtemp(prefix="imeilock-ui-")
    try:
        d.start()
        h.import_bench_sims(d.ports["api"], h.EXAMPLE_TOKEN, 20)
        f = fleet(d)
        multinet = network(f, "multinet")
        h.check(multinet["sims"] == 20 and multinet["lock"]["off"] == 20 and
                multinet["bar"]["none"] == 20,
                "GET /v1/fleet: 20 multinet SIMs, lock off, not barred")
        h.check(len(f["violations"]["per_hour"]) == 24 and f["violations"]["total"] == 0 and
                f["latest_violations"] == [] and f["running_jobs"] == [],
                "24 hourly buckets, no violation yet, no job")
        h.check(any(n["network"] == "roamnet901" and n["sims"] == 0 for n in f["networks"]),
                "a configured network without SIMs is listed with 0")

        v1 = violate(d, "234500000000041", 1)
        v2 = violate(d, "234500000000042", 2)
        for v in (v1, v2):
            h.wait_until(lambda v=v: d.sim(v)["bar"]["state"] == "barred", timeout=15,
                         what=f"{v} barred")
        f = fleet(d)
        multinet = network(f, "multinet")
        h.check(multinet["sims"] == 22 and multinet["bar"]["barred"] == 2 and
                multinet["lock"]["locked"] == 2,
                f"multinet: 22 SIMs, 2 locked, 2 barred ({multinet['lock']}, {multinet['bar']})")
        h.check(f["violations"]["total"] == 2 and f["violations"]["per_hour"][-1]["violations"] == 2,
                "two violations, both in the current hour")
        h.check([e["iccid"] for e in f["latest_violations"]] == [v2, v1] and
                f["latest_violations"][0]["imei"] == B and
                f["latest_violations"][0]["locked_imei"] == A,
                "the latest violations, newest first, with the IMEI seen and the locked one")
        h.check({e["iccid"] for e in f["latest_bars"]} == {v1, v2} and
                all(e["bar_reason"] == "imei_lock" for e in f["latest_bars"]),
                "the latest bars with their ICCIDs and reason")

        # A running bulk job on a network whose bars take two minutes.
        lines = ["iccid,imsis,msisdn,network,status"]
        lines += [f"{h.bench_iccid(30_000 + i)},{h.bench_imsi(30_000 + i)},,slow,active"
                  for i in range(SLOW)]
        st, res = d.api("POST", "/v1/sims:import", "\n".join(lines) + "\n",
                        content_type="text/csv", timeout=120)
        assert st == 200 and res["rejected"] == 0, (st, res)
        st, job = d.api("POST", "/v1/orders:bulk", {"type": "bar", "filter": {"network": "slow"}})
        assert st == 202, (st, job)
        h.wait_until(lambda: d.api("GET", f"/v1/jobs/{job['id']}")[1]["placed"] >= 1000,
                     timeout=60, what="1000 placed")
        h.wait_until(lambda: network(fleet(d), "slow")["orders"]["in_flight"] == 600,
                     timeout=20, what="600 in flight")
        f = fleet(d)
        slow = network(f, "slow")
        h.check(slow["orders"] == {"queued": 400, "in_flight": 600, "max_queue": 5000,
                                   "max_in_flight": 600, "rate_per_second": 100000,
                                   "burst": 100000},
                f"slow: 600 orders in flight at its limit, 400 queued ({slow['orders']})")
        h.check(slow["sims"] == SLOW and slow["bar"]["bar_pending"] == 1000,
                f"slow: {SLOW} SIMs, 1000 bar pending ({slow['bar']})")
        h.check([j["id"] for j in f["running_jobs"]] == [job["id"]] and
                f["running_jobs"][0]["placed"] == 1000,
                "the running bulk job with its progress")

        # The dashboard opens on the fleet.
        url = f"http://127.0.0.1:{d.ports['api']}"
        browser, dt = ui.start_chromium(chromium, profile)
        dt.call("Page.navigate", url=url + "/ui")
        dt.wait("document.readyState === 'complete' && !!document.getElementById('token')",
                "the page to load")
        h.check(dt.js("!document.getElementById('fleet').hidden && "
                      "document.getElementById('sim-view').hidden") is True,
                "the dashboard opens on the fleet")
        dt.js(f"document.getElementById('token').value = '{h.EXAMPLE_TOKEN}';"
              "document.getElementById('login').click(); true")
        dt.wait("!document.getElementById('fleet-body').hidden && "
                "!!document.querySelector('#fleet-networks tr[data-network=slow]')",
                "the fleet's networks")

        def row(name):
            return dt.js(f"Array.from(document.querySelectorAll("
                         f"'#fleet-networks tr[data-network={name}] td')).map(c => c.textContent)")
        m = row("multinet")
        h.check(m[:8] == ["multinet", "22", "2", "0", "20", "2", "0", "0"],
                f"the multinet row: 22 SIMs, 2 locked, 20 lock off, 2 barred ({m})")
        s = row("slow")
        h.check(s[1] == str(SLOW) and s[6] == "1000" and s[8] == "400 / 5000" and
                s[9] == "600 / 600",
                f"the slow row: 1000 bar pending, 400 / 5000 queued, 600 / 600 in flight ({s})")
        bars = dt.js("Array.from(document.querySelectorAll('#violations-chart .bar'))"
                     ".map(b => Number(b.dataset.count))")
        h.check(len(bars) == 24 and bars[-1] == 2 and sum(bars) == 2,
                f"the chart: 24 hourly bars, the current hour's 2 ({bars})")
        links = dt.js("Array.from(document.querySelectorAll('#latest-violations a.sim-link'))"
                      ".map(a => a.textContent)")
        h.check(links == [v2, v1], f"the latest violations link their SIMs ({links})")
        h.check(sorted(dt.js("Array.from(document.querySelectorAll('#latest-bars a.sim-link'))"
                             ".map(a => a.textContent)")) == sorted([v1, v2]),
                "the latest bars link their SIMs")
        h.check(f"#{job['id']}" in ui.text(dt, "fleet-jobs") and
                f"1000 / {SLOW}" in ui.text(dt, "fleet-jobs") and
                dt.js("document.getElementById('no-jobs').hidden") is True,
                "the running job is listed")

        # Polling: a third violation shows without a reload.
        v3 = violate(d, "234500000000043", 3)
        dt.wait("document.getElementById('violations-total').textContent.startsWith('3 ') && "
                f"document.querySelector('#latest-violations a.sim-link').textContent === '{v3}'",
                "the third violation on the page", timeout=20)
        h.check(True, "the page polls: the third violation appears without a reload")

        # An ICCID opens its SIM; back to the fleet.
        dt.js(f"Array.from(document.querySelectorAll('#latest-violations a.sim-link'))"
              f".find(a => a.textContent === '{v1}').click(); true")
        dt.wait(f"document.getElementById('sim-iccid').textContent === '{v1}' && "
                "document.getElementById('bar-state').dataset.state === 'barred' && "
                "document.getElementById('fleet').hidden", "the violating SIM opened")
        h.check(ui.text(dt, "trigger-imei") == B, "the SIM page shows the violating SIM's bar")
        dt.js("document.getElementById('back-to-fleet').click(); true")
        dt.wait("!document.getElementById('fleet').hidden && "
                "document.getElementById('sim-view').hidden", "back on the fleet")
        h.check(True, "'Back to the fleet' returns to the fleet")
        print("fleet dashboard passed")
        return 0
    finally:
        if browser:
            ui.stop_chromium(browser)
        d.kill9()
        shutil.rmtree(profile, ignore_errors=True)
        shutil.rmtree(d.state_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
