#!/usr/bin/env bash
# Durable state changes per second on SQLite and on PostgreSQL, side by side,
# on this machine, in one run (issue 11). bench_sim_layer drives observations
# that each change a SIM's state through the SIM layer; every one is
# acknowledged only after its group commit. PostgreSQL is a temporary server
# (initdb into a temp dir, a unix socket, fsync on unless --no-fsync: the
# same durability class as SQLite's synchronous=NORMAL is fsync=on with
# synchronous_commit=on), started and removed by this script.
#
#   bench/store_backends.sh BUILD_DIR [--sims 100000] [--actors 20000] [--seconds 5] [--runs 3]
#                                     [--no-fsync]
#
# Prints each run's figures and the medians, and the load average (the
# machine may be shared). As root, initdb/postgres run as the postgres user.
set -euo pipefail
build=${1:?usage: bench/store_backends.sh BUILD_DIR [options]}
shift
bench=$build/bench/bench_sim_layer
[[ -x $bench ]] || { echo "no $bench: build the target bench_sim_layer"; exit 1; }
sims=100000 actors=20000 seconds=5 runs=3 fsync=on
while (($#)); do
  case $1 in
    --sims) sims=$2; shift 2 ;;
    --actors) actors=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --no-fsync) fsync=off; shift ;;
    *) echo "unknown option $1"; exit 2 ;;
  esac
done
pgbin=${IMEILOCK_PG_BINDIR:-/usr/lib/postgresql/15/bin}
[[ -x $pgbin/initdb ]] || { echo "PostgreSQL is not installed ($pgbin/initdb)"; exit 1; }

work=$(mktemp -d /tmp/store-backends.XXXXXX)
as_pg=()
if [[ $(id -u) -eq 0 ]]; then
  chown postgres "$work"
  as_pg=(runuser -u postgres --)
fi
cleanup() {
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
"${as_pg[@]}" "$pgbin/initdb" -D "$work/data" -A trust -U postgres -E UTF8 --locale=C \
  --no-instructions >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w \
  -o "-k $work -c listen_addresses='' -c fsync=$fsync -c max_connections=50" start >/dev/null

field() { # the "durable state changes, steady" figure of a bench output
  sed -n 's/^durable state changes, steady: \([0-9]*\) \/s.*/\1/p'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'; }

echo "store_backends: $sims SIMs, $actors changing, ${seconds}s per phase, $runs runs each;" \
     "PostgreSQL 15 on a unix socket, fsync=$fsync; $(nproc) cores"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A results=([sqlite]="" [postgresql]="")
for ((run = 1; run <= runs; run++)); do
  for backend in sqlite postgresql; do
    args=(--sims "$sims" --actors "$actors" --seconds "$seconds" --dir "$work")
    if [[ $backend == postgresql ]]; then
      "${as_pg[@]}" "$pgbin/psql" -X -q -h "$work" -U postgres -d postgres \
        -c "CREATE DATABASE run$run" >/dev/null
      args+=(--backend postgresql --conninfo "host=$work user=postgres dbname=run$run")
    fi
    # The figure is printed before the bench tears down; a failure there is
    # reported, not fatal to the comparison.
    rc=0
    out=$("$bench" "${args[@]}" 2>&1) || rc=$?
    ((rc == 0)) || echo "  run $run $backend: bench_sim_layer exited with $rc" >&2
    steady=$(field <<<"$out")
    line=$(grep '^durable state changes, steady' <<<"$out" || true)
    printf '  run %d %-10s %8s changes/s   (%s)\n' "$run" "$backend" "${steady:-?}" \
      "${line#durable state changes, steady: }"
    results[$backend]+="${steady:-0} "
  done
done
sq=$(tr ' ' '\n' <<<"${results[sqlite]}" | grep . | median)
pg=$(tr ' ' '\n' <<<"${results[postgresql]}" | grep . | median)
echo "durable state changes/s (median of $runs): SQLite $sq   PostgreSQL $pg" \
     "(PostgreSQL/SQLite $(awk -v a="$pg" -v b="$sq" 'BEGIN {printf "%.2f", b ? a / b : 0}'))"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
