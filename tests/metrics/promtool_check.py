#!/usr/bin/env python3
"""`promtool check metrics` finds nothing to say about the running daemon's /metrics.

The real binary runs on loopback with the shipped configuration's options
(daemon_fixture.py); its exposition is checked by Prometheus's own linter
(naming, units, counter suffixes, HELP/TYPE lines), and must carry the build
info and process metrics that every deployment's dashboards rely on.
  promtool_check.py IMEILOCKD_BINARY EXAMPLE_CONFIG
"""
import shutil
import subprocess
import sys
import time

import daemon_fixture

REQUIRED = ["imeilock_build_info", "process_cpu_seconds_total", "process_resident_memory_bytes",
            "process_open_fds", "process_start_time_seconds"]


def main():
    binary, example = sys.argv[1:3]
    promtool = shutil.which("promtool")
    if not promtool:
        sys.exit("FAIL: promtool not found (Debian package prometheus; scripts/install-deps.sh)")
    start = time.monotonic()
    with daemon_fixture.Daemon(binary, example) as d:
        content_type, body = d.get_metrics()
        check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                               text=True, timeout=30)
        rc = d.stop()
    problems = (check.stdout + check.stderr).strip()
    families = sorted({line.split()[2] for line in body.splitlines() if line.startswith("# TYPE ")})
    print(f"/metrics: {len(body.splitlines())} lines, {len(families)} families, "
          f"Content-Type {content_type}")
    failures = []
    if check.returncode != 0 or problems:
        failures.append(f"promtool check metrics exited {check.returncode}:\n{problems}")
    if not content_type.startswith("text/plain"):
        failures.append(f"Content-Type is {content_type!r}, want the text format")
    missing = [name for name in REQUIRED if name not in families]
    if missing:
        failures.append(f"missing metric families: {', '.join(missing)}")
    if rc != 0:
        failures.append(f"imeilockd exited {rc} on SIGTERM")
    if failures:
        print(body)
        for f in failures:
            print("FAIL:", f)
        sys.exit(1)
    print(f"PASS: promtool check metrics is clean on {len(families)} families "
          f"({time.monotonic() - start:.1f}s)")


if __name__ == "__main__":
    main()
