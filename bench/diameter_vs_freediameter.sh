#!/usr/bin/env bash
# The real imeilockd daemon vs freeDiameter 1.2 under the same Diameter load
# generator (bench/diameter_load.cpp), in one run, alternating round by round,
# on loopback. freeDiameter answers ACR through a small extension
# (bench/diameter_fd_acr.c, built here in a temp dir against
# libfreediameter-dev). Prints every run, the medians, p50/p99/p99.9 and the
# ratios. freeDiameter binds every interface whatever it is told
# (TOOLCHAIN.md), so it gets its own port and lives only for the run.
#
#   bench/diameter_vs_freediameter.sh BUILD_DIR [SECONDS=10] [CONNECTIONS="1 4"] [WINDOW=64] [ROUNDS=3]
#
# CONNECTIONS is a list: each round runs every row at each count in turn (the
# rows are named ROW@COUNT) and the summary compares each count's rows with
# freeDiameter at the same count.
#
# Rows per round (imeilockd_chg last, then an unmeasured pass putting every SIM
# back on its first IMEI; ACR only, the same bytes for all: identity AVPs without the
# M bit, see diameter_load --compat):
#   freediameter      freeDiameter 1.2.1 + the ACR extension
#   imeilockd         the real daemon (SIM layer, SQLite store, $SIMS SIMs in
#                     its inventory matching the generator's IMSIs), IMEIs
#                     unchanged: the steady state, every answer a real lookup
#   imeilockd_chg     the same, IMEI_CHANGE_PERCENT% (default 10) of the ACRs
#                     changing the IMEI of a lock-off SIM (durable commits)
#   harness           diameter_bench_server (front-end + acking sink, no SIM
#                     layer), if built; HARNESS=0 skips it
# Then once each against the daemon: a 70/30 ACR/CCR mix, and 2000 ACR/s
# (latency at a low rate). Before the rounds the daemon's SIMs are primed
# with one pass over every SIM (first contact).
#
# Environment: SIMS (100000), IMEI_CHANGE_PERCENT (10), HARNESS (1),
# IMEILOCKD (default BUILD_DIR/daemon/imeilockd), IMEILOCKD_WORKERS (2),
# IMEILOCKD_IO_THREADS (1), DIAMETER_BENCH_KEEP=1 keeps the temp dir.
set -euo pipefail
build=$(cd "$1" && pwd)
secs=${2:-10}
conns_list=${3:-1 4}
conns=${conns_list%% *} # the extra runs (ACR/CCR mix, 2000 ACR/s) use the first count
window=${4:-64}
rounds=${5:-3}
sims=${SIMS:-100000}
change=${IMEI_CHANGE_PERCENT:-10}
here=$(cd "$(dirname "$0")" && pwd)
load="$build/bench/diameter_load"
imeilockd=${IMEILOCKD:-$build/daemon/imeilockd}
harness_bin="$build/bench/diameter_bench_server"
want_harness=${HARNESS:-1}
[[ -x $harness_bin ]] || want_harness=0
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
bench_init diameter-bench "${DIAMETER_BENCH_KEEP:-}"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# -- freeDiameter --------------------------------------------------------------
gcc -O2 -shared -fPIC -o "$work/fd_acr.fdx" "$here/diameter_fd_acr.c" -lfdcore -lfdproto
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" -days 1 \
  -subj "/CN=fd.bench.localdomain" >/dev/null 2>&1
fd_port=$(free_port)
cat >"$work/fd.conf" <<CONF
Identity = "fd.bench.localdomain";
Realm = "localdomain";
Port = $fd_port;
SecPort = $((fd_port + 1));
ListenOn = "127.0.0.1";
No_SCTP;
No_IPv6;
NoRelay;
TLS_Cred = "$work/cert.pem", "$work/key.pem";
TLS_CA = "$work/cert.pem";
LoadExtension = "$work/fd_acr.fdx";
CONF
freeDiameterd -c "$work/fd.conf" -q >"$work/fd.log" 2>&1 &
fd_pid=$!
pids+=($fd_pid)
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/$fd_port) 2>/dev/null && break
  sleep 0.1
done

if [[ $want_harness == 1 ]]; then
# -- the harness: imeilockd's front-end with an immediately-acking sink -----------
cat >"$work/diameter.yaml" <<YAML
diameter:
  origin_host: imeilockd.bench
  origin_realm: localdomain
  listen: ["127.0.0.1:0"]
  peers:
    - origin_host: pgw1.example.net
YAML
for c in $(seq 1 63); do echo "    - origin_host: c$c.pgw1.example.net" >>"$work/diameter.yaml"; done
"$harness_bin" "$work/diameter.yaml" >"$work/ours.out" 2>"$work/ours.log" &
h_pid=$!
pids+=($h_pid)
for _ in $(seq 50); do grep -q listening "$work/ours.out" 2>/dev/null && break; sleep 0.1; done
h_port=$(awk '/listening/ {print $3; exit}' "$work/ours.out")

fi
peers="    - origin_host: pgw1.example.net"
for c in $(seq 1 15); do peers+=$'\n'"    - origin_host: c$c.pgw1.example.net"; done
start_imeilockd "diameter:
  origin_host: imeilockd.bench
  origin_realm: localdomain
  listen: ['127.0.0.1:0']
  peers:
$peers
radius:
  enabled: false"
echo "imeilockd pid $d_pid diameter_port=$d_diameter api_port=$d_api; $(import_sims "$sims" "$d_api")"
kill -0 "$fd_pid" 2>/dev/null || { echo "freeDiameter did not start:"; cat "$work/fd.log"; exit 1; }

run() { # pid port seconds extra-args... -> the generator's output on one line + cpu_us=..
  local pid=$1 port=$2 s=$3 before after out rate
  shift 3
  before=$(cpu_ticks "$pid")
  out=$("$load" --port "$port" --connections "$conns" --window "$window" --duration "$s" --warmup 1 \
          --sims "$sims" --distinct-peers 1 "$@" 2>&1 || true)
  after=$(cpu_ticks "$pid")
  rate=$(echo " $out" | grep '^result\| result' | field rate)
  echo "$(echo "$out" | tr '\n' ' ') cpu_us=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v r="${rate:-0}" -v s="$s" \
        'BEGIN{printf "%.1f", (r>0) ? t/hz*1e6/(r*(s+1)) : 0}')"
}

rss0=$(rss_kb "$d_pid")
prime_secs=$(( sims / 10000 > 10 ? sims / 10000 : 10 ))
line=$(run "$d_pid" "$d_diameter" "$prime_secs" --compat 1 --warmup 0)
echo "prime (first contact, every ACR a new IMEI): $(echo " ${line#*result}" | field rate) ACR/s over ${prime_secs}s, sent=$(echo " $line" | field sent), errors=$(echo " ${line#*result}" | field errors); daemon RSS ${rss0} -> $(rss_kb "$d_pid") kB"
(( $(echo " $line" | field sent) >= sims )) || echo "WARNING: the prime pass did not reach every SIM"

servers=(freediameter imeilockd)
[[ $want_harness == 1 ]] && servers+=(harness)
servers+=(imeilockd_chg)
echo "connections=$conns_list window=$window seconds=$secs rounds=$rounds sims=$sims imei_change=${change}%; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-16s %10s %8s %8s %9s %7s %11s %8s %s\n' round server ACR/s p50_us p99_us p99.9_us errors cpu_us/ACR changes load1
declare -A rates p50s p99s p999s cpus
for r in $(seq 1 "$rounds"); do
  for conns in $conns_list; do
  for who in "${servers[@]}"; do
    extra=(--compat 1)
    case $who in
      # freeDiameter takes one connection per Origin-Host and may still hold
      # the previous run's (it closed the new one in a run): a new name per run.
      freediameter) pid=$fd_pid; port=$fd_port; extra+=(--origin-host "r$r.n$conns.pgw1.example.net") ;;
      imeilockd) pid=$d_pid; port=$d_diameter ;;
      imeilockd_chg) pid=$d_pid; port=$d_diameter; extra+=(--imei-change-percent "$change" --seed "$r") ;;
      harness) pid=$h_pid; port=$h_port ;;
    esac
    row="$who@$conns"
    kill -0 "$pid" 2>/dev/null || { echo "$who (pid $pid) is gone"; [[ $who == imeilockd* ]] && tail -30 "$work/d/daemon.log"; exit 1; }
    line=$(run "$pid" "$port" "$secs" "${extra[@]}")
    res=" ${line#*result}"
    rate=$(echo "$res" | field rate); p50=$(echo "$res" | field p50_us); p99=$(echo "$res" | field p99_us)
    p999=$(echo "$res" | field p999_us); errs=$(echo "$res" | field errors); cpu=$(echo " $line" | field cpu_us)
    chg=$(echo " $line" | field imei_changes)
    [[ $line == *"server closed"* || $line == *"answers missing"* || $line == *"first error"* ]] && echo "  ($row: $(echo "$line" | grep -o 'server closed a connection\|[0-9]* answers missing at the end\|first error answer: Result-Code [0-9]*' | head -1))"
    printf '%-6s %-16s %10s %8s %8s %9s %7s %11s %8s %s\n' "$r" "$row" "$rate" "$p50" "$p99" "$p999" "$errs" "$cpu" "$chg" "$(cut -d' ' -f1 /proc/loadavg)"
    # A failed run (no result line) counts in no median; its ratio shows as "-".
    if [[ -n $rate ]]; then
      rates[$row]+="$rate "; p50s[$row]+="$p50 "; p99s[$row]+="$p99 "; p999s[$row]+="$p999 "; cpus[$row]+="$cpu "
    else
      rates[$row]+="- "
    fi
    if [[ $who == imeilockd_chg ]]; then
      # Restore: a new generator starts with every SIM on its first IMEI, so
      # one unmeasured pass brings the SIMs the changes left on the second
      # IMEI back, and the next round's steady state really is unchanged.
      line=$(run "$d_pid" "$d_diameter" "$prime_secs" --compat 1 --warmup 0)
    fi
  done
  done
done
conns=${conns_list%% *}
for extra_run in "imeilockd_mix30:--ccr-percent 30" "imeilockd_2000/s:--rate 2000"; do
  name=${extra_run%%:*}
  line=$(run "$d_pid" "$d_diameter" 5 --compat 1 ${extra_run#*:})
  res=" ${line#*result}"
  printf '%-6s %-16s %10s %8s %8s %9s %7s %11s %8s %s\n' once "$name@$conns" "$(echo "$res" | field rate)" "$(echo "$res" | field p50_us)" \
    "$(echo "$res" | field p99_us)" "$(echo "$res" | field p999_us)" "$(echo "$res" | field errors)" "$(echo " $line" | field cpu_us)" 0 "$(cut -d' ' -f1 /proc/loadavg)"
done
# One summary per connection count, each against freeDiameter at that count.
all_servers=("${servers[@]}")
for conns in $conns_list; do
  servers=()
  for who in "${all_servers[@]}"; do servers+=("$who@$conns"); done
  echo
  echo "== $conns connection(s)"
  print_summary "freediameter@$conns" ACR
done
