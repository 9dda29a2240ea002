#!/usr/bin/env bash
# `systemd-analyze verify` must report nothing about imeilockd.service. It
# exits 0 even on parse errors, so the output is what is checked: any line
# fails the test, except lines about other unit files of this machine that
# verify loads as dependencies (they are shown, not held against us).
#   verify_unit.sh UNIT_FILE
set -euo pipefail
unit=${1:?usage: verify_unit.sh UNIT_FILE}
out=$(systemd-analyze verify --man=no "$unit" 2>&1) || { echo "$out"; echo "FAIL: systemd-analyze verify exited $?"; exit 1; }
ours=() foreign=()
while IFS= read -r line; do
  [[ -z $line ]] && continue
  # "/lib/systemd/system/other.service:23: ..." about a unit that is not ours.
  if [[ $line =~ ^(/[^:]+\.(service|socket|target|timer|mount|path|slice|scope)):[0-9]+: ]] &&
     [[ ${BASH_REMATCH[1]} != "$unit" && $(basename "${BASH_REMATCH[1]}") != imeilockd.* ]]; then
    foreign+=("$line")
  else
    ours+=("$line")
  fi
done <<<"$out"
for line in "${foreign[@]}"; do echo "note (not our unit): $line"; done
if ((${#ours[@]})); then
  printf '%s\n' "${ours[@]}"
  echo "FAIL: systemd-analyze verify reported ${#ours[@]} line(s) about $unit"
  exit 1
fi
echo "PASS: systemd-analyze verify --man=no reports nothing about $(basename "$unit")"
