#!/usr/bin/env bash
# Installs, with apt, exactly the Debian packages imeilockd's build and tests need
# that are not installed yet. Safe to run any number of times.
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh --build  only what building and running the daemon needs
set -euo pipefail

build_pkgs=(
  build-essential cmake ninja-build pkg-config ccache file
  libcaf-dev libboost-dev libyaml-cpp-dev prometheus-cpp-dev
  libsqlite3-dev libpq-dev libsystemd-dev nlohmann-json3-dev libssl-dev
)
test_pkgs=(
  catch2 clang libclang-rt-14-dev sqlite3 curl python3 python3-pyrad
  freeradius-utils freeradius erlang-base erlang-diameter erlang-dev
  freediameterd libfreediameter-dev tshark prometheus systemd-container
  iproute2 procps chromium python3-yaml openssl postgresql-15
)

pkgs=("${build_pkgs[@]}")
[[ "${1:-}" == "--build" ]] || pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
