"""Starts the real imeilockd binary for tests: the one harness for that.

The daemon runs on 127.0.0.1 with every listener on port 0 and its state in a
temporary directory; the bound ports are read from the `daemon.ready` log
line. Everything is bounded in time; the process is always reaped.

Used by tests/integration (imported as `harness`), tests/metrics
(daemon_fixture.py derives its configuration from the shipped example and
hands it to `Daemon`) and the overload/soak script bench/overload_soak.py.
"""
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

BINARY = os.environ.get("IMEILOCKD", "imeilockd")
READY_RE = re.compile(r"^<\d>daemon\.ready (.*)$")

# Example credentials for tests only - never used outside a test run.
EXAMPLE_TOKEN = "example-test-token-not-a-secret"
EXAMPLE_READONLY_TOKEN = "example-readonly-token-not-a-secret"
EXAMPLE_RADIUS_SECRET = b"example-radius-secret"


def parse_fields(text):
    out = {}
    for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', text):
        v = m.group(2)
        out[m.group(1)] = v[1:-1] if v.startswith('"') else v
    return out


def default_config(state_dir, extra=""):
    return f"""
daemon:
  workers: 2
  io_threads: 1
  shutdown_timeout: 20s
metrics:
  listen: 127.0.0.1:0
sim_layer:
  store:
    path: {state_dir}/imeilockd.db
radius:
  listen: ['127.0.0.1:0']
  clients:
    - address: 127.0.0.1/32
      secret: {EXAMPLE_RADIUS_SECRET.decode()}
diameter:
  listen: ['127.0.0.1:0']
api:
  listen: 127.0.0.1:0
  tokens: [{EXAMPLE_TOKEN}]
  read_only_tokens: [{EXAMPLE_READONLY_TOKEN}]
{extra}
"""


class Daemon:
    """One imeilockd process with its own state directory.

    `config_text` replaces the default configuration (default_config() plus
    `extra_config`); `binary` the $IMEILOCKD binary; `cleanup` removes the state
    directory when the `with` block ends. After start(): `ready` holds the
    fields of the daemon.ready line, `ports` the bound ports by name
    ("radius", "diameter", "api", "metrics").
    """

    def __init__(self, config_text=None, state_dir=None, extra_config="", binary=None,
                 cleanup=False):
        self.binary = binary or BINARY
        self.state_dir = state_dir or tempfile.mkdtemp(prefix="imeilockd-test-")
        self.cleanup = cleanup
        self.config_path = os.path.join(self.state_dir, "imeilockd.yaml")
        with open(self.config_path, "w") as f:
            f.write(config_text or default_config(self.state_dir, extra_config))
        self.proc = None
        self.ports = {}
        self.ready = {}
        self.log_path = os.path.join(self.state_dir, "daemon.log")

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout=30):
        env = dict(os.environ, STATE_DIRECTORY=self.state_dir)
        env.pop("NOTIFY_SOCKET", None)  # not run by systemd here
        with open(self.log_path, "ab") as log:
            offset = log.tell()
            self.proc = subprocess.Popen([self.binary, "--config", self.config_path],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"imeilockd exited with {self.proc.returncode}:\n{self.log()}")
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                for line in f.read().decode(errors="replace").splitlines():
                    m = READY_RE.match(line)
                    if m:
                        self.ready = parse_fields(m.group(1))
                        self.ports = {k[:-5]: int(v) for k, v in self.ready.items()
                                      if k.endswith("_port")}
                        return self
            time.sleep(0.05)
        self.kill9()
        raise RuntimeError("imeilockd did not become ready:\n" + self.log())

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        self.proc = None
        return rc

    def kill9(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def signal(self, sig):
        self.proc.send_signal(sig)

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc is not None:
            self.kill9()
        if self.cleanup:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- HTTP API ----------------------------------------------------------
    def api(self, method, path, body=None, token=EXAMPLE_TOKEN, content_type="application/json",
            timeout=10):
        """Returns (status, parsed JSON or text)."""
        url = f"http://127.0.0.1:{self.ports['api']}{path}"
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            data = data.encode() if isinstance(data, str) else data
        req = urllib.request.Request(url, data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def metrics(self):
        url = f"http://127.0.0.1:{self.ports['metrics']}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.read().decode()

    def metric(self, name, **labels):
        """Sum of the samples of `name` whose labels include `labels`."""
        total = 0.0
        found = False
        for line in self.metrics().splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            m = re.match(r'^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)', line)
            if not m or m.group(1) != name:
                continue
            lab = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            if all(lab.get(k) == v for k, v in labels.items()):
                total += float(m.group(3))
                found = True
        return total if found else None


# -- RADIUS accounting, built by hand (RFC 2866) so tests control every byte --
VENDOR_3GPP = 10415


def _attr(t, value):
    return struct.pack("!BB", t, len(value) + 2) + value


def _vsa(vendor, t, value):
    inner = struct.pack("!BB", t, len(value) + 2) + value
    return _attr(26, struct.pack("!I", vendor) + inner)


def accounting_request(identifier, imsi, imei=None, status_type=3, session_id="s1",
                       secret=EXAMPLE_RADIUS_SECRET, msisdn=None, nas_ip="127.0.0.1",
                       extra=b""):
    """An Accounting-Request; status_type 1 Start, 2 Stop, 3 Interim-Update."""
    attrs = _attr(40, struct.pack("!I", status_type))
    attrs += _attr(44, session_id.encode())
    attrs += _attr(4, socket.inet_aton(nas_ip))
    attrs += _attr(1, imsi.encode())
    attrs += _vsa(VENDOR_3GPP, 1, imsi.encode())
    if msisdn:
        attrs += _attr(31, msisdn.encode())
    if imei:
        attrs += _vsa(VENDOR_3GPP, 20, imei.encode())
    attrs += extra
    length = 20 + len(attrs)
    header = struct.pack("!BBH", 4, identifier & 0xFF, length)
    auth = hashlib.md5(header + b"\0" * 16 + attrs + secret).digest()
    return header + auth + attrs


def response_ok(request, response, secret=EXAMPLE_RADIUS_SECRET):
    """True if `response` is an Accounting-Response to `request` with a valid authenticator."""
    if len(response) < 20 or response[0] != 5 or response[1] != request[1]:
        return False
    expect = hashlib.md5(response[:4] + request[4:20] + response[20:] + secret).digest()
    return expect == response[4:20]


def radius_exchange(port, packet, timeout=2.0, tries=3):
    """Sends one request, returns the response bytes or None (no answer)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        for _ in range(tries):
            s.sendto(packet, ("127.0.0.1", port))
            try:
                data, _ = s.recvfrom(4096)
                return data
            except socket.timeout:
                continue
    return None


def imei15(digits14):
    """The 15-digit IMEI: 14 identity digits + Luhn check digit."""
    return digits14 + luhn_full(digits14)


def iccid(n):
    """The n-th test ICCID: 8944, n in 14 digits, the Luhn check digit."""
    body = "8944" + f"{n:014d}"
    return body + luhn_full(body)


def check(cond, what):
    """One assertion of a story test: raises with `what` or prints it as passed."""
    if not cond:
        raise AssertionError(what)
    print(f"ok - {what}", flush=True)


def random_iccid():
    body = "8944" + "".join(str(secrets.randbelow(10)) for _ in range(14))
    return body + luhn_full(body)


def luhn_full(body):
    """Luhn check digit for an arbitrary-length body (ICCID)."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def wait_until(predicate, timeout=20.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


# -- the load generators' SIMs (bench/radius_load, bench/diameter_load) --------
def bench_imsi(i):
    """The IMSI of generator SIM i: 234150000000000 + i."""
    return 234150000000000 + i


def bench_iccid(i):
    body = f"8944{i:014d}"
    return body + luhn_full(body)


def import_bench_sims(port, token, count, network="multinet", chunk=20000):
    """Loads generator SIMs 0..count-1 (lock off, active) with POST /v1/sims:import,
    `chunk` CSV lines per request. Returns (imported, seconds); raises on a rejected line."""
    t0 = time.monotonic()
    imported = 0
    for start in range(0, count, chunk):
        lines = ["iccid,imsis,msisdn,network,status"]
        lines += [f"{bench_iccid(i)},{bench_imsi(i)},447{i:09d},{network},active"
                  for i in range(start, min(count, start + chunk))]
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/sims:import", data=("\n".join(lines) + "\n").encode(),
            method="POST", headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"})
        with urllib.request.urlopen(req, timeout=300) as r:
            res = json.loads(r.read() or b"{}")
        if res.get("rejected"):
            bad = [x for x in res.get("results", [])
                   if x.get("result") not in ("created", "updated", "ok", "imported")]
            raise RuntimeError(f"import rejected {res['rejected']} lines, first: {bad[:1]}")
        imported += res.get("imported", 0)
    return imported, time.monotonic() - t0
