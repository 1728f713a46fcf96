#!/bin/sh
# A step with a PostgreSQL-like service (docs/pipeline.md "Services"): the
# time from start to the step's first line, through `ladle run` against the
# same two containers started by hand with the docker CLI, in this one run:
#
#   tests/bench/services_bench.sh [LADLE_BINARY] [N]
#
# LADLE_BINARY defaults to $LADLE, else build/ladle; N (default 7) rounds,
# the median reported. The service is busybox `httpd -f -p 5432` in the test
# image (listens on a port, as PostgreSQL would); the step prints a line and
# then talks to it as db:5432.
#   ladle: `ladle run` of a one-step pipeline with the service (port 5432,
#          readiness on that port), from the command's start until the step's
#          first line reaches ladle's output.
#   by hand: `docker run -d --network none --add-host db:127.0.0.1 IMAGE httpd ...`
#          then `docker run --rm --network container:ID IMAGE sh -c STEP`, from
#          the first command's start until the step's first line arrives.
# Target: ladle within 1.2x. Every container has network "none" (loopback
# only). Exits 1 when the target is missed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
LADLE_BIN=${1:-${LADLE:-$root/build/ladle}}
N=${2:-7}
IMAGE=ladle-test-busybox:latest
STEP="echo FIRST-LINE; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc db 5432 | head -1"

[ -x "$LADLE_BIN" ] || { echo "ladle binary not found at $LADLE_BIN (pass it as the first argument)" >&2; exit 2; }
sh "$root/tests/env/docker_setup.sh" >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# Reads lines; writes the time the first line with FIRST-LINE arrived to $1.
stamp_first() {
  while IFS= read -r line; do
    case "$line" in *FIRST-LINE*) [ -s "$1" ] || now >"$1" ;; esac
  done
}

mkdir -p "$work/src"
cat >"$work/src/ladle.yml" <<EOF
name: services-bench
image: $IMAGE
stages:
  - name: s
    network: none
    steps:
      - name: step
        run: "$(echo "$STEP" | sed 's/\\/\\\\/g; s/"/\\"/g')"
        services:
          - {name: db, image: $IMAGE, command: 'httpd -f -p 5432', port: 5432}
EOF

ladle_once() {  # round
  t="$work/ladle-$1"
  : >"$t"
  start=$(now)
  (cd "$work/src" && NO_COLOR=1 "$LADLE_BIN" --data "$work/data" run --backend docker 2>&1) | stamp_first "$t"
  [ -s "$t" ] || { echo "ladle: the step printed no FIRST-LINE" >&2; exit 1; }
  calc "($(cat "$t") - $start) * 1000"
}

hand_once() {  # round
  t="$work/hand-$1"
  : >"$t"
  start=$(now)
  {
    id=$(docker run -d --network none --add-host db:127.0.0.1 "$IMAGE" httpd -f -p 5432)
    docker run --rm --network "container:$id" "$IMAGE" sh -c "$STEP" 2>&1
    docker rm -f "$id" >/dev/null
  } | stamp_first "$t"
  [ -s "$t" ] || { echo "by hand: the step printed no FIRST-LINE" >&2; exit 1; }
  calc "($(cat "$t") - $start) * 1000"
}

# A warm-up of each: neither side pays for a cold daemon or page cache.
ladle_once 0 >/dev/null
hand_once 0 >/dev/null
i=1
while [ "$i" -le "$N" ]; do  # interleaved, so load changes hit both
  hand_once "$i" >>"$work/hand.ms"
  ladle_once "$i" >>"$work/ladle.ms"
  i=$((i + 1))
done
hand=$(median <"$work/hand.ms")
ladle=$(median <"$work/ladle.ms")
ratio=$(calc "$ladle / $hand")
ok=$(calc "($ratio <= 1.2) ? 1 : 0")

echo "a step with one service listening on a port: start to the step's first line, median of $N"
echo "daemon: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'), image $IMAGE"
printf '%-34s %12s %12s %8s %7s\n' "" "docker CLI" "ladle run" "ratio" "target"
printf '%-34s %9.0f ms %9.0f ms %7.2fx %6.1fx  %s\n' "service + step, to first line" "$hand" "$ladle" \
  "$ratio" 1.2 "$([ "$ok" -eq 1 ] && echo ok || echo MISSED)"
echo "rounds (ms): docker CLI $(tr '\n' ' ' <"$work/hand.ms"); ladle $(tr '\n' ' ' <"$work/ladle.ms")"
[ "$ok" -eq 1 ]
