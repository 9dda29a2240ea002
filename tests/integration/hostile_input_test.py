#!/usr/bin/env python3
"""Issue 9: no exception may escape on an I/O thread or in an actor because of
input. Against the real binary, each path that takes outside input gets what
used to throw (or could): API bodies (a number beyond double, deep nesting),
CSV imports (broken quoting, invalid UTF-8, a huge line), a SIGHUP reload of
YAML that yaml-cpp itself rejects (a non-scalar key), a store file with
corrupted rows (unknown enum values, an unreadable audit record, an order of
an unknown type), and malformed RADIUS packets. After each the daemon still
runs and answers RADIUS and the API, and imeilock_internal_errors_total is on
/metrics for every guard."""
import os
import signal
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402
from harness import check, iccid  # noqa: E402

SITES = ["io_thread", "control", "api_request", "sim_actor", "registry", "order_actor",
         "store_read", "listener"]


def imsi(n):
    return f"2346{n:011d}"


def alive(d, ident, n=1, imei14="35349001234560"):
    pkt = h.accounting_request(ident, imsi(n), h.imei15(imei14))
    resp = h.radius_exchange(d.ports["radius"], pkt, timeout=1.0, tries=3)
    st, _ = d.api("GET", "/readyz", token=None)
    return d.proc.poll() is None and resp is not None and h.response_ok(pkt, resp) and st == 200


def main():
    d = h.Daemon()
    try:
        d.start()
        for n in (1, 2, 3):
            st, _ = d.api("PUT", f"/v1/sims/{iccid(n)}",
                          {"imsis": [imsi(n)], "network": "multinet", "status": "active"})
            check(st == 201, f"SIM {n} created")
        st, _ = d.api("POST", f"/v1/sims/{iccid(3)}/orders", {"type": "bar"})
        check(st == 202, "an order for SIM 3 is placed")
        check(alive(d, 1), "alive at the start")

        metrics = d.metrics()
        check(all(f'imeilock_internal_errors_total{{where="{s}"}}' in metrics for s in SITES),
              "/metrics shows imeilock_internal_errors_total for every guard")

        # -- API bodies -------------------------------------------------------
        path = f"/v1/sims/{iccid(4)}"
        st, body = d.api("PUT", path, '{"imsis":[1e999],"network":"multinet","status":"active"}')
        check(st == 400 and body["error"]["code"] == "malformed_json",
              "API: a number beyond double is 400 malformed_json (it escaped as out_of_range)")
        st, body = d.api("PUT", path, "[" * 4_000_000)
        check(st == 400 and body["error"]["code"] == "malformed_json",
              "API: 4 million nested arrays are 400, not a stack overflow")
        st, body = d.api("POST", f"/v1/sims/{iccid(1)}/orders", '{"type": "\xff\xfe"}'.encode("latin-1"))
        check(st in (400, 422), f"API: invalid UTF-8 in a field is refused ({st})")
        check(alive(d, 2), "alive after the API bodies")

        # -- CSV ---------------------------------------------------------------
        csv = ("iccid,imsis,msisdn,network,status\n"
               f'"{iccid(5)},{imsi(5)},,multinet,active\n'            # quote never closed
               f"{iccid(6)},{imsi(6)},,multi\xffnet,active\n"         # invalid UTF-8
               f"{iccid(7)},{imsi(7)},,{'x' * 200000},active\n"       # a huge network name
               f"{iccid(8)},{';'.join([imsi(8)] * 5000)},,ee,active\n"  # an IMSI 5000 times
               f"{iccid(9)},{imsi(9)},,ee,active,extra,fields\n"
               f"{iccid(10)},{imsi(10)},,ee,active\n").encode("latin-1")
        st, body = d.api("POST", "/v1/sims:import", csv, content_type="text/csv", timeout=30)
        check(st == 200 and body["imported"] == 1 and body["rejected"] == 5,
              f"CSV: every hostile line rejected, the good one imported ({st})")
        check(alive(d, 3), "alive after the CSV")

        # -- SIGHUP with YAML that yaml-cpp rejects -----------------------------
        good = open(d.config_path).read()
        bad_texts = [
            good + "\n? [not, a, name]\n: 1\n",                                 # complex top-level key
            good.replace("api:\n", "orders:\n  networks:\n    ? {a: 1}\n    : {}\napi:\n"),
            good + "\n" + "[" * 100000 + "\n",                                  # deep nesting
            good + "\n\x00\x01\x02 binary\n",
        ]
        for i, text in enumerate(bad_texts):
            before = d.log().count("daemon.reload_rejected")
            open(d.config_path, "w").write(text)
            d.signal(signal.SIGHUP)
            h.wait_until(lambda: d.log().count("daemon.reload_rejected") > before
                         or d.proc.poll() is not None, timeout=15, what="reload rejected")
            check(d.proc.poll() is None, f"reload {i}: rejected, the daemon keeps running")
        open(d.config_path, "w").write(good.replace("shutdown_timeout: 20s",
                                                    "shutdown_timeout: 20s\n  log_level: debug"))
        d.signal(signal.SIGHUP)
        h.wait_until(lambda: "daemon.reloaded log_level=debug" in d.log(), timeout=15,
                     what="a good reload after the bad ones")
        check(alive(d, 4), "alive after the bad reloads, and a good reload still applies")

        # -- A store file with corrupted rows ----------------------------------
        check(d.stop() == 0, "clean stop before editing the store")
        db = sqlite3.connect(os.path.join(d.state_dir, "imeilockd.db"))
        db.execute("UPDATE sims SET bar = 9, lock = 77 WHERE iccid = ?", (iccid(2),))
        db.execute("UPDATE orders SET type = 42, status = 0 WHERE iccid = ?", (iccid(3),))
        db.execute("INSERT INTO audit (iccid, at_ms, cause, before, after) VALUES (?, ?, ?, ?, ?)",
                   (iccid(1), 1, "hand-edited", '{"status":"abc","bar":[1]}', "not json"))
        db.execute("INSERT INTO sims (iccid, network) VALUES (?, ?)", ("8" * 300, "multinet"))
        db.commit()
        db.close()
        d.start()
        check(alive(d, 5), "the daemon starts on a store with corrupted rows")
        log = d.log()
        check("sim_layer.row_skipped" in log and "orders.row_skipped" in log,
              "the unusable SIM and order rows are skipped with a log line")
        st, body = d.api("GET", "/v1/sims?limit=1000")
        check(st == 200 and len(body["items"]) >= 4, "GET /v1/sims lists every row, bad ones too")
        st, body = d.api("GET", f"/v1/sims/{iccid(1)}/events")
        check(st == 200 and any(e["cause"] == "hand-edited" for e in body["items"]),
              "GET events reads an unreadable audit record without throwing")
        pkt = h.accounting_request(60, imsi(2), h.imei15("35349001234569"))
        check(h.radius_exchange(d.ports["radius"], pkt, timeout=1.0) is not None,
              "an observation for the skipped SIM is answered (unknown SIM, R15)")

        # -- Malformed RADIUS ---------------------------------------------------
        import socket
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for junk in (b"", b"\x04", b"\x04\x01\x00\x14" + b"\0" * 16 + b"\x1a\x02",
                         b"\x04\x01\xff\xff" + b"A" * 4000, os.urandom(1500)):
                s.sendto(junk, ("127.0.0.1", d.ports["radius"]))
        check(alive(d, 6), "alive after malformed RADIUS datagrams")

        total = sum(d.metric("imeilock_internal_errors_total", where=s) or 0 for s in SITES)
        check(total == 0, f"no input reached a last-resort guard (all handled at the edge: {total})")
        check(d.stop() == 0, "clean stop")
    finally:
        d.kill9()
    print("hostile input test passed")


if __name__ == "__main__":
    main()
