#!/usr/bin/env bash
# `cpack -G DEB` builds a .deb that installs the daemon, the unit, the
# sysusers.d/tmpfiles.d files and the configuration, marks the configuration
# as a conffile, depends on the runtime libraries and carries the maintainer
# scripts. Then, as root, the package is installed with dpkg in a throwaway
# systemd-nspawn container and run through nspawn_lifecycle.sh (start,
# listeners, reload, watchdog, stop, dpkg -r). Builds into a temporary
# directory; the build tree is not touched.
#   package.sh BUILD_DIR CONFIG_FILE EXPECTED_PATH...
set -euo pipefail
build=${1:?usage: package.sh BUILD_DIR CONFIG_FILE EXPECTED_PATH...}
conffile=${2:?}
shift 2
for tool in cpack dpkg-deb dpkg-shlibdeps; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool missing (packages cmake, dpkg-dev)"; exit 1; }
done
out=$(mktemp -d /tmp/imeilock-cpack.XXXXXX)
trap 'rm -rf "$out"' EXIT
start=$(date +%s)
if ! cpack -G DEB --config "$build/CPackConfig.cmake" -B "$out" >"$out/cpack.log" 2>&1; then
  cat "$out/cpack.log"; echo "FAIL: cpack -G DEB"; exit 1
fi
deb=$(ls "$out"/*.deb)
echo "built $(basename "$deb") in $(( $(date +%s) - start ))s"
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles 2>/dev/null || true)
echo "conffiles: $conffiles"
grep -qxF "$conffile" <<<"$conffiles" || bad "$conffile is not a conffile"
# The listing is read whole first: `tar | grep -q` under pipefail fails when
# grep exits early and tar gets SIGPIPE.
control=$(dpkg-deb --ctrl-tarfile "$deb" | tar -t)
for script in postinst prerm postrm; do
  grep -qx "./$script" <<<"$control" || bad "no $script"
done

depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for lib in libc6 libstdc++6 libsystemd0 libcaf-core libyaml-cpp libprometheus-cpp-core systemd; do
  grep -q "$lib" <<<"$depends" || bad "Depends lacks $lib"
done

contents=$(dpkg-deb -c "$deb" | awk '{print $1, $NF}')
for path in "$@"; do
  grep -qE " \.${path}\$" <<<"$contents" || bad "$path is not in the package"
done
mode=$(awk -v p=".$conffile" '$2 == p {print $1}' <<<"$contents")
[[ $mode == -rw-r----- ]] || bad "$conffile has mode '$mode', want -rw-r----- (it holds secrets)"
((fails == 0)) || exit 1
echo "package contents ok: $# paths, conffile $conffile, Depends from shlibdeps"

if [[ $(id -u) -ne 0 ]] || ! command -v systemd-nspawn >/dev/null; then
  echo "NOTE: not root or no systemd-nspawn: the package was not installed in a container"
else
  "$(dirname "$0")/nspawn_lifecycle.sh" --deb "$deb" --config-dest "$conffile" ||
    { echo "FAIL: the package does not install and run under systemd"; exit 1; }
fi
echo "PASS: $(basename "$deb")"
