# Shared by the side-by-side scripts (bench/radius_vs_freeradius.sh,
# bench/diameter_vs_freediameter.sh): a temp dir with cleanup, the real
# imeilockd daemon on loopback with an inventory of the generators' SIMs, and
# small readers of /proc and /metrics.
# Source it after setting `imeilockd` (the binary); it sets `work` and `pids`.
#
#   bench_init NAME KEEP   temp dir /tmp/NAME.XXXXXX in $work; every pid added
#                          to `pids` is killed on exit; KEEP non-empty keeps $work
#   start_imeilockd YAML   the daemon with YAML appended to its base config ->
#                          d_pid d_radius d_diameter d_api d_metrics
#   import_sims N PORT     N SIMs (IMSI 234150000000000 + i) by POST /v1/sims:import
#   rss_kb PID, cpu_ticks PID, metric PORT NAME, field NAME (stdin), median, ratio
#   print_summary PEER UNIT   the medians, ratios, RSS and log check at the end

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

bench_init() { # name keep
  work=$(mktemp -d "/tmp/$1.XXXXXX")
  bench_keep=$2
  pids=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n $bench_keep ]] && echo "kept $work" || rm -rf "$work"
}

# --- the real imeilockd daemon ------------------------------------------------
# Its own state dir and SQLite store, every listener on 127.0.0.1 port 0 (the
# bound ports come from the "<5>daemon.ready ... radius_port=N diameter_port=N
# api_port=N" log line), and an inventory of SIMs whose IMSIs are the
# generators' (234150000000000 + i), loaded with POST /v1/sims:import.
api_token=bench-token-not-a-secret
# IMEILOCKD_READY_SECONDS (30): how long to wait for daemon.ready.
start_imeilockd() { # extra YAML appended -> sets d_pid d_radius d_diameter d_api d_metrics
  mkdir -p "$work/d"
  cat > "$work/d/imeilockd.yaml" <<YAML
daemon:
  workers: ${IMEILOCKD_WORKERS:-2}
  io_threads: ${IMEILOCKD_IO_THREADS:-1}
  log_level: notice
  shutdown_timeout: 20s
metrics:
  listen: 127.0.0.1:0
sim_layer:
  store:
    path: $work/d/imeilockd.db
api:
  listen: 127.0.0.1:0
  tokens: [$api_token]
$1
YAML
  STATE_DIRECTORY="$work/d" "$imeilockd" --config "$work/d/imeilockd.yaml" > "$work/d/daemon.log" 2>&1 &
  d_pid=$!
  pids+=($d_pid)
  local ready=
  for _ in $(seq $((${IMEILOCKD_READY_SECONDS:-30} * 10))); do
    ready=$(grep -m1 '^<5>daemon\.ready' "$work/d/daemon.log" 2>/dev/null || true)
    [[ -n $ready ]] && break
    kill -0 "$d_pid" 2>/dev/null || { echo "imeilockd exited:"; cat "$work/d/daemon.log"; exit 1; }
    sleep 0.1
  done
  [[ -n $ready ]] || { echo "imeilockd did not become ready:"; tail -20 "$work/d/daemon.log"; exit 1; }
  d_radius=$(sed -n 's/.* radius_port=\([0-9]*\).*/\1/p' <<<"$ready")
  d_diameter=$(sed -n 's/.* diameter_port=\([0-9]*\).*/\1/p' <<<"$ready")
  d_api=$(sed -n 's/.* api_port=\([0-9]*\).*/\1/p' <<<"$ready")
  d_metrics=$(sed -n 's/.* metrics_port=\([0-9]*\).*/\1/p' <<<"$ready")
}
import_sims() { # count api_port: CSV in chunks of 20,000 lines; prints the import time
  /usr/bin/python3 - "$1" "$2" "$api_token" "$bench_dir/../tests/integration" <<'PY'
import sys
sys.path.insert(0, sys.argv[4])
import harness
n, secs = harness.import_bench_sims(int(sys.argv[2]), sys.argv[3], int(sys.argv[1]))
print(f"imported {n} SIMs in {secs:.1f} s ({n / secs:.0f}/s)")
PY
}

# --- readers ------------------------------------------------------------------
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
metric() { # port name -> sum of the samples of that metric
  /usr/bin/python3 -c '
import re, sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10).read().decode()
print(sum(float(m.group(2)) for m in re.finditer(r"^(\w+)(?:\{[^}]*\})?\s+(\S+)$", text, re.M) if m.group(1) == sys.argv[2]))' "$1" "$2" 2>/dev/null || echo "?"
}
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" | head -n 1; }
# Median of the arguments; "-" (a failed run) counts in none.
median() { printf '%s\n' "$@" | { grep -v '^-$' || true; } | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{if (a == "-" || b == "-" || b <= 0) print "-"; else printf "%.2f", a/b}'; }

# The closing summary of a side-by-side script: medians over the rounds of the
# rows in `servers` (the peer first) from the associative arrays rates p50s
# p99s p999s cpus (space-separated figures per round, "-" for a failed run),
# each row's ratio to the peer of the medians and round by round, the daemon's
# RSS ($d_pid; $rss0 after loading), error lines of its log, and whether it
# still runs. CEILING (optional, a row of `servers`, e.g. the UDP echo): a
# second ratio column, and its ratios per round.
print_summary() { # peer unit [ceiling] (e.g. freeradius req echo)
  local peer=$1 unit=$2 ceil=${3:-} who m peer_m ceil_m base
  echo
  echo "medians over $rounds rounds (load average now $(cut -d' ' -f1-3 /proc/loadavg))"
  printf '%-14s %10s %8s %8s %9s %11s %16s %s\n' server "$unit/s" p50_us p99_us p99.9_us "cpu_us/$unit" "x $peer" \
    "${ceil:+x $ceil}"
  peer_m=$(median ${rates[$peer]})
  [[ -n $ceil ]] && ceil_m=$(median ${rates[$ceil]})
  for who in "${servers[@]}"; do
    m=$(median ${rates[$who]})
    printf '%-14s %10s %8s %8s %9s %11s %16s %s\n' "$who" "$m" "$(median ${p50s[$who]})" "$(median ${p99s[$who]})" \
      "$(median ${p999s[$who]})" "$(median ${cpus[$who]})" "$(ratio "$m" "$peer_m")x" \
      "${ceil:+$(ratio "$m" "$ceil_m")x}"
  done
  # Ratio per round (side by side in time), the figure a noisy machine distorts least.
  for base in "$peer" $ceil; do
    for who in "${servers[@]:1}"; do
      [[ $who == "$base" ]] && continue
      local a=(${rates[$who]}) b=(${rates[$base]}) out=() i
      for i in "${!a[@]}"; do out+=("$(ratio "${a[$i]}" "${b[$i]}")"); done
      echo "ratio $who/$base per round: ${out[*]}"
    done
  done
  echo "imeilockd RSS after the rounds: $(rss_kb "$d_pid") kB (after loading SIMs: $rss0 kB)"
  grep -E '^<[0-3]>' "$work/d/daemon.log" | head -5 | sed 's/^/daemon log: /' || true
  kill -0 "$d_pid" 2>/dev/null && echo "imeilockd still running: yes" || echo "imeilockd still running: NO"
}
