#!/usr/bin/env bash
# Style gates of the test command: .clang-format on every C/C++ file of the
# repository, and .clang-tidy (a focused check set; warnings are errors) on
# the CAF-free production code (see below).
#   scripts/check-style.sh BUILD_DIR          both
#   scripts/check-style.sh --tidy BUILD_DIR   only clang-tidy
#   scripts/check-style.sh --format-only      only clang-format (no build needed)
#   scripts/check-style.sh --fix-format       rewrite the files instead of checking
# scripts/test.sh runs --format-only before it builds and --tidy after the tests.
# Environment: JOBS (default: nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}

mapfile -t sources < <(git ls-files '*.cpp' '*.hpp' '*.h' '*.c' | grep -v '^fuzz/corpus/')

format_check=1
case "${1:-}" in
  --fix-format)
    clang-format -i "${sources[@]}"
    exit 0 ;;
  --tidy)
    format_check=0
    shift ;;
esac

if ((format_check)); then
echo "-- clang-format: ${#sources[@]} files"
if ! clang-format --dry-run --Werror "${sources[@]}" 2>/tmp/imeilock-format.$$; then
  grep 'error:' /tmp/imeilock-format.$$ | cut -d: -f1 | sort | uniq -c | sed 's/^/   /'
  rm -f /tmp/imeilock-format.$$
  echo "clang-format: the files above differ from .clang-format (scripts/check-style.sh --fix-format)"
  exit 1
fi
rm -f /tmp/imeilock-format.$$
fi
[[ "${1:-}" == "--format-only" ]] && exit 0

build=${1:?usage: scripts/check-style.sh BUILD_DIR | --format-only | --fix-format}
# clang-tidy runs on the CAF-free core that the UNIT_ONLY configuration builds
# (lock/, config/, common/, store/, orders/, the protocol codecs, the API's
# parsing and the configuration loader): about 30 translation units, a minute
# on 2 cores. The CAF and Beast translation units cost 20 s each to analyse;
# `TIDY_ALL=1` runs them too (BUILD_DIR's database, minutes).
if [[ "${TIDY_ALL:-0}" == 1 ]]; then
  db_dir=$build
else
  db_dir="$build-tidy"
  cmake -S . -B "$db_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMEILOCK_UNIT_ONLY=ON \
        -DIMEILOCK_TESTS=OFF -DIMEILOCK_BENCH=OFF > /dev/null
fi
db="$db_dir/compile_commands.json"
[[ -f $db ]] || { echo "no $db: configure the build first"; exit 1; }
# Our own production translation units (not tests/, bench/, fuzz/, generated).
mapfile -t units < <(python3 - "$db" "$(pwd)" <<'PY'
import json, os, sys
root = sys.argv[2] + os.sep
production = {"actors", "api", "cluster", "common", "config", "daemon", "lock", "metrics", "orders",
              "protocols", "store", "tools"}
seen = set()
for e in json.load(open(sys.argv[1])):
    f = os.path.normpath(os.path.join(e["directory"], e["file"]))
    rel = f[len(root):]
    if (f.startswith(root) and rel.split("/")[0] in production and "/generated/" not in rel
            and f not in seen):
        seen.add(f)
        print(f)
PY
)
echo "-- clang-tidy: ${#units[@]} translation units, $jobs jobs"
log=$(mktemp)
if ! run-clang-tidy -quiet -j "$jobs" -p "$db_dir" "${units[@]}" > "$log" 2>&1; then
  grep -E 'error:|warning:' "$log" | sort -u | head -100
  rm -f "$log"
  echo "clang-tidy: findings above (.clang-tidy)"
  exit 1
fi
rm -f "$log"
echo "clang-tidy: clean"
