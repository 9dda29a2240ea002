#!/usr/bin/env bash
# Runs every fuzzer built in BUILD_DIR for SECONDS each, on its corpus in
# fuzz/corpus/<name>/ (new inputs it finds go to a scratch dir, not the repo),
# with the libFuzzer flags in fuzz/<name>.options if there is one (-max_len,
# -dict=fuzz/<name>.dict, paths relative to the repository).
#   fuzz/run-all.sh BUILD_DIR [SECONDS]
set -euo pipefail
build=$(cd "$1" && pwd)
seconds=${2:-20}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
found=0
for bin in "$build"/fuzz/*; do
  [[ -f "$bin" && -x "$bin" ]] || continue
  name=$(basename "$bin")
  corpus="$here/corpus/$name"
  scratch=$(mktemp -d)
  options=()
  [[ -f "$here/$name.options" ]] && read -r -a options < "$here/$name.options"
  found=$((found + 1))
  echo "-- $name for ${seconds}s (corpus $(ls "$corpus" 2>/dev/null | wc -l) files) ${options[*]}"
  "$bin" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
         "${options[@]}" "$scratch" "$corpus" 2>&1 | tail -n 12
  rm -rf "$scratch"
done
echo "fuzz: ran $found fuzzers"
