#!/usr/bin/env python3
"""Every metric the shipped Grafana dashboard and Prometheus alert rules query
is one the daemon really exports (contrib/grafana, contrib/prometheus).

The PromQL of every dashboard target and template query, and every rule's
`expr`, is reduced to the metric names it selects (functions, keywords, label
matchers, `by (...)` clauses, durations and Grafana variables removed). The
real binary then runs on loopback and is driven through the code paths that
create the families which print nothing until first used (prometheus-cpp
writes no HELP/TYPE line for a family without series): RADIUS accounting, a
violation with an RFC 5176 Disconnect, orders, API requests, an evicted and a
refused API connection, a webhook target, a Diameter CER from a stranger and a
garbage frame. Each queried name must then appear in /metrics (as the family,
or as a histogram's _bucket/_sum/_count), and the labels each selector
matches on must be labels of that family. Prometheus's own `up` is the only
name allowed that the daemon does not write.
  contrib_metric_names.py IMEILOCKD_BINARY SOURCE_DIR
"""
import http.client
import json
import os
import re
import socket
import struct
import sys
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as h  # noqa: E402

# Series Prometheus writes itself for each target, not the daemon.
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# Labels Prometheus attaches to every series of a target.
TARGET_LABELS = {"instance", "job"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan", "atan2", "start", "end"}
HIST_SUFFIXES = ("_bucket", "_sum", "_count")


def selectors(expr):
    """[(metric name, {label names matched})] of a PromQL expression."""
    e = re.sub(r'\{\s*__name__\s*=\s*"([^"]+)"\s*,?', r"\1{", expr)       # {__name__="m"} is m{}
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', e)      # string literals
    e = re.sub(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", r"\1", e)       # Grafana's label_values(m, l)
    e = re.sub(r"\$\{?\w+(?::\w+)?\}?", "1", e)                         # Grafana variables
    e = re.sub(r"\[[^\]]*\]", "", e)                                    # ranges, subqueries
    e = re.sub(r"(?<![A-Za-z0-9_:.])\d[\w.]*(?:[eE][+-]\d+)?", " 0 ", e)  # numbers, durations
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    out = []
    for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*(\{[^}]*\})?(\s*\()?", e):
        name, matchers, call = m.group(1), m.group(2), m.group(3)
        if not name:
            continue
        if name and (call or name.lower() in KEYWORDS):
            continue  # a function call or an operator
        labels = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers or ""))
        if name:
            out.append((name, labels))
    return out


def self_test():
    """The extractor on expressions whose answer is known (guards the parser itself)."""
    cases = {
        'sum by (le) (rate(a_seconds_bucket{x="1", instance=~"$instance"}[$__rate_interval]))':
            [("a_seconds_bucket", {"x", "instance"})],
        'histogram_quantile(0.99, sum by (le, route) (rate(b_bucket[5m])))': [("b_bucket", set())],
        'changes(c[1h]) >= 2 and on (instance, job) d': [("c", set()), ("d", set())],
        'e{result="failed"} / ignoring(result) f offset 5m > bool 0.8': [("e", {"result"}), ("f", set())],
        'label_values(g_info, instance)': [("g_info", set())],
        'time() - h{a="by (x)"}': [("h", {"a"})],
        '{__name__="i_total", y!="2"}': [("i_total", {"y"})],
    }
    for expr, want in cases.items():
        got = selectors(expr)
        if got != want:
            sys.exit(f"FAIL: the PromQL extractor reads {expr!r} as {got}, want {want}")


def dashboard_exprs(path):
    with open(path) as f:
        dash = json.load(f)
    exprs = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    exprs.append((f"panel {p.get('title')!r}", t["expr"]))
            walk(p.get("panels", []))

    walk(dash["panels"])
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            exprs.append((f"variable {v['name']!r}", q))
    return exprs


def rule_exprs(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    return [(f"rule {r.get('alert') or r.get('record')!r}", r["expr"])
            for g in doc["groups"] for r in g["rules"]]


# --- driving the daemon -------------------------------------------------------
def diameter_avp(code, data, mandatory=True):
    length = 8 + len(data)
    return struct.pack("!IB", code, 0x40 if mandatory else 0) + length.to_bytes(3, "big") + \
        data + b"\0" * (-length % 4)


def diameter_cer(host):
    avps = (diameter_avp(264, host.encode()) + diameter_avp(296, b"example.net") +
            diameter_avp(257, struct.pack("!H", 1) + socket.inet_aton("127.0.0.1")) +
            diameter_avp(266, struct.pack("!I", 0)) + diameter_avp(269, b"metric-names", False) +
            diameter_avp(259, struct.pack("!I", 3)))
    length = 20 + len(avps)
    return struct.pack("!B", 1) + length.to_bytes(3, "big") + struct.pack("!B", 0x80) + \
        (257).to_bytes(3, "big") + struct.pack("!III", 0, 1, 1) + avps


def diameter_exchange(port, data, timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        try:
            return s.recv(4096)
        except (socket.timeout, ConnectionResetError):
            return b""


def drive(d):
    """Traffic through every path that creates a family on first use."""
    a, b, imsi = h.imei15("35349001234567"), h.imei15("35209900176148"), "234500000000071"
    iccid = h.random_iccid()
    st, _ = d.api("PUT", f"/v1/sims/{iccid}", {"imsis": [imsi], "msisdn": "447700900071",
                                                "network": "multinet", "status": "active"})
    assert st == 201, st
    port = d.ports["radius"]
    pkt = h.accounting_request(1, imsi, a, status_type=1, session_id="names-1")
    assert h.response_ok(pkt, h.radius_exchange(port, pkt)), "RADIUS Start not answered"
    st, _ = d.api("POST", f"/v1/sims/{iccid}/orders", {"type": "enable_imei_lock"})
    assert st == 202, st
    h.wait_until(lambda: d.api("GET", f"/v1/sims/{iccid}")[1]["lock"]["state"] == "locked",
                 what="locked")
    pkt = h.accounting_request(2, imsi, b, status_type=3, session_id="names-1")
    assert h.response_ok(pkt, h.radius_exchange(port, pkt)), "RADIUS Interim not answered"
    h.wait_until(lambda: d.api("GET", f"/v1/sims/{iccid}")[1]["bar"]["state"] == "barred",
                 timeout=20, what="barred")
    # Diameter: a CER from a host that is no configured peer, then a frame that is no Diameter.
    dport = d.ports["diameter"]
    cea = diameter_exchange(dport, diameter_cer("stranger.example.net"))
    assert len(cea) >= 20 and cea[4] & 0x80 == 0, f"no CEA to the stranger's CER: {cea!r}"
    diameter_exchange(dport, b"\x07" + b"\0" * 19)
    # API connection slots (max_connections 2): a token-less idle connection is evicted by a
    # newcomer, and a newcomer finds every slot held by a connection with a valid token.
    aport = d.ports["api"]
    idle = [socket.create_connection(("127.0.0.1", aport), timeout=5) for _ in range(3)]
    time.sleep(0.3)
    for s in idle:
        s.close()
    time.sleep(0.3)
    held = []
    for _ in range(2):
        c = http.client.HTTPConnection("127.0.0.1", aport, timeout=5)
        c.request("GET", "/v1/sims?limit=1", headers={"Authorization": f"Bearer {h.EXAMPLE_TOKEN}"})
        c.getresponse().read()
        held.append(c)
    extra = socket.create_connection(("127.0.0.1", aport), timeout=5)
    extra.settimeout(5)
    try:
        extra.recv(1)
    except OSError:
        pass
    extra.close()
    for c in held:
        c.close()


def main():
    binary, source = sys.argv[1:3]
    self_test()
    files = {"contrib/grafana/imeilockd-dashboard.json": dashboard_exprs,
             "contrib/prometheus/imeilockd-rules.yml": rule_exprs}
    queried = []  # (file, where, name, labels)
    for rel, reader in files.items():
        for where, expr in reader(os.path.join(source, rel)):
            sel = selectors(expr)
            if not sel:
                sys.exit(f"FAIL: {rel} {where}: no metric found in {expr!r}")
            queried += [(rel, where, n, l) for n, l in sel]

    state = h.temp_dir("imeilockd-names-")
    secret = h.EXAMPLE_RADIUS_SECRET.decode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as nas:  # a NAS that never answers
        nas.bind(("127.0.0.1", 0))
        cfg = h.default_config(state).replace(
            f"      secret: {secret}\n",
            f"      secret: {secret}\n      disconnect_port: {nas.getsockname()[1]}\n"
            "  disconnect:\n    enabled: true\n    timeout: 100ms\n    retries: 0\n")
        cfg = cfg.replace("  tokens:", "  max_connections: 2\n  tokens:")
        cfg += """
orders:
  networks:
    multinet:
      lead_times: {bar: 200ms, unbar: 200ms}
webhooks:
  targets:
    - url: http://127.0.0.1:9/events
      secret: EXAMPLE-webhook-key-for-tests
"""
        d = h.Daemon(config_text=cfg, state_dir=state, binary=binary, cleanup=True)
        with d:
            drive(d)
            body = d.metrics()

    labels_of = {}  # family or sample name -> set of label names over its series
    for line in body.splitlines():
        if line.startswith("# TYPE "):
            labels_of.setdefault(line.split()[2], set())
        elif line and not line.startswith("#"):
            m = re.match(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?", line)
            labs = set(re.findall(r'([A-Za-z_]\w*)="', m.group(2) or ""))
            labels_of.setdefault(m.group(1), set()).update(labs)
    failures = []
    for rel, where, name, labels in queried:
        if name in SCRAPE_SERIES:
            continue
        if name not in labels_of:
            base = next((name[: -len(s)] for s in HIST_SUFFIXES if name.endswith(s)), None)
            hint = f" (family {base} exports no such sample)" if base in labels_of else ""
            failures.append(f"{rel} {where}: {name} is not exported by the daemon{hint}")
            continue
        unknown = labels - labels_of[name] - TARGET_LABELS
        if unknown:
            failures.append(f"{rel} {where}: {name} has no label {', '.join(sorted(unknown))} "
                            f"(it has {', '.join(sorted(labels_of[name])) or 'none'})")
    names = sorted({n for _, _, n, _ in queried})
    if failures:
        for f in failures:
            print("FAIL:", f)
        sys.exit(1)
    print(f"PASS: {len(queried)} selectors over {len(names)} metric names in "
          f"{', '.join(files)} are all exported by the daemon ({len(labels_of)} names on /metrics)")


if __name__ == "__main__":
    main()
