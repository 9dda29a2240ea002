#!/usr/bin/env bash
# Sets up and runs imeilockd on its embedded defaults, from a fresh Debian 12
# machine: installs what is missing, builds a release binary, runs it in the
# foreground with its state (SQLite, the generated API token) in ./var.
# Ctrl-C stops it cleanly.
#   scripts/run.sh [--config FILE]
# Environment: IMEILOCK_BUILD_DIR (default build-release); IMEILOCK_SKIP_BUILD=1
# runs the binary already in that directory without installing or building.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${IMEILOCK_BUILD_DIR:-build-release}
if [[ "${IMEILOCK_SKIP_BUILD:-0}" != 1 ]]; then
  scripts/install-deps.sh --build
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DIMEILOCK_TESTS=OFF \
        -DIMEILOCK_BENCH=OFF >/dev/null
  cmake --build "$build" -j "$(nproc)" --target imeilockd imeilockctl
fi
mkdir -p var
export STATE_DIRECTORY=${STATE_DIRECTORY:-$(pwd)/var}
echo "imeilockd: state in $STATE_DIRECTORY; RADIUS 127.0.0.1:1813, Diameter 127.0.0.1:3868," >&2
echo "           API and dashboard http://127.0.0.1:8080/ui, metrics http://127.0.0.1:9464/metrics" >&2
exec "$build/daemon/imeilockd" "$@"
