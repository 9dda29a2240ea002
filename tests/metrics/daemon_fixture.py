"""The real imeilockd binary on loopback, for the /metrics tests.

Its configuration is the example configuration (config/imeilockd.yaml, which a
test keeps equal to the daemon's defaults) with every `listen:` address moved
to 127.0.0.1 port 0, and $STATE_DIRECTORY (where relative paths such as the
store's land) is a temporary directory, so the daemon
runs with the options it ships with, whatever components it has grown, and
never collides with another test. The bound ports are read from the
`daemon.ready` log line (`metrics_port=...`). Starting, stopping and reaping
the process is tests/integration/harness.py's `Daemon`.
"""
import os
import re
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402  the one harness that starts the daemon

# Listener sections the daemon has by default. One that the example does not
# show yet would bind its default (fixed) port; it is given 127.0.0.1:0 too,
# in whichever form (list or scalar) the binary accepts.
LISTENER_SECTIONS = ("radius", "diameter", "api")

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


class Daemon(harness.Daemon):
    """harness.Daemon with the example configuration moved to loopback; its state
    directory is removed when the `with` block ends."""

    def __init__(self, binary, example):
        state_dir = harness.temp_dir("imeilockd-metrics-")
        with open(example) as f:
            text = loopback_config(f.read())
        super().__init__(config_text=text, state_dir=state_dir, binary=binary, cleanup=True)

    def _check(self, text):
        with open(self.config_path, "w") as f:
            f.write(text)
        return subprocess.run([self.binary, "--check-config", self.config_path],
                              capture_output=True, text=True, timeout=30)

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
        with open(self.config_path) as f:
            text = self._pin_default_listeners(f.read())
        check = self._check(text)
        if check.returncode != 0:
            raise RuntimeError(f"derived configuration rejected:\n{check.stdout}{check.stderr}"
                               f"\n--- {self.config_path}:\n{text}")
        return super().start(timeout)

    @property
    def metrics_port(self):
        return self.ports["metrics"]

    def get_metrics(self):
        """(content type, body) of GET /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.headers.get("Content-Type", ""), resp.read().decode()
