#!/bin/sh
# Installs what ladle needs to build and test on Debian 12. Idempotent.
# Usage: scripts/install-deps.sh [--test]
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
BUILD_PACKAGES="build-essential cmake ninja-build ccache pkg-config git curl openssl
  libboost-dev libboost-filesystem-dev libboost-system-dev libyaml-cpp-dev
  libsqlite3-dev libcpp-httplib-dev libcurl4-openssl-dev nlohmann-json3-dev
  libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libpugixml-dev libssl-dev
  libmurmurhash-dev libcli11-dev libbenchmark-dev"
TEST_PACKAGES="clang libclang-rt-14-dev sqlite3 busybox-static procps docker.io nodejs npm chromium"
packages=$BUILD_PACKAGES
[ "${1:-}" = "--test" ] && packages="$packages $TEST_PACKAGES"
# A Node.js installed outside Debian (nodesource, nvm) conflicts with Debian's
# npm package; any node with npm will do for the OFREP SDK test.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  packages=$(echo "$packages" | tr ' ' '\n' | grep -vx -e nodejs -e npm | tr '\n' ' ')
fi
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
