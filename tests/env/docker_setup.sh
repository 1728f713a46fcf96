#!/bin/sh
# Prepares a Docker daemon for ladle's docker tests (the ctest fixture
# "docker"; see tests/CMakeLists.txt). Idempotent; safe to run by hand.
#
# 1. Installs docker.io, busybox-static and docker-registry when missing.
# 2. Starts dockerd when no daemon answers (and DOCKER_HOST is unset or the
#    default socket): no bridge, no iptables, no masquerading, so containers
#    have no network but "none" or "host" and nothing reaches other machines
#    (docs/design.md "Tests on this machine"). Log: /tmp/ladle-dockerd.log.
#    It is left running for the next run, and says so (pid, log, how to stop
#    it) here and in /tmp/ladle-dockerd.started, which scripts/test.sh prints.
# 3. Builds the test image ladle-test-busybox:latest with `docker import` from
#    a busybox-static root file system (no registry is reachable here), and
#    ladle-test-spoon:latest, the same with the host's tmux (the spoon tests).
#
# Exit 0 when the daemon answers and the image exists; non-zero otherwise,
# with the reason on stderr.
set -eu

IMAGE=ladle-test-busybox:latest
DEFAULT_HOST=unix:///var/run/docker.sock
LOG=/tmp/ladle-dockerd.log
STARTED=/tmp/ladle-dockerd.started
PIDFILE=/var/run/docker.pid
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

say() { echo "docker_setup: $*"; }
die() { echo "docker_setup: $*" >&2; exit 1; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

install_packages() {
  missing=""
  for p in docker.io busybox-static docker-registry; do
    installed "$p" || missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  say "installing:$missing"
  # Packages must not start their services (docker-registry would listen on
  # :5000, every interface): a policy-rc.d that says no, for the install only.
  added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  status=0
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    --no-install-recommends $missing || status=$?
  [ -n "$added_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d
  [ "$status" -eq 0 ] || die "apt-get install$missing failed"
}

answers() { docker version >/dev/null 2>&1; }

start_dockerd() {
  host="${DOCKER_HOST:-$DEFAULT_HOST}"
  [ "$host" = "$DEFAULT_HOST" ] ||
    die "no docker daemon answers at DOCKER_HOST=$host (start it, or unset DOCKER_HOST)"
  command -v dockerd >/dev/null || die "dockerd not found (is docker.io installed?)"
  say "starting dockerd (log: $LOG)"
  # setsid: the daemon outlives this script and ctest's process group.
  $SUDO setsid dockerd --bridge=none --iptables=false --ip-masq=false >"$LOG" 2>&1 </dev/null &
  i=0
  while ! answers; do
    i=$((i + 1))
    [ "$i" -le 60 ] || { tail -20 "$LOG" >&2; die "dockerd did not answer within 30 s (log: $LOG)"; }
    sleep 0.5
  done
  pid=$(cat "$PIDFILE" 2>/dev/null || echo "\$(cat $PIDFILE)")
  note="docker_setup: started dockerd (pid $pid, no bridge, log: $LOG) and left it running for the next run; stop it with: ${SUDO:+$SUDO }kill $pid"
  echo "$note"
  echo "$note" > "$STARTED" 2>/dev/null || true
}

# A root file system of busybox and one symlink per applet it has.
build_image() {
  busybox=$(command -v busybox || true)
  [ -x /bin/busybox ] && busybox=/bin/busybox
  [ -n "$busybox" ] || die "busybox not found (install busybox-static)"
  ldd "$busybox" >/dev/null 2>&1 && die "$busybox is dynamically linked; install busybox-static"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/workspace" "$root/root"
  chmod 1777 "$root/tmp"
  cp "$busybox" "$root/bin/busybox"
  for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
  echo "root:x:0:" >"$root/etc/group"
  say "building $IMAGE"
  tar -C "$root" -cf - . | docker import --change 'ENV PATH=/bin' - "$IMAGE" >/dev/null
}

# The spoon test image (tests/docker/spoon_test.cc): busybox and the host's
# tmux with the libraries ldd names, its terminfo and a UTF-8 locale.
build_spoon_image() {
  busybox=/bin/busybox
  [ -x "$busybox" ] || busybox=$(command -v busybox)
  tmux=$(command -v tmux || true)
  [ -n "$tmux" ] || die "tmux not found (install tmux: scripts/install-deps.sh --test)"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/usr/bin" "$root/tmp" "$root/etc" "$root/root" "$root/usr/lib/locale" "$root/lib"
  chmod 1777 "$root/tmp"
  cp "$busybox" "$root/bin/busybox"
  for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  cp "$tmux" "$root/usr/bin/tmux"
  for lib in $(ldd "$tmux" | awk '/=>/ { print $3 } !/=>/ && /^\t\// { print $1 }'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  cp -r /lib/terminfo "$root/lib/terminfo"
  [ -d /usr/lib/locale/C.utf8 ] && cp -r /usr/lib/locale/C.utf8 "$root/usr/lib/locale/C.utf8"
  echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
  echo "root:x:0:" >"$root/etc/group"
  say "building $SPOON_IMAGE"
  tar -C "$root" -cf - . | docker import --change 'ENV PATH=/usr/bin:/bin' --change 'ENV LANG=C.UTF-8' \
    - "$SPOON_IMAGE" >/dev/null
  rm -rf "$root"
  trap - EXIT
}

install_packages
answers || start_dockerd
docker image inspect "$IMAGE" >/dev/null 2>&1 || build_image
SPOON_IMAGE=ladle-test-spoon:latest
docker image inspect "$SPOON_IMAGE" >/dev/null 2>&1 || build_spoon_image
say "ready: $(docker version --format 'daemon {{.Server.Version}}, API {{.Server.APIVersion}}'), image $IMAGE"
