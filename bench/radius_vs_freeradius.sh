#!/usr/bin/env bash
# imeilockd's RADIUS front-end vs FreeRADIUS 3.2 under the same load generator
# (bench/radius_load), alternating, on loopback. Prints both rates, both
# latencies and the ratio. A benchmark, not a test: figures depend on the
# machine and on what else runs on it.
#
#   bench/radius_vs_freeradius.sh BUILD_DIR [SECONDS=10] [ROUNDS=3] [WINDOW=64]
#
# FreeRADIUS runs from a minimal configuration of its own in a temp dir:
# accounting accepted with no module writing anything, its own loopback port,
# foreground (-f), not in debug mode. Our side is radius_bench_server (the
# real radius_server, a sink that acknowledges at once); set
# RADIUS_BENCH_SERVER to compare something else that prints "PORT <n>".
set -euo pipefail
build=$(cd "$1" && pwd)
seconds=${2:-10}
rounds=${3:-3}
window=${4:-64}
threads=${RADIUS_THREADS:-1}
ack=${RADIUS_ACK:-inline}
secret=testing123
load="$build/bench/radius_load"
ours_bin=${RADIUS_BENCH_SERVER:-$build/bench/radius_bench_server}
freeradius=$(command -v freeradius || command -v radiusd)
work=$(mktemp -d /tmp/radius-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
[[ -n ${RADIUS_BENCH_KEEP:-} ]] && trap - EXIT

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
"$freeradius" -f -d "$work/fr" -n radiusd -l stderr > "$work/fr.out" 2>&1 &
pids+=($!)

# --- ours -------------------------------------------------------------------
coproc OURS { exec "$ours_bin" --listen 127.0.0.1:0 --secret "$secret" --threads "$threads" --ack "$ack"; }
pids+=($OURS_PID)
read -r -u "${OURS[0]}" _ ours_port
sleep 1
if ! kill -0 "${pids[0]}" 2>/dev/null; then
  echo "FreeRADIUS did not start:"; cat "$work/fr.out"; exit 1
fi

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # pid port -> RESULT line + cpu_us_per_req (server CPU time / answered requests)
  local before after line
  before=$(cpu_ticks "$1")
  line=$("$load" --target "127.0.0.1:$2" --secret "$secret" --sims 100000 --window "$window" \
                 --seconds "$seconds" --warmup 1 --sockets 8 | tail -n 1)
  after=$(cpu_ticks "$1")
  local rate; rate=$(echo "$line" | field rate)
  # CPU per request is what a loaded, shared machine cannot distort much.
  echo "$line cpu_us=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v r="$rate" -v s="$seconds" -v w=1 \
        'BEGIN{printf "%.1f", (r>0) ? t/hz*1e6/(r*(s+w)) : 0}')"
}
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

echo "window=$window seconds=$seconds rounds=$rounds ours: io_threads=$threads ack=$ack; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-11s %10s %8s %8s %9s %6s %12s\n' round server req/s p50_us p99_us p99.9_us lost cpu_us/req
fr_rates=(); ours_rates=(); fr_p99=(); ours_p99=(); fr_cpu=(); ours_cpu=()
for r in $(seq 1 "$rounds"); do
  for who in freeradius imeilockd; do
    port=$fr_port; pid=${pids[0]}
    [[ $who == imeilockd ]] && { port=$ours_port; pid=$OURS_PID; }
    line=$(run "$pid" "$port")
    rate=$(echo "$line" | field rate); p50=$(echo "$line" | field p50_us)
    p99=$(echo "$line" | field p99_us); p999=$(echo "$line" | field p999_us); lost=$(echo "$line" | field lost)
    cpu=$(echo "$line" | field cpu_us)
    printf '%-6s %-11s %10s %8s %8s %9s %6s %12s\n' "$r" "$who" "$rate" "$p50" "$p99" "$p999" "$lost" "$cpu"
    if [[ $who == freeradius ]]; then fr_rates+=("$rate"); fr_p99+=("$p99"); fr_cpu+=("$cpu")
    else ours_rates+=("$rate"); ours_p99+=("$p99"); ours_cpu+=("$cpu"); fi
  done
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
fr_m=$(median "${fr_rates[@]}"); ours_m=$(median "${ours_rates[@]}")
fr_p=$(median "${fr_p99[@]}"); ours_p=$(median "${ours_p99[@]}")
fr_c=$(median "${fr_cpu[@]}"); ours_c=$(median "${ours_cpu[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", (b>0)?a/b:0}'; }
echo "median freeradius: ${fr_m} req/s, p99 ${fr_p} us, ${fr_c} us CPU/request"
echo "median imeilockd:  ${ours_m} req/s, p99 ${ours_p} us, ${ours_c} us CPU/request"
echo "ratio (imeilockd/freeradius): throughput $(ratio "$ours_m" "$fr_m")x, CPU per request $(ratio "$ours_c" "$fr_c")x"
