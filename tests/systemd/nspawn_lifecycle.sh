#!/usr/bin/env bash
# The real daemon under a real systemd (issue 2): boots a throwaway container
# that shares the host's /usr (the built daemon's libraries) with a tmpfs root
# and overlays on /etc, /usr and /var, so nothing it writes reaches the host;
# installs the unit, its sysusers.d/tmpfiles.d files, the installed
# configuration and the built binary at the paths `cmake --install` uses; then
# checks, through systemd itself:
#   start reaches READY (active/running, STATUS= shown by systemctl status),
#   every configured listener is bound, the state directory exists and is
#   owned by the service user, journald keeps the <N> priorities, a reload
#   goes through RELOADING=1/READY=1, SIGSTOP makes the watchdog restart it,
#   and stop is clean (STOPPING=1 seen by systemd, exit 0, Result=success).
# Bounded: every wait has a timeout and the whole run is killed after
# $BUDGET seconds; the container is always torn down.
#
#   nspawn_lifecycle.sh --binary FILE --unit FILE --unit-dest PATH
#                       --sysusers FILE --sysusers-dest PATH
#                       --tmpfiles FILE --tmpfiles-dest PATH
#                       --config FILE --config-dest PATH --bin-dest PATH
#   nspawn_lifecycle.sh --deb FILE --config-dest PATH
# The second form installs the Debian package with dpkg instead (its postinst
# creates the user and sets the configuration's permissions), runs the same
# checks, and removes the package at the end.
# Exit 77 (skipped) only when not root or systemd-nspawn/nsenter are missing.
set -euo pipefail

BUDGET=${IMEILOCK_NSPAWN_BUDGET:-170}
WATCHDOG_SEC=4
declare -A arg=()
while (($#)); do
  [[ $1 == --* && $# -ge 2 ]] || { echo "usage: see the header of $0" >&2; exit 2; }
  arg[${1#--}]=$2
  shift 2
done
if [[ -n ${arg[deb]:-} ]]; then
  required=(deb config-dest)
else
  required=(binary unit unit-dest sysusers sysusers-dest tmpfiles tmpfiles-dest config config-dest bin-dest)
fi
for k in "${required[@]}"; do
  [[ -n ${arg[$k]:-} ]] || { echo "missing --$k" >&2; exit 2; }
  [[ $k == *-dest || -f ${arg[$k]} ]] || { echo "no such file: ${arg[$k]} (--$k)" >&2; exit 2; }
done

if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: booting a container with systemd-nspawn needs root"
  exit 77
fi
for tool in systemd-nspawn nsenter; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool is not installed (package systemd-container / util-linux)"
    exit 77
  fi
done

t0=$(date +%s%N)
elapsed() { echo "$(( ($(date +%s%N) - t0) / 1000000 ))ms"; }
step() { echo "[$(elapsed)] $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

work=$(mktemp -d /tmp/imeilock-nspawn.XXXXXX)
machine="imeilock-test-$$"
unit=imeilockd.service
nspawn_pid=""
nspawn_pids=() # systemd-nspawn and its intermediate child
leader=""
guard=""

# Runs a command inside the container (all its namespaces), with a clean
# environment so the host's PATH and locale do not leak in.
C() {
  nsenter --target "$leader" --all -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SYSTEMD_PAGER= SYSTEMD_COLORS=0 LANG=C.UTF-8 "$@"
}
prop() { C systemctl show --property="$1" --value "$unit"; }
# journald indexes PID 1's messages asynchronously: wait up to 5s for an
# extended regular expression to show up in the unit's journal.
journal_has() {
  for _ in $(seq 1 25); do
    C journalctl -u "$unit" -o cat --no-pager | grep -E "$1" >/dev/null && return 0
    sleep 0.2
  done
  return 1
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $guard ]]; then
    pkill -TERM -P "$guard" 2>/dev/null || true # its sleep
    kill "$guard" 2>/dev/null || true
    wait "$guard" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -n $leader ]] && kill -0 "$leader" 2>/dev/null; then
    echo "--- journal of $unit in the container (last 60 lines)" >&2
    timeout 10 nsenter --target "$leader" --all -- journalctl -u "$unit" --no-pager -n 60 >&2 || true
  fi
  if [[ -n $nspawn_pid ]] && kill -0 "$nspawn_pid" 2>/dev/null; then
    # SIGRTMIN+4 asks the container's systemd to power off; systemd-nspawn
    # then exits. SIGTERM to systemd-nspawn does the same once it knows the
    # container, but not while it is still setting it up.
    if [[ -n $leader ]]; then kill -s RTMIN+4 "$leader" 2>/dev/null || true
    else kill -TERM "$nspawn_pid" 2>/dev/null || true; fi
    for _ in $(seq 1 75); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
  fi
  # Whatever is left: killing the container's PID 1 kills its whole PID
  # namespace; then the systemd-nspawn processes of this run.
  [[ -z $leader ]] || kill -KILL "$leader" 2>/dev/null || true
  for pid in "${nspawn_pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  [[ -z $nspawn_pid ]] || wait "$nspawn_pid" 2>/dev/null || true
  if [[ $rc -ne 0 && -f $work/console.log ]]; then
    echo "--- container console (last 30 lines)" >&2
    tail -n 30 "$work/console.log" >&2 || true
  fi
  rm -rf "$work"
  echo "[$(elapsed)] container torn down"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "booting container $machine"
# basic.target: journald and the service manager, without the host's other
# services (a PostgreSQL or Prometheus enabled on the host would start too).
systemd-nspawn --directory=/ --volatile=yes --boot --private-network --register=no --keep-unit \
  --overlay=/etc::/etc --overlay=/usr::/usr --overlay=/var::/var \
  --machine="$machine" --console=read-only -- systemd.unit=basic.target \
  >"$work/console.log" 2>&1 </dev/null &
nspawn_pid=$!
# The budget: past it the container goes, the nsenter calls fail and the
# EXIT trap reports.
( sleep "$BUDGET" </dev/null >/dev/null 2>&1
  echo "FAIL: over the ${BUDGET}s budget" >&2
  kill -TERM "$nspawn_pid" 2>/dev/null; kill -TERM $$ 2>/dev/null ) &
guard=$!

# The container's PID 1 is the first systemd below systemd-nspawn (which may
# keep an intermediate child of its own).
for _ in $(seq 1 100); do
  pid=$nspawn_pid
  nspawn_pids=("$nspawn_pid")
  while pid=$(pgrep -P "$pid" | head -n 1) && [[ -n $pid ]]; do
    if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == systemd ]]; then leader=$pid; break; fi
    nspawn_pids+=("$pid")
  done
  [[ -n $leader ]] && break
  kill -0 "$nspawn_pid" 2>/dev/null || fail "systemd-nspawn exited: $(tail -n 5 "$work/console.log")"
  sleep 0.1
done
[[ -n $leader ]] || fail "no container PID 1 after 10s"
state=""
boot_deadline=$((SECONDS + 45))
while ((SECONDS < boot_deadline)); do
  # Fails at once until PID 1 listens; then waits for the boot to finish.
  state=$(C timeout 30 systemctl is-system-running --wait 2>/dev/null) && break
  [[ $state == degraded ]] && break
  sleep 0.2
done
[[ $state == running || $state == degraded ]] || fail "container did not boot (state '$state')"
step "container up (PID 1 is host PID $leader, state $state)"
# PID 1 logs every sd_notify message it receives at debug level: that is how
# this test sees READY=1, RELOADING=1, WATCHDOG=1 and STOPPING=1.
C systemd-analyze set-log-level debug

put() { # SRC DEST MODE
  C sh -c 'mkdir -p "$(dirname "$1")" && cat >"$1" && chmod "$2" "$1"' sh "$2" "$3" <"$1"
}
if [[ -n ${arg[deb]:-} ]]; then
  put "${arg[deb]}" /tmp/imeilockd.deb 0644
  C dpkg -i /tmp/imeilockd.deb || fail "dpkg -i $(basename "${arg[deb]}") failed"
  # The listeners to check come from the configuration the package installed.
  arg[config]=$work/installed.yaml
  C cat "${arg[config-dest]}" >"${arg[config]}"
  installed="$(basename "${arg[deb]}") with dpkg"
else
  # Install what `cmake --install` installs, at the same paths...
  put "${arg[binary]}" "${arg[bin-dest]}" 0755
  put "${arg[unit]}" "${arg[unit-dest]}" 0644
  put "${arg[sysusers]}" "${arg[sysusers-dest]}" 0644
  put "${arg[tmpfiles]}" "${arg[tmpfiles-dest]}" 0644
  put "${arg[config]}" "${arg[config-dest]}" 0640
  # ...and what the package's postinst does.
  C systemd-sysusers "${arg[sysusers-dest]}"
  C systemd-tmpfiles --create "${arg[tmpfiles-dest]}"
  installed="binary, unit, sysusers.d, tmpfiles.d and configuration"
fi
perm=$(C stat -c '%U:%G %a' "${arg[config-dest]}")
[[ $perm == "root:imeilockd 640" ]] || fail "configuration is '$perm', want root:imeilockd 640"
# Test-only timing: a short watchdog and restart delay keep the run short.
C mkdir -p "/etc/systemd/system/$unit.d"
printf '[Service]\nWatchdogSec=%ss\nRestartSec=1s\n' "$WATCHDOG_SEC" |
  C sh -c "cat >/etc/systemd/system/$unit.d/50-test-timing.conf"
C systemctl daemon-reload
[[ $(prop LoadState) == loaded ]] || fail "unit not loaded: $(C systemctl status "$unit" 2>&1 | head -5)"
step "installed $installed"

# --- start: Type=notify, so `systemctl start` returns once READY=1 arrived.
t_start=$(date +%s%N)
C timeout 60 systemctl start "$unit" || fail "systemctl start failed"
step "started in $(( ($(date +%s%N) - t_start) / 1000000 ))ms"
[[ $(prop ActiveState) == active && $(prop SubState) == running ]] ||
  fail "after start: $(prop ActiveState)/$(prop SubState)"
status_text=$(prop StatusText)
[[ -n $status_text ]] || fail "no STATUS= text"
C systemctl status --no-pager "$unit" | grep -F "Status: \"$status_text\"" >/dev/null ||
  fail "systemctl status does not show the STATUS= text"
step "active/running, STATUS=\"$status_text\""
main_pid=$(prop MainPID)

# --- listeners: every address of a `listen:` key in the configuration and
# every host:port the daemon names in its STATUS= line is bound by the daemon.
sockets=$(C ss -Hlnptu)
listens=$( { grep -E '^\s*listen:\s*' "${arg[config]}" | grep -oE '([0-9.]+|\[[0-9a-fA-F:]*\]):[0-9]+' || true
             grep -oE '([0-9]{1,3}(\.[0-9]{1,3}){3}|\[[0-9a-fA-F:]*\]):[0-9]+' <<<"$status_text" || true
           } | sort -u)
[[ -n $listens ]] || fail "no listen address in ${arg[config]} nor in the STATUS= text"
for addr in $listens; do
  port=${addr##*:}
  grep -E ":${port}\s.*pid=${main_pid}," <<<"$sockets" >/dev/null ||
    fail "nothing of PID $main_pid listens on $addr: $sockets"
  echo "  bound: $addr ($(grep -E ":${port}\s.*pid=${main_pid}," <<<"$sockets" | awk '{print $1}' | sort -u | tr '\n' ' ')sockets)"
done
metrics_addr=$(awk '/^metrics:/ {m = 1; next} /^[^[:space:]#]/ {m = 0}
                    m && $1 == "listen:" {print $2; exit}' "${arg[config]}")
[[ -n $metrics_addr ]] || fail "no metrics.listen in ${arg[config]}"
C timeout 10 curl -fsS "http://$metrics_addr/metrics" | grep -E '^imeilock_build_info\{' >/dev/null ||
  fail "no imeilock_build_info on http://$metrics_addr/metrics"
echo "  /metrics answers on $metrics_addr"

# --- state directory: created by StateDirectory=, owned by the service user.
state_dir=/var/lib/imeilockd
[[ $(C stat -c '%U %a' "$state_dir") == "imeilockd 750" ]] ||
  fail "$state_dir is $(C stat -c '%U %a' "$state_dir"), want imeilockd 750"
# The store (SQLite) lives there: the daemon must have written it by READY=1.
files=$(C find "$state_dir" -mindepth 1 -printf '%u %p\n')
[[ -n $files ]] || fail "the daemon wrote nothing to $state_dir"
if grep -v '^imeilockd ' <<<"$files"; then fail "files in $state_dir not owned by imeilockd"; fi
echo "  state directory written: $(awk '{print $2}' <<<"$files" | tr '\n' ' ')"

# --- journald keeps the sd-daemon priorities: notice lines at -p notice, info lines not.
for _ in $(seq 1 30); do
  C journalctl -u "$unit" -p notice -o cat --no-pager | grep -q 'daemon.ready' && break
  sleep 0.1
done
notice=$(C journalctl -u "$unit" -p notice -o cat --no-pager)
grep -q 'daemon.ready' <<<"$notice" || fail "daemon.ready not logged at priority notice"
grep -q 'metrics.listening' <<<"$notice" && fail "an info line (metrics.listening) came out at notice or above"
step "listeners bound, state directory ok, journald priorities kept"

# --- reload: RELOADING=1 then READY=1, same process.
C timeout 30 systemctl reload "$unit" || fail "systemctl reload failed"
# With ExecReload=kill -HUP, systemd ends the reload job when kill exits; the
# daemon's RELOADING=1 may come after that and puts the unit in "reloading"
# again until its READY=1: wait for active (bounded) before comparing.
for _ in $(seq 1 100); do
  [[ $(prop ActiveState) == active ]] && break
  sleep 0.1
done
[[ $(prop ActiveState) == active ]] || fail "not active 10 s after the reload: $(prop ActiveState)"
[[ $(prop MainPID) == "$main_pid" ]] || fail "reload changed the process"
step "reloaded"

# --- watchdog: a stopped process stops pinging; systemd kills and restarts it.
restarts0=$(prop NRestarts)
t_wd=$(date +%s%N)
C kill -STOP "$main_pid"
new_pid=""
for _ in $(seq 1 $(( (WATCHDOG_SEC + 20) * 5 ))); do
  if (( $(prop NRestarts) > restarts0 )) && [[ $(prop ActiveState) == active ]]; then
    new_pid=$(prop MainPID)
    [[ $new_pid != "$main_pid" && $new_pid != 0 ]] && break
  fi
  sleep 0.2
done
[[ -n $new_pid && $new_pid != "$main_pid" ]] ||
  fail "no watchdog restart within $((WATCHDOG_SEC + 20))s: $(prop ActiveState)/$(prop SubState) NRestarts=$(prop NRestarts)"
journal_has "Watchdog timeout" && journal_has "Failed with result 'watchdog'" ||
  fail "journal does not say the watchdog fired"
step "watchdog restarted it in $(( ($(date +%s%N) - t_wd) / 1000000 ))ms (NRestarts $restarts0 -> $(prop NRestarts), Result=watchdog), READY again"
main_pid=$new_pid

# --- stop: SIGTERM, STOPPING=1, exit 0.
t_stop=$(date +%s%N)
C timeout 45 systemctl stop "$unit" || fail "systemctl stop failed"
step "stopped in $(( ($(date +%s%N) - t_stop) / 1000000 ))ms"
[[ $(prop ActiveState) == inactive ]] || fail "after stop: $(prop ActiveState)"
[[ $(prop Result) == success ]] || fail "stop Result=$(prop Result)"
[[ $(prop ExecMainStatus) == 0 ]] || fail "exit status $(prop ExecMainStatus)"
for msg in READY=1 RELOADING=1 WATCHDOG=1; do
  journal_has "Got notification message from PID [0-9]+ \(.*$msg" || fail "systemd never received $msg"
done
journal_has "Got notification message from PID $main_pid \(.*STOPPING=1" ||
  fail "systemd did not get STOPPING=1 from the stopping process $main_pid"
step "stop clean: STOPPING=1 seen by systemd, exit 0, Result=success"
if [[ -n ${arg[deb]:-} ]]; then
  C dpkg -r imeilockd || fail "dpkg -r imeilockd failed"
  C systemctl daemon-reload
  [[ $(prop LoadState) != loaded || -z $(prop FragmentPath) ]] || fail "unit still there after dpkg -r"
  step "package removed"
fi
echo "PASS: imeilockd under systemd $(C systemctl --version | head -1 | cut -d' ' -f2) in $(elapsed)"
