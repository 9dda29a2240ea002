#!/usr/bin/env bash
# Side by side, one run, same generator (bench/diameter_load.cpp): freeDiameter
# 1.2 answering ACR through a small extension (bench/diameter_fd_acr.c, built
# here in a temp dir against libfreediameter-dev) and imeilockd's Diameter
# front-end with an immediately-acking sink (diameter_bench_server).
# Prints both rates and latencies and the ratio. Loopback only; freeDiameter
# binds every interface whatever it is told (TOOLCHAIN.md), so it gets its own
# port and lives only for the run.
#
#   bench/diameter_vs_freediameter.sh BUILD_DIR [SECONDS] [CONNECTIONS] [WINDOW]
set -euo pipefail
build=$1
secs=${2:-10}
conns=${3:-1}
window=${4:-64}
here=$(cd "$(dirname "$0")" && pwd)
load="$build/bench/diameter_load"
server="$build/bench/diameter_bench_server"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
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
pids+=($!)
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/$fd_port) 2>/dev/null && break
  sleep 0.1
done

# -- imeilockd's front-end --------------------------------------------------------
cat >"$work/diameter.yaml" <<YAML
diameter:
  origin_host: imeilockd.bench
  origin_realm: localdomain
  listen: ["127.0.0.1:0"]
  peers:
    - origin_host: pgw1.example.net
YAML
for c in $(seq 1 63); do echo "    - origin_host: c$c.pgw1.example.net" >>"$work/diameter.yaml"; done
"$server" "$work/diameter.yaml" >"$work/ours.out" 2>"$work/ours.log" &
pids+=($!)
for _ in $(seq 50); do grep -q listening "$work/ours.out" 2>/dev/null && break; sleep 0.1; done
our_port=$(awk '/listening/ {print $3; exit}' "$work/ours.out")

run() { # name port extra-args...
  local name=$1 port=$2
  shift 2
  echo "== $name (port $port, $conns connection(s), window $window, ${secs}s)"
  "$load" --port "$port" --connections "$conns" --window "$window" --duration "$secs" --sims 100000 \
    --distinct-peers 1 "$@" \
    | tee "$work/$name.txt" || echo "($name: the generator reported errors)"
}
# Same bytes for both: identity AVPs without the M bit (see diameter_load --compat).
run freediameter "$fd_port" --compat 1
run imeilockd "$our_port" --compat 1
run imeilockd_mix "$our_port" --ccr-percent 30
run imeilockd_low_rate "$our_port" --rate 2000 --duration 5

val() { awk -v k="$2" '/^result/ {for (i=1;i<=NF;i++) {split($i,a,"="); if (a[1]==k) print a[2]}}' "$work/$1.txt"; }
fd_rate=$(val freediameter rate)
our_rate=$(val imeilockd rate)
echo
printf "%-28s %10s %9s %9s %9s\n" "server (ACR only)" "answers/s" "p50 us" "p99 us" "p99.9 us"
printf "%-28s %10s %9s %9s %9s\n" "freeDiameter 1.2.1" "$fd_rate" "$(val freediameter p50_us)" "$(val freediameter p99_us)" "$(val freediameter p999_us)"
printf "%-28s %10s %9s %9s %9s\n" "imeilockd diameter" "$our_rate" "$(val imeilockd p50_us)" "$(val imeilockd p99_us)" "$(val imeilockd p999_us)"
printf "%-28s %10s %9s %9s %9s\n" "imeilockd 70/30 ACR/CCR" "$(val imeilockd_mix rate)" "$(val imeilockd_mix p50_us)" "$(val imeilockd_mix p99_us)" "$(val imeilockd_mix p999_us)"
printf "%-28s %10s %9s %9s %9s\n" "imeilockd at 2000/s" "$(val imeilockd_low_rate rate)" "$(val imeilockd_low_rate p50_us)" "$(val imeilockd_low_rate p99_us)" "$(val imeilockd_low_rate p999_us)"
awk -v a="$our_rate" -v b="$fd_rate" 'BEGIN { if (b > 0) printf "ratio imeilockd/freeDiameter: %.2fx\n", a / b }'
