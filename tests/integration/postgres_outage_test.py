#!/usr/bin/env python3
"""The daemon on a PostgreSQL store survives a database outage (issue 11, DESIGN §5).

The real daemon with sim_layer.store.backend: postgresql serves a RADIUS story
(a SIM locked to its device, then seen in another one: barred) and Diameter
load. Then `pg_ctl stop -m immediate`:
  - a state-changing RADIUS request gets no answer (the NAS retries or fails over);
  - Diameter state changes are answered 3004 DIAMETER_TOO_BUSY, none 2001;
  - /readyz answers 503, a SIM read answers 503;
  - the log says so, once (store.disconnected).
PostgreSQL is started again: within a few seconds the daemon is ready and
answers again, without a restart, and every change it acknowledged (before,
and after) is in the database.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402
import pg  # noqa: E402

DIAMETER_LOAD = os.environ.get("DIAMETER_LOAD")
BENCH_SIMS = 50


def diameter_run(d, seconds, record=None, seed=1):
    """diameter_load at a gentle rate, every request a new IMEI; its result fields."""
    argv = [DIAMETER_LOAD, "--port", str(d.ports["diameter"]), "--sims", str(BENCH_SIMS),
            "--duration", str(seconds), "--warmup", "0", "--imei-change-percent", "100",
            "--rate", "200", "--window", "16", "--connections", "1", "--seed", str(seed)]
    if record:
        argv += ["--record-acked", record]
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=seconds + 60).stdout
    last = [line for line in out.splitlines() if line.startswith("result ")]
    assert last, f"diameter_load printed no result:\n{out}"
    return {k: float(v.rstrip("s")) for k, v in h.parse_fields(last[-1]).items()
            if v.rstrip("s").replace(".", "", 1).isdigit()}


def main():
    assert DIAMETER_LOAD and os.path.exists(DIAMETER_LOAD), "set DIAMETER_LOAD (bench/diameter_load)"
    server = pg.server_or_skip()
    conninfo = server.create_database("imeilock")
    state_dir = h.temp_dir("imeilockd-test-")
    config = h.default_config(state_dir).replace(
        f"    path: {state_dir}/imeilockd.db",
        f"    backend: postgresql\n    postgresql:\n      conninfo: \"{conninfo}\"").replace(
        "diameter:\n  listen: ['127.0.0.1:0']",
        "diameter:\n  listen: ['127.0.0.1:0']\n  peers:\n    - origin_host: pgw1.example.net")
    assert "backend: postgresql" in config and "pgw1.example.net" in config
    d = h.Daemon(config_text=config, state_dir=state_dir, cleanup=True)
    with server, d:
        # -- a RADIUS story on PostgreSQL ------------------------------------------
        # The story SIM gets locked and barred; the mover (lock off) changes
        # state with every new device it is seen in (R5).
        sims = {}
        for name, imsi in (("story", "234159900000001"), ("mover", "234159900000002")):
            iccid = h.random_iccid()
            sims[name] = (iccid, imsi)
            st, body = d.api("PUT", f"/v1/sims/{iccid}", {
                "imsis": [imsi], "msisdn": f"4477009000{imsi[-2:]}", "network": "multinet",
                "status": "active"})
            assert st in (200, 201), (st, body)
        iccid = sims["story"][0]
        acked = []  # (iccid, 14-digit device) acknowledged over RADIUS

        def observe(ident, imei, sim="story", timeout=2.0, tries=3):
            sim_iccid, imsi = sims[sim]
            pkt = h.accounting_request(ident, imsi, imei, session_id=f"s{ident}")
            resp = h.radius_exchange(d.ports["radius"], pkt, timeout=timeout, tries=tries)
            if resp is not None:
                assert h.response_ok(pkt, resp)
                acked.append((sim_iccid, int(imei[:14])))
            return resp is not None

        dev_a, dev_b = h.imei15("35349001000001"), h.imei15("35349001000002")
        assert observe(1, dev_a)
        st, body = d.api("POST", f"/v1/sims/{iccid}/orders", {"type": "enable_imei_lock"})
        assert st == 202, (st, body)
        h.wait_until(lambda: d.api("GET", f"/v1/sims/{iccid}")[1]["lock"]["state"] == "locked",
                     what="SIM locked to device A")
        assert observe(2, dev_b)  # R7: a violation, acknowledged once committed
        assert observe(3, h.imei15("35349002000001"), sim="mover")
        sim = d.api("GET", f"/v1/sims/{iccid}")[1]
        assert sim["lock"]["state"] == "locked" and sim["bar"]["state"] != "none", sim

        imported, _ = h.import_bench_sims(d.ports["api"], h.EXAMPLE_TOKEN, BENCH_SIMS)
        assert imported == BENCH_SIMS
        record = os.path.join(state_dir, "diameter-acked.txt")
        before = diameter_run(d, 2, record=record, seed=1)
        assert before.get("answers", 0) > 0 and before.get("errors", 0) == 0, before
        assert d.api("GET", "/readyz", token=None)[0] == 200

        # -- the database goes away ---------------------------------------------------
        server.stop("immediate")
        t_down = time.monotonic()
        h.wait_until(lambda: d.api("GET", "/readyz", token=None)[0] == 503, timeout=10,
                     what="/readyz 503 while PostgreSQL is down")
        print(f"not ready {time.monotonic() - t_down:.2f} s after the database stopped")
        assert not observe(4, h.imei15("35349002000002"), sim="mover", timeout=1.0, tries=2), \
            "a state change was acknowledged while the database was down"
        def answers(code):  # accounting and credit-control answers (not CEA/DWA)
            return sum(d.metric("imeilock_diameter_answers_total", command=c, result_code=code)
                       or 0 for c in ("ACA", "CCA"))

        ok_before, busy_before = answers("2001"), answers("3004")
        during = diameter_run(d, 2, seed=2)
        print(f"Diameter during the outage: {during}")
        assert during.get("too_busy", 0) > 0, during
        assert answers("3004") > busy_before
        assert answers("2001") == ok_before, "a Diameter state change answered 2001 while down"
        st, body = d.api("GET", f"/v1/sims/{iccid}")
        assert st == 503, (st, body)
        log = d.log()
        assert log.count("store.disconnected") == 1, log[-3000:]

        # -- it comes back ----------------------------------------------------------------
        server.start()
        t_up = time.monotonic()
        h.wait_until(lambda: d.api("GET", "/readyz", token=None)[0] == 200, timeout=15,
                     interval=0.05, what="/readyz 200 after PostgreSQL is back")
        ready_after = time.monotonic() - t_up
        assert h.wait_until(lambda: observe(5, h.imei15("35349002000003"), sim="mover",
                                            timeout=1.0, tries=1),
                            timeout=10, what="RADIUS answered again")
        answered_after = time.monotonic() - t_up
        print(f"ready {ready_after:.2f} s, RADIUS answered {answered_after:.2f} s after "
              "the database was back (no restart)")
        assert answered_after < 10
        after = diameter_run(d, 2, record=record + ".after", seed=3)
        assert after.get("answers", 0) > 0 and after.get("too_busy", 0) == 0, after
        assert d.api("GET", f"/v1/sims/{iccid}")[0] == 200
        assert "store.reconnected" in d.log()

        # -- every acknowledged change is in the database ----------------------------------
        stored = {(r[0], int(r[1])) for r in server.query(
            "imeilock", "SELECT iccid, imei FROM audit")}
        missing = [a for a in acked if a not in stored]
        assert not missing, f"acknowledged over RADIUS, not in the audit log: {missing}"
        acked_dm = set()
        for path in (record, record + ".after"):
            with open(path) as f:
                acked_dm |= {(int(a), int(b)) for a, b in (line.split() for line in f)}
        stored_dm = {(int(a), int(b)) for a, b in server.query(
            "imeilock", "SELECT i.imsi, a.imei FROM audit a JOIN imsis i ON i.iccid = a.iccid")}
        missing = acked_dm - stored_dm
        assert acked_dm and not missing, f"{len(missing)} Diameter acks not in the audit log"
        print(f"ok: {len(acked)} RADIUS and {len(acked_dm)} Diameter acknowledged changes all "
              "in PostgreSQL")
        assert d.stop() == 0


if __name__ == "__main__":
    main()
