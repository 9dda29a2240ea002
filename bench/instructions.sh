#!/usr/bin/env bash
# Instructions per request (valgrind --tool=callgrind, user space only): the
# figure this shared, noisy machine does not distort, for the RADIUS and
# Diameter front-ends. A benchmark, not a test.
#
#   bench/instructions.sh BUILD_DIR [REQUESTS=20000] [WARMUP=2000] [ROWS="radius diameter"]
#
# Each row starts a server under callgrind with instrumentation off (fast
# start-up), switches it on (callgrind_control), sends WARMUP requests with
# the project's generator, zeroes the counters, sends REQUESTS requests,
# dumps, and prints Ir (instructions executed, all threads of the server)
# per request and the 10 functions with the most Ir of their own (exclusive),
# per request. The generator runs closed loop with a window of 64 (RADIUS: 8
# source sockets), IMEIs unchanged, every request a distinct packet.
#
# Rows:
#   echo            bench/udp_echo_server: the floor a UDP server costs in
#                   user space (syscalls are kernel time, which callgrind
#                   does not count)
#   radius          bench/radius_bench_server: the RADIUS front-end, sink acking inline
#   diameter        bench/diameter_bench_server: the Diameter front-end, sink acking inline
#   radius_daemon   the real imeilockd (SIM layer, SQLite store) with $SIMS
#                   SIMs, primed by one pass over every SIM (first contact)
#                   before the warm-up: every measured request is a SIM lookup
#                   with the IMEI unchanged
#   radius_daemon_chg the same, measured after a pass over 2 x $SIMS requests
#                   of which 10 % change an IMEI (durable commits, SIM
#                   actors spawned) and a pass putting every SIM back on its
#                   first IMEI: what bench/radius_vs_freeradius.sh's rounds
#                   after the first meet (should equal radius_daemon)
#   diameter_daemon the same over Diameter (ACR)
#
# Environment: SIMS (5000, daemon rows), IMEILOCKD (BUILD_DIR/daemon/imeilockd),
# INSTR_KEEP=1 keeps the temp dir with the callgrind files
# (callgrind_annotate FILE shows the whole profile).
set -euo pipefail
build=$(cd "$1" && pwd)
requests=${2:-20000}
warmup=${3:-2000}
rows=${4:-radius diameter}
sims=${SIMS:-5000}
secret=testing123
here=$(cd "$(dirname "$0")" && pwd)
real_imeilockd=${IMEILOCKD:-$build/daemon/imeilockd}
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
bench_init instructions "${INSTR_KEEP:-}"
cg_opts=(--tool=callgrind --instr-atstart=no --dump-instr=no)

# Waits until callgrind answers for `pid` (vgdb needs a moment after start-up).
cg_ready() {
  for _ in $(seq 100); do
    callgrind_control -s "$1" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "callgrind_control cannot reach pid $1" >&2
  return 1
}
cg() { callgrind_control "$@" >/dev/null 2>&1; }

# radius_load / diameter_load for a fixed number of requests.
radius_gen() { # port count [extra]
  local port=$1 n=$2
  shift 2
  "$build/bench/radius_load" --target "127.0.0.1:$port" --secret "$secret" --sims "$sims" --window 64 \
    --sockets 8 --requests "$n" --timeout 60 "$@" | tail -n 1
}
diameter_gen() { # port count [extra]
  local port=$1 n=$2
  shift 2
  "$build/bench/diameter_load" --port "$port" --connections 1 --window 64 --sims "$sims" --compat 1 \
    --requests "$n" "$@" | tail -n 1
}

# Measures one server already started under callgrind: warm-up, zero,
# REQUESTS, dump; prints the row and its top 10.
measure() { # row pid gen port [gen-extra...]
  local row=$1 pid=$2 gen=$3 port=$4 out line total
  shift 4
  cg_ready "$pid"
  cg -i on "$pid"
  line=$($gen "$port" "$warmup" "$@")
  cg -z "$pid"
  line=$($gen "$port" "$requests" "$@")
  out="$work/callgrind.$row"
  cg --dump="$row" "$pid"
  # The dump is written next to the --callgrind-out-file with a suffix.
  local f
  f=$(ls -t "$work"/cg."$pid"* 2>/dev/null | head -n 1)
  [[ -n $f ]] || { echo "$row: no callgrind dump" >&2; return 1; }
  mv "$f" "$out"
  total=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p; s/^totals: *\([0-9]*\).*/\1/p' "$out" | head -n 1)
  printf '%-16s %12s Ir/request   (%s requests after %s warm-up; Ir %s; generator: %s)\n' "$row" \
    "$(awk -v t="$total" -v n="$requests" 'BEGIN{printf "%.0f", t/n}')" "$requests" "$warmup" "$total" "$line"
  # "Ir (pct%)  file:function [object]" -> Ir per request, the function, the object's name.
  callgrind_annotate --inclusive=no --threshold=100 "$out" 2>/dev/null |
    awk -v n="$requests" '/^ *[0-9,]+ +\( *[0-9.]+%\) +/ && !/PROGRAM TOTALS/ && c < 10 {
        ir = $1; gsub(",", "", ir)
        line = $0; sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +/, "", line)
        obj = ""; if (match(line, / \[[^]]*\]$/)) { obj = substr(line, RSTART + 2, RLENGTH - 3); line = substr(line, 1, RSTART - 1) }
        sub(/^[^:]*:/, "", line); n_obj = split(obj, parts, "/")
        printf "    %7.0f  %s  [%s]\n", ir / n, substr(line, 1, 110), parts[n_obj]; c++ }'
  echo
}

# The bench servers serve until stdin closes: theirs is a FIFO this script
# holds open (fd 7), so they end with it.
mkfifo "$work/stdin"
exec 7<>"$work/stdin"
start_cg() { # out-name cmd... (stdout of the command in $work/<out-name>.out)
  local name=$1
  shift
  valgrind "${cg_opts[@]}" --callgrind-out-file="$work/cg.%p" "$@" <"$work/stdin" >"$work/$name.out" \
    2>"$work/$name.err" &
  srv_pid=$!
  pids+=($srv_pid)
}
wait_line() { # file pattern
  for _ in $(seq 600); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "no '$2' in $1:" >&2
  cat "$1" >&2
  return 1
}

echo "instructions per request: $requests requests after $warmup warm-up; load $(cut -d' ' -f1-3 /proc/loadavg)"
for row in $rows; do
  case $row in
    echo)
      start_cg echo "$build/bench/udp_echo_server" --listen 127.0.0.1:0
      wait_line "$work/echo.out" PORT
      measure echo "$srv_pid" radius_gen "$(awk '/PORT/ {print $2}' "$work/echo.out")" --verify 0
      ;;
    radius)
      start_cg radius "$build/bench/radius_bench_server" --listen 127.0.0.1:0 --secret "$secret" --threads 1 \
        --ack inline
      wait_line "$work/radius.out" PORT
      measure radius "$srv_pid" radius_gen "$(awk '/PORT/ {print $2}' "$work/radius.out")"
      ;;
    diameter)
      cat >"$work/diameter.yaml" <<YAML
diameter:
  origin_host: imeilockd.bench
  origin_realm: localdomain
  listen: ["127.0.0.1:0"]
  peers:
    - origin_host: pgw1.example.net
YAML
      start_cg diameter "$build/bench/diameter_bench_server" "$work/diameter.yaml"
      wait_line "$work/diameter.out" listening
      measure diameter "$srv_pid" diameter_gen "$(awk '/listening/ {print $3; exit}' "$work/diameter.out")"
      ;;
    radius_daemon | radius_daemon_chg | diameter_daemon)
      # The daemon under callgrind through a wrapper (lib.sh runs "$imeilockd").
      printf '#!/bin/sh\nexec valgrind %s --callgrind-out-file=%s/cg.%%p %s "$@"\n' "${cg_opts[*]}" "$work" \
        "$real_imeilockd" >"$work/imeilockd-cg"
      chmod +x "$work/imeilockd-cg"
      imeilockd=$work/imeilockd-cg
      IMEILOCKD_READY_SECONDS=120 start_imeilockd "radius:
  listen: ['127.0.0.1:0']
  clients:
    - address: 127.0.0.1/32
      secret: $secret
diameter:
  origin_host: imeilockd.bench
  origin_realm: localdomain
  listen: ['127.0.0.1:0']
  peers:
    - origin_host: pgw1.example.net"
      echo "imeilockd under callgrind: $(import_sims "$sims" "$d_api")"
      if [[ $row == radius_daemon* ]]; then
        echo "prime (first contact): $(radius_gen "$d_radius" "$sims")"
        if [[ $row == radius_daemon_chg ]]; then
          echo "changes: $(radius_gen "$d_radius" $((2 * sims)) --imei-change-percent 10 --seed 1)"
          echo "put back: $(radius_gen "$d_radius" $((2 * sims)))"
        fi
        measure "$row" "$d_pid" radius_gen "$d_radius"
      else
        echo "prime (first contact): $(diameter_gen "$d_diameter" "$sims")"
        measure "$row" "$d_pid" diameter_gen "$d_diameter"
      fi
      # The next daemon row needs the store and the state dir: wait for this one to end.
      kill "$d_pid" 2>/dev/null || true
      wait "$d_pid" 2>/dev/null || true
      rm -rf "$work/d"
      ;;
    *)
      echo "unknown row $row" >&2
      exit 2
      ;;
  esac
done
