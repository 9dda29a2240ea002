#!/usr/bin/env python3
"""The RFC 5176 Disconnect sender against FreeRADIUS's own CoA/Disconnect
listener (Debian's freeradius 3.2), not only the pyrad receiver.

FreeRADIUS runs in the foreground with a raddb of this test's own: a `listen
{ type = coa }` on a free loopback port, the daemon as a client with the
example secret, and a `recv-coa` section that writes every Disconnect-Request
to a linelog file and answers Disconnect-ACK, except for one subscriber it
answers Disconnect-NAK with Error-Cause 503 (Session-Context-Not-Found), as a
NAS without that session would. FreeRADIUS drops a request whose Request
Authenticator or Message-Authenticator does not verify with the secret, so an
answer also proves the daemon signs as RFC 5176 says.

The daemon learns a SIM in device A over RADIUS, locks it, then sees it in
device B: the IMEI-lock violation sends the Disconnect-Request. Checked: FreeRADIUS
received it for the violating session and user and answered ACK (its debug
log), the daemon recorded `disconnect:ack` in the SIM's audit log and counted
it; then the same for a second SIM answered with a NAK, recorded as
`disconnect:nak` with the Error-Cause. Loopback only, bounded in time.
"""
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as h  # noqa: E402

A = h.imei15("35349001234567")
B = h.imei15("35209900176148")
IMSI_ACK = "234500000000041"
IMSI_NAK = "234500000000042"  # FreeRADIUS answers NAK for this User-Name


def raddb(work, port, secret):
    """A minimal FreeRADIUS 3.2 configuration: a CoA/Disconnect listener only."""
    h.write_radiusd_conf(work, f"""# The daemon, as a Dynamic Authorization Client (example secret, tests only).
client imeilockd {{
  ipaddr = 127.0.0.1
  secret = {secret}
}}
modules {{
  always ok {{
    rcode = ok
  }}
  always reject {{
    rcode = reject
  }}
  linelog disconnects {{
    filename = {work}/disconnects.log
    format = "%{{Packet-Type}} user=%{{User-Name}} session=%{{Acct-Session-Id}} nas=%{{NAS-IP-Address}} calling=%{{Calling-Station-Id}} event=%{{integer:Event-Timestamp}}"
  }}
}}
server dae {{
  listen {{
    type = coa
    ipaddr = 127.0.0.1
    port = {port}
  }}
  # FreeRADIUS 3 runs recv-coa for CoA-Request and Disconnect-Request alike;
  # ok -> Disconnect-ACK, reject -> Disconnect-NAK.
  recv-coa {{
    disconnects
    if (&User-Name == "{IMSI_NAK}") {{
      update reply {{
        &Error-Cause := Session-Context-Not-Found
      }}
      reject
    }}
    ok
  }}
  send-coa {{
    ok
  }}
}}
""", max_request_time=10)


def received(work):
    """The linelog lines: one per Disconnect-Request FreeRADIUS accepted."""
    try:
        with open(os.path.join(work, "disconnects.log")) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


check = h.check


def violate(d, imsi, session):
    """A SIM seen in device A, locked to it, then seen in device B (R7). Returns its ICCID."""
    iccid = h.random_iccid()
    st, body = d.api("PUT", f"/v1/sims/{iccid}", {"imsis": [imsi], "msisdn": "447700900041",
                                                   "network": "multinet", "status": "active"})
    check(st == 201, f"SIM {iccid} created ({st})")
    port = d.ports["radius"]
    pkt = h.accounting_request(1, imsi, A, status_type=1, session_id=session,
                               msisdn="447700900041")
    check(h.response_ok(pkt, h.radius_exchange(port, pkt)), f"{session}: Start from device A answered")
    st, _ = d.api("POST", f"/v1/sims/{iccid}/orders", {"type": "enable_imei_lock"})
    check(st == 202, "enable_imei_lock accepted")
    h.wait_until(lambda: d.api("GET", f"/v1/sims/{iccid}")[1]["lock"] == {"state": "locked", "imei": A, "scope": "imei"},
                 what="locked to A")
    pkt = h.accounting_request(2, imsi, B, status_type=3, session_id=session,
                               msisdn="447700900041")
    check(h.response_ok(pkt, h.radius_exchange(port, pkt)), f"{session}: Interim-Update from device B answered")
    check(d.api("GET", f"/v1/sims/{iccid}")[1]["bar"]["state"] == "bar_pending",
          "the violation raised the bar (R7)")
    return iccid


def audit(d, iccid, cause):
    found = h.wait_until(lambda: [e for e in d.events(iccid) if e["cause"].startswith("disconnect:")],
                         timeout=15, what=f"a disconnect outcome in {iccid}'s audit log")
    check([e["cause"] for e in found] == [cause],
          f"the SIM's audit log records {cause} (got {[e['cause'] for e in found]})")
    return found[0]


def main():
    if not shutil.which("freeradius"):
        print("FAIL: freeradius not found (Debian package freeradius; scripts/install-deps.sh)")
        return 1
    work = tempfile.mkdtemp(prefix="imeilock-fr-dae-")
    secret = h.EXAMPLE_RADIUS_SECRET.decode()
    fr = h.freeradius(work, lambda port: raddb(work, port, secret))
    state = h.temp_dir("imeilockd-test-")
    cfg = h.default_config(state).replace(
        f"      secret: {secret}\n",
        f"      secret: {secret}\n      disconnect_port: {fr.port}\n"
        "  disconnect:\n    enabled: true\n    timeout: 1s\n    retries: 2\n")
    cfg += """
orders:
  networks:
    multinet:
      lead_times: {bar: 30s, unbar: 300ms}
"""
    d = h.Daemon(config_text=cfg, state_dir=state)
    try:
        d.start()
        # ACK: FreeRADIUS accepts the Disconnect-Request.
        s1 = violate(d, IMSI_ACK, "fr-ack-1")
        lines = h.wait_until(lambda: [l for l in received(work) if f"user={IMSI_ACK}" in l],
                             timeout=10, what="FreeRADIUS to receive the Disconnect-Request")
        check(len(lines) == 1 and lines[0].startswith("Disconnect-Request "),
              f"FreeRADIUS received one Disconnect-Request for the SIM ({lines})")
        check(f"session=fr-ack-1 " in lines[0] and "nas=127.0.0.1 " in lines[0] and
              "calling=447700900041 " in lines[0],
              "it names the violating session, its NAS and the subscriber")
        event_ts = int(lines[0].rsplit("event=", 1)[1])
        check(abs(event_ts - time.time()) < 60, "it carries a current Event-Timestamp (RFC 5176 §3)")
        h.wait_until(lambda: "Sent Disconnect-ACK" in fr.log(), timeout=10, what="FreeRADIUS's ACK")
        check(True, "FreeRADIUS answered Disconnect-ACK")
        e = audit(d, s1, "disconnect:ack")
        check("session=fr-ack-1" in e.get("detail", "") and "nas=127.0.0.1" in e.get("detail", ""),
              f"the audit entry names the NAS and session ({e.get('detail')})")
        check(d.metric("imeilock_radius_disconnect_total", outcome="ack") == 1, "counted as ack")

        # NAK: FreeRADIUS has no session for this subscriber.
        s2 = violate(d, IMSI_NAK, "fr-nak-1")
        lines = h.wait_until(lambda: [l for l in received(work) if f"user={IMSI_NAK}" in l],
                             timeout=10, what="FreeRADIUS to receive the 2nd Disconnect-Request")
        check(len(lines) == 1 and "session=fr-nak-1 " in lines[0],
              "FreeRADIUS received the 2nd SIM's Disconnect-Request")
        h.wait_until(lambda: "Sent Disconnect-NAK" in fr.log(), timeout=10, what="FreeRADIUS's NAK")
        check(True, "FreeRADIUS answered Disconnect-NAK")
        e = audit(d, s2, "disconnect:nak")
        check("error_cause=503" in e.get("detail", ""),
              f"the audit entry carries Error-Cause 503 Session-Context-Not-Found ({e.get('detail')})")
        check(d.metric("imeilock_radius_disconnect_total", outcome="nak") == 1, "counted as nak")
        check(d.metric("imeilock_radius_disconnect_total", outcome="timeout") == 0,
              "no Disconnect timed out")
        check([x["cause"] for x in d.events(s1) if x["cause"].startswith("disconnect:")] ==
              ["disconnect:ack"], "the first SIM's log is unchanged by the second")
        check(d.stop() == 0, "the daemon stops cleanly")
        print("FreeRADIUS Disconnect story passed")
        return 0
    except BaseException:
        print("--- freeradius -X:\n" + fr.log()[-6000:])
        print("--- imeilockd:\n" + d.log()[-4000:])
        raise
    finally:
        d.kill9()
        fr.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
