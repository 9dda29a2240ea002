#!/usr/bin/env python3
"""Issue 9, first fault: an authenticated client that created SIMs with more
than 1,024 distinct network names aborted the whole daemon. Against the real
binary: every name that is not a configured network is refused with 422 and
the configured names (PUT, CSV import line by line, imeilockctl), the daemon
stays up and keeps answering RADIUS. Then a reload removes a network that a
SIM is on: the SIM keeps its state, keeps working and is reported."""
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402
from harness import check, iccid  # noqa: E402

CONFIGURED = ["ee", "ee_big_data", "m2m_private", "multinet", "roamnet901"]
NETWORKS = """
orders:
  networks:
    multinet: {}
    roamnet901: {}
    ee: {}
    ee_big_data: {}
    m2m_private: {}
"""
UNKNOWN = 1030  # more distinct names than the inventory index could ever hold (1024)


def imsi(n):
    return f"2345{n:011d}"


def answered(d, ident, imsi_text, imei14):
    pkt = h.accounting_request(ident, imsi_text, h.imei15(imei14))
    resp = h.radius_exchange(d.ports["radius"], pkt, timeout=1.0, tries=3)
    return resp is not None and h.response_ok(pkt, resp)


def put(d, n, network):
    return d.api("PUT", f"/v1/sims/{iccid(n)}", {"imsis": [imsi(n)], "network": network,
                                                 "status": "active"})


def main():
    d = h.Daemon(extra_config=NETWORKS)
    try:
        d.start()
        st, _ = put(d, 1, "multinet")
        check(st == 201, "a SIM on a configured network is created")
        st, _ = put(d, 2, "m2m_private")
        check(st == 201, "a SIM on another configured network is created")
        check(answered(d, 1, imsi(1), "35349001234560"), "RADIUS is answered before")

        refused = 0
        for i in range(UNKNOWN):
            st, body = put(d, 100 + i, f"net{i}")
            err = body.get("error", {}) if isinstance(body, dict) else {}
            if (st == 422 and err.get("code") == "unknown_network"
                    and err.get("known_networks") == CONFIGURED and f"net{i}" in err["message"]):
                refused += 1
        check(refused == UNKNOWN,
              f"PUT: all {UNKNOWN} distinct unknown names refused with 422 and the configured list")
        check(d.proc.poll() is None, "the daemon is still running after the PUTs")

        lines = ["iccid,imsis,msisdn,network,status"]
        for i in range(UNKNOWN):
            lines.append(f"{iccid(5000 + i)},{imsi(5000 + i)},,csvnet{i},active")
        lines.append(f"{iccid(9000)},{imsi(9000)},,ee,inactive")
        st, body = d.api("POST", "/v1/sims:import", "\n".join(lines) + "\n",
                         content_type="text/csv", timeout=60)
        check(st == 200, f"the CSV import is answered (HTTP {st})")
        check(body["imported"] == 1 and body["rejected"] == UNKNOWN,
              "CSV: the valid line is imported, every unknown-network line rejected")
        rejected = [r for r in body["results"] if r["result"] == "rejected"]
        check(all(r.get("known_networks") == CONFIGURED and "csvnet" in r["reason"]
                  for r in rejected), "CSV: each rejected line names its network and the list")
        st, _ = d.api("GET", f"/v1/sims/{iccid(9000)}")
        check(st == 200, "CSV: the valid line's SIM exists")
        st, _ = d.api("GET", f"/v1/sims/{iccid(100)}")
        check(st == 404, "no SIM was created for a refused name")

        ctl = os.environ.get("IMEILOCKCTL")
        if ctl:
            env = dict(os.environ, IMEILOCK_TOKEN=h.EXAMPLE_TOKEN)
            p = subprocess.run([ctl, "--url", f"http://127.0.0.1:{d.ports['api']}", "sims", "put",
                                iccid(9001), "--imsi", imsi(9001), "--network", "nowhere",
                                "--status", "active"], capture_output=True, text=True,
                               timeout=30, env=env)
            check(p.returncode == 2 and "m2m_private" in p.stderr and "nowhere" in p.stderr,
                  "imeilockctl: exit 2 and the message names the configured networks")

        check(d.proc.poll() is None, "the daemon is still running")
        check(answered(d, 2, imsi(1), "35349001234561"), "RADIUS is still answered")
        st, _ = d.api("GET", "/readyz", token=None)
        check(st == 200, "the API is still ready")

        # A reload removes m2m_private: SIM 2 keeps its state, keeps working, is reported.
        check(answered(d, 3, imsi(2), "35349001234562"), "SIM 2 observed before the reload")
        cfg = open(d.config_path).read()
        open(d.config_path, "w").write(cfg.replace("    m2m_private: {}\n", ""))
        d.signal(signal.SIGHUP)
        h.wait_until(lambda: "daemon.reloaded" in d.log(), timeout=10, what="daemon.reloaded")
        check("sim_layer.unconfigured_network network=m2m_private sims=1" in d.log(),
              "the reload logs the removed network and its SIM count")
        check(d.metric("imeilock_sims_unconfigured_network") == 1,
              "imeilock_sims_unconfigured_network counts the SIM")
        st, sim = d.api("GET", f"/v1/sims/{iccid(2)}")
        check(st == 200 and sim["network"] == "m2m_private" and sim["network_configured"] is False,
              "GET shows the SIM on its old network, network_configured false")
        check(sim["last_seen_imei"] == h.imei15("35349001234562"), "its state is kept")
        check(answered(d, 4, imsi(2), "35349001234563"), "its observations are still answered")
        h.wait_until(lambda: d.api("GET", f"/v1/sims/{iccid(2)}")[1]["last_seen_imei"]
                     == h.imei15("35349001234563"), timeout=10, what="the new IMEI applied")
        st, body = put(d, 2, "m2m_private")
        check(st == 422 and "m2m_private" not in body["error"]["known_networks"],
              "keeping the removed name is refused like any unknown name")
        st, sim = put(d, 2, "ee")
        check(st == 200 and sim["network_configured"] is True, "it moves to a configured network")
        h.wait_until(lambda: d.metric("imeilock_sims_unconfigured_network") == 0, timeout=10,
                     what="the gauge back to 0")
        check(d.stop() == 0, "clean stop")
    finally:
        d.kill9()
    print("network names test passed")


if __name__ == "__main__":
    main()
