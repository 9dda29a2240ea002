#!/usr/bin/env python3
"""A real Prometheus server scrapes the running daemon: `up == 1` through its HTTP API.

Starts the real binary on loopback (daemon_fixture.py), then Prometheus on
127.0.0.1 with its own port, its own temporary storage and a 1s scrape
interval against the daemon's metrics port, and reads through
/api/v1/query that the target is up and that the daemon's build info
arrived intact. Bounded (Prometheus scrapes its first target about 6s after
start; the wait gives up after 20s); both processes are always stopped.
  prometheus_scrape.py IMEILOCKD_BINARY EXAMPLE_CONFIG
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import daemon_fixture

WAIT_UP_SECONDS = 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(port, path, **params):
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=5) as resp:
        doc = json.load(resp)
    if doc.get("status") != "success":
        raise RuntimeError(f"{url}: {doc}")
    return doc["data"]


class Prometheus:
    def __init__(self, target_port):
        self.dir = tempfile.mkdtemp(prefix="imeilockd-prometheus-")
        self.config = os.path.join(self.dir, "prometheus.yml")
        with open(self.config, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: imeilockd
    static_configs:
      - targets: ['127.0.0.1:{target_port}']
""")
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.dir, "prometheus.log")

    def start(self):
        binary = shutil.which("prometheus")
        if not binary:
            sys.exit("FAIL: prometheus not found (Debian package prometheus; scripts/install-deps.sh)")
        # The port is picked free just before; another process may take it in
        # between, so a Prometheus that exits at once is retried on a new one.
        for _ in range(3):
            self.port = free_port()
            log = open(self.log_path, "wb")
            self.proc = subprocess.Popen(
                [binary, f"--config.file={self.config}",
                 f"--storage.tsdb.path={os.path.join(self.dir, 'data')}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
                 "--web.console.templates=/dev/null", "--web.console.libraries=/dev/null"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            log.close()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready",
                                                timeout=1) as resp:
                        if resp.status == 200:
                            return self
                except OSError:
                    pass
                time.sleep(0.2)
            self.stop()
        raise RuntimeError("prometheus did not become ready:\n" + self.log())

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    binary, example = sys.argv[1:3]
    version = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=10).stdout.split()[1]
    t0 = time.monotonic()
    with daemon_fixture.Daemon(binary, example) as d, Prometheus(d.metrics_port) as prom:
        t_prom = time.monotonic()
        up = None
        deadline = t_prom + WAIT_UP_SECONDS
        while time.monotonic() < deadline:
            result = api(prom.port, "query", query='up{job="imeilockd"}')
            if result["result"]:
                up = result["result"][0]["value"][1]
                if up == "1":
                    break
            time.sleep(0.25)
        waited = time.monotonic() - t_prom
        if up != "1":
            targets = api(prom.port, "targets")
            print(json.dumps(targets, indent=1))
            print(prom.log())
            sys.exit(f"FAIL: up{{job=\"imeilockd\"}} is {up!r} after {waited:.1f}s")
        info = api(prom.port, "query", query='imeilock_build_info{job="imeilockd"}')["result"]
        if not info or info[0]["metric"].get("version") != version or info[0]["value"][1] != "1":
            sys.exit(f"FAIL: imeilock_build_info through Prometheus is {info}, want version {version}")
        rc = d.stop()
        if rc != 0:
            sys.exit(f"FAIL: imeilockd exited {rc} on SIGTERM")
    print(f"PASS: Prometheus on 127.0.0.1:{prom.port} scraped imeilockd on 127.0.0.1:{d.metrics_port}: "
          f"up == 1 after {waited:.1f}s, build_info version {version} "
          f"({time.monotonic() - t0:.1f}s in all)")


if __name__ == "__main__":
    main()
