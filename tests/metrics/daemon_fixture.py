"""The real imeilockd binary on loopback, for the /metrics tests.

Its configuration is the example configuration (config/imeilockd.yaml, which a
test keeps equal to the daemon's defaults) with every `listen:` address moved
to 127.0.0.1 port 0, and $STATE_DIRECTORY (where relative paths such as the
store's land) is a temporary directory, so the daemon
runs with the options it ships with, whatever components it has grown, and
never collides with another test. The bound ports are read from the
`daemon.ready` log line (`metrics_port=...`). Bounded in time; the process is
always reaped.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

# Listener sections the daemon has by default. One that the example does not
# show yet would bind its default (fixed) port; it is given 127.0.0.1:0 too,
# in whichever form (list or scalar) the binary accepts.
LISTENER_SECTIONS = ("radius", "diameter", "api")

READY_RE = re.compile(r"^<\d>daemon\.ready (.*)$")
FIELD_RE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')
ADDR_RE = re.compile(r"(\[[0-9A-Fa-f:.]*\]|[A-Za-z0-9_.-]+):\d+")


def loopback_config(example_text):
    """The example configuration with every listener on 127.0.0.1:0."""
    out = []
    in_listen_list = None  # indentation of a block-style `listen:` list
    for line in example_text.splitlines():
        stripped = line.split("#", 1)[0].rstrip()
        indent = len(line) - len(line.lstrip())
        if in_listen_list is not None:
            if stripped.strip().startswith("-") and indent >= in_listen_list:
                out.append(ADDR_RE.sub("127.0.0.1:0", line))
                continue
            if stripped:
                in_listen_list = None
        m = re.match(r"^(\s*)(listen)\s*:\s*(.*)$", stripped)
        if m:
            value = m.group(3)
            if not value:
                in_listen_list = indent
                out.append(line)
            elif value.startswith("["):
                out.append(f"{m.group(1)}listen: {ADDR_RE.sub('127.0.0.1:0', value)}")
            else:
                out.append(f"{m.group(1)}listen: 127.0.0.1:0")
            continue
        out.append(line)
    return "\n".join(out) + "\n"


class Daemon:
    """One imeilockd process on loopback with its own temporary state directory."""

    def __init__(self, binary, example):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="imeilockd-metrics-")
        with open(example) as f:
            text = loopback_config(f.read())
        self.config = os.path.join(self.dir, "imeilockd.yaml")
        with open(self.config, "w") as f:
            f.write(text)
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.proc = None
        self.ready = {}

    def _check(self, text):
        with open(self.config, "w") as f:
            f.write(text)
        return subprocess.run([self.binary, "--check-config", self.config], capture_output=True,
                              text=True, timeout=30)

    def _pin_default_listeners(self, text):
        present = {line.split(":", 1)[0] for line in text.splitlines() if re.match(r"^\w+:", line)}
        for section in LISTENER_SECTIONS:
            if section in present:
                continue
            for value in ("['127.0.0.1:0']", "127.0.0.1:0"):
                candidate = f"{text.rstrip()}\n{section}:\n  listen: {value}\n"
                if self._check(candidate).returncode == 0:
                    text = candidate
                    break
        return text

    def start(self, timeout=30):
        with open(self.config) as f:
            text = self._pin_default_listeners(f.read())
        check = self._check(text)
        if check.returncode != 0:
            raise RuntimeError(f"derived configuration rejected:\n{check.stdout}{check.stderr}"
                               f"\n--- {self.config}:\n{open(self.config).read()}")
        log = open(self.log_path, "wb")
        env = dict(os.environ, STATE_DIRECTORY=self.dir)
        env.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen([self.binary, "--config", self.config], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"imeilockd exited with {self.proc.returncode}:\n{self.log()}")
            for line in self.log().splitlines():
                m = READY_RE.match(line)
                if m:
                    self.ready = {k: v.strip('"') for k, v in FIELD_RE.findall(m.group(1))}
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"imeilockd not ready after {timeout}s:\n{self.log()}")

    @property
    def metrics_port(self):
        return int(self.ready["metrics_port"])

    def get_metrics(self):
        """(content type, body) of GET /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.headers.get("Content-Type", ""), resp.read().decode()

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, timeout=30):
        """SIGTERM, wait; returns the exit code (the process is killed past the timeout)."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
