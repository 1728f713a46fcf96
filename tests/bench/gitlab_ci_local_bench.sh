#!/bin/sh
# The same 10-job, 3-stage pipeline in containers: ladle's docker backend
# against gitlab-ci-local's docker executor, same image, same commands, in
# the same run (issue 14; target: ladle at least 4x faster). Run by hand:
#
#   tests/bench/gitlab_ci_local_bench.sh [LADLE_BINARY] [ROUNDS]
#
# LADLE_BINARY defaults to $LADLE, else build/ladle; ROUNDS (default 3) runs
# of each side, alternated; medians compared.
#
# - The image is the test image (busybox, `docker import`ed by
#   tests/env/docker_setup.sh); no registry is reachable here.
# - gitlab-ci-local (GCL_VERSION, default 4.55.0: newer ones need Node 22) is
#   installed from npm into $GCL_PREFIX (default /tmp/ladle-bench-gcl, reused
#   when it is there). It runs with --pull-policy if-not-present (the job
#   image is found locally) and --network none. Its docker executor also
#   runs a helper image, docker.io/firecow/gitlab-ci-local-util, to chown the
#   job's build volume: it cannot be pulled here, so this script tags the
#   test image under that name (busybox's chown/chmod are all the helper does
#   for jobs without artifacts or caches) and removes the tag afterwards if
#   it made it. If gitlab-ci-local still fails, the script says so and
#   measures ladle against `docker run --rm` of the 10 jobs in sequence.
# - Jobs per stage at once: gitlab-ci-local runs every job of a stage at
#   once (no --concurrency: 4, 3, 3); ladle gets -j 4, the most of them. A
#   second row runs both one job at a time (--concurrency 1, -j 1).
# Prints the load average beside the figures (the machine is shared).
# Exits 1 when the target is missed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
LADLE_BIN=${1:-${LADLE:-$root/build/ladle}}
ROUNDS=${2:-3}
IMAGE=ladle-test-busybox:latest
UTIL=docker.io/firecow/gitlab-ci-local-util:latest
GCL_VERSION=${GCL_VERSION:-4.55.0}
GCL_PREFIX=${GCL_PREFIX:-/tmp/ladle-bench-gcl}
TARGET=4

[ -x "$LADLE_BIN" ] || { echo "ladle binary not found at $LADLE_BIN (pass it as the first argument)" >&2; exit 2; }
sh "$root/tests/env/docker_setup.sh" >/dev/null
command -v rsync >/dev/null || apt-get install -y -qq rsync >/dev/null
command -v git >/dev/null || apt-get install -y -qq git >/dev/null
if [ ! -x "$GCL_PREFIX/node_modules/.bin/gitlab-ci-local" ]; then
  mkdir -p "$GCL_PREFIX"
  npm install --prefix "$GCL_PREFIX" --silent --no-audit --no-fund "gitlab-ci-local@$GCL_VERSION" >/dev/null
fi
GCL="$GCL_PREFIX/node_modules/.bin/gitlab-ci-local"

work=$(mktemp -d /tmp/ladle-bench-gcl-XXXXXX)
tagged=""
cleanup() {
  [ -z "$tagged" ] || docker rmi "$UTIL" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
if ! docker image inspect "$UTIL" >/dev/null 2>&1; then
  docker tag "$IMAGE" "$UTIL" && tagged=1
fi

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# Each job prints a line and writes a file into the workspace (the build dir).
JOBS="a:build b:build c:build d:build e:test f:test g:test h:deploy i:deploy j:deploy"
script_of() { echo "echo job $1; echo $1 > out-$1.txt"; }

mkdir -p "$work/src" && cd "$work/src"
{
  echo "name: ten"
  echo "image: $IMAGE"
  echo "stages:"
  for stage in build test deploy; do
    echo "  - name: $stage"
    echo "    network: none"
    echo "    steps:"
    for j in $JOBS; do
      [ "${j#*:}" = "$stage" ] || continue
      echo "      - {name: ${j%%:*}, run: '$(script_of "${j%%:*}")'}"
    done
  done
} >ladle.yml
{
  echo "stages: [build, test, deploy]"
  for j in $JOBS; do
    printf '%s:\n  stage: %s\n  image: %s\n  script: ["%s"]\n' "${j%%:*}" "${j#*:}" "$IMAGE" "$(script_of "${j%%:*}")"
  done
} >.gitlab-ci.yml
git init -q -b main && git add -A && git -c user.email=b@b -c user.name=b commit -qm bench

time_ladle() {  # jobs round
  start=$(now)
  NO_COLOR=1 "$LADLE_BIN" --data "$work/data-$1-$2" run --backend docker -j "$1" -q >/dev/null 2>"$work/ladle.err" ||
    { cat "$work/ladle.err" >&2; echo "ladle run failed" >&2; exit 1; }
  elapsed "$start" "$(now)"
}
time_gcl() {  # concurrency ("" = gitlab-ci-local's default)
  start=$(now)
  # shellcheck disable=SC2086
  "$GCL" --pull-policy if-not-present --network none ${1:+--concurrency $1} >"$work/gcl.out" 2>&1 || return 1
  end=$(now)
  # Every job ran its script in its container ("a > job a").
  [ "$(sed 's/\x1b\[[0-9;]*m//g' "$work/gcl.out" | grep -c '^[a-j] > job [a-j]$')" -eq 10 ] || return 1
  elapsed "$start" "$end"
}
time_docker_sequence() {
  start=$(now)
  for j in $JOBS; do
    docker run --rm --network none -v "$work/src:/workspace" -w /workspace "$IMAGE" sh -e -c "$(script_of "${j%%:*}")" >/dev/null
  done
  elapsed "$start" "$(now)"
}

echo "10 jobs in 3 stages (4, 3, 3) in containers: ladle $("$LADLE_BIN" --version 2>/dev/null | head -1) against gitlab-ci-local $GCL_VERSION"
echo "daemon: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'), image $IMAGE, $ROUNDS rounds alternated, medians"
echo "load average before: $(load)"

# Warm-up of each side (and the check that gitlab-ci-local runs at all).
time_ladle 4 0 >/dev/null
reference=gcl
if ! time_gcl "" >/dev/null; then
  echo "gitlab-ci-local cannot run here without pulling or failed; its output:"
  sed 's/^/  | /' "$work/gcl.out" | tail -20
  echo "measuring against \`docker run --rm\` of the 10 jobs in sequence instead"
  reference=docker
fi

status=0
row() {  # label reference ladle
  ratio=$(awk -v r="$2" -v l="$3" 'BEGIN { printf "%.1f", r / l }')
  ok=$(awk -v x="$ratio" -v t="$TARGET" 'BEGIN { print (x >= t) ? 1 : 0 }')
  [ "$ok" -eq 1 ] || status=1
  printf '%-52s %9.2f s %9.2f s %7sx  (target >= %sx) %s\n' "$1" "$2" "$3" "$ratio" "$TARGET" \
    "$([ "$ok" -eq 1 ] && echo ok || echo MISSED)"
}

if [ "$reference" = gcl ]; then
  for mode in all one; do
    ref_times="" ladle_times=""
    i=1
    while [ "$i" -le "$ROUNDS" ]; do
      if [ "$mode" = all ]; then
        ref_times="$ref_times $(time_gcl "")" || { echo "gitlab-ci-local failed"; sed 's/^/  | /' "$work/gcl.out" | tail -20; exit 1; }
        ladle_times="$ladle_times $(time_ladle 4 "$i")"
      else
        ref_times="$ref_times $(time_gcl 1)" || { echo "gitlab-ci-local failed"; sed 's/^/  | /' "$work/gcl.out" | tail -20; exit 1; }
        ladle_times="$ladle_times $(time_ladle 1 "$i")"
      fi
      i=$((i + 1))
    done
    eval "ref_$mode=\$(echo \$ref_times | median); ladle_$mode=\$(echo \$ladle_times | median)"
    eval "rounds_$mode=\"gitlab-ci-local:\$ref_times s; ladle:\$ladle_times s\""
  done
  printf '%-52s %11s %11s %8s\n' "" "gitlab-ci-l" "ladle" "speed-up"
  row "a stage's jobs at once (gcl default; ladle -j 4)" "$ref_all" "$ladle_all"
  row "one job at a time (--concurrency 1; ladle -j 1)" "$ref_one" "$ladle_one"
  echo "rounds, at once: $rounds_all"
  echo "rounds, one at a time: $rounds_one"
else
  ref_times="" ladle_times=""
  i=1
  while [ "$i" -le "$ROUNDS" ]; do
    ref_times="$ref_times $(time_docker_sequence)"
    ladle_times="$ladle_times $(time_ladle 1 "$i")"
    i=$((i + 1))
  done
  printf '%-52s %11s %11s %8s\n' "" "docker run" "ladle" "speed-up"
  row "10 jobs in sequence (docker run --rm; ladle -j 1)" "$(echo $ref_times | median)" "$(echo $ladle_times | median)"
  echo "rounds: docker run:$ref_times s; ladle:$ladle_times s"
fi
echo "load average after: $(load)"
exit $status
