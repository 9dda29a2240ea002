"""Starts the real imeilockd binary for tests: the one harness for that.

The daemon runs on 127.0.0.1 with every listener on port 0 and its state in a
temporary directory; the bound ports are read from the `daemon.ready` log
line. Everything is bounded in time; the process is always reaped.

It also holds what the story tests share, so that each carries only its
story: the operator API as they read it (`Daemon.sim`, `.events`, `.orders`,
`.order`, `.new_sim`), `check`, `lead_times`, `radclient`, the receivers of
what the daemon sends (`webhook_receiver`, `dae_receiver`), FreeRADIUS 3.2 on
a configuration of the test's own (`freeradius`, `write_radiusd_conf`), and
the Erlang/OTP Diameter peer with its setup (`ErlangClient`,
`diameter_peer_config`, `erlang_story`, `connect_erlang`).

Used by tests/integration (imported as `harness`), tests/metrics
(daemon_fixture.py derives its configuration from the shipped example and
hands it to `Daemon`) and the overload/soak script bench/overload_soak.py.
"""
import atexit
import contextlib
import hashlib
import hmac
import http.server
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BINARY = os.environ.get("IMEILOCKD", "imeilockd")
READY_RE = re.compile(r"^<\d>daemon\.ready (.*)$")

# Example credentials for tests only - never used outside a test run.
EXAMPLE_TOKEN = "example-test-token-not-a-secret"
EXAMPLE_READONLY_TOKEN = "example-readonly-token-not-a-secret"
EXAMPLE_RADIUS_SECRET = b"example-radius-secret"
EXAMPLE_WEBHOOK_KEY = "EXAMPLE-webhook-key-for-tests"


_temp_dirs = []
_failed = []


def temp_dir(prefix):
    """A new temporary directory, removed when the test process ends unless
    it failed (an uncaught exception) or IMEILOCK_KEEP_TMP=1 is set: a
    daemon's state directory holds its store and log, a few MB, and a test
    run starts hundreds of daemons."""
    path = tempfile.mkdtemp(prefix=prefix)
    _temp_dirs.append(path)
    return path


def _note_failure(kind, value, tb):
    _failed.append(kind)
    sys.__excepthook__(kind, value, tb)


@atexit.register
def _remove_temp_dirs():
    if _failed or os.environ.get("IMEILOCK_KEEP_TMP") == "1":
        if _temp_dirs:
            print("kept for a look: " + " ".join(_temp_dirs), file=sys.stderr)
        return
    for path in _temp_dirs:
        shutil.rmtree(path, ignore_errors=True)


sys.excepthook = _note_failure


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
        self.state_dir = state_dir or temp_dir("imeilockd-test-")
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
            timeout=10, follow=True):
        """Returns (status, parsed JSON or text). A 307/308 (a cluster node
        redirecting a write to the node serving the SIM's shard) is followed
        once with the same method, body and token, as imeilockctl does;
        `follow=False` returns it."""
        return http_call(f"http://127.0.0.1:{self.ports['api']}{path}", method, body, token,
                         content_type, timeout, follow)

    def deliver(self, imsi, send):
        """send(self): one observation of `imsi` (StoryCluster picks a node)."""
        return send(self)

    # -- the operator API as the story tests read it -----------------------
    def sim(self, iccid):
        """GET /v1/sims/{iccid}: the SIM's body (asserts 200)."""
        st, body = self.api("GET", f"/v1/sims/{iccid}")
        assert st == 200, (st, body)
        return body

    def events(self, iccid):
        """The SIM's audit records, newest first (asserts 200)."""
        st, body = self.api("GET", f"/v1/sims/{iccid}/events")
        assert st == 200, (st, body)
        return body["items"]

    def orders(self, iccid, order_type=None):
        """The SIM's orders, newest first; only those of `order_type` if given."""
        st, body = self.api("GET", f"/v1/sims/{iccid}/orders")
        assert st == 200, (st, body)
        items = body["items"] if isinstance(body, dict) else body
        return [o for o in items if order_type is None or o["type"] == order_type]

    def order(self, iccid, **body):
        """POST /v1/sims/{iccid}/orders with `body`: (status, response)."""
        return self.api("POST", f"/v1/sims/{iccid}/orders", body)

    def new_sim(self, imsi, network="multinet"):
        """Creates an active SIM with a random ICCID and the one IMSI; its ICCID."""
        iccid = random_iccid()
        st, body = self.api("PUT", f"/v1/sims/{iccid}",
                            {"imsis": [imsi], "msisdn": "447700900123", "network": network,
                             "status": "active"})
        assert st == 201, (st, body)
        return iccid

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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the 3xx comes back as an HTTPError: http_call decides


_OPENER = urllib.request.build_opener(_NoRedirect)


def http_call(url, method, body=None, token=EXAMPLE_TOKEN, content_type="application/json",
              timeout=10, follow=True):
    """One operator API request: (status, parsed JSON or text). A 307/308 is
    followed once (same method, body and token) when `follow`."""
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        data = data.encode() if isinstance(data, str) else data
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", content_type)
    location = None
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
        location = e.headers.get("Location")
    if follow and status in (307, 308) and location:
        return http_call(location, method, body, token, content_type, timeout, follow=False)
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


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


def lead_times(bar_ms, unbar_ms=200, network="multinet"):
    """The `orders:` part that gives `network` short lead times (milliseconds),
    so that a story sees its bar and unbar orders complete."""
    return f"""
orders:
  networks:
    {network}:
      lead_times:
        bar: {bar_ms}ms
        unbar: {unbar_ms}ms
"""


def network_lead_times(network, activate_ms):
    """One more network's lead times, to follow lead_times() in the same `orders:`."""
    return f"""    {network}:
      lead_times:
        activate: {activate_ms}ms
"""


def radclient(port, imsi, imeisv=None, status="Interim-Update", session="sess-1",
              session_time=None, msisdn=None):
    """One Accounting-Request through radclient (freeradius-utils); True if
    answered. A NAS's Interim-Updates each carry their own Acct-Session-Time:
    the daemon treats a record with the same content as a retransmit."""
    attrs = (f'User-Name = "{imsi}", Acct-Status-Type = {status}, '
             f'Acct-Session-Id = "{session}", NAS-IP-Address = 127.0.0.1, '
             f'3GPP-IMSI = "{imsi}"')
    if msisdn:
        attrs += f', Calling-Station-Id = "{msisdn}"'
    if imeisv:
        attrs += f', 3GPP-IMEISV = "{imeisv}"'
    if session_time is not None:
        attrs += f', Acct-Session-Time = {session_time}'
    r = subprocess.run(["radclient", "-r", "2", "-t", "2", "-q", f"127.0.0.1:{port}", "acct",
                        EXAMPLE_RADIUS_SECRET.decode()],
                       input=attrs.encode(), capture_output=True, timeout=20)
    return r.returncode == 0


def radius_feed(d, imsi, session_id):
    """observe(imei=None, first=False): one RADIUS record of SIM `imsi` in
    session `session_id` through radclient (Start when `first`, else
    Interim-Update), with 3GPP-IMEISV (the IMEI's 14 digits, software version
    01) when `imei` is given; checks that it is answered. Each record carries
    its own Acct-Session-Time, so none is taken for a retransmit."""
    session_time = [0]

    def observe(imei=None, first=False):
        status = "Start" if first else "Interim-Update"
        check(radclient(d.ports["radius"], imsi, imei[:14] + "01" if imei else None, status,
                        session_id, session_time[0]),
              f"RADIUS {status} of {imsi} {'from ' + imei if imei else 'without an IMEI'} "
              "answered")
        session_time[0] += 60
    return observe


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


# -- a Diameter peer nobody here wrote: the Erlang/OTP diameter client ---------
# tests/integration/diameter_client/imeilock_stories_client.erl, compiled at
# test time with the dictionaries of tests/protocols/diameter/erlang/. Used by
# the Diameter, strict mode and violation action stories.
CLIENT_SRC = os.path.join(HERE, "diameter_client", "imeilock_stories_client")
DIA_DIR = os.path.join(HERE, "..", "protocols", "diameter", "erlang")
CLIENT_TW_MS = 3000  # the Erlang client's watchdog: below the daemon's, so it sends the DWRs
PEER_HOST = "ctf1.example.net"
PEER_REALM = "example.net"
DIAMETER_HOST = "imeilockd.test"
DIAMETER_REALM = "localdomain"


def diameter_peer_config(state_dir, extra=""):
    """default_config() with the Erlang client configured as a Diameter peer."""
    text = default_config(state_dir, extra)
    default_block = "diameter:\n  listen: ['127.0.0.1:0']\n"
    assert default_block in text
    return text.replace(default_block, f"""diameter:
  origin_host: {DIAMETER_HOST}
  origin_realm: {DIAMETER_REALM}
  listen: ['127.0.0.1:0']
  watchdog: 6s
  dpr_timeout: 3s
  peers:
    - origin_host: {PEER_HOST}
      realm: {PEER_REALM}
      addresses: ['127.0.0.1']
""")


class ErlangClient:
    """One `erl` running imeilock_stories_client; one command, one answer line."""

    def __init__(self, work):
        self.work = work
        boot = (f'{{ok,_}} = compile:file("{CLIENT_SRC}", [{{outdir,"{work}"}}, report]), '
                f'{{module,_}} = code:load_abs("{work}/imeilock_stories_client"), '
                f'imeilock_stories_client:main(["{work}", "{DIA_DIR}", "{PEER_HOST}", '
                f'"{PEER_REALM}", "{DIAMETER_REALM}"]).')
        self.proc = subprocess.Popen(["erl", "-noshell", "-pa", work, "-eval", boot],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, cwd=work)
        self.buf = b""
        self.noise = []

    def wait_ready(self, timeout=90):
        line = self.read(timeout)
        if line != "ready":
            raise AssertionError(f"erlang client did not start: {line!r}\n" + "\n".join(self.noise))

    def send(self, term):
        self.proc.stdin.write((term + "\n").encode())
        self.proc.stdin.flush()

    def read(self, timeout=20):
        """The next answer line (without the "@@ " tag); other output is kept as noise."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                text = line.decode(errors="replace").rstrip("\r")
                if text.startswith("@@ "):
                    return text[3:]
                if text.strip():
                    self.noise.append(text)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"erlang client: no answer within {timeout}s\n"
                                     + "\n".join(self.noise[-20:]))
            r, _, _ = select.select([self.proc.stdout], [], [], min(left, 1.0))
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError("erlang client exited\n" + "\n".join(self.noise[-20:]))
                self.buf += chunk

    def cmd(self, term, timeout=20):
        self.send(term)
        return self.read(timeout)

    def cmd_for(self, imsi, term, timeout=20):
        """cmd() for a request of SIM `imsi` (ClusterErlang routes by it)."""
        return self.cmd(term, timeout)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send("quit.")
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def erlang_fields(line):
    """'ACA Result-Code=2001 Session-Id=x ...' -> ('ACA', {...})."""
    kind, _, rest = line.partition(" ")
    out = {}
    for item in rest.split():
        k, _, v = item.partition("=")
        out[k] = v
    return kind, out


@contextlib.contextmanager
def erlang_story(name, config_for):
    """The setup of a story played over Diameter by the Erlang client: a state
    directory, the daemon (configuration `config_for(state_dir)`) and the
    client, started side by side (the VM builds its codecs meanwhile). Yields
    (daemon, client); the client is not connected yet. Everything is stopped
    at the end; when the story failed the directories are kept and the
    daemon's log is printed."""
    if not shutil.which("erl"):
        raise SystemExit("erl not found: install erlang-base and erlang-diameter "
                         "(scripts/install-deps.sh)")
    work = temp_dir(f"imeilock-{name}-erl-")
    state_dir = temp_dir("imeilockd-test-")
    d = Daemon(config_text=config_for(state_dir), state_dir=state_dir)
    erl = None
    ok = False
    try:
        erl = ErlangClient(work)
        d.start()
        erl.wait_ready()
        yield d, erl
        ok = True
    finally:
        if erl is not None:
            erl.close()
        d.kill9()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(state_dir, ignore_errors=True)
        else:
            log = d.log()[-4000:] if os.path.exists(d.log_path) else "(not started)"
            print(f"kept {work} and {state_dir}; daemon log:\n{log}")


class ClusterErlang:
    """One Erlang client per node of a StoryCluster; a request of a SIM goes
    through the client of the node StoryCluster.deliver picks."""

    def __init__(self, cluster, clients):
        self.cluster = cluster
        self.clients = clients  # node name -> ErlangClient

    def connect_all(self):
        """CER/CEA of each client with its node: {node: (kind, fields)}."""
        return {n: connect_erlang(self.cluster.nodes[n], e) for n, e in self.clients.items()}

    def cmd_for(self, imsi, term, timeout=20):
        return self.cluster.deliver(imsi, lambda node: self.clients[node.name].cmd(term, timeout))


@contextlib.contextmanager
def erlang_cluster_story(name, extra=""):
    """erlang_story() against a StoryCluster (configuration
    diameter_peer_config() + `extra` on each node): yields (cluster,
    ClusterErlang), the clients not connected yet."""
    if not shutil.which("erl"):
        raise SystemExit("erl not found: install erlang-base and erlang-diameter "
                         "(scripts/install-deps.sh)")
    works = {n: temp_dir(f"imeilock-{name}-{n}-erl-") for n in StoryCluster.NODES}
    clients = {}
    try:
        clients = {n: ErlangClient(w) for n, w in works.items()}
        with StoryCluster(extra, base=diameter_peer_config) as c:
            for e in clients.values():
                e.wait_ready()
            yield c, ClusterErlang(c, clients)
    finally:
        for e in clients.values():
            e.close()
        for w in works.values():
            shutil.rmtree(w, ignore_errors=True)


def connect_erlang(d, erl):
    """CER/CEA between the Erlang client and the daemon: (kind, fields)."""
    return erlang_fields(erl.cmd(f"{{connect, {d.ports['diameter']}, {CLIENT_TW_MS}}}."))


# -- receivers of what the daemon sends: webhooks, RFC 5176 Disconnect --------
PYRAD_DICT = os.path.join(HERE, "..", "protocols", "radius", "dictionary.pyrad")


class webhook_receiver(http.server.ThreadingHTTPServer):
    """The daemon's webhook target on loopback: records every POST (the event)
    with whether its HMAC-SHA256 signature with `key` verifies."""

    def __init__(self, key):
        self.events = []
        outer = self

        class handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                want = "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
                outer.events.append((json.loads(body),
                                     hmac.compare_digest(want, self.headers.get("X-Imeilock-Signature", ""))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def names(self):
        return [e["event"] for e, _ in self.events]


class dae_receiver(threading.Thread):
    """An RFC 5176 Dynamic Authorization Server on pyrad's packet code: ACKs."""

    def __init__(self, secret):
        super().__init__(daemon=True)
        from pyrad import dictionary
        self.dict = dictionary.Dictionary(PYRAD_DICT)
        self.secret = secret
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.running = True
        self.start()

    def run(self):
        from pyrad import packet
        while self.running:
            try:
                data, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            pkt = packet.CoAPacket(packet=data, secret=self.secret, dict=self.dict)
            ok = pkt.VerifyCoARequest()
            self.requests.append((pkt, ok))
            if ok:
                reply = pkt.CreateReply()
                reply.code = packet.DisconnectACK
                self.sock.sendto(reply.ReplyPacket(), addr)


def free_tcp_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- More than one node (docs/cluster.md) --------------------------------------
def cluster_node_config(state_dir, conninfo, node, preferred, shards, extra="",
                        claim_others_after="30s", lease_duration="5s", renew_interval="1s",
                        api_port=None, base=None):
    """A cluster node's configuration: `base`(state_dir, extra) (default_config()
    unless given, e.g. diameter_peer_config) on PostgreSQL `conninfo`
    (tests/integration/pg.py) with `cluster:` enabled for `node` preferring
    `preferred` (a list of shards) of `shards`. With `api_port` the API listens
    there and advertises http://127.0.0.1:PORT as cluster.api_url (writes at
    another node are redirected to it); without, a name that resolves nowhere."""
    api_url = f"http://127.0.0.1:{api_port}" if api_port else f"http://{node}.example.net:8080"
    cluster = (f"cluster:\n  enabled: true\n  node_id: {node}\n  shards: {shards}\n"
               f"  preferred_shards: {list(preferred)}\n"
               f"  claim_others_after: {claim_others_after}\n"
               f"  lease_duration: {lease_duration}\n  renew_interval: {renew_interval}\n"
               f"  api_url: {api_url}\n")
    config = (base or default_config)(state_dir, cluster + extra).replace(
        f"    path: {state_dir}/imeilockd.db",
        f"    backend: postgresql\n    postgresql:\n      conninfo: \"{conninfo}\"")
    assert "backend: postgresql" in config
    if api_port:
        config = config.replace("api:\n  listen: 127.0.0.1:0", f"api:\n  listen: 127.0.0.1:{api_port}")
        assert f"listen: 127.0.0.1:{api_port}" in config
    return config


def cluster_nodes(conninfo, nodes, shards, extra="", **kwargs):
    """h.Daemon per node of `nodes` ({name: preferred shards}), not started,
    each with an API port of its own advertised as its api_url."""
    out = {}
    for node, preferred in nodes.items():
        state_dir = temp_dir(f"imeilockd-{node}-")
        out[node] = Daemon(config_text=cluster_node_config(
            state_dir, conninfo, node, preferred, shards, extra, api_port=free_tcp_port(),
            **kwargs), state_dir=state_dir, cleanup=True)
        out[node].name = node
    return out


@contextlib.contextmanager
def pg_cluster(nodes, shards, extra="", **kwargs):
    """A PostgreSQL server of the test's own (skipped when none can be
    started) and cluster nodes on one database of it, started and ready:
    yields (server, {name: Daemon}). On the way out every node still running
    is killed (kill -9) and the server stopped; when the test failed, each
    node's log tail is printed first."""
    import pg  # noqa: PLC0415 - only cluster tests need PostgreSQL
    server = pg.server_or_skip()
    daemons = {}
    try:
        daemons = cluster_nodes(server.create_database("imeilock"), nodes, shards, extra,
                                **kwargs)
        start_all(daemons.values())
        yield server, daemons
    except BaseException:
        for name, d in daemons.items():
            if os.path.exists(d.log_path):
                print(f"--- {name} log (tail) ---\n{d.log()[-4000:]}")
        raise
    finally:
        for d in daemons.values():
            if d.proc is not None:
                d.kill9()
        server.close()


def ctl(d, *args, stdin=None, timeout=120):
    """Runs imeilockctl ($IMEILOCKCTL, else the one on PATH) against daemon
    d's API with the example token; the subprocess.CompletedProcess (text)."""
    env = dict(os.environ, IMEILOCK_TOKEN=EXAMPLE_TOKEN,
               IMEILOCK_URL=f"http://127.0.0.1:{d.ports['api']}")
    return subprocess.run([os.environ.get("IMEILOCKCTL", "imeilockctl"), *args], env=env,
                          capture_output=True, text=True, input=stdin, timeout=timeout,
                          stdin=None if stdin is not None else subprocess.DEVNULL)


def start_all(daemons, timeout=60):
    """Starts the daemons in parallel; then waits until every /readyz says 200."""
    threads = [threading.Thread(target=d.start, kwargs={"timeout": timeout}) for d in daemons]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(d.proc is not None for d in daemons), "a node did not start"
    wait_until(lambda: all(d.api("GET", "/readyz", token=None, timeout=2)[0] == 200
                           for d in daemons), timeout=30, what="every node ready")


def cluster_mode():
    """Whether a story test runs against two cluster nodes (its `--cluster`
    argument, the extra ctest entries) instead of one node."""
    return "--cluster" in sys.argv[1:]


def shard_of(imsi, shards):
    """docs/cluster.md: the IMSI's last four digits × shards / 10000."""
    return int(str(imsi)[-4:]) * shards // 10000


class StoryCluster:
    """The story tests' target as two cluster nodes on one PostgreSQL (their
    `--cluster` mode, docs/cluster.md), with what the stories use of a Daemon.

    4 shards, node-a preferring 0-1 (IMSIs ending 0000-4999), node-b 2-3. Each
    operator API call goes to either node (seeded), following the redirect of a
    write to the SIM's owner; each observation (`deliver`) goes to the node
    that does not serve the SIM's shard half of the time (seeded) and the next
    one is sent only once it has been applied (the inbox is empty), as a NAS's
    interim interval is far above the handoff latency. `finish()` checks that
    both paths were taken and prints the counts."""

    SHARDS = 4
    NODES = {"node-a": [0, 1], "node-b": [2, 3]}

    def __init__(self, extra="", base=None, seed=None):
        import pg  # noqa: PLC0415 - only the cluster mode needs PostgreSQL
        import random  # noqa: PLC0415
        self.server = pg.server_or_skip()
        conninfo = self.server.create_database("imeilock")
        self.nodes = cluster_nodes(conninfo, self.NODES, self.SHARDS, extra, base=base,
                                   claim_others_after="120s")
        seed = int(os.environ.get("IMEILOCK_CLUSTER_SEED", "11") if seed is None else seed)
        # Two generators: how often a story polls the API does not change where
        # its observations go.
        self.rng = random.Random(seed)
        self.api_rng = random.Random(seed + 1)
        self.observations = {"total": 0, "wrong": 0}
        self.api_calls = {"total": 0, "wrong": 0}

    # -- lifecycle ------------------------------------------------------------
    def start(self):
        start_all(self.nodes.values())
        leases = {int(s): o for s, o in self.server.query(
            "imeilock", "SELECT shard, owner FROM cluster_leases")}
        expected = {s: n for n, shards in self.NODES.items() for s in shards}
        assert leases == expected, f"shards not split as configured: {leases}"
        return self

    def stop(self):
        """SIGTERM to both; the first non-zero exit code, else 0."""
        codes = [d.stop() for d in self.nodes.values()]
        return next((c for c in codes if c), 0)

    def close(self):
        for d in self.nodes.values():
            d.kill9()
        self.server.close()

    def log(self):
        return "\n".join(f"== {n}\n{d.log()}" for n, d in self.nodes.items())

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            print(self.log()[-4000:])
            self.close()
            raise

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:
            print(self.log()[-6000:])
        self.close()

    # -- routing --------------------------------------------------------------
    def owner(self, imsi):
        shard = shard_of(imsi, self.SHARDS)
        return next(n for n, shards in self.NODES.items() if shard in shards)

    def deliver(self, imsi, send):
        """send(node) for one observation of `imsi`, at the wrong node half of
        the time; returns what send returned once the observation is applied."""
        right = self.owner(imsi)
        name = right
        self.observations["total"] += 1
        if self.rng.random() < 0.5:
            name = next(n for n in self.NODES if n != right)
            self.observations["wrong"] += 1
        result = send(self.nodes[name])
        self.settle()
        return result

    def settle(self):
        """Returns once every handed-over observation answered so far is applied."""
        wait_until(lambda: self.server.query("imeilock", "SELECT count(*) FROM cluster_inbox")
                   == [["0"]], timeout=20, interval=0.01, what="the handoff inbox drained")

    # -- the operator API, as Daemon offers it ----------------------------------
    def api(self, method, path, body=None, token=EXAMPLE_TOKEN, content_type="application/json",
            timeout=10, follow=True):
        self.api_calls["total"] += 1
        d = self.nodes[self.api_rng.choice(sorted(self.NODES))]
        return d.api(method, path, body, token, content_type, timeout, follow)

    sim = Daemon.sim
    events = Daemon.events
    orders = Daemon.orders
    order = Daemon.order
    new_sim = Daemon.new_sim

    def metric(self, name, **labels):
        """The sum over both nodes (None if neither has the series)."""
        values = [d.metric(name, **labels) for d in self.nodes.values()]
        found = [v for v in values if v is not None]
        return sum(found) if found else None

    def finish(self):
        """Checks that both paths were taken: observations handed over (sent by
        one node, applied by the other) and writes redirected; prints them."""
        self.settle()
        sent = {n: self._sum(d, "imeilock_cluster_handoffs_total", side="sent")
                for n, d in self.nodes.items()}
        applied = {n: self._sum(d, "imeilock_cluster_handoffs_total", side="applied")
                   for n, d in self.nodes.items()}
        redirected = self.metric("imeilock_api_owner_redirects_total", outcome="redirected") or 0
        print(f"cluster: {self.observations['wrong']} of {self.observations['total']} "
              f"observations sent to the node not serving the SIM; handoffs sent {sent}, "
              f"applied {applied}; {int(redirected)} operator writes redirected")
        check(self.observations["wrong"] >= self.observations["total"] // 4,
              "about half of the observations went to the wrong node")
        check(sum(sent.values()) >= 1 and sent["node-a"] == applied["node-b"]
              and sent["node-b"] == applied["node-a"],
              "every observation handed over was applied by the owner")
        check(redirected >= 1, "operator writes at the wrong node were redirected to the owner")
        check(self.server.query("imeilock", "SELECT count(*) FROM cluster_inbox") == [["0"]],
              "the inbox is empty")

    @staticmethod
    def _sum(d, name, **labels):
        return int(sum(d.metric(name, shard=str(s), **labels) or 0
                       for s in range(StoryCluster.SHARDS)))


@contextlib.contextmanager
def story_target(extra=""):
    """What a RADIUS story test plays against: one daemon (default_config() +
    `extra`), or with `--cluster` a StoryCluster. Daemon and StoryCluster both
    offer the operator API (`api`, `sim`, `order`, ...), `metric` and
    `deliver(imsi, send)` for an observation."""
    if cluster_mode():
        with StoryCluster(extra) as c:
            yield c
            c.finish()
    else:
        with Daemon(extra_config=extra) as d:
            yield d


# -- FreeRADIUS 3.2 (Debian's freeradius) as a real peer of the daemon ---------
def free_udp_port():
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_radiusd_conf(work, body, max_request_time=30):
    """Writes `work`/radiusd.conf for a raddb of the test's own in `work`: the
    paths, logging to stdout and the security settings every test shares, then
    `body` (its $INCLUDEs, clients, modules and servers)."""
    os.makedirs(os.path.join(work, "run"), exist_ok=True)
    os.makedirs(os.path.join(work, "log"), exist_ok=True)
    conf = f"""
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {work}/log
raddbdir = {work}
radacctdir = {work}/acct
name = radiusd
confdir = ${{raddbdir}}
modconfdir = ${{confdir}}/mods-config
certdir = ${{confdir}}/certs
cadir = ${{confdir}}/certs
run_dir = {work}/run
db_dir = {work}
libdir = /usr/lib/freeradius
pidfile = ${{run_dir}}/radiusd.pid
max_request_time = {max_request_time}
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {{
  destination = stdout
  colourise = no
}}
security {{
  allow_core_dumps = no
  max_attributes = 200
  reject_delay = 0
  status_server = no
}}
"""
    with open(os.path.join(work, "radiusd.conf"), "w") as f:
        f.write(conf + body)


class freeradius:
    """`freeradius -X` (foreground, debug log) on a raddb of the test's own in
    `work`. `write_raddb(port)` writes that configuration (write_radiusd_conf)
    with its listener on `port`, a free loopback UDP port; if another process
    took the port before FreeRADIUS bound it, a new one is picked (3 tries)."""

    def __init__(self, work, write_raddb, timeout=20):
        self.work = work
        self.out_path = os.path.join(work, "freeradius.out")
        for _ in range(3):
            self.port = free_udp_port()
            write_raddb(self.port)
            with open(self.out_path, "wb") as out:
                self.proc = subprocess.Popen(["freeradius", "-X", "-d", work, "-n", "radiusd"],
                                             stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if "Ready to process requests" in self.log():
                    return
                time.sleep(0.05)
            self.stop()
        raise RuntimeError("freeradius did not start:\n" + self.log())

    def log(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


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
