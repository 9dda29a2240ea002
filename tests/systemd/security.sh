#!/usr/bin/env bash
# `systemd-analyze security --offline=yes --threshold=N` passes for the unit
# (the overall exposure, 0-10, times 10 must not exceed N), and prints the
# exposure and every setting that still costs something.
#   security.sh UNIT_FILE THRESHOLD
set -euo pipefail
unit=${1:?usage: security.sh UNIT_FILE THRESHOLD}
threshold=${2:?usage: security.sh UNIT_FILE THRESHOLD}
rc=0
out=$(systemd-analyze security --offline=yes --threshold="$threshold" --no-pager "$unit" 2>&1) || rc=$?
# Settings with an exposure cost (✗ lines), and the verdict.
grep -E '^✗' <<<"$out" | sed -E 's/ {2,}/  /g' || true
level=$(grep -E 'Overall exposure level' <<<"$out" || true)
echo "${level:-no exposure level in the output}"
if [[ $rc -ne 0 || -z $level ]]; then
  echo "$out" | tail -n 20
  echo "FAIL: systemd-analyze security --threshold=$threshold exited $rc"
  exit 1
fi
echo "PASS: exposure within --threshold=$threshold"
