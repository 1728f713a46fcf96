#!/bin/sh
# A container step that prints a lot (issue 14): `ladle run --backend docker`
# of one step printing MB megabytes (default 100) against plain `docker run`
# of the same image and command into /dev/null, and beside them `docker run
# -d` + `docker logs -f` (the daemon's log path, which ladle followed before
# it read the attach stream). Run by hand:
#
#   tests/bench/docker_output_bench.sh [LADLE_BINARY] [MB] [ROUNDS]
#
# LADLE_BINARY defaults to $LADLE, else build/ladle; ROUNDS (default 3)
# alternates the sides so that a load change hits both; the medians are
# compared. The machine is shared: ladle's own CPU-seconds are printed too.
# Prepares the daemon and the image with tests/env/docker_setup.sh. Target:
# ladle at most 1.2x plain `docker run`; exits 1 when missed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
LADLE_BIN=${1:-${LADLE:-$root/build/ladle}}
case "$LADLE_BIN" in /*) ;; *) LADLE_BIN="$(pwd)/$LADLE_BIN" ;; esac
MB=${2:-100}
ROUNDS=${3:-3}
IMAGE=ladle-test-busybox:latest
TARGET=1.2

[ -x "$LADLE_BIN" ] || { echo "ladle binary not found at $LADLE_BIN (pass it as the first argument)" >&2; exit 2; }
sh "$root/tests/env/docker_setup.sh" >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

LINE=0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456
CMD="yes $LINE | head -c $((MB * 1024 * 1024))"
mkdir -p "$work/p"
cat >"$work/p/ladle.yml" <<EOF
name: output
image: $IMAGE
stages:
  - name: s
    network: none
    steps:
      - {name: print, run: '$CMD'}
EOF

plain() {
  start=$(now)
  docker run --rm --network none "$IMAGE" sh -c "$CMD" >/dev/null
  elapsed "$start" "$(now)"
}
logs_follow() {
  start=$(now)
  id=$(docker run -d --network none "$IMAGE" sh -c "$CMD")
  docker logs -f "$id" >/dev/null 2>&1
  docker rm -f "$id" >/dev/null
  elapsed "$start" "$(now)"
}
# Wall seconds, and ladle's CPU-seconds (user + system) in $work/cpu.
ladle_run() {
  rm -rf "$work/data"
  start=$(now)
  (cd "$work/p" && NO_COLOR=1 /usr/bin/time -f '%U %S' -o "$work/time" \
    "$LADLE_BIN" --data "$work/data" run --backend docker -j 1 -q >/dev/null) ||
    { echo "ladle run failed" >&2; exit 1; }
  t=$(elapsed "$start" "$(now)")
  awk '{ printf "%.2f ", $1 + $2 }' "$work/time" >>"$work/cpu"
  size=$(wc -c <"$(find "$work/data/logs" -name print.log)")
  [ "$size" -ge $((MB * 1024 * 1024)) ] || { echo "the step log has $size bytes, fewer than printed" >&2; exit 1; }
  echo "$t"
}
command -v /usr/bin/time >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null

echo "docker step printing $MB MB: ladle against plain docker run, $ROUNDS rounds alternated"
echo "daemon: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'), image $IMAGE; load: $(cut -d' ' -f1-3 /proc/loadavg)"
plain >/dev/null  # warm-up
: >"$work/cpu"
p="" l="" f=""
i=0
while [ "$i" -lt "$ROUNDS" ]; do
  p="$p $(plain)"
  l="$l $(ladle_run)"
  f="$f $(logs_follow)"
  i=$((i + 1))
done
pm=$(echo "$p" | median); lm=$(echo "$l" | median); fm=$(echo "$f" | median)
ratio=$(awk -v a="$lm" -v b="$pm" 'BEGIN { printf "%.2f", a / b }')
printf '%-34s %8s s   (runs:%s)\n' "plain docker run" "$pm" "$p"
printf '%-34s %8s s   (runs:%s; ladle CPU-s: %s)\n' "ladle run --backend docker" "$lm" "$l" "$(cat "$work/cpu")"
printf '%-34s %8s s   (runs:%s)\n' "docker run -d + docker logs -f" "$fm" "$f"
echo "ladle / plain docker run: ${ratio}x (target <= ${TARGET}x); load after: $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v r="$ratio" -v t="$TARGET" 'BEGIN { exit !(r <= t) }'
