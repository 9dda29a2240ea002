#!/usr/bin/env python3
"""Issue 9, the reported fault, against the real daemon: a client without a
token opens api.max_connections (512) TCP connections to the API and sends
nothing. Before the fix every slot stayed taken for idle_timeout, renewable
forever, and operators got their connections reset. Now imeilockctl and an
HTTP GET with a token are answered at once, whether the flood comes from the
operator's own address or from many addresses, and the idle connections are
closed after api.header_timeout."""
import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402

MAX_CONNECTIONS = 512  # the default api.max_connections
HEADER_TIMEOUT = 3  # seconds, set below (the default is 10s; shorter keeps the test quick)


def open_idle(port, count, sources):
    """`count` connections that send nothing, spread over `sources` in turn."""
    out = []
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((sources[i % len(sources)], 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        out.append(s)
    return out


def is_closed(s):
    """True if the server has closed `s` (EOF or reset), without waiting."""
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        s.setblocking(True)


def timed(fn):
    t0 = time.monotonic()
    result = fn()
    return result, (time.monotonic() - t0) * 1000


def operator_is_served(d, label):
    (st, body), ms = timed(lambda: d.api("GET", "/v1/sims?limit=1", timeout=5))
    h.check(st == 200, f"{label}: GET /v1/sims with a token answered 200 ({ms:.0f} ms)")
    r, ms = timed(lambda: h.ctl(d, "sims", "list", "--limit", "1", timeout=20))
    h.check(r.returncode == 0,
          f"{label}: imeilockctl sims list answered ({ms:.0f} ms, exit {r.returncode} {r.stderr.strip()})")


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    d = h.Daemon()
    with open(d.config_path) as f:
        text = f.read()
    with open(d.config_path, "w") as f:
        f.write(text.replace("api:\n", f"api:\n  header_timeout: {HEADER_TIMEOUT}s\n", 1))
    idle = []
    try:
        d.start()
        port = d.ports["api"]

        # The report: 512 idle connections from the operator's own address.
        idle = open_idle(port, MAX_CONNECTIONS, ["127.0.0.1"])
        operator_is_served(d, "512 idle connections from 127.0.0.1")
        evicted = d.metric("imeilock_api_connections_evicted_total", limit="per_source")
        h.check(evicted is not None and evicted >= MAX_CONNECTIONS - 64,
              f"one address holds at most 64 slots: {evicted:.0f} of its idle connections evicted")
        for s in idle:
            s.close()

        # 512 idle connections from 8 addresses fill max_connections exactly
        # (64 each), with no per-source eviction: the operator takes the
        # oldest idle slot.
        h.wait_until(lambda: d.metric("imeilock_api_connections") <= 4, timeout=10,
                     what="the first flood's connections are gone")
        before = d.metric("imeilock_api_connections_evicted_total", limit="max_connections") or 0
        t0 = time.monotonic()
        idle = open_idle(port, MAX_CONNECTIONS, [f"127.0.0.{i}" for i in range(2, 10)])
        h.wait_until(lambda: d.metric("imeilock_api_connections") >= MAX_CONNECTIONS, timeout=10,
                     what="512 connections open")
        operator_is_served(d, "512 idle connections from 8 addresses (max_connections full)")
        after = d.metric("imeilock_api_connections_evicted_total", limit="max_connections")
        h.check(after is not None and after > before,
              f"the operator's connections took idle slots ({after - before:.0f} evicted)")
        rejected = d.metric("imeilock_api_connections_rejected_total") or 0
        h.check(rejected == 0, "no connection with a token was refused")

        # The idle ones are closed after header_timeout, not idle_timeout (1 min).
        h.wait_until(lambda: sum(is_closed(s) for s in idle) == len(idle),
                     timeout=HEADER_TIMEOUT + 10, what="every idle connection closed")
        elapsed = time.monotonic() - t0
        h.check(elapsed < HEADER_TIMEOUT + 10,
              f"all 512 idle connections closed {elapsed:.1f} s after they opened "
              f"(header_timeout {HEADER_TIMEOUT}s)")
        timeouts = d.metric("imeilock_api_header_timeouts_total")
        h.check(timeouts is not None and timeouts >= MAX_CONNECTIONS - 8,
              f"header timeouts counted: {timeouts:.0f}")
        operator_is_served(d, "after the flood")
        h.check(d.stop() == 0, "the daemon stops cleanly")
    except BaseException:
        print(d.log()[-4000:], file=sys.stderr)
        raise
    finally:
        for s in idle:
            s.close()
        d.kill9()


if __name__ == "__main__":
    main()
