#!/usr/bin/env python3
"""Overload and soak of the real imeilockd daemon (issue 9). Prints figures.

    bench/overload_soak.py BUILD_DIR [--sims 100000] [--overload-seconds 60]
                           [--soak-seconds 600] [--short] [--keep]

On 127.0.0.1 only, bounded in time, every process reaped (harness.Daemon):

 1. The daemon with a fast store: SIMs loaded (POST /v1/sims:import), every SIM
    seen once (first contact), then restarted on the same database with the
    store made slow: the writer sleeps `--commit-delay-ms` before each group
    commit of at most `--max-batch` changes (sim_layer.store.commit_delay, a
    test knob: an fsync on this machine's disk is not slow, so a slow disk is
    stood in for), so it commits at most max_batch / commit_delay changes/s.
 2. Capacity: bench/radius_load and bench/diameter_load together, closed loop
    (a window each), 10 % of observations changing the IMEI: C = the sum of
    their rates, what the machine absorbs.
 3. Overload: both generators open loop at C each (2C in all), 10 % changes,
    every change to an IMEI never seen before, for --overload-seconds. The
    daemon must shed by protocol (RADIUS: no answer; Diameter: 3004), memory
    stay bounded (RSS sampled, peak printed), GET /v1/sims/{iccid}, /readyz and
    /metrics keep answering (their latency printed), and afterwards every
    change a generator got acknowledged is in the store's audit log (read
    from the SQLite file).
 4. Soak (not with --short): C * 0.8 for --soak-seconds: latency percentiles and
    RSS per minute, no unanswered request, no error answer, no growth in RSS,
    every acknowledged change in the store.

Each phase uses its own SIMs (a slice of --sims), so no phase starts on
IMEIs another one left. Exit status 1 if a requirement above failed: the
test command runs it with --short (a few seconds of overload).
"""
import argparse
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness as h  # noqa: E402

SECRET = "soak-radius-secret-not-a-secret"
DIAMETER_PEERS = ["pgw1.example.net"] + [f"c{c}.pgw1.example.net" for c in range(1, 4)]
CHANGE_PERCENT = 10


def config(state_dir, slow, args):
    store = (f"    commit_delay: {args.commit_delay_ms}ms\n    max_batch: {args.max_batch}\n"
             f"    max_queue: {args.max_queue}\n" if slow else "")
    peers = "\n".join(f"    - origin_host: {p}" for p in DIAMETER_PEERS)
    return f"""
daemon:
  workers: 2
  io_threads: 1
  log_level: notice
  shutdown_timeout: 20s
metrics:
  listen: 127.0.0.1:0
sim_layer:
  store:
    path: {state_dir}/imeilockd.db
{store}
radius:
  listen: ['127.0.0.1:0']
  clients:
    - address: 127.0.0.1/32
      secret: {SECRET}
diameter:
  origin_host: imeilockd.soak
  origin_realm: localdomain
  listen: ['127.0.0.1:0']
  peers:
{peers}
api:
  listen: 127.0.0.1:0
  tokens: [{h.EXAMPLE_TOKEN}]
"""


def fields(text):
    return {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", text)}


class Generator:
    """One load generator process; its INTERVAL lines and last lines parsed."""

    def __init__(self, name, argv):
        self.name = name
        self.intervals = []
        self.lines = []
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("INTERVAL"):
                self.intervals.append(fields(line))
            else:
                self.lines.append(line)

    def wait(self, timeout):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        self.reader.join(timeout=10)
        out = " ".join(self.lines)
        self.result = fields(out)
        self.text = out
        return self


class Soak:
    def __init__(self, args):
        self.args = args
        self.failures = []
        self.radius_load = (os.environ.get("RADIUS_LOAD")
                            or os.path.join(args.build, "bench", "radius_load"))
        self.diameter_load = (os.environ.get("DIAMETER_LOAD")
                              or os.path.join(args.build, "bench", "diameter_load"))
        binary = os.environ.get("IMEILOCKD") or os.path.join(args.build, "daemon", "imeilockd")
        self.binary = binary
        self.d = None

    # -- checks and output ---------------------------------------------------
    def check(self, ok, what):
        print(f"  {'ok ' if ok else 'FAIL'} {what}", flush=True)
        if not ok:
            self.failures.append(what)

    @staticmethod
    def say(text):
        print(text, flush=True)

    # -- the daemon ------------------------------------------------------------
    def start(self, slow, state_dir=None):
        state_dir = state_dir or tempfile.mkdtemp(prefix="imeilockd-soak-")
        self.d = h.Daemon(config_text=config(state_dir, slow, self.args), state_dir=state_dir,
                          binary=self.binary).start(timeout=120)
        return self.d

    def rss_kb(self, key="VmRSS"):
        with open(f"/proc/{self.d.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def metric_sum(self, text, name, **labels):
        total = 0.0
        for m in re.finditer(r"^(\w+)(\{[^}]*\})?\s+(\S+)$", text, re.M):
            if m.group(1) != name:
                continue
            lab = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            if all(lab.get(k) == v for k, v in labels.items()):
                total += float(m.group(3))
        return total

    def shed_counters(self):
        """Daemon-side counts of what it shed, from /metrics."""
        text = self.d.metrics()
        return {
            "observations_overloaded": self.metric_sum(text, "imeilock_sim_observations_total",
                                                       result="overloaded"),
            "radius_overloaded": self.metric_sum(text, "imeilock_radius_discards_total",
                                                 reason="overloaded"),
            "radius_not_durable": self.metric_sum(text, "imeilock_radius_discards_total",
                                                  reason="not_durable"),
            "diameter_3004": self.metric_sum(text, "imeilock_diameter_answers_total",
                                             result_code="3004"),
        }

    # -- generators ------------------------------------------------------------
    def radius(self, first, count, seconds, rate=0, window=256, change=CHANGE_PERCENT,
               record=None, interval=0, seed=1):
        argv = [self.radius_load, "--target", f"127.0.0.1:{self.d.ports['radius']}",
                "--secret", SECRET, "--sims", str(count), "--first-sim", str(first),
                "--seconds", str(seconds), "--warmup", "0", "--imei-change-percent", str(change),
                "--seed", str(seed)]
        if rate:
            argv += ["--rate", str(int(rate)), "--sockets", "128", "--timeout", "1"]
        else:
            argv += ["--window", str(window), "--sockets", "8"]
        if record:
            argv += ["--record-acked", record]
        if interval:
            argv += ["--interval", str(interval)]
        return Generator("radius", argv)

    def diameter(self, first, count, seconds, rate=0, window=64, change=CHANGE_PERCENT,
                 record=None, interval=0, seed=1):
        argv = [self.diameter_load, "--port", str(self.d.ports["diameter"]), "--sims", str(count),
                "--first-sim", str(first), "--duration", str(seconds), "--warmup", "0",
                "--imei-change-percent", str(change), "--seed", str(seed),
                "--origin-host", DIAMETER_PEERS[0], "--distinct-peers", "1", "--connections", "2"]
        if rate:
            # A window past the daemon's diameter.limits.max_pending_per_connection
            # (4096): what it cannot take it must answer 3004, not queue.
            argv += ["--rate", str(int(rate)), "--window", "8192"]
        else:
            argv += ["--window", str(window)]
        if record:
            argv += ["--record-acked", record]
        if interval:
            argv += ["--interval", str(interval)]
        return Generator("diameter", argv)

    # -- the store ---------------------------------------------------------------
    def db(self):
        return sqlite3.connect(f"file:{self.d.state_dir}/imeilockd.db?mode=ro", uri=True,
                               timeout=30)

    def last_audit_id(self):
        with self.db() as c:
            return c.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0]

    def verify_acked(self, files, since_id, phase):
        """Every (IMSI, IMEI) a generator got acknowledged is an audit record of
        that SIM written after `since_id`."""
        acked = set()
        for path in files:
            with open(path) as f:
                for line in f:
                    imsi, imei = line.split()
                    acked.add((int(imsi), int(imei)))
        with self.db() as c:
            stored = set(c.execute(
                "SELECT i.imsi, a.imei FROM audit a JOIN imsis i ON i.iccid = a.iccid "
                "WHERE a.id > ?", (since_id,)))
        missing = acked - stored
        self.say(f"{phase}: {len(acked)} acknowledged changes (IMSI, new IMEI), "
                 f"{len(stored)} audit records written in the phase, missing: {len(missing)}")
        self.check(len(acked) > 0, f"{phase}: some changes were acknowledged")
        self.check(not missing, f"{phase}: every acknowledged change is in the store"
                   + (f" (first missing: {sorted(missing)[:3]})" if missing else ""))

    # -- probes during load --------------------------------------------------------
    def probe(self, stop, iccid, out):
        """API, /readyz and /metrics, timed, every 0.25 s until `stop`."""
        token = h.EXAMPLE_TOKEN
        urls = {
            "api_get_sim": (f"http://127.0.0.1:{self.d.ports['api']}/v1/sims/{iccid}", token),
            "readyz": (f"http://127.0.0.1:{self.d.ports['api']}/readyz", None),
            "metrics": (f"http://127.0.0.1:{self.d.ports['metrics']}/metrics", None),
        }
        while not stop.is_set():
            for name, (url, tok) in urls.items():
                req = urllib.request.Request(url)
                if tok:
                    req.add_header("Authorization", f"Bearer {tok}")
                t0 = time.monotonic()
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        r.read()
                        status = r.status
                except Exception as e:  # a probe that fails is a figure, not a crash
                    status = getattr(e, "code", None) or type(e).__name__
                out.setdefault(name, []).append((time.monotonic() - t0, status))
            stop.wait(0.25)

    def rss_sampler(self, stop, out):
        while not stop.is_set():
            out.append((time.monotonic(), self.rss_kb()))
            stop.wait(0.25)

    def under_load(self, gens, timeout, iccid):
        """Waits for `gens` while probing and sampling RSS; returns (probes, rss samples)."""
        stop = threading.Event()
        probes, rss = {}, []
        threads = [threading.Thread(target=self.probe, args=(stop, iccid, probes)),
                   threading.Thread(target=self.rss_sampler, args=(stop, rss))]
        for t in threads:
            t.start()
        try:
            for g in gens:
                g.wait(timeout)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        return probes, rss

    def report_probes(self, phase, probes, bound_s):
        for name, samples in sorted(probes.items()):
            lat = sorted(s for s, _ in samples)
            bad = [st for _, st in samples if st != 200]
            p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
            self.say(f"{phase}: {name}: {len(lat)} probes, p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, "
                     f"max {lat[-1] * 1000:.1f} ms, not 200: {len(bad)}")
            self.check(not bad and lat[-1] <= bound_s,
                       f"{phase}: {name} answered every probe within {bound_s} s")

    # -- phases ------------------------------------------------------------------------
    def run(self):
        a = self.args
        n = a.sims
        # Slices: capacity, overload, soak; RADIUS and Diameter half each.
        tenth = n // 10
        ranges = {"capacity": (0, tenth), "overload": (tenth, 4 * tenth),
                  "soak": (5 * tenth, 5 * tenth)}
        t_start = time.monotonic()
        self.say(f"load average {open('/proc/loadavg').read().split()[:3]}; sims={n} "
                 f"slow store: commit_delay={a.commit_delay_ms}ms max_batch={a.max_batch} "
                 f"(<= {a.max_batch * 1000 // max(1, a.commit_delay_ms)} changes/s) "
                 f"max_queue={a.max_queue}")

        # 1. Fast store: load the SIMs and see each once.
        d = self.start(slow=False)
        state_dir = d.state_dir
        imported, secs = h.import_bench_sims(d.ports["api"], h.EXAMPLE_TOKEN, n)
        self.say(f"imported {imported} SIMs in {secs:.1f} s")
        # Round robin from `start`: a pass that sent k requests saw SIMs start..start+k-1.
        start, t0 = 0, time.monotonic()
        while start < n:
            prime = self.radius(start, n - start, max(5, (n - start) // 8000), change=0).wait(300)
            sent = int(prime.result.get("sent", 0))
            if sent == 0:
                raise SystemExit("first contact: nothing sent:\n" + prime.text)
            start += sent
        self.say(f"first contact with every SIM: {n / (time.monotonic() - t0):.0f}/s")
        self.check(d.stop() == 0, "fast-store daemon stopped cleanly")
        d = self.start(slow=True, state_dir=state_dir)
        rss_loaded = self.rss_kb()
        self.say(f"slow-store daemon pid {d.pid}, RSS {rss_loaded} kB after loading {n} SIMs")

        # 2. Capacity, closed loop.
        first, count = ranges["capacity"]
        half = count // 2
        gens = [self.radius(first, half, a.capacity_seconds, window=256),
                self.diameter(first + half, half, a.capacity_seconds, window=256)]
        for g in gens:
            g.wait(a.capacity_seconds + 60)
        r_rate, d_rate = gens[0].result.get("rate", 0), gens[1].result.get("rate", 0)
        capacity = r_rate + d_rate
        self.say(f"capacity (closed loop, {CHANGE_PERCENT} % changes, {a.capacity_seconds} s): "
                 f"RADIUS {r_rate:.0f}/s (p99 {gens[0].result.get('p99_us', 0):.0f} us) + Diameter "
                 f"{d_rate:.0f}/s (p99 {gens[1].result.get('p99_us', 0):.0f} us) = {capacity:.0f}/s")
        if capacity <= 0:
            raise SystemExit("no capacity measured:\n" + gens[0].text + "\n" + gens[1].text)

        # 3. Overload at 2C.
        self.phase("overload", ranges["overload"], capacity, 1.0, a.overload_seconds,
                   interval=max(1, min(10, a.overload_seconds // 6)), overload=True)
        # 4. Soak at 0.8C.
        if not a.short:
            self.phase("soak", ranges["soak"], capacity, 0.4, a.soak_seconds, interval=60,
                       overload=False)

        errors = [l for l in d.log().splitlines() if re.match(r"^<[0-3]>", l)]
        self.say(f"daemon log: {len(errors)} error/critical lines"
                 + (f", first: {errors[0]}" if errors else ""))
        self.check(d.proc.poll() is None, "daemon still running at the end")
        self.say(f"daemon peak RSS over the whole run (VmHWM): {self.rss_kb('VmHWM')} kB")
        rc = d.stop()
        self.check(rc == 0, f"daemon stopped cleanly (exit {rc})")
        if not a.keep:
            import shutil
            shutil.rmtree(state_dir, ignore_errors=True)
        else:
            self.say(f"kept {state_dir}")
        self.say(f"total {time.monotonic() - t_start:.0f} s; load average "
                 f"{open('/proc/loadavg').read().split()[:3]}")
        if self.failures:
            self.say(f"{len(self.failures)} FAILED: " + "; ".join(self.failures))
            return 1
        self.say("PASS: all checks held")
        return 0

    def phase(self, name, rng, capacity, share, seconds, interval, overload):
        """Both generators at `share` * capacity each, open loop, recording acks."""
        a = self.args
        first, count = rng
        half = count // 2
        rate = capacity * share
        files = [os.path.join(self.d.state_dir, f"{name}-{p}.acked") for p in ("radius", "diameter")]
        since = self.last_audit_id()
        before = self.shed_counters()
        rss_before = self.rss_kb()
        self.say(f"{name}: offered {2 * rate:.0f}/s ({2 * share:.1f} x capacity) for {seconds} s, "
                 f"RADIUS {rate:.0f}/s + Diameter {rate:.0f}/s, {CHANGE_PERCENT} % changes; "
                 f"RSS before {rss_before} kB; load {open('/proc/loadavg').read().split()[0]}")
        t0 = time.monotonic()
        gens = [self.radius(first, half, seconds, rate=rate, record=files[0], interval=interval,
                            seed=7),
                self.diameter(first + half, half, seconds, rate=rate, record=files[1],
                              interval=interval, seed=7)]
        probes, rss = self.under_load(gens, seconds + 120, h.bench_iccid(first))
        took = time.monotonic() - t0
        r, dm = gens[0].result, gens[1].result
        after = self.shed_counters()
        delta = {k: after[k] - before[k] for k in after}
        self.say(f"{name}: RADIUS sent {r.get('sent', 0):.0f} answered {r.get('answered', 0):.0f} "
                 f"({r.get('rate', 0):.0f}/s) unanswered {r.get('lost', 0):.0f} not sent (no "
                 f"Identifier free) {r.get('skipped', 0):.0f} answered too late (stale) "
                 f"{r.get('stale', 0):.0f} bad {r.get('bad', 0):.0f}; changes {r.get('changes_pct', 0):.1f} %, acknowledged "
                 f"{r.get('acked_changes', 0):.0f}; p50 {r.get('p50_us', 0):.0f} p99 "
                 f"{r.get('p99_us', 0):.0f} p99.9 {r.get('p999_us', 0):.0f} us")
        other = dm.get("errors", 0) - dm.get("too_busy", 0) - dm.get("missing", 0)
        self.say(f"{name}: Diameter sent {dm.get('sent', 0):.0f} answered {dm.get('answers', 0):.0f} "
                 f"({dm.get('rate', 0):.0f}/s) 3004 {dm.get('too_busy', 0):.0f} other errors "
                 f"{other:.0f} still unanswered 5 s after the end {dm.get('missing', 0):.0f}; changes "
                 f"{dm.get('changes_pct', 0):.1f} %, acknowledged {dm.get('acked_changes', 0):.0f}; "
                 f"p50 {dm.get('p50_us', 0):.0f} p99 {dm.get('p99_us', 0):.0f} p99.9 "
                 f"{dm.get('p999_us', 0):.0f} us")
        self.say(f"{name}: the daemon counted: RADIUS requests shed (no answer) "
                 f"{delta['radius_overloaded']:.0f}, not durable {delta['radius_not_durable']:.0f}; "
                 f"Diameter 3004 answers {delta['diameter_3004']:.0f}; SIM layer observations "
                 f"refused (overloaded) {delta['observations_overloaded']:.0f}; phase took {took:.0f} s")
        for g in gens:
            for iv in g.intervals:
                extra = (f"unanswered {iv.get('lost', 0):.0f}" if g.name == "radius"
                         else f"3004 {iv.get('too_busy', 0):.0f}")
                self.say(f"{name}: {g.name:8s} t={iv['t']:4.0f}s {iv['rate']:7.0f}/s p50 "
                         f"{iv['p50_us']:6.0f} p99 {iv['p99_us']:7.0f} p99.9 {iv['p999_us']:7.0f} us "
                         f"{extra}")
        peak = max((k for _, k in rss), default=0)
        per_min = {}
        for t, k in rss:
            per_min[int((t - t0) // 60)] = k
        self.say(f"{name}: RSS before {rss_before} kB, peak during {peak} kB, after "
                 f"{self.rss_kb()} kB; at the end of each minute: "
                 + ", ".join(f"{k} kB" for _, k in sorted(per_min.items())))
        self.report_probes(name, probes, a.probe_bound)
        self.check(r.get("bad", 1) == 0, f"{name}: no RADIUS answer with a bad authenticator")
        if overload:
            self.check(r.get("lost", 0) > 0, f"{name}: RADIUS shed by not answering")
            self.check(dm.get("too_busy", 0) > 0, f"{name}: Diameter shed with 3004")
            self.check(other == 0, f"{name}: no Diameter error answer other than 3004")
            self.check(peak <= rss_before + a.rss_bound_mb * 1024,
                       f"{name}: RSS bounded (peak {peak} kB <= before + {a.rss_bound_mb} MB)")
        else:
            self.check(r.get("lost", 1) == 0 and r.get("skipped", 1) == 0,
                       f"{name}: every RADIUS request answered")
            self.check(dm.get("errors", 1) == 0, f"{name}: every Diameter answer 2001")
            mins = [k for _, k in sorted(per_min.items())]
            if len(mins) >= 4:
                grow = mins[-1] - mins[1]
                self.check(grow <= max(0.05 * mins[1], 20 * 1024),
                           f"{name}: no growth in RSS from minute 2 to the end ({grow:+d} kB)")
        self.verify_acked(files, since, name)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build", help="build directory (daemon/imeilockd, bench/radius_load, bench/diameter_load)")
    ap.add_argument("--short", action="store_true", help="the test command's version: overload only, a few seconds")
    ap.add_argument("--sims", type=int)
    ap.add_argument("--capacity-seconds", type=int)
    ap.add_argument("--overload-seconds", type=int)
    ap.add_argument("--soak-seconds", type=int, default=600)
    ap.add_argument("--commit-delay-ms", type=int)
    ap.add_argument("--max-batch", type=int)
    ap.add_argument("--max-queue", type=int)
    ap.add_argument("--probe-bound", type=float, default=2.0, help="seconds an API/metrics probe may take")
    ap.add_argument("--rss-bound-mb", type=int, default=512, help="RSS growth allowed under overload")
    ap.add_argument("--keep", action="store_true", help="keep the state dir (database, log, acked lists)")
    a = ap.parse_args()
    short = {"sims": 40000, "capacity_seconds": 3, "overload_seconds": 8, "commit_delay_ms": 20,
             "max_batch": 16, "max_queue": 1024}
    full = {"sims": 100000, "capacity_seconds": 10, "overload_seconds": 60, "commit_delay_ms": 20,
            "max_batch": 32, "max_queue": 4096}
    for k, v in (short if a.short else full).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    soak = Soak(a)
    try:
        return soak.run()
    finally:
        if soak.d is not None and soak.d.proc is not None:
            soak.d.kill9()


if __name__ == "__main__":
    sys.exit(main())
