#!/usr/bin/env bash
# Sets up and runs imeilockd on its embedded defaults, from a fresh Debian 12
# machine: installs what is missing, builds a release binary, runs it in the
# foreground with its state (SQLite) in ./var. Ctrl-C stops it cleanly.
#   scripts/run.sh [--config FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --build
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DIMEILOCK_TESTS=OFF \
      -DIMEILOCK_BENCH=OFF >/dev/null
cmake --build build-release -j "$(nproc)" --target imeilockd imeilockctl 2>/dev/null ||
  cmake --build build-release -j "$(nproc)" --target imeilockd
mkdir -p var
export STATE_DIRECTORY=${STATE_DIRECTORY:-$(pwd)/var}
echo "imeilockd: state in $STATE_DIRECTORY; RADIUS 127.0.0.1:1813, Diameter 127.0.0.1:3868,"
echo "           API and dashboard http://127.0.0.1:8080/ui, metrics http://127.0.0.1:9464/metrics"
exec build-release/daemon/imeilockd "$@"
