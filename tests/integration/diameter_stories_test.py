#!/usr/bin/env python3
"""The product text's stories, driven entirely over Diameter by a stack that
nobody here wrote (Erlang/OTP's diameter application, as a packet core's
charging client: CER, Rf ACR, Gy CCR, DWR, DPR), against the real daemon;
the SIM state is read back through the operator API. The IMEI travels in
every encoding of DESIGN.md section 4. Rule numbers from the design (R1-R15).

The Erlang client (diameter_client/imeilock_stories_client.erl) runs as one
long-lived `erl` that reads a command per line and answers one line each;
it and the dictionaries (tests/protocols/diameter/erlang/*.dia) are compiled at test
time into a temporary directory.

With `--cluster` the same stories run against two cluster nodes on one PostgreSQL
(harness.StoryCluster), one Erlang client connected to each: the SIMs' shards split
between the nodes, each request sent to the node that does not serve the SIM half of
the time (handed to the owner), the API calls to either node (writes redirected to
the owner). The peer-management part (DWR, DPR, DPR at stop) runs on one node only."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402

# Seconds: bar lead time of the test network (the cluster waits for each handoff to
# be applied before the next request: more of the lead time goes by between two).
LEAD = 3.0 if h.cluster_mode() else 1.5
EXTRA = h.lead_times(int(LEAD * 1000)) + h.network_lead_times("roamnet901", activate_ms=300)
OUR_HOST, OUR_REALM = h.DIAMETER_HOST, h.DIAMETER_REALM

# Accounting-Record-Type (RFC 6733 9.8.1) and CC-Request-Type (RFC 4006 8.3).
EVENT, START, INTERIM, STOP = 1, 2, 3, 4
INITIAL, UPDATE, TERMINATION, CC_EVENT = 1, 2, 3, 4

A = h.imei15("35349001234560")
B = h.imei15("35876502222220")
C = h.imei15("35111103333330")


# -- IMEI encodings, as Erlang terms for the client ---------------------------
def uei_ascii(imeisv):  # User-Equipment-Info IMEISV, ASCII decimal
    return f'{{uei_ascii, "{imeisv}"}}'


def uei_hex(imei):  # TS 32.299: UTF-8 hexadecimal digits, F filler
    return f'{{uei_hex, "{imei}"}}'


def uei_tbcd(imeisv):  # TBCD, two digits per octet
    return f'{{uei_tbcd, "{imeisv}"}}'


def uei_mac(mac):  # User-Equipment-Info of type MAC: not a device we lock
    return f'{{uei_mac, "{mac}"}}'


def terminal(imei, sv):  # Terminal-Information: IMEI (1402) + Software-Version (1403)
    return f'{{ti, "{imei}", "{sv}"}}'


def imeisv_3gpp(imeisv):  # 3GPP-IMEISV (10415/20)
    return f'{{imeisv, "{imeisv}"}}'


def ps(inner):  # inside Service-Information / PS-Information
    return f"{{ps, {inner}}}"


NO_IMEI = "none"


ANSWERS = {"ACA": 0, "CCA": 0}


def feed(erl, imsi, session_id):
    """observe(imei=None, first=None): one ACR of SIM `imsi` in Diameter
    session `session_id` (START for the session's first record unless `first`
    says otherwise, else INTERIM), with User-Equipment-Info when `imei` is
    given; checks the ACA (acr())."""
    number = [0]

    def observe(imei=None, first=None):
        start = number[0] == 0 if first is None else first
        acr(erl, session_id, START if start else INTERIM, number[0], imsi,
            uei_ascii(imei[:14] + "01") if imei else NO_IMEI)
        number[0] += 1
    return observe


def acr(erl, sid, rtype, num, imsi, imei):
    """One ACR (Rf); asserts ACA 2001 with the right echo (RFC 6733 9.7.2)."""
    line = erl.cmd_for(imsi, f'{{acr, "{sid}", {rtype}, {num}, "{imsi}", {imei}}}.')
    kind, f = h.erlang_fields(line)
    ok = (kind == "ACA" and f.get("Result-Code") == "2001" and f.get("Session-Id") == sid
          and f.get("Accounting-Record-Type") == str(rtype)
          and f.get("Accounting-Record-Number") == str(num)
          and f.get("Origin-Host") == OUR_HOST and f.get("Origin-Realm") == OUR_REALM
          and f.get("Acct-Application-Id") == "3")
    if not ok:
        raise AssertionError(f"ACR {sid}/{num} ({imei}): bad answer: {line}")
    ANSWERS["ACA"] += 1
    return f


def ccr(erl, sid, rtype, num, imsi, imei):
    """One CCR (Gy); asserts CCA 2001 with the right echo (RFC 4006 3.2)."""
    line = erl.cmd_for(imsi, f'{{ccr, "{sid}", {rtype}, {num}, "{imsi}", {imei}}}.')
    kind, f = h.erlang_fields(line)
    ok = (kind == "CCA" and f.get("Result-Code") == "2001" and f.get("Session-Id") == sid
          and f.get("CC-Request-Type") == str(rtype) and f.get("CC-Request-Number") == str(num)
          and f.get("Auth-Application-Id") == "4"
          and f.get("Origin-Host") == OUR_HOST and f.get("Origin-Realm") == OUR_REALM)
    if not ok:
        raise AssertionError(f"CCR {sid}/{num} ({imei}): bad answer: {line}")
    ANSWERS["CCA"] += 1
    return f


# -- the stories -----------------------------------------------------------------
def story_move_and_update_to_last_seen(d, erl):
    """R2 R4 R7 R8 R9 R11 over Rf (and Gy for the same SIM), several encodings."""
    imsi = "234510000000001"
    s = d.new_sim(imsi)
    acr(erl, "ctf1;rf;1", START, 0, imsi, uei_ascii(A[:14] + "01"))
    h.check(d.sim(s)["last_seen_imei"] == A,
            "ACR START, User-Equipment-Info ASCII IMEISV: last seen IMEI learnt (R2)")
    st, _ = d.order(s, type="enable_imei_lock")
    h.check(st == 202, "enable_imei_lock accepted (R1: multinet is eligible)")
    h.wait_until(lambda: d.sim(s)["lock"] == {"state": "locked", "imei": A, "scope": "imei"}, what="locked to A")
    h.check(True, "R4 enable on a live SIM locks to the last seen IMEI")

    # A firmware update (new SVN, digits 15-16) is the same device (R2).
    acr(erl, "ctf1;rf;1", INTERIM, 1, imsi, terminal(A, "02"))
    acr(erl, "ctf1;rf;1", INTERIM, 2, imsi, imeisv_3gpp(A[:14] + "77"))
    body = d.sim(s)
    h.check(body["lock"] == {"state": "locked", "imei": A, "scope": "imei"} and body["last_seen_imei"] == A
            and body["bar"]["state"] == "none" and not d.orders(s, "bar"),
            "new software version (Terminal-Information 1402/1403, top-level 3GPP-IMEISV) "
            "is the same device: no bar (R2)")

    # The SIM moves to device B: one bar order, pending for the lead time (R7, R8).
    t0 = time.monotonic()
    acr(erl, "ctf1;rf;1", INTERIM, 3, imsi, uei_hex(B))
    body = d.sim(s)
    h.check(body["bar"]["state"] == "bar_pending" and body["bar"]["reason"] == "imei_lock"
            and body["bar"]["trigger_imei"] == B,
            "R7 violation (User-Equipment-Info UTF-8 hex, F filler): bar pending, trigger IMEI B")
    ccr(erl, "ctf1;gy;1", INITIAL, 0, imsi, uei_tbcd(C[:14] + "03"))
    body = d.sim(s)
    h.check(body["bar"]["state"] == "bar_pending",
            "R8 SIM still answered 2001 during the lead time (Gy CCR, User-Equipment-Info TBCD)")
    h.check(body["last_seen_imei"] == B, "R9 last seen frozen at the trigger IMEI (device C seen)")
    acr(erl, "ctf1;rf;1", INTERIM, 4, imsi, ps(uei_ascii(A[:14] + "01")))
    body = d.sim(s)
    h.check(body["last_seen_imei"] == B and body["bar"]["state"] == "bar_pending",
            "R9 last seen still the trigger IMEI back in device A (nested in PS-Information)")
    h.check(len(d.orders(s, "bar")) == 1, "R7 exactly one bar order while pending")
    h.wait_until(lambda: d.sim(s)["bar"]["state"] == "barred", timeout=LEAD + 15, interval=0.05,
                 what="barred")
    h.check(time.monotonic() - t0 >= LEAD * 0.8, "R8 barred only after the lead time")
    ccr(erl, "ctf1;gy;1", UPDATE, 1, imsi, ps(imeisv_3gpp(C[:14] + "03")))
    body = d.sim(s)
    h.check(body["bar"]["state"] == "barred" and body["last_seen_imei"] == B
            and len(d.orders(s, "bar")) == 1,
            "R7 R9 device C while barred (3GPP-IMEISV in PS-Information): no second bar order, "
            "last seen still B")

    # Unbar, update to last seen: locked to B, the first device after the bar (R11).
    st, _ = d.order(s, type="unbar", unbar_mode="update_to_last_seen")
    h.check(st == 202, "unbar update_to_last_seen accepted")
    h.wait_until(lambda: d.sim(s)["bar"]["state"] == "none", what="unbarred")
    h.check(d.sim(s)["lock"] == {"state": "locked", "imei": B, "scope": "imei"}, "R11 lock moved to B")
    acr(erl, "ctf1;rf;1", STOP, 5, imsi, uei_ascii(B[:14] + "01"))
    ccr(erl, "ctf1;gy;1", TERMINATION, 2, imsi, uei_hex(B))
    body = d.sim(s)
    h.check(body["bar"]["state"] == "none" and len(d.orders(s, "bar")) == 1,
            "in device B after R11: ACR STOP and CCR TERMINATION answered, no new bar")


def story_keep_lock(d, erl):
    """R10 over Gy: unbar keep_lock while in the 2nd device."""
    imsi = "234510000005002"
    s = d.new_sim(imsi)
    ccr(erl, "ctf1;gy;2", INITIAL, 0, imsi, ps(terminal(A, "01")))
    h.check(d.sim(s)["last_seen_imei"] == A,
            "CCR INITIAL, Terminal-Information in PS-Information: last seen IMEI A")
    d.order(s, type="enable_imei_lock")
    h.wait_until(lambda: d.sim(s)["lock"] == {"state": "locked", "imei": A, "scope": "imei"}, what="s2 locked")
    ccr(erl, "ctf1;gy;2", UPDATE, 1, imsi, ps(imeisv_3gpp(B[:14] + "01")))
    body = d.sim(s)
    h.check(body["bar"]["state"] == "bar_pending" and body["bar"]["trigger_imei"] == B,
            "R7 over Gy (3GPP-IMEISV in Service-Information/PS-Information): bar pending")
    h.wait_until(lambda: d.sim(s)["bar"]["state"] == "barred", timeout=LEAD + 15,
                 what="s2 barred")
    st, o = d.order(s, type="unbar", unbar_mode="keep_lock")
    h.check(st == 202 and o.get("warnings"), "R10 keep_lock in the 2nd device: accepted with a warning")
    h.wait_until(lambda: d.sim(s)["bar"]["state"] == "none", what="s2 unbarred")
    h.check(d.sim(s)["lock"] == {"state": "locked", "imei": A, "scope": "imei"}, "R10 lock unchanged (A)")
    ccr(erl, "ctf1;gy;2", UPDATE, 2, imsi, ps(uei_ascii(B[:14] + "01")))
    body = d.sim(s)
    h.check(body["bar"]["state"] == "none" and len(d.orders(s, "bar")) == 1,
            "R10 not barred again in the 2nd device")
    ccr(erl, "ctf1;gy;2", UPDATE, 3, imsi, uei_hex(C))
    body = d.sim(s)
    h.check(body["bar"]["state"] == "bar_pending" and body["bar"]["trigger_imei"] == C
            and len(d.orders(s, "bar")) == 2,
            "R10 barred again in a 3rd device (Gy, User-Equipment-Info UTF-8 hex)")
    ccr(erl, "ctf1;gy;2", TERMINATION, 4, imsi, NO_IMEI)


def story_no_imei(d, erl):
    """R3 (no IMEI, no event), malformed values, R4 without a last seen IMEI, R6."""
    imsi = "234510000007503"
    s = d.new_sim(imsi)
    acr(erl, "ctf1;rf;3", START, 0, imsi, NO_IMEI)
    acr(erl, "ctf1;rf;3", INTERIM, 1, imsi, uei_mac("00:1b:63:84:45:e6"))
    ccr(erl, "ctf1;gy;3", CC_EVENT, 0, imsi, NO_IMEI)
    body = d.sim(s)
    h.check(body["last_seen_imei"] is None and body["lock"]["state"] == "off",
            "R3 no IMEI (none, or User-Equipment-Info of type MAC): no event")
    malformed0 = d.metric("imeilock_diameter_observations_total", imei="malformed") or 0
    acr(erl, "ctf1;rf;3", INTERIM, 2, imsi, uei_ascii("35349001"))
    h.check(d.sim(s)["last_seen_imei"] is None, "R2 malformed IMEI: answered 2001, no event")
    h.wait_until(lambda: (d.metric("imeilock_diameter_observations_total", imei="malformed")
                          or 0) >= malformed0 + 1, timeout=5, what="malformed counted")
    h.check(True, "R2 malformed IMEI counted")
    st, _ = d.order(s, type="enable_imei_lock")
    h.check(st == 202, "enable_imei_lock on a SIM with no IMEI seen accepted")
    h.wait_until(lambda: d.sim(s)["lock"]["state"] == "awaiting_first_imei",
                 what="awaiting_first_imei")
    h.check(True, "R4 enable with no last seen IMEI: awaiting first IMEI")
    acr(erl, "ctf1;rf;3", EVENT, 3, imsi, NO_IMEI)
    h.check(d.sim(s)["lock"]["state"] == "awaiting_first_imei", "R3 still awaiting after no IMEI")
    acr(erl, "ctf1;rf;3", INTERIM, 4, imsi, ps(uei_hex(C)))
    body = d.sim(s)
    h.check(body["lock"] == {"state": "locked", "imei": C, "scope": "imei"} and body["bar"]["state"] == "none",
            "R6 first IMEI (UTF-8 hex in PS-Information) becomes the lock, no bar")
    acr(erl, "ctf1;rf;3", STOP, 5, imsi, NO_IMEI)


def story_disable_and_activation(d, erl):
    """R12 disable over Rf, R13 activation with lock and R6 over Gy."""
    imsi = "234510000002504"
    s = d.new_sim(imsi)
    acr(erl, "ctf1;rf;5", START, 0, imsi, uei_ascii(A[:14] + "01"))
    st, _ = d.order(s, type="enable_imei_lock")
    h.check(st == 202, "enable_imei_lock accepted")
    h.wait_until(lambda: d.sim(s)["lock"]["state"] == "locked", what="s5 locked")
    st, _ = d.order(s, type="disable_imei_lock")
    h.check(st == 202, "disable_imei_lock accepted")
    h.wait_until(lambda: d.sim(s)["lock"]["state"] == "off", what="s5 lock disabled")
    acr(erl, "ctf1;rf;5", INTERIM, 1, imsi, uei_hex(B))
    body = d.sim(s)
    h.check(body["bar"]["state"] == "none" and body["last_seen_imei"] == B and not d.orders(s, "bar"),
            "R12 after disable the SIM moves to device B freely: no bar, last seen B")

    imsi = "234510000007506"
    s = h.random_iccid()
    st, _ = d.api("PUT", f"/v1/sims/{s}", {"imsis": [imsi], "network": "roamnet901",
                                             "status": "inactive"})
    h.check(st == 201, "inactive SIM on roamnet901 created")
    st, _ = d.order(s, type="activate", enable_imei_lock=True)
    h.check(st == 202, "activate with enable_imei_lock accepted (R13: roamnet901 allows it)")
    h.wait_until(lambda: d.sim(s)["status"] == "active", what="s6 activated")
    h.check(d.sim(s)["lock"]["state"] == "awaiting_first_imei",
            "R13 after activation with lock: awaiting the first IMEI")
    ccr(erl, "ctf1;gy;6", INITIAL, 0, imsi, ps(uei_tbcd(C[:14] + "01")))
    h.check(d.sim(s)["lock"] == {"state": "locked", "imei": C, "scope": "imei"},
            "R6 over Gy: the first device seen becomes the lock")


def story_unknown_imsi(d, erl):
    """R15: answered 2001, counted, ignored."""
    before = d.metric("imeilock_sim_unknown_imsis_total") or 0
    acr(erl, "ctf1;rf;99", START, 0, "999990000000001", uei_ascii(A[:14] + "01"))
    ccr(erl, "ctf1;gy;99", INITIAL, 0, "999990000000002", uei_tbcd(B[:14] + "01"))
    h.wait_until(lambda: (d.metric("imeilock_sim_unknown_imsis_total") or 0) >= before + 2,
                 timeout=5, what="imeilock_sim_unknown_imsis_total +2")
    h.check(True, "R15 unknown IMSIs (ACR, CCR) answered 2001 and counted")


def stories(d, erl):
    story_move_and_update_to_last_seen(d, erl)
    story_keep_lock(d, erl)
    story_no_imei(d, erl)
    story_disable_and_activation(d, erl)
    story_unknown_imsi(d, erl)


def main_cluster():
    t_start = time.monotonic()
    with h.erlang_cluster_story("dstories-cluster", EXTRA) as (c, erl):
        for node, (kind, f) in erl.connect_all().items():
            h.check(kind == "up" and f.get("Result-Code") == "2001",
                    f"CER/CEA with {node}: 2001")
        stories(c, erl)
        h.check(ANSWERS["ACA"] + ANSWERS["CCA"] == sum(
            int(c.metric("imeilock_diameter_answers_total", command=cmd, result_code="2001")
                or 0) for cmd in ("ACA", "CCA")),
            f"every ACR/CCR answered 2001 by the node it reached ({ANSWERS['ACA']} ACA, "
            f"{ANSWERS['CCA']} CCA)")
        c.finish()
        h.check(c.stop() == 0, "both nodes stopped cleanly on SIGTERM")
    print(f"all Diameter stories passed on two cluster nodes in {time.monotonic() - t_start:.1f}s")


def main():
    if h.cluster_mode():
        main_cluster()
        return
    t_start = time.monotonic()
    with h.erlang_story("dstories", lambda state_dir: h.diameter_peer_config(state_dir, EXTRA)) \
            as (d, erl):
        port = d.ports["diameter"]

        # CER/CEA from a configured peer.
        kind, f = h.connect_erlang(d, erl)
        h.check(kind == "up" and f.get("Result-Code") == "2001" and f.get("Origin-Host") == OUR_HOST
                and f.get("Origin-Realm") == OUR_REALM,
                f"CER/CEA with the Erlang/OTP diameter peer: 2001 from {OUR_HOST}")

        stories(d, erl)

        # DWR/DWA: the client's Tw (3 s) is below the daemon's (6 s), so it
        # sends the DWRs; any traffic resets the timer, so wait out one idle Tw.
        deadline = time.monotonic() + 3 * h.CLIENT_TW_MS / 1000 + 5
        while True:
            kind, f = h.erlang_fields(erl.cmd("watchdog."))
            if kind == "watchdog" and int(f.get("dwa_recv", 0)) >= 1:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"no DWA: {kind} {f}")
            time.sleep(0.5)
        h.check(f.get("state") == "okay" and int(f["dwr_sent"]) >= 1,
                f"DWR/DWA: the peer's watchdog is okay ({f['dwr_sent']} DWR sent, "
                f"{f['dwa_recv']} DWA received)")
        h.check((d.metric("imeilock_diameter_answers_total", command="DWA", result_code="2001")
                 or 0) >= 1, "the daemon counted its DWA 2001")

        # DPR/DPA from the peer.
        h.check(erl.cmd("disconnect.") == "down", "DPR from the peer: connection down")
        h.wait_until(lambda: (d.metric("imeilock_diameter_answers_total", command="DPA",
                                       result_code="2001") or 0) >= 1,
                     timeout=5, what="DPA 2001 counted")
        h.check(True, "the daemon answered the DPR with DPA 2001")
        h.check(ANSWERS["ACA"] + ANSWERS["CCA"] == int(
            d.metric("imeilock_diameter_answers_total", command="ACA", result_code="2001") or 0)
            + int(d.metric("imeilock_diameter_answers_total", command="CCA",
                           result_code="2001") or 0),
            f"every ACR/CCR answered 2001 ({ANSWERS['ACA']} ACA, {ANSWERS['CCA']} CCA)")

        # DPR from the daemon at stop (SIGTERM): the peer sees it go down.
        kind, f = h.connect_erlang(d, erl)
        h.check(kind == "up" and f.get("Result-Code") == "2001", "second connection: CER/CEA 2001")
        acr(erl, "ctf1;rf;4", EVENT, 0, "234510000000001", uei_ascii(B[:14] + "01"))
        erl.send("{wait_down, 20000}.")
        rc = d.stop()
        h.check(rc == 0, "daemon stopped cleanly on SIGTERM")
        h.check(erl.read(timeout=25) == "down", "the daemon's DPR at stop: the peer went down")
        log = d.log()
        h.check("diameter.stopping connections=1" in log and "diameter.stop_timeout" not in log,
                "the daemon's DPR (REBOOTING) was answered with a DPA before its dpr_timeout")
        print(f"all Diameter stories passed in {time.monotonic() - t_start:.1f}s")


if __name__ == "__main__":
    main()
