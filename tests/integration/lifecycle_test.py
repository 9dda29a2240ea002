#!/usr/bin/env python3
"""The daemon's lifecycle (issue 2): ready only once listening, SIGHUP reload
of what can change at run time, an invalid reload keeps the running
configuration, SIGTERM stops cleanly (exit 0) with every change flushed."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402


def answered(d, secret, imsi="234500000000777", ident=1):
    pkt = h.accounting_request(ident, imsi, h.imei15("35349001234560"), secret=secret)
    resp = h.radius_exchange(d.ports["radius"], pkt, timeout=0.5, tries=2)
    return resp is not None and h.response_ok(pkt, resp, secret=secret)


def wait_log(d, needle, timeout=10):
    return h.wait_until(lambda: needle in d.log(), timeout=timeout, what=needle)


def main():
    new_secret = b"example-rotated-secret"
    d = h.Daemon()
    try:
        d.start()
        st, body = d.api("GET", "/readyz", token=None)
        h.check(st == 200, "/readyz answers 200 once the daemon is ready")
        st, _ = d.api("GET", "/healthz", token=None)
        h.check(st == 200, "/healthz answers 200")
        h.check(answered(d, h.EXAMPLE_RADIUS_SECRET), "RADIUS answered with the configured secret")

        # SIGHUP with a rotated secret and a new log level: applied without a restart.
        cfg = open(d.config_path).read()
        good = cfg.replace(h.EXAMPLE_RADIUS_SECRET.decode(), new_secret.decode()).replace(
            "shutdown_timeout: 20s", "shutdown_timeout: 20s\n  log_level: debug")
        open(d.config_path, "w").write(good)
        d.signal(signal.SIGHUP)
        wait_log(d, "daemon.reloaded log_level=debug")
        h.check(answered(d, new_secret, ident=2), "SIGHUP: the rotated RADIUS secret is in force")
        h.check(not answered(d, h.EXAMPLE_RADIUS_SECRET, ident=3),
              "SIGHUP: the old secret is refused (silently discarded)")
        pid_before = d.proc.pid

        # SIGHUP with a broken file: rejected, the running configuration stays.
        open(d.config_path, "w").write(good + "\nradius_typo: 1\n")
        d.signal(signal.SIGHUP)
        wait_log(d, "daemon.reload_rejected")
        h.check("radius_typo: unknown key" in d.log(), "the rejected reload names the bad key")
        h.check(d.proc.pid == pid_before and d.proc.poll() is None, "the daemon keeps running")
        h.check(answered(d, new_secret, ident=4), "the running configuration is still in force")
        open(d.config_path, "w").write(good)

        # A state change, then SIGTERM: exit 0, and the change is there after restart.
        iccid = h.random_iccid()
        st, _ = d.api("PUT", f"/v1/sims/{iccid}", {"imsis": ["234500000000778"],
                                                    "msisdn": "447700900778",
                                                    "network": "multinet", "status": "active"})
        h.check(st == 201, "a SIM is created")
        pkt = h.accounting_request(5, "234500000000778", h.imei15("35111100000000"),
                                   secret=new_secret)
        h.check(h.response_ok(pkt, h.radius_exchange(d.ports["radius"], pkt), secret=new_secret),
              "a state-changing observation is acknowledged")
        t0 = time.monotonic()
        rc = d.stop()
        h.check(rc == 0, f"SIGTERM: exit code 0 (got {rc})")
        h.check(time.monotonic() - t0 < 20, "SIGTERM: stopped within the shutdown timeout")
        log = d.log()
        h.check("daemon.stopped" in log, "the stop was logged")
        d.start()
        st, sim = d.api("GET", f"/v1/sims/{iccid}")
        h.check(st == 200 and sim["last_seen_imei"] == h.imei15("35111100000000"),
              "after the restart the acknowledged change is there")
        st, _ = d.api("GET", "/readyz", token=None)
        h.check(st == 200, "ready again after the restart")
        rc = d.stop()
        h.check(rc == 0, "second clean stop")
    finally:
        d.kill9()
    print("lifecycle test passed")


if __name__ == "__main__":
    main()
