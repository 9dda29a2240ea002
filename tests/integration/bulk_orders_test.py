#!/usr/bin/env python3
"""Bulk orders against the real daemon (issue 13): POST /v1/orders:bulk.

  - a job by list over N SIMs completes with the right counts; a SIM the rules
    refuse (already barred) and an unknown ICCID are refused with their reason;
  - a CSV job through imeilockctl (bulk ... --file --watch, job show);
  - a job by filter that fills its open-order bound (1000) waits; cancelling it
    keeps the orders it placed and places no more;
  - kill -9 in the middle of a job, restart: the job resumes and completes,
    and no SIM has two orders from it.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402

EXTRA = """
orders:
  networks:
    multinet:
      rate_per_second: 100000
      burst: 100000
      max_in_flight: 100000
      max_queue: 100000
      lead_times:
        bar: 300ms
        unbar: 300ms
    slow:
      rate_per_second: 100000
      burst: 100000
      max_in_flight: 100000
      max_queue: 100000
      lead_times:
        bar: 120s
"""


def wait_job(d, job_id, timeout=120.0):
    def done():
        st, j = d.api("GET", f"/v1/jobs/{job_id}")
        assert st == 200, (st, j)
        return j if j["state"] != "running" else None
    return h.wait_until(done, timeout=timeout, interval=0.2, what=f"job {job_id} to end")


def bar_orders(d, iccid):
    st, body = d.api("GET", f"/v1/sims/{iccid}/orders")
    assert st == 200, (st, body)
    return [o for o in body["items"] if o["type"] == "bar"]


def main():
    d = h.Daemon(extra_config=EXTRA, cleanup=True)
    with d:
        n = 300
        h.import_bench_sims(d.ports["api"], h.EXAMPLE_TOKEN, n)
        sims = [h.bench_iccid(i) for i in range(n)]
        st, body = d.api("POST", f"/v1/sims/{sims[0]}/orders", {"type": "bar"})
        assert st == 202, (st, body)
        h.wait_until(lambda: d.api("GET", f"/v1/sims/{sims[0]}")[1]["bar"]["state"] == "barred",
                     what="SIM 0 barred")

        # -- a job by list -----------------------------------------------------
        unknown = h.iccid(999_999)
        st, job = d.api("POST", "/v1/orders:bulk", {"type": "bar", "iccids": sims + [unknown]})
        h.check(st == 202 and job["total"] == n + 1 and job["state"] == "running",
                f"a bulk bar over {n} SIMs and an unknown ICCID is accepted as a job (202)")
        h.check(any("lead time" in w for w in job.get("warnings", [])),
                f"the bulk bar's answer carries the bar lead time caveat ({job.get('warnings')})")
        job = wait_job(d, job["id"])
        h.check(job["state"] == "completed" and job["processed"] == n + 1 and
                job["placed"] == n - 1 and job["refused"] == 2,
                f"the job completes: {n - 1} placed, 2 refused ({job['placed']}, {job['refused']})")
        why = {r["iccid"]: r["reason"] for r in job["refusals"]}
        h.check("barred" in why.get(sims[0], "") and "no SIM" in why.get(unknown, ""),
                f"each refused SIM has its reason: {why}")
        h.wait_until(lambda: d.api("GET", f"/v1/jobs/{job['id']}")[1]["orders"]["completed"]
                     == n - 1, what="the job's orders completed")
        h.check(all(len(bar_orders(d, s)) == 1 for s in sims),
                "every SIM has exactly one bar order")
        st, err = d.api("POST", "/v1/orders:bulk", {"type": "bar", "iccids": ["123"]})
        h.check(st == 422 and "iccids[0]" in err["error"]["message"],
                "a malformed ICCID refuses the whole request, naming it")
        st, err = d.api("POST", "/v1/orders:bulk", {"type": "bar"})
        h.check(st == 422, "a bulk order without iccids or filter is refused")

        # -- CSV through imeilockctl ---------------------------------------------
        csv = "iccid\n" + "\n".join(sims[:50]) + "\n"
        r = h.ctl(d, "bulk", "unbar", "--file", "-", "--watch", stdin=csv)
        h.check(r.returncode == 0 and "placed 50" in r.stdout,
                f"imeilockctl bulk unbar --file - --watch: 50 placed, exit 0 "
                f"(rc {r.returncode}: {r.stdout[-300:]} {r.stderr[-300:]})")
        st, jobs = d.api("GET", "/v1/jobs?limit=1")
        r = h.ctl(d, "job", "show", str(jobs["items"][0]["id"]))
        h.check(r.returncode == 0 and "completed" in r.stdout, "imeilockctl job show")

        # -- a bulk enable by device model (R16), through imeilockctl -------------
        r = h.ctl(d, "bulk", "enable", "--iccid", sims[100], "--iccid", sims[101],
                "--lock-scope", "device_model", "--watch")
        h.check(r.returncode == 0 and "placed 2" in r.stdout,
                f"imeilockctl bulk enable --lock-scope device_model: 2 placed "
                f"(rc {r.returncode}: {r.stdout[-300:]} {r.stderr[-300:]})")
        h.check("before testing the SIM in another device" in r.stderr,
                f"imeilockctl prints the bulk enable's caveat as a warning ({r.stderr[-300:]})")
        st, jobs = d.api("GET", "/v1/jobs?limit=1")
        h.check(jobs["items"][0]["lock_scope"] == "device_model", "the job shows its lock scope")
        h.wait_until(lambda: all(d.api("GET", f"/v1/sims/{s}")[1]["lock"]["scope"]
                                 == "device_model" for s in sims[100:102]),
                     what="both SIMs' locks are by device model")

        # -- pacing and cancel ---------------------------------------------------
        m = 1500
        lines = ["iccid,imsis,msisdn,network,status"]
        lines += [f"{h.bench_iccid(10_000 + i)},{h.bench_imsi(10_000 + i)},,slow,active"
                  for i in range(m)]
        st, res = d.api("POST", "/v1/sims:import", "\n".join(lines) + "\n",
                        content_type="text/csv", timeout=120)
        assert st == 200 and res["rejected"] == 0, (st, res)
        st, job = d.api("POST", "/v1/orders:bulk", {"type": "bar", "filter": {"network": "slow"}})
        assert st == 202, (st, job)
        h.check(job["total"] == m, f"a job by filter selects the {m} SIMs of the network")
        h.wait_until(lambda: d.api("GET", f"/v1/jobs/{job['id']}")[1]["placed"] >= 1000,
                     timeout=60, what="1000 placed")
        time.sleep(1.0)
        st, now = d.api("GET", f"/v1/jobs/{job['id']}")
        h.check(now["placed"] == 1000 and now["orders"]["open"] == 1000,
                f"the job waits with 1000 of its orders open (placed {now['placed']})")
        st, cancelled = d.api("POST", f"/v1/jobs/{job['id']}:cancel")
        h.check(st == 200 and cancelled["state"] == "cancelled", "POST /v1/jobs/{id}:cancel")
        time.sleep(1.0)
        st, after = d.api("GET", f"/v1/jobs/{job['id']}")
        st_list, running = d.api("GET", "/v1/jobs?state=running")
        h.check(after["state"] == "cancelled" and after["placed"] == 1000 and
                after["orders"]["open"] == 1000 and running["items"] == [],
                "cancelled: the 1000 placed orders stay, nothing more is placed")
        st, again = d.api("DELETE", f"/v1/jobs/{job['id']}")
        h.check(st == 409, "cancelling a finished job is a conflict (409)")
        st, _ = d.api("GET", "/v1/jobs/424242")
        h.check(st == 404, "an unknown job is 404")

        # -- kill -9 in the middle of a job --------------------------------------
        k = 3000
        lines = ["iccid,imsis,msisdn,network,status"]
        lines += [f"{h.bench_iccid(20_000 + i)},{h.bench_imsi(20_000 + i)},,multinet,active"
                  for i in range(k)]
        st, res = d.api("POST", "/v1/sims:import", "\n".join(lines) + "\n",
                        content_type="text/csv", timeout=120)
        assert st == 200 and res["rejected"] == 0, (st, res)
        targets = [h.bench_iccid(20_000 + i) for i in range(k)]
        st, job = d.api("POST", "/v1/orders:bulk", {"type": "enable_imei_lock", "iccids": targets})
        assert st == 202, (st, job)
        h.wait_until(lambda: d.api("GET", f"/v1/jobs/{job['id']}")[1]["processed"] >= 300,
                     timeout=60, interval=0.02, what="the job under way")
        d.kill9()
        d.start()
        st, resumed = d.api("GET", f"/v1/jobs/{job['id']}")
        h.check(st == 200 and resumed["state"] == "running" and resumed["processed"] < k,
                f"after kill -9 the job is still running at {resumed['processed']}/{k}")
        done = wait_job(d, job["id"], timeout=180)
        h.check(done["state"] == "completed" and done["placed"] == k and done["refused"] == 0,
                f"the restarted daemon resumes the job to the end: {done['placed']} placed, "
                f"{done['refused']} refused")
        twice = [s for s in targets
                 if len([o for o in d.api("GET", f"/v1/sims/{s}/orders")[1]["items"]
                         if o["type"] == "enable_imei_lock"]) != 1]
        h.check(twice == [], f"no SIM has a second order from the job ({len(twice)} do)")
        h.check("jobs.resumed" in d.log(), "the daemon logged the resumed job")


if __name__ == "__main__":
    main()
