#!/usr/bin/env python3
"""Runs the README's "Try it in one minute" walkthrough as written (issue 6).

Every shell block of that section is run verbatim, in order, in a copy of the
repository, inside a private network namespace so the documented default
ports (RADIUS 1813, API 8080, ...) are the daemon's own. The binaries come
from the test build (scripts/run.sh's IMEILOCK_BUILD_DIR/IMEILOCK_SKIP_BUILD),
everything else is the user's path: scripts/run.sh, radclient, imeilockctl.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))
ICCID = "8944100000000000018"
DEVICE_A = "353490012345670"   # 14 digits 35349001234567 + Luhn
DEVICE_B = "358765022222224"


def walkthrough_blocks():
    text = open(os.path.join(SOURCE, "README.md")).read()
    section = text.split("## Try it in one minute", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def main():
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        print("SKIP: needs root and unshare for a private network namespace")
        return 77
    daemon = os.environ["IMEILOCKD"]
    ctl = os.environ["IMEILOCKCTL"]
    build_dir = os.path.dirname(os.path.dirname(daemon))
    blocks = walkthrough_blocks()
    assert len(blocks) >= 4, f"walkthrough has {len(blocks)} shell blocks"
    assert blocks[0].strip().endswith("&"), "the first block starts the daemon in the background"

    work = tempfile.mkdtemp(prefix="imeilockd-walkthrough-")
    try:
        repo = os.path.join(work, "imeilockd")
        shutil.copytree(SOURCE, repo, ignore=shutil.ignore_patterns(
            ".git", "build*", "var", "__pycache__"))
        script = [
            "set -euo pipefail",
            "ip link set lo up",
            f"cd {repo}",
            f"export IMEILOCK_BUILD_DIR={build_dir} IMEILOCK_SKIP_BUILD=1",
            f"export PATH={os.path.dirname(ctl)}:$PATH",
            "trap 'kill %1 2>/dev/null; wait' EXIT",
            "echo '### block 1'",
            blocks[0],
            # What a person does between the two terminals: wait for the daemon.
            "for i in $(seq 1 150); do [ -s var/api-token ] && "
            "curl -sf http://127.0.0.1:8080/readyz >/dev/null && break; sleep 0.2; done",
        ]
        for i, block in enumerate(blocks[1:], start=2):
            script += [f"echo '### block {i}'", block]
        script += [
            "echo '### final state'",
            f"imeilockctl --json sims get {ICCID}",
        ]
        r = subprocess.run(["unshare", "--net", "bash", "-c", "\n".join(script)],
                           capture_output=True, text=True, timeout=240)
        out = r.stdout
        print(out)
        print(r.stderr[-4000:], file=sys.stderr)
        assert r.returncode == 0, f"walkthrough failed with exit code {r.returncode}"

        final = json.loads(out.split("### final state", 1)[1])
        assert final["lock"] == {"state": "locked", "imei": DEVICE_B, "scope": "imei"}, final
        assert final["bar"]["state"] == "none", final
        assert final["last_seen_imei"] == DEVICE_B, final
        # What the walkthrough showed along the way.
        assert DEVICE_A in out.split("### block 4", 1)[0], "block 3 shows the lock on A"
        block4 = out.split("### block 4", 1)[1].split("### block 5", 1)[0]
        assert "bar_pending" in block4, "block 4 shows the pending bar"
        assert "barred" in block4.split("bar_pending", 1)[1], "then the SIM barred"
        assert "unbar" in out.split("### block 5", 1)[1], "the events show the unbar"
        print("walkthrough ran as written")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
