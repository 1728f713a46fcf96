#!/bin/sh
# What the docker backend costs over plain `docker run` (issue 3). Run by hand:
#
#   tests/bench/docker_overhead.sh [LADLE_BINARY] [N]
#
# LADLE_BINARY defaults to $LADLE, else build/ladle; N (default 20) is the
# number of sequential steps. It prepares the daemon and the test image with
# tests/env/docker_setup.sh (which installs docker.io when missing), then, in
# this one invocation:
#   1. N steps of `true`, one at a time: `ladle run --backend docker -j1` on a
#      pipeline of N steps against N x `docker run --rm --network none IMAGE true`,
#      $ROUNDS times (default 3) alternated, medians compared.
#   2. 50 steps two at a time: `-j 2` against 50 plain runs through `xargs -P2`.
# Targets: per step one at a time at most 0.7x of plain docker (issue 14: the
# next steps' containers are created and started, held at a gate, while the
# previous one runs, and removed after it, docs/backends.md "Overlapped
# containers"; a step of network none skips the daemon's network set-up,
# "Network none"; the issue 3 target was 1.15x); 50 at -j2 within 1.1x. The load average is printed beside the
# figures (the machine may be shared). Every container has network "none".
# Exits 1 when a target is missed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
LADLE_BIN=${1:-${LADLE:-$root/build/ladle}}
N=${2:-20}
PAR=50
IMAGE=ladle-test-busybox:latest

[ -x "$LADLE_BIN" ] || { echo "ladle binary not found at $LADLE_BIN (pass it as the first argument)" >&2; exit 2; }
sh "$root/tests/env/docker_setup.sh" >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
calc() { awk "BEGIN { print $1 }"; }

# A pipeline of $1 steps of `true` in one stage.
pipeline() {
  dir="$work/p$1"
  mkdir -p "$dir"
  {
    echo "name: overhead"
    echo "image: $IMAGE"
    echo "stages:"
    echo "  - name: s"
    echo "    network: none"
    echo "    steps:"
    i=1
    while [ "$i" -le "$1" ]; do
      echo "      - {name: t$i, run: 'true'}"
      i=$((i + 1))
    done
  } >"$dir/ladle.yml"
  echo "$dir"
}

time_ladle() {  # steps jobs
  dir=$(pipeline "$1")
  start=$(now)
  (cd "$dir" && NO_COLOR=1 "$LADLE_BIN" --data "$work/data$1-$2" run --backend docker -j "$2" -q >/dev/null) ||
    { echo "ladle run failed" >&2; exit 1; }
  elapsed "$start" "$(now)"
}

time_plain_sequential() {  # runs
  start=$(now)
  i=0
  while [ "$i" -lt "$1" ]; do
    docker run --rm --network none "$IMAGE" true
    i=$((i + 1))
  done
  elapsed "$start" "$(now)"
}

time_plain_parallel() {  # runs
  start=$(now)
  seq "$1" | xargs -P2 -I{} docker run --rm --network none "$IMAGE" true
  elapsed "$start" "$(now)"
}

# One warm-up of each, so neither side pays for a cold daemon.
docker run --rm --network none "$IMAGE" true
time_ladle 1 1 >/dev/null

echo "docker backend overhead: $N steps of 'true' one at a time, $PAR two at a time"
echo "daemon: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'), image $IMAGE"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# The sequential case ROUNDS times (default 3), the two sides alternated, the
# medians compared: the load of a shared machine moves within minutes.
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
plain_rounds="" ladle_rounds=""
r=1
while [ "$r" -le "${ROUNDS:-3}" ]; do
  plain_rounds="$plain_rounds $(time_plain_sequential "$N")"
  ladle_rounds="$ladle_rounds $(rm -rf "$work/data$N-1"; time_ladle "$N" 1)"
  r=$((r + 1))
done
plain_seq=$(echo $plain_rounds | median)
ladle_seq=$(echo $ladle_rounds | median)
plain_par=$(time_plain_parallel "$PAR")
ladle_par=$(time_ladle "$PAR" 2)

status=0
row() {  # label plain ladle per target
  ratio=$(calc "$3 / $2")
  ok=$(calc "($ratio <= $5) ? 1 : 0")
  verdict=$([ "$ok" -eq 1 ] && echo ok || echo MISSED)
  [ "$ok" -eq 1 ] || status=1
  printf '%-24s %9.3f s %9.3f s %9.0f ms %9.0f ms %7.3fx %6.2fx  %s\n' "$1" "$2" "$3" \
    "$(calc "$2 * 1000 / $4")" "$(calc "$3 * 1000 / $4")" "$ratio" "$5" "$verdict"
}
printf '%-24s %11s %11s %12s %12s %8s %7s\n' "" "plain total" "ladle total" "plain/step" "ladle/step" "ratio" "target"
row "$N sequential (-j1)" "$plain_seq" "$ladle_seq" "$N" 0.70
row "$PAR two at a time (-j2)" "$plain_par" "$ladle_par" "$PAR" 1.10
echo "sequential rounds (s): plain$plain_rounds; ladle$ladle_rounds"
echo "load average: $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after"
exit $status
