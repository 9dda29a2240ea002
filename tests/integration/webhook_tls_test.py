#!/usr/bin/env python3
"""Event webhooks over https from the real daemon, and SIGHUP moving a target.

Throwaway certificates are made at test time (tests/common/tls_test_certs.py:
a test CA, a server certificate for 127.0.0.1, one for another host name, an
expired one, a client certificate). Python https receivers on loopback:

  good        the test CA's certificate for 127.0.0.1: deliveries arrive, signed
  wrong_host  a certificate for wrong-host.invalid: "hostname mismatch"
  expired     a certificate that expired in 2020: "certificate has expired"
  mtls        the good certificate, and requires a client certificate

The failing targets are retried and given up, counted in
imeilock_webhook_deliveries_total and logged with the reason. Then the
configuration file moves the good target's URL to the mtls receiver (with the
client certificate configured), SIGHUP, and the next event goes there.
"""
import hashlib
import hmac
import http.server
import json
import os
import shutil
import signal
import ssl
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "common"))
import harness as h  # noqa: E402
from tls_test_certs import make_certs  # noqa: E402

WEBHOOK_KEY = "EXAMPLE-webhook-key-for-tests"
failures = 0


def check(cond, what):
    global failures
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures += 1


class receiver(http.server.ThreadingHTTPServer):
    """An https server recording each POST and whether its signature verifies."""

    def __init__(self, cert, key, client_ca=None):
        self.events = []
        outer = self

        class handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                want = "sha256=" + hmac.new(WEBHOOK_KEY.encode(), body, hashlib.sha256).hexdigest()
                outer.events.append((json.loads(body), hmac.compare_digest(
                    want, self.headers.get("X-Imeilock-Signature", ""))))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), handler)
        self.daemon_threads = True
        self.handle_error = lambda *_: None  # refused handshakes are expected
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(client_ca)
        self.socket = ctx.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.url = f"https://127.0.0.1:{self.server_address[1]}/events"
        threading.Thread(target=self.serve_forever, daemon=True).start()


def webhooks_section(targets):
    out = "webhooks:\n  targets:\n"
    for url, tls in targets:
        out += f"    - url: {url}\n      secret: {WEBHOOK_KEY}\n      tls:\n"
        for k, v in tls.items():
            out += f"        {k}: {v}\n"
    return out + "  initial_backoff: 100ms\n  max_backoff: 200ms\n  max_attempts: 3\n"


def main():
    certs_dir = tempfile.mkdtemp(prefix="imeilock-tls-")
    c = make_certs(certs_dir)
    good = receiver(c["good"], c["good_key"])
    wrong = receiver(c["wrong_host"], c["wrong_host_key"])
    expired = receiver(c["expired"], c["expired_key"])
    mtls = receiver(c["good"], c["good_key"], client_ca=c["ca"])
    trust = {"ca_file": c["ca"]}
    state = h.temp_dir("imeilockd-test-")
    base = h.default_config(state)
    cfg = base + webhooks_section([(good.url, trust), (wrong.url, trust), (expired.url, trust)])
    d = h.Daemon(config_text=cfg, state_dir=state)
    try:
        d.start()

        def sim_event(n):
            """Creates a SIM and enables its lock: lock events follow."""
            iccid = h.random_iccid()
            st, _ = d.api("PUT", f"/v1/sims/{iccid}", {
                "imsis": [f"23450000000{n:04d}"], "msisdn": f"4477009001{n:02d}",
                "network": "multinet", "status": "active"})
            check(st == 201, f"SIM {n} created")
            st, _ = d.api("POST", f"/v1/sims/{iccid}/orders", {"type": "enable_imei_lock"})
            check(st in (200, 201, 202), f"lock order for SIM {n} accepted ({st})")
            return iccid

        iccid = sim_event(1)
        h.wait_until(lambda: any(e["iccid"] == iccid for e, _ in good.events), timeout=20,
                     what="a webhook over https at the good receiver")
        check(all(ok for _, ok in good.events), "deliveries over https carry a valid signature")
        check(d.metric("imeilock_webhook_deliveries_total", target=good.url,
                       result="delivered") >= 1, "the https delivery is counted as delivered")

        for r, reason in ((wrong, "hostname mismatch"), (expired, "certificate has expired")):
            h.wait_until(lambda: (d.metric("imeilock_webhook_deliveries_total", target=r.url,
                                           result="gave_up") or 0) >= 1,
                         timeout=20, what=f"gave up on {r.url}")
            check(not r.events, f"nothing is delivered past a certificate with {reason}")
            check((d.metric("imeilock_webhook_deliveries_total", target=r.url,
                            result="retried") or 0) >= 2,
                  f"{reason}: retried (max_attempts 3) before giving up")
            log = d.log()
            check(any(reason in line and r.url in line and "webhook.gave_up" in line
                      for line in log.splitlines()),
                  f"webhook.gave_up names the target and says '{reason}'")

        # SIGHUP: the first target moves to the receiver that wants a client certificate.
        before_good = len(good.events)
        with open(d.config_path, "w") as f:
            f.write(base + webhooks_section([(mtls.url, dict(trust, client_cert=c["client"],
                                                             client_key=c["client_key"]))]))
        d.signal(signal.SIGHUP)
        # daemon.reloaded (or reload_rejected) is the reload's last line: the
        # webhooks' own line comes before the other components have reloaded.
        h.wait_until(lambda: "daemon.reloaded" in d.log() or "daemon.reload_rejected" in d.log(),
                     timeout=10, what="the reload's outcome")
        check("daemon.reloaded" in d.log() and "webhook.reloaded" in d.log(),
              "the reload is accepted")
        iccid2 = sim_event(2)
        h.wait_until(lambda: any(e["iccid"] == iccid2 for e, _ in mtls.events), timeout=20,
                     what="the next event at the new target")
        check(all(ok for _, ok in mtls.events), "signed with the secret of the new configuration")
        check(len(good.events) == before_good,
              "the old target gets nothing after the reload")
        check(not wrong.events and not expired.events, "nor do the removed ones")
        check(d.stop() == 0, "clean stop")
    finally:
        d.kill9()
        for r in (good, wrong, expired, mtls):
            r.shutdown()
        shutil.rmtree(certs_dir, ignore_errors=True)
        if failures:
            print(d.log()[-4000:])
        shutil.rmtree(state, ignore_errors=True)
    print("FAILED" if failures else "PASSED", f"({failures} failures)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
