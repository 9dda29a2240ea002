#!/usr/bin/env bash
# Interop with a Diameter stack nobody here wrote: Erlang/OTP's diameter
# application as the client (CER, ACRs and CCRs with every IMEI encoding,
# watchdogs both ways, DPR both ways) against the Diameter front-end in
# diameter_harness on a loopback port, captured and decoded by tshark, which
# must find no malformed packet and no warning-level expert item.
#   erlang_interop.sh HARNESS_BINARY TESTS_DIAMETER_SOURCE_DIR
set -euo pipefail
harness=$1
src=$2
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [[ -n "${KEEP:-}" ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# Dictionaries for the 3GPP / RFC 4006 AVPs, compiled with diameterc.
(cd "$work" && diameterc -o . -i . "$src/erlang/imeilock_rf.dia" && erlc -I . imeilock_rf.erl &&
  diameterc -o . -i . "$src/erlang/imeilock_gy.dia" && erlc -I . imeilock_gy.erl &&
  erlc -I . "$src/erlang/imeilock_client.erl") >"$work/compile.log" 2>&1 || { cat "$work/compile.log"; fail "erlang compile"; }

cat >"$work/diameter.yaml" <<YAML
diameter:
  origin_host: imeilockd.test
  origin_realm: localdomain
  listen: ["127.0.0.1:0"]
  watchdog: 6s
  dpr_timeout: 5s
  peers:
    - origin_host: pgw1.example.net
      realm: example.net
      addresses: ["127.0.0.1"]
YAML

"$harness" "$work/diameter.yaml" --record "$work/observations.txt" --metrics "$work/metrics.txt" \
  >"$work/harness.out" 2>"$work/harness.log" &
hpid=$!
pids+=("$hpid")
for _ in $(seq 50); do grep -q listening "$work/harness.out" 2>/dev/null && break; sleep 0.1; done
port=$(awk '/listening/ {print $3; exit}' "$work/harness.out")
[[ -n "$port" ]] || { cat "$work/harness.log"; fail "harness did not start"; }
echo "harness on 127.0.0.1:$port"

dumpcap -q -i lo -f "tcp port $port" -w "$work/capture.pcapng" >"$work/dumpcap.log" 2>&1 &
dpid=$!
pids+=("$dpid")
sleep 1.5

(cd "$work" && erl -noshell -pa "$work" -eval "imeilock_client:main([\"$port\", \"$work/phase\"])") \
  >"$work/erlang.out" 2>&1 &
epid=$!
pids+=("$epid")
for _ in $(seq 600); do [[ -f "$work/phase" ]] && break; kill -0 "$epid" 2>/dev/null || break; sleep 0.1; done
[[ -f "$work/phase" ]] || { cat "$work/erlang.out"; fail "erlang client did not reach the stop phase"; }
# The daemon's stop: DPR (REBOOTING) to the peer, DPA back, exit.
kill -TERM "$hpid"
for _ in $(seq 100); do kill -0 "$hpid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$hpid" 2>/dev/null && fail "harness did not stop within 10 s"
wait "$hpid" || fail "harness exit status $?"
erc=0
for _ in $(seq 100); do kill -0 "$epid" 2>/dev/null || break; sleep 0.1; done
wait "$epid" || erc=$?
cat "$work/erlang.out"
[[ $erc -eq 0 ]] || fail "erlang client reported failures"
sleep 0.5
kill -INT "$dpid"; wait "$dpid" || true

echo "-- observations"; cat "$work/observations.txt"
expect() { # imsi, expected imei prefix (14 digits), svn
  local line
  line=$(grep "imsi=$1 " "$work/observations.txt" | head -1) || fail "no observation for $1"
  [[ "$line" == *"msisdn=447700900123 "* ]] || fail "msisdn for $1: $line"
  [[ "$line" == *"peer=pgw1.example.net "* ]] || fail "peer for $1: $line"
  if [[ "$2" == "-" ]]; then
    [[ "$line" == *"status=absent"* ]] || fail "expected no IMEI for $1: $line"
  else
    [[ "$line" == *"imei=$2"*" svn=$3 status=ok"* ]] || fail "IMEI for $1: $line"
  fi
}
expect 234150000000001 35349001234567 89  # UEI ASCII IMEISV
expect 234150000000002 35349001234567 -   # UEI TS 32.299 hex with F filler
expect 234150000000003 35349001234567 89  # UEI TBCD
expect 234150000000004 35349001234567 89  # Terminal-Information
expect 234150000000005 35349001234567 89  # 3GPP-IMEISV
expect 234150000000006 35349001234567 -   # nested in Service-Information/PS-Information
expect 234150000000007 - -
expect 234150000000011 35349001234567 89
expect 234150000000012 35349001234567 89
expect 234150000000013 35349001234567 89
expect 234150000000014 35349001234567 89
expect 234150000000099 35349001234567 89

echo "-- metrics"
grep -E '^imeilock_diameter_(requests|answers)_total' "$work/metrics.txt"
grep -q 'imeilock_diameter_requests_total{command="DWR"} [1-9]' "$work/metrics.txt" || fail "no DWR from the peer"
grep -q 'imeilock_diameter_requests_total{command="DPR"} [1-9]' "$work/metrics.txt" || fail "no DPR from the peer"

echo "-- tshark"
tsh=(tshark -r "$work/capture.pcapng" -d "tcp.port==$port,diameter")
"${tsh[@]}" -Y diameter -T fields -e tcp.srcport -e diameter.cmd.code -e diameter.flags.request \
  -e diameter.Result-Code >"$work/decoded.txt" 2>"$work/tshark.err" || true
echo "answers and requests sent by the harness, as tshark decoded them:"
for spec in "257 0 CEA" "271 0 ACA" "272 0 CCA" "280 0 DWA" "280 1 DWR" "282 0 DPA" "282 1 DPR"; do
  set -- $spec
  n=$(awk -v p="$port" -v c="$1" -v r="$2" '{split($2,cs,","); split($3,rs,","); for (i in cs) if ($1==p && cs[i]==c && rs[i]==r) n++} END {print n+0}' "$work/decoded.txt")
  echo "  $3: $n"
  [[ $n -ge 1 ]] || fail "tshark saw no $3 from the harness"
done
bad=$("${tsh[@]}" -Y '_ws.malformed || (diameter && _ws.expert.severity >= "Warning")' -T fields -e frame.number \
      -e _ws.expert.message 2>/dev/null | head -20)
[[ -z "$bad" ]] || { echo "$bad"; fail "tshark reports malformed packets or warnings"; }
"${tsh[@]}" -z expert -q 2>/dev/null | grep -v '^$' || true
echo "tshark: no malformed packets, no warnings"
echo "PASS"
