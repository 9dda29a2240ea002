#!/usr/bin/env bash
# The real imeilockd daemon vs FreeRADIUS 3.2 under the same RADIUS load
# generator (bench/radius_load), in one run, alternating round by round, on
# loopback. Prints every run, the medians, p50/p99/p99.9 and the ratios.
# A benchmark, not a test: figures depend on the machine and its load (the
# load average is printed with every round).
#
#   bench/radius_vs_freeradius.sh BUILD_DIR [SECONDS=10] [ROUNDS=3] [WINDOW=64]
#
# Rows per round (imeilockd_chg last, followed by an unmeasured pass that
# puts every SIM back on its first IMEI):
#   freeradius        FreeRADIUS 3.2, accounting accepted, no module writing
#   imeilockd         the real daemon (SIM layer, SQLite store, $SIMS SIMs in
#                     its inventory matching the generator's IMSIs), IMEIs
#                     unchanged: the steady state, every answer a real lookup
#   imeilockd_chg     the same daemon, IMEI_CHANGE_PERCENT% (default 10) of the
#                     observations changing the IMEI of a lock-off SIM: each
#                     one a durable SQLite commit before the answer
#   echo              bench/udp_echo_server, a plain Asio UDP echo (one
#                     thread, one socket, no processing): the ceiling, what
#                     this machine moves through Asio with the same generator
#                     (answers not verified: an echo is no RADIUS answer);
#                     ECHO=0 skips it
#   harness           radius_bench_server (the front-end with a sink that acks
#                     at once; no SIM layer), if built; HARNESS=0 skips it
# Then once each, FreeRADIUS and the daemon at 2,000 requests/s, open loop
# (latency at a low rate).
# Before the rounds the daemon's SIMs are primed: one pass of the generator
# over every SIM (first contact: every observation records a new IMEI).
#
# The summary gives each row's ratio to FreeRADIUS and to the echo.
#
# Environment: SIMS (100000), IMEI_CHANGE_PERCENT (10), HARNESS (1), ECHO (1),
# IMEILOCKD (default BUILD_DIR/daemon/imeilockd), IMEILOCKD_WORKERS (2),
# IMEILOCKD_IO_THREADS (1), RADIUS_BENCH_KEEP=1 keeps the temp dir.
set -euo pipefail
build=$(cd "$1" && pwd)
seconds=${2:-10}
rounds=${3:-3}
window=${4:-64}
sims=${SIMS:-100000}
change=${IMEI_CHANGE_PERCENT:-10}
secret=testing123
load="$build/bench/radius_load"
imeilockd=${IMEILOCKD:-$build/daemon/imeilockd}
harness_bin="$build/bench/radius_bench_server"
want_harness=${HARNESS:-1}
[[ -x $harness_bin ]] || want_harness=0
echo_bin="$build/bench/udp_echo_server"
want_echo=${ECHO:-1}
[[ -x $echo_bin ]] || want_echo=0
freeradius=$(command -v freeradius || command -v radiusd)
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
bench_init radius-bench "${RADIUS_BENCH_KEEP:-}"

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- FreeRADIUS: a configuration of its own ---------------------------------
fr_port=$(free_port)
mkdir -p "$work/fr/run" "$work/fr/log"
cat > "$work/fr/radiusd.conf" <<CONF
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = $work/fr/log
raddbdir = $work/fr
radacctdir = $work/fr/acct
name = radiusd
confdir = \${raddbdir}
modconfdir = \${confdir}/mods-config
certdir = \${confdir}/certs
cadir = \${confdir}/certs
run_dir = $work/fr/run
db_dir = $work/fr
libdir = /usr/lib/freeradius
pidfile = \${run_dir}/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 1048576
hostname_lookups = no
log {
  destination = stderr
  colourise = no
  auth = no
}
security {
  allow_core_dumps = no
  max_attributes = 200
  reject_delay = 0
  status_server = no
}
thread pool {
  start_servers = 5
  max_servers = 32
  min_spare_servers = 3
  max_spare_servers = 10
  max_requests_per_server = 0
  auto_limit_acct = no
}
client bench {
  ipaddr = 127.0.0.1
  secret = $secret
}
modules {
  # "ok" is FreeRADIUS's always-module: returns ok, writes nothing.
  always ok {
    rcode = ok
  }
}
server default {
  listen {
    type = acct
    ipaddr = 127.0.0.1
    port = $fr_port
  }
  preacct {
  }
  accounting {
    ok
  }
}
CONF
# From $work: FreeRADIUS 3.2 takes "-l stderr" for a file of that name in its
# working directory (it left one in the checkout).
(cd "$work" && exec "$freeradius" -f -d "$work/fr" -n radiusd -l stderr > "$work/fr.out" 2>&1) &
pids+=($!)


fr_pid=${pids[0]}

# --- the harness: front-end + immediately-acking sink ----------------------------
if [[ $want_harness == 1 ]]; then
  coproc HARNESS_SRV { exec "$harness_bin" --listen 127.0.0.1:0 --secret "$secret" --threads 1 --ack inline; }
  h_pid=$HARNESS_SRV_PID
  pids+=($h_pid)
  read -r -u "${HARNESS_SRV[0]}" _ h_port
fi

# --- the ceiling: a plain Asio UDP echo -------------------------------------
if [[ $want_echo == 1 ]]; then
  # It serves until stdin closes: a FIFO this script holds open (fd 8).
  mkfifo "$work/echo.in"
  exec 8<>"$work/echo.in"
  "$echo_bin" --listen 127.0.0.1:0 <"$work/echo.in" >"$work/echo.out" 2>&1 &
  e_pid=$!
  pids+=($e_pid)
  for _ in $(seq 50); do grep -q PORT "$work/echo.out" 2>/dev/null && break; sleep 0.1; done
  e_port=$(awk '/PORT/ {print $2}' "$work/echo.out")
fi

start_imeilockd "radius:
  listen: ['127.0.0.1:0']
  clients:
    - address: 127.0.0.1/32
      secret: $secret
diameter:
  enabled: false"
echo "imeilockd pid $d_pid radius_port=$d_radius api_port=$d_api; $(import_sims "$sims" "$d_api")"
if ! kill -0 "$fr_pid" 2>/dev/null; then
  echo "FreeRADIUS did not start:"; cat "$work/fr.out"; exit 1
fi

run() { # pid port seconds warmup extra-args... -> "<first line> <RESULT line> cpu_us=.."
  local pid=$1 port=$2 secs=$3 warm=$4 before after out rate
  shift 4
  before=$(cpu_ticks "$pid")
  out=$("$load" --target "127.0.0.1:$port" --secret "$secret" --sims "$sims" --window "$window" \
                --seconds "$secs" --warmup "$warm" --sockets 8 "$@" 2>&1 || true)
  after=$(cpu_ticks "$pid")
  rate=$(echo " $out" | tail -n 1 | field rate)
  # Server CPU per answered request: what a loaded, shared machine distorts least.
  echo "$(echo "$out" | tr '\n' ' ') cpu_us=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v r="${rate:-0}" -v s="$secs" -v w="$warm" \
        'BEGIN{printf "%.1f", (r>0) ? t/hz*1e6/(r*(s+w)) : 0}')"
}

# Prime: one pass over every SIM so the rounds see the steady state (IMEI known).
rss0=$(rss_kb "$d_pid")
prime_secs=$(( sims / 10000 > 10 ? sims / 10000 : 10 ))
line=$(run "$d_pid" "$d_radius" "$prime_secs" 0)
echo "prime (first contact, every observation a new IMEI): $(echo " $line" | field rate) req/s over ${prime_secs}s, sent=$(echo " $line" | field sent), lost=$(echo " $line" | field lost); daemon RSS ${rss0} -> $(rss_kb "$d_pid") kB"
if (( $(echo " $line" | field sent) < sims )); then echo "WARNING: the prime pass did not reach every SIM"; fi

servers=(freeradius)
[[ $want_echo == 1 ]] && servers+=(echo)
servers+=(imeilockd)
[[ $want_harness == 1 ]] && servers+=(harness)
servers+=(imeilockd_chg)
echo "window=$window seconds=$seconds rounds=$rounds sims=$sims imei_change=${change}%; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-14s %10s %8s %8s %9s %6s %11s %8s %s\n' round server req/s p50_us p99_us p99.9_us lost cpu_us/req changes load1
declare -A rates p50s p99s p999s cpus
for r in $(seq 1 "$rounds"); do
  for who in "${servers[@]}"; do
    extra=()
    case $who in
      freeradius) pid=$fr_pid; port=$fr_port ;;
      imeilockd) pid=$d_pid; port=$d_radius ;;
      imeilockd_chg) pid=$d_pid; port=$d_radius; extra=(--imei-change-percent "$change" --seed "$r") ;;
      harness) pid=$h_pid; port=$h_port ;;
      echo) pid=$e_pid; port=$e_port; extra=(--verify 0) ;;
    esac
    kill -0 "$pid" 2>/dev/null || { echo "$who (pid $pid) is gone"; [[ $who == imeilockd* ]] && tail -30 "$work/d/daemon.log"; exit 1; }
    line=$(run "$pid" "$port" "$seconds" 1 "${extra[@]}")
    res=" ${line#*RESULT}"
    rate=$(echo "$res" | field rate); p50=$(echo "$res" | field p50_us); p99=$(echo "$res" | field p99_us)
    p999=$(echo "$res" | field p999_us); lost=$(echo "$res" | field lost); cpu=$(echo " $line" | field cpu_us)
    chg=$(echo " $line" | field imei_changes)
    printf '%-6s %-14s %10s %8s %8s %9s %6s %11s %8s %s\n' "$r" "$who" "$rate" "$p50" "$p99" "$p999" "$lost" "$cpu" "$chg" "$(cut -d' ' -f1 /proc/loadavg)"
    rates[$who]+="$rate "; p50s[$who]+="$p50 "; p99s[$who]+="$p99 "; p999s[$who]+="$p999 "; cpus[$who]+="$cpu "
    if [[ $who == imeilockd_chg ]]; then
      # Restore: a new generator starts with every SIM on its first IMEI, so
      # one unmeasured pass brings the SIMs the changes left on the second
      # IMEI back, and the next round's steady state really is unchanged.
      line=$(run "$d_pid" "$d_radius" "$prime_secs" 0)
    fi
  done
done
# Latency at a low rate (issue 12: p99 under 0.5 ms at 2,000 requests/s on a
# quiet machine), once each against FreeRADIUS and the daemon, open loop.
for low in freeradius imeilockd; do
  if [[ $low == freeradius ]]; then pid=$fr_pid; port=$fr_port; else pid=$d_pid; port=$d_radius; fi
  line=$(run "$pid" "$port" 5 1 --rate 2000)
  res=" ${line#*RESULT}"
  printf '%-6s %-14s %10s %8s %8s %9s %6s %11s %8s %s\n' once "$low@2000/s" "$(echo "$res" | field rate)" "$(echo "$res" | field p50_us)" \
    "$(echo "$res" | field p99_us)" "$(echo "$res" | field p999_us)" "$(echo "$res" | field lost)" "$(echo " $line" | field cpu_us)" 0 "$(cut -d' ' -f1 /proc/loadavg)"
done
if [[ $want_echo == 1 ]]; then print_summary freeradius req echo; else print_summary freeradius req; fi
