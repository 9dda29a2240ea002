#!/usr/bin/env bash
# imeilockd --check-config: 0 for the shipped example, 78 (EX_CONFIG) with
# the key path and line for a bad file; --version and --help answer.
set -euo pipefail
bin=$1
example=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

out=$("$bin" --check-config "$example") || fail "example rejected: $out"
[[ $out == *"configuration is valid"* ]] || fail "unexpected output: $out"

printf 'daemon:\n  workers: 2\n  log_levl: debug\n' > "$tmp/typo.yaml"
set +e; out=$("$bin" --check-config "$tmp/typo.yaml" 2>&1); rc=$?; set -e
[[ $rc -eq 78 ]] || fail "typo: exit $rc, want 78"
[[ $out == *"line 3: daemon.log_levl: unknown key"* ]] || fail "typo message: $out"

printf 'metrics:\n  listen: 127.0.0.1:99999\n' > "$tmp/range.yaml"
set +e; out=$("$bin" --check-config "$tmp/range.yaml" 2>&1); rc=$?; set -e
[[ $rc -eq 78 ]] || fail "bad port: exit $rc, want 78"
[[ $out == *"line 2: metrics.listen"* ]] || fail "bad port message: $out"

printf 'daemon: [1, 2\n' > "$tmp/syntax.yaml"
set +e; out=$("$bin" --check-config "$tmp/syntax.yaml" 2>&1); rc=$?; set -e
[[ $rc -eq 78 && $out == *"YAML syntax error"* ]] || fail "syntax: exit $rc: $out"

set +e; "$bin" --check-config "$tmp/missing.yaml" >/dev/null 2>&1; rc=$?; set -e
[[ $rc -eq 78 ]] || fail "missing file: exit $rc, want 78"

set +e; "$bin" --bogus >/dev/null 2>&1; rc=$?; set -e
[[ $rc -eq 64 ]] || fail "unknown flag: exit $rc, want 64"

"$bin" --version | grep -q '^imeilockd [0-9]' || fail "--version"
"$bin" --help | grep -q -- '--check-config' || fail "--help"
echo "ok"
