#!/usr/bin/env python3
"""SIMs through POST /v1/sims:import into the real daemon: the time and the
daemon's memory while it runs (issue 12: 1 million SIMs in <= 60 s, memory
bounded). A benchmark, not a test: it prints figures and fails only when the
daemon refuses a line or dies.

    bench/import_bench.py BUILD_DIR [--sims 1000000] [--chunk 20000] [--in-flight 1]
                          [--keep] [--compare OTHER_IMEILOCKD [--rounds 2]]

The daemon (BUILD_DIR/daemon/imeilockd, or $IMEILOCKD) starts from
tests/integration/harness.py's default configuration (SQLite in a temp dir,
every listener on 127.0.0.1 port 0). The script posts the load generators'
SIMs (IMSI 234150000000000 + i, lock off, active; harness.import_bench_sims)
as CSV, `--chunk` lines per request, `--in-flight` requests at a time (1: the
next request is written only once the answer to the last one is in; 2: the
script writes the next chunk while the daemon imports the last, each request
on its own connection), and samples the daemon's VmRSS every 0.1 s from /proc. It prints one line per 10 % of the SIMs
(elapsed time, rate, RSS) and at the end the total time, SIMs/s, the daemon's
CPU seconds and the script's own (client_cpu_s), the daemon's RSS before, its
peak (VmHWM) and after, the requests retried after a 503 (the store's queue
full on a loaded machine) and the load average.
Then it restarts the daemon on the same store and prints how long the
inventory took to load (the sim_layer.started line's load_ms) and the RSS
after it.

With --compare, two daemons side by side in one run (issue 12 asks for
before/after measured so): OTHER_IMEILOCKD (say a build of main) and this
build's, alternating, --rounds times each, each on a fresh store; then one
SIDE_BY_SIDE line per binary with the median seconds, rate, CPU seconds and
peak RSS of its rounds and the load average of the whole run.
"""
import argparse
import json
import os
import re
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness  # noqa: E402


def status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_cpu_seconds():
    """This script's own CPU (writing the CSV, reading the answers): on the
    import's critical path too, one request at a time."""
    t = os.times()
    return t.user + t.system


def load_average():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def mb(kb):
    return f"{kb / 1024:.1f} MB"


class rss_sampler(threading.Thread):
    """The daemon's VmRSS every 0.1 s; `peak_kb` the largest seen."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kb = 0
        self.last_kb = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.last_kb = status_kb(self.pid, "VmRSS")
            self.peak_kb = max(self.peak_kb, self.last_kb)
            self.stop.wait(0.1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build_dir")
    ap.add_argument("--sims", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=20_000)
    ap.add_argument("--in-flight", type=int, default=1,
                    help="requests outstanding at a time (each on its own connection)")
    ap.add_argument("--keep", action="store_true", help="keep the state directory")
    ap.add_argument("--compare", metavar="OTHER_IMEILOCKD",
                    help="also run this binary, alternating with the build's, and compare")
    ap.add_argument("--rounds", type=int, default=2, help="rounds per binary with --compare")
    args = ap.parse_args()
    binary = os.environ.get("IMEILOCKD") or os.path.join(args.build_dir, "daemon", "imeilockd")
    if not args.compare:
        run_once(binary, args)
        return
    runs = {args.compare: [], binary: []}
    loads = [float(load_average())]
    for r in range(args.rounds):
        for b in runs:
            print(f"== round {r + 1} of {args.rounds}: {b}", flush=True)
            runs[b].append(run_once(b, args))
            loads.append(float(load_average()))
    med = statistics.median
    for label, b in (("before", args.compare), ("after", binary)):
        rs = runs[b]
        each = ", ".join(f"{x['seconds']:.1f}" for x in rs)
        print(f"SIDE_BY_SIDE {label} {b}: sims={args.sims} in_flight={args.in_flight} "
              f"rounds={len(rs)} "
              f"seconds={med(x['seconds'] for x in rs):.1f} (rounds {each}) "
              f"rate={med(x['rate'] for x in rs):.0f}/s "
              f"daemon_cpu_s={med(x['cpu'] for x in rs):.1f} "
              f"rss_peak={mb(max(x['rss_peak_kb'] for x in rs))} "
              f"load={min(loads):.1f}-{max(loads):.1f}", flush=True)


def run_once(binary, args):
    """One import of args.sims SIMs into a fresh daemon; prints the progress
    and RESULT lines, returns the figures."""
    RETRIES["count"] = 0
    d = harness.Daemon(binary=binary, cleanup=not args.keep)
    with d:
        pid, port = d.pid, d.ports["api"]
        print(f"imeilockd {binary}, state {d.state_dir}; {args.sims} SIMs in chunks of "
              f"{args.chunk}, {args.in_flight} in flight; load average {load_average()}",
              flush=True)
        rss0 = status_kb(pid, "VmRSS")
        cpu0 = cpu_seconds(pid)
        client0 = client_cpu_seconds()
        sampler = rss_sampler(pid)
        sampler.start()
        t0 = time.monotonic()
        progress = {"next": 0, "done": 0, "report": max(args.chunk, args.sims // 10),
                    "failed": None}
        step = progress["report"]
        lock = threading.Lock()

        def sender():
            # Takes the next chunk until none is left (or another sender failed).
            while True:
                with lock:
                    first = progress["next"]
                    if first >= args.sims or progress["failed"]:
                        return
                    n = min(args.chunk, args.sims - first)
                    progress["next"] += n
                try:
                    imported = import_chunk(port, first, n)
                    if imported != n:
                        raise SystemExit(f"chunk at {first}: imported {imported} of {n}")
                except SystemExit as e:
                    with lock:
                        progress["failed"] = progress["failed"] or str(e)
                    return
                with lock:
                    progress["done"] += n
                    done = progress["done"]
                    if done >= progress["report"] or done == args.sims:
                        secs = time.monotonic() - t0
                        print(f"  {done:>9} SIMs  {secs:7.1f} s  {done / secs:8.0f}/s  "
                              f"RSS {mb(sampler.last_kb)}  load {load_average()}", flush=True)
                        progress["report"] += step

        senders = [threading.Thread(target=sender) for _ in range(max(1, args.in_flight))]
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        if progress["failed"]:
            raise SystemExit(progress["failed"])
        done = progress["done"]
        secs = time.monotonic() - t0
        sampler.stop.set()
        sampler.join()
        cpu = cpu_seconds(pid) - cpu0
        client = client_cpu_seconds() - client0
        rss1 = status_kb(pid, "VmRSS")
        peak = max(status_kb(pid, "VmHWM"), sampler.peak_kb)
        print(f"RESULT imported={done} in_flight={args.in_flight} seconds={secs:.1f} "
              f"rate={done / secs:.0f}/s "
              f"daemon_cpu_s={cpu:.1f} client_cpu_s={client:.1f} "
              f"rss_before={mb(rss0)} rss_peak={mb(peak)} "
              f"rss_after={mb(rss1)} retries_503={RETRIES['count']} load={load_average()}",
              flush=True)
        if d.stop() != 0:
            raise SystemExit("imeilockd did not stop cleanly:\n" + d.log()[-2000:])

        # The same store again: the startup load of what was imported.
        log_offset = len(d.log())
        d.start(timeout=600)
        m = re.search(r"sim_layer\.started .*load_ms=(\d+)", d.log()[log_offset:])
        print(f"RESTART sims={done} load_ms={m.group(1) if m else '?'} "
              f"rss={mb(status_kb(d.pid, 'VmRSS'))} rss_peak={mb(status_kb(d.pid, 'VmHWM'))}",
              flush=True)
        d.stop()
    return {"seconds": secs, "rate": done / secs, "cpu": cpu, "rss_peak_kb": peak}


RETRIES = {"count": 0}
RETRIES_LOCK = threading.Lock()


def import_chunk(port, first, n):
    """POSTs generator SIMs first .. first+n-1; returns how many were imported.
    A 503 (the store's queue is full: `overloaded`) is retried after a second,
    as a client should, at most 30 times; the lines already written come back
    `updated` (an import is an upsert)."""
    lines = ["iccid,imsis,msisdn,network,status"]
    lines += [f"{harness.bench_iccid(i)},{harness.bench_imsi(i)},447{i:09d},multinet,active"
              for i in range(first, first + n)]
    for _ in range(30):
        status, body = post_csv(port, "\n".join(lines) + "\n")
        if status != 503:
            break
        with RETRIES_LOCK:
            RETRIES["count"] += 1
        time.sleep(1)
    if status != 200 or body.get("rejected"):
        bad = [x for x in body.get("results", [])
               if x.get("result") not in ("created", "updated", "ok", "imported")]
        raise SystemExit(f"import refused (HTTP {status}): {body.get('rejected')} lines, "
                         f"first: {bad[:1] or body}")
    return body.get("imported", 0)


def post_csv(port, text):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/sims:import", data=text.encode(), method="POST",
        headers={"Authorization": f"Bearer {harness.EXAMPLE_TOKEN}", "Content-Type": "text/csv"})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


if __name__ == "__main__":
    main()
