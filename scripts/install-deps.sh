#!/bin/sh
# Installs what ladle needs to build on Debian 12, and with --test what its
# tests need too: more Debian packages, and the npm packages of the web UI's
# browser test (tests/web) and of the OpenFeature SDK test
# (tests/toggles/ofrep_sdk), into node_modules/ next to their package.json,
# where the tests look for them. Idempotent: installs only what is missing.
# apt-get's and npm's output go to the log (scripts/lib.sh).
# Usage: scripts/install-deps.sh [--test]
set -eu
cd "$(dirname "$0")/.."
. scripts/lib.sh

testing=""
[ "${1:-}" = "--test" ] && testing=1
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
BUILD_PACKAGES="build-essential cmake ninja-build ccache pkg-config git curl openssl
  libboost-dev libboost-filesystem-dev libboost-system-dev libyaml-cpp-dev
  libsqlite3-dev libcpp-httplib-dev libcurl4-openssl-dev nlohmann-json3-dev
  libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libpugixml-dev libssl-dev
  libmurmurhash-dev libcli11-dev libbenchmark-dev libarchive-dev libpq-dev"
# docker.io, busybox-static and docker-registry: the docker tests
# (tests/env/docker_setup.sh starts the daemon they use). postgresql: the
# PostgreSQL store tests, which initdb and start their own (tests/pg_util.h).
TEST_PACKAGES="clang libclang-rt-14-dev sqlite3 busybox-static procps docker.io docker-registry
  tmux openssh-server openssh-client socat prometheus postgresql
  nodejs npm chromium"
NPM_DIRS="tests/web tests/toggles/ofrep_sdk"

packages=$BUILD_PACKAGES
[ -n "$testing" ] && packages="$packages $TEST_PACKAGES"
# A Node.js installed outside Debian (nodesource, nvm) conflicts with Debian's
# npm package; any node (18 or newer) with npm will do for the tests.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  packages=$(echo "$packages" | tr ' ' '\n' | grep -vx -e nodejs -e npm | tr '\n' ' ')
fi
# shellcheck disable=SC2086
installed=" $(dpkg-query -W -f='${Package} ${db:Status-Status}\n' $packages 2>/dev/null |
  awk '$2 == "installed" {printf "%s ", $1}')"
missing=""
for p in $packages; do
  case $installed in *" $p "*) ;; *) missing="$missing $p" ;; esac
done

# Packages must not start their services: docker.io would start dockerd with
# its default bridge, docker-registry would listen on :5000 on every
# interface, postgresql its "main" cluster on :5432. A policy-rc.d that says no, for the install only (as
# tests/env/docker_setup.sh does); the tests start their own dockerd.
added_policy=""
remove_policy() {
  [ -z "$added_policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d
  added_policy=""
}
trap remove_policy EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

apt_install() {
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# scripts/install-deps.sh: no service starts while it installs\nexit 101\n' |
      $SUDO tee /usr/sbin/policy-rc.d >/dev/null && $SUDO chmod 755 /usr/sbin/policy-rc.d && added_policy=1
  fi
  $SUDO apt-get update -q &&
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# And not at the next boot either, on a machine with systemd: only the units
# of packages installed just now.
disable_services() {
  [ -d /run/systemd/system ] || return 0
  units=""
  case " $missing " in *" docker.io "*) units="docker.service docker.socket" ;; esac
  case " $missing " in *" docker-registry "*) units="$units docker-registry.service" ;; esac
  case " $missing " in *" postgresql "*) units="$units postgresql.service" ;; esac
  [ -z "$units" ] && return 0
  # shellcheck disable=SC2086
  $SUDO systemctl disable $units >> "$LADLE_LOG" 2>&1 || true
  say "not enabled at boot: $units (the tests start their own dockerd and postgres)"
}

if [ -n "$missing" ]; then
  count=$(echo $missing | wc -w)
  # shellcheck disable=SC2086
  phase "apt-get install: $count Debian packages and what they depend on" apt_install $missing
  remove_policy
  disable_services
fi

[ -n "$testing" ] || exit 0

# Whether DIR/node_modules holds the versions DIR/package.json pins.
npm_current() {
  node -e '
    const dir = require("path").resolve(process.argv[1]);
    const want = require(dir + "/package.json").dependencies || {};
    for (const [name, version] of Object.entries(want)) {
      let got = null;
      try { got = require(dir + "/node_modules/" + name + "/package.json").version; } catch (e) {}
      if (got !== version) process.exit(1);
    }' "$1" 2>/dev/null
}

stale=""
for d in $NPM_DIRS; do
  npm_current "$d" || stale="$stale $d"
done
[ -n "$stale" ] || exit 0

registry=$(npm config get registry 2>/dev/null || echo "the npm registry")
# One question to the registry first, so that a network problem is one clear
# message rather than npm's retries for each package.
if ! out=$(npm ping --fetch-retries=0 --fetch-timeout=30000 2>&1); then
  printf '%s\n' "$out" >> "$LADLE_LOG"
  why=$(printf '%s\n' "$out" | grep -m1 -E 'npm (ERR!|error) (code|errno|network)|reason:' || true)
  [ -n "$why" ] || why=$(printf '%s\n' "$out" | tail -n 1)
  echo "FAILED: the npm registry $registry does not answer: $why" >&2
  echo "  The web UI's browser test and the OpenFeature SDK test need npm packages from it (log: $LADLE_LOG)." >&2
  echo "  Behind a proxy: npm config set proxy/https-proxy; a TLS-intercepting proxy: NODE_EXTRA_CA_CERTS or npm config set cafile." >&2
  exit 3
fi

npm_install() {
  for d in $stale; do
    echo "npm install in $d" &&
      (cd "$d" && npm install --no-audit --no-fund --no-package-lock --no-update-notifier) || return 1
  done
}
phase "npm install from $registry: the packages of$stale" npm_install
