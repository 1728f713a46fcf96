#!/bin/sh
# From `ladle env NAME` to a shell prompt (issue 12, docs/spoons.md), beside
# the docker CLI doing the same by hand, in the same run. Run by hand:
#
#   tests/bench/spoon_bench.sh [LADLE_BINARY] [N]
#
# LADLE_BINARY defaults to $LADLE, else build/ladle; N (default 7) rounds,
# the median is reported. Each round is a terminal session (a pty from
# util-linux `script`) that opens the shell, which prints its prompt and
# reads `exit` (the same input for both sides):
#   stopped: a stopped spoon: `ladle env NAME --no-tmux`
#            against `docker start C && docker exec -it C sh` on the same container
#   new:     a spoon that does not exist yet: `ladle env NAME --image IMAGE --no-tmux`
#            (create, start, enter) against `docker run -d --init ... IDLE`
#            + `docker exec -it C sh`, then removed
#   tmux:    a stopped spoon entered with tmux (`ladle env NAME`, the default;
#            `exit` ends the tmux session too): for reference, no target
# Targets: stopped and new within 1.2x of docker's; new under 1 s.
# Containers have network none. Exits 1 when a target is missed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
LADLE_BIN=${1:-${LADLE:-$root/build/ladle}}
N=${2:-7}
IMAGE=ladle-test-spoon:latest
PREFIX=lbench-
IDLE="trap 'exit 0' TERM INT; while :; do sleep 3600 & wait \$!; done"

[ -x "$LADLE_BIN" ] || { echo "ladle binary not found at $LADLE_BIN (pass it as the first argument)" >&2; exit 2; }
command -v script >/dev/null || { echo "script (util-linux) is needed for a terminal" >&2; exit 2; }
sh "$root/tests/env/docker_setup.sh" >/dev/null

work=$(mktemp -d)
cleanup() {
  docker ps -aq --filter "label=ladle.spoon.prefix=$PREFIX" | xargs -r docker rm -f >/dev/null 2>&1 || true
  docker rm -f lbench-by-hand lbench-by-hand-new >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
export HOME="$work"  # no settings files of the user's

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# Seconds for one terminal session of the command line $1 that reads `exit`.
session() {
  start=$(now)
  printf 'exit\n' | script -qec "$1" /dev/null >/dev/null 2>&1 || { echo "failed: $1" >&2; exit 1; }
  elapsed "$start" "$(now)"
}

ladle_env() { echo "$LADLE_BIN env $* --prefix $PREFIX"; }

# Warm up: the image in the page cache, the first daemon calls done.
"$LADLE_BIN" env warm --image "$IMAGE" --prefix "$PREFIX" -- true >/dev/null 2>&1
docker run -d --name lbench-by-hand --network none --init "$IMAGE" sh -c "$IDLE" >/dev/null

: >"$work/stopped-ladle"; : >"$work/stopped-docker"; : >"$work/new-ladle"; : >"$work/new-docker"
: >"$work/tmux-ladle"
i=1
while [ "$i" -le "$N" ]; do
  docker stop -t 1 "${PREFIX}warm" >/dev/null
  session "$(ladle_env warm --no-tmux)" >>"$work/stopped-ladle"
  docker stop -t 1 lbench-by-hand >/dev/null
  session "docker start lbench-by-hand >/dev/null && docker exec -it lbench-by-hand sh" >>"$work/stopped-docker"

  session "$(ladle_env "new$i" --image "$IMAGE" --network none --no-tmux)" >>"$work/new-ladle"
  session "docker run -d --name lbench-by-hand-new --network none --init $IMAGE sh -c \"$IDLE\" >/dev/null && docker exec -it lbench-by-hand-new sh" >>"$work/new-docker"
  docker rm -f "${PREFIX}new$i" lbench-by-hand-new >/dev/null

  docker stop -t 1 "${PREFIX}warm" >/dev/null
  session "$(ladle_env warm)" >>"$work/tmux-ladle"
  i=$((i + 1))
done

sl=$(median <"$work/stopped-ladle"); sd=$(median <"$work/stopped-docker")
nl=$(median <"$work/new-ladle"); nd=$(median <"$work/new-docker")
tl=$(median <"$work/tmux-ladle")
echo "spoon_bench: $N rounds, medians, seconds from the command to the shell's prompt and out again"
printf '  %-34s %8s %8s %7s\n' "" ladle docker ratio
printf '  %-34s %8s %8s %7s\n' "stopped spoon (start + shell)" "$sl" "$sd" "$(ratio "$sl" "$sd")"
printf '  %-34s %8s %8s %7s\n' "new spoon (create + start + shell)" "$nl" "$nd" "$(ratio "$nl" "$nd")"
printf '  %-34s %8s %8s %7s\n' "stopped spoon, with tmux" "$tl" "-" "-"

fail=0
awk -v a="$sl" -v b="$sd" 'BEGIN { exit !(a <= 1.2 * b) }' || { echo "MISSED: stopped spoon over 1.2x docker's"; fail=1; }
awk -v a="$nl" -v b="$nd" 'BEGIN { exit !(a <= 1.2 * b) }' || { echo "MISSED: new spoon over 1.2x docker's"; fail=1; }
awk -v a="$nl" 'BEGIN { exit !(a < 1.0) }' || { echo "MISSED: new spoon not under 1 s"; fail=1; }
exit "$fail"
