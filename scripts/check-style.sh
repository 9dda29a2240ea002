#!/usr/bin/env bash
# Style gates of the test command: .clang-format on every C/C++ file of the
# repository, and .clang-tidy (a focused check set; warnings are errors) on
# the CAF-free production code and the CAF/Beast units a recent change
# touched.
#   scripts/check-style.sh BUILD_DIR          both
#   scripts/check-style.sh --tidy BUILD_DIR   only clang-tidy
#   scripts/check-style.sh --format-only      only clang-format (no build needed)
#   scripts/check-style.sh --fix-format       rewrite the files instead of checking
# scripts/test.sh runs --format-only before it builds and --tidy after the tests.
# Environment: JOBS (default: nproc); TIDY_ALL, TIDY_SINCE, TIDY_MAX_CHANGED (below).
#
# Which translation units clang-tidy analyses (our production code only: not
# tests/, bench/, fuzz/ or generated files):
#  - always the CAF-free core that the UNIT_ONLY configuration builds (lock/,
#    config/, common/, store/, orders/, the protocol codecs, the API's parsing
#    and the configuration loader): about 30 units, a minute on 2 cores, with
#    the database of BUILD_DIR-tidy (this script configures it);
#  - the CAF and Beast units (about 20, 20 s each to analyse) whose own file or
#    a project header it includes, directly or not, differs from HEAD~10 (the
#    last ten commits and the uncommitted change; every unit if the history is
#    shorter), with BUILD_DIR's database. Those touched most recently go first
#    and at most TIDY_MAX_CHANGED of them (default 8, about 80 s on 2 cores)
#    are analysed; the others are named. A change to the actors or a server is
#    so always analysed, and the stage stays under ~3 minutes on 2 cores.
# TIDY_ALL=1 analyses every production unit (several minutes): run it after a
# change to a header that most units include. TIDY_SINCE=REV moves the base.
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
core_db="$build-tidy"
cmake -S . -B "$core_db" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMEILOCK_UNIT_ONLY=ON \
      -DIMEILOCK_TESTS=OFF -DIMEILOCK_BENCH=OFF > /dev/null
[[ -f $build/compile_commands.json ]] ||
  { echo "no $build/compile_commands.json: configure the build first"; exit 1; }
since=${TIDY_SINCE:-}
if [[ -z $since ]] && git rev-parse -q --verify HEAD~10 > /dev/null; then
  since=HEAD~10
fi
# One line a unit: "core PATH", "changed PATH" (analysed) or "skipped PATH".
mapfile -t selection < <(python3 - "$core_db/compile_commands.json" "$build/compile_commands.json" \
                         "$(pwd)" "${TIDY_ALL:-0}" "$since" "${TIDY_MAX_CHANGED:-8}" <<'PY'
import json, os, re, subprocess, sys
core_db, full_db, root, tidy_all, since, most = sys.argv[1:7]
root += os.sep
production = {"actors", "api", "cluster", "common", "config", "daemon", "lock", "metrics", "orders",
              "protocols", "store", "tools"}

def units(db):
    out = []
    for e in json.load(open(db)):
        f = os.path.normpath(os.path.join(e["directory"], e["file"]))
        rel = f[len(root):]
        if (f.startswith(root) and rel.split("/")[0] in production
                and "/generated/" not in rel and rel not in out):
            out.append(rel)
    return out

core = units(core_db)
rest = [u for u in units(full_db) if u not in core]
for u in core:
    print("core", u)
if tidy_all == "1" or not since:
    for u in rest:
        print("changed", u)
    sys.exit(0)

def git(*args):
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout

# How recently each file changed: 0 uncommitted, 1 in HEAD, 2 in HEAD~1, ...
age = {f: 0 for f in git("diff", "--name-only", "HEAD").split()}
commit = 0
for line in git("log", "--format=%x01", "--name-only", since + "..HEAD").splitlines():
    if line.startswith("\x01"):
        commit += 1
    elif line.strip():
        age.setdefault(line.strip(), commit)

include = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
direct = {}
def project_files(unit):
    """`unit` and the project headers it includes, directly or not."""
    seen, todo = {unit}, [unit]
    while todo:
        f = todo.pop()
        if f not in direct:
            try:
                text = open(root + f, encoding="utf-8", errors="replace").read()
            except OSError:
                text = ""
            direct[f] = [h for h in include.findall(text) if os.path.isfile(root + h)]
        for h in direct[f]:
            if h not in seen:
                seen.add(h)
                todo.append(h)
    return seen

touched = sorted((min(age[f] for f in files if f in age), u)
                 for u in rest for files in [project_files(u)] if files & age.keys())
for i, (_, u) in enumerate(touched):
    print("changed" if i < int(most) else "skipped", u)
PY
)
core_units=() changed_units=() skipped_units=()
for line in "${selection[@]}"; do
  case $line in
    core\ *) core_units+=("$(pwd)/${line#core }") ;;
    changed\ *) changed_units+=("$(pwd)/${line#changed }") ;;
    skipped\ *) skipped_units+=("${line#skipped }") ;;
  esac
done
if [[ "${TIDY_ALL:-0}" == 1 || -z $since ]]; then what="all"; else what="changed since $since"; fi
echo "-- clang-tidy: ${#core_units[@]} core units + ${#changed_units[@]} CAF/Beast units ($what), $jobs jobs"
for u in "${changed_units[@]}"; do echo "   ${u#"$(pwd)/"}"; done
if ((${#skipped_units[@]})); then
  echo "   not analysed (over TIDY_MAX_CHANGED): ${skipped_units[*]}"
fi
# Our headers, anchored at the checkout: the path clang-tidy matches is
# absolute, and the build trees' generated headers are not ours to check.
headers="^$(pwd)/(actors|api|cluster|common|config|daemon|lock|metrics|orders|protocols|store|tools)/"
log=$(mktemp)
status=0
run-clang-tidy -quiet -j "$jobs" -header-filter "$headers" -p "$core_db" "${core_units[@]}" \
  > "$log" 2>&1 || status=1
if ((${#changed_units[@]})); then
  run-clang-tidy -quiet -j "$jobs" -header-filter "$headers" -p "$build" "${changed_units[@]}" \
    >> "$log" 2>&1 || status=1
fi
if ((status)); then
  grep -E 'error:|warning:' "$log" | sort -u | head -100
  rm -f "$log"
  echo "clang-tidy: findings above (.clang-tidy)"
  exit 1
fi
rm -f "$log"
echo "clang-tidy: clean"
