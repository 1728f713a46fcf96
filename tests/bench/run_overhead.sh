#!/bin/sh
# Per-step overhead of `ladle run` on the local backend, side by side with its
# references, measured in the same run (issue 2):
#   1. 200 `true` steps through ladle against 200 `sh -c true` forks from one process;
#   2. a 10-job, 3-stage trivial pipeline through ladle against gitlab-ci-local's
#      shell executor (installed here from npm; it needs rsync and git).
# Usage: tests/bench/run_overhead.sh [BUILD_DIR]   (default: build)
#   LADLE_BENCH_STEPS_ONLY=1  only part 1 (the per-step figures), for a quick
#                             look on a busy machine
# Part 1 prints, per step, ladle's wall and CPU time beside one `sh -c true`
# fork's (the reference), their difference against the target (<= 1 ms,
# issue 14), and the same once the run's fixed start-up cost (a 1-step
# pipeline: git snapshot of the tree, the store) is taken out.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$(pwd)/$BUILD" ;; esac
LADLE="$BUILD/ladle"
[ -x "$LADLE" ] || { echo "build ladle first (scripts/build.sh)"; exit 2; }
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine >/dev/null
command -v jq >/dev/null || apt-get install -y -qq jq >/dev/null
[ -x /usr/bin/time ] || apt-get install -y -qq time >/dev/null
command -v rsync >/dev/null || apt-get install -y -qq rsync >/dev/null
GCL_VERSION=4.55.0
GCL_DIR=/tmp/ladle-bench-gcl
if [ ! -x "$GCL_DIR/node_modules/.bin/gitlab-ci-local" ]; then
  mkdir -p "$GCL_DIR" && (cd "$GCL_DIR" && npm install --silent --no-audit --no-fund "gitlab-ci-local@$GCL_VERSION" >/dev/null)
fi
GCL="$GCL_DIR/node_modules/.bin/gitlab-ci-local"

work=$(mktemp -d /tmp/ladle-bench-XXXXXX)
# LADLE_BENCH_DATA_ROOT: where part 1's data dirs (store, logs, workspaces)
# go; default beside the rest, in /tmp. See the note on ext4 below.
data=$(mktemp -d "${LADLE_BENCH_DATA_ROOT:-$work}/ladle-bench-data-XXXXXX")
trap 'rm -rf "$work" "$data"' EXIT

# 1. 200 sequential `true` steps.
mkdir -p "$work/steps" && cd "$work/steps"
{ echo "name: overhead"; echo "stages:"; echo "  - name: s"; echo "    steps:"
  i=0; while [ $i -lt 200 ]; do echo "      - {name: t$i, run: 'true'}"; i=$((i+1)); done; } > ladle.yml
git init -q -b main && git add -A && git -c user.email=b@b -c user.name=b commit -qm bench
mkdir -p "$work/one" && (cd "$work/one" &&
  printf 'name: one\nstages:\n  - name: s\n    steps:\n      - {name: t0, run: "true"}\n' > ladle.yml &&
  git init -q -b main && git add -A && git -c user.email=b@b -c user.name=b commit -qm bench)
# The three alternate, round after round (LADLE_BENCH_ROUNDS, default 9),
# so that a machine whose speed drifts (shared cores) weighs on each alike;
# each figure is the median of its rounds. Every run is timed by
# /usr/bin/time: wall, and CPU-seconds (user + system, children included).
# The two ladle pipelines keep a data dir each (made by a warm-up run), and
# nothing is deleted until the end. Each step's log is a new file: on an
# ext4 without a journal (this VM's root) the kernel then skips every inode
# freed in the last seconds to minutes (find_inode_bit, recently_deleted),
# so the cost of a step moves with what else on the machine deletes files
# (builds, tests, the last run of this script). LADLE_BENCH_DATA_ROOT=/dev/shm
# measures ladle without that.
rounds=${LADLE_BENCH_ROUNDS:-9}
time_of() {  # appends "wall cpu" in seconds
  out=$1; shift
  /usr/bin/time -f "%e %U %S" -o "$work/t" "$@" >/dev/null 2>&1
  awk '{printf "%.3f %.3f\n", $1, $2 + $3}' "$work/t" >> "$out"
}
: > "$work/r.ladle"; : > "$work/r.fork"; : > "$work/r.one"
"$LADLE" --data "$data/data1" run --backend local -j 1 -q >/dev/null 2>&1  # warm-up: store, caches
"$LADLE" --data "$data/data0" run --backend local -j 1 -q "$work/one/ladle.yml" >/dev/null 2>&1
r=0
while [ $r -lt "$rounds" ]; do
  time_of "$work/r.ladle" "$LADLE" --data "$data/data1" run --backend local -j 1 -q
  time_of "$work/r.fork" sh -c 'i=0; while [ $i -lt 200 ]; do sh -c true; i=$((i+1)); done'
  time_of "$work/r.one" "$LADLE" --data "$data/data0" run --backend local -j 1 -q "$work/one/ladle.yml"
  r=$((r + 1))
done
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
range() { sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.2f-%.2f", lo, hi}'; }
ladle_ms=$(cut -d' ' -f1 "$work/r.ladle" | median | awk '{print $1 * 1000}')
fork_ms=$(cut -d' ' -f1 "$work/r.fork" | median | awk '{print $1 * 1000}')
one_ms=$(cut -d' ' -f1 "$work/r.one" | median | awk '{print $1 * 1000}')
ladle_cpu=$(cut -d' ' -f2 "$work/r.ladle" | median)
fork_cpu=$(cut -d' ' -f2 "$work/r.fork" | median)
one_cpu=$(cut -d' ' -f2 "$work/r.one" | median)
# The overheads of each round, from runs measured next to each other (the
# machine's speed drifts less within a round than between rounds); the
# figure is their median, beside their range. Per step, in ms: whole run
# (wall, CPU), then beyond the run's fixed start-up (a 1-step run, less its
# one fork, taken out).
paste -d' ' "$work/r.ladle" "$work/r.fork" "$work/r.one" | awk '{
  printf "%.3f %.3f %.3f %.3f\n", ($1 - $3) * 1000 / 200, ($2 - $4) * 1000 / 200,
    ($1 - $5) * 1000 / 199 - $3 * 1000 / 200, ($2 - $6) * 1000 / 199 - $4 * 1000 / 200 }' > "$work/r.over"
over() { cut -d' ' -f"$1" "$work/r.over" | median; }
spread() { cut -d' ' -f"$1" "$work/r.over" | range; }
load_steps=$(cut -d' ' -f1-3 /proc/loadavg)
per_step_table() {
  awk -v l="$ladle_ms" -v f="$fork_ms" -v o="$one_ms" -v lc="$ladle_cpu" -v fc="$fork_cpu" -v oc="$one_cpu" -v rounds="$rounds" \
      -v w="$(over 1)" -v c="$(over 2)" -v wm="$(over 3)" -v cm="$(over 4)" \
      -v sw="$(spread 1)" -v sc="$(spread 2)" -v swm="$(spread 3)" -v scm="$(spread 4)" 'BEGIN {
    printf "%-42s %9s %11s %9s %-12s %s\n", "per step (200 true steps, -j 1)", "ladle", "sh -c true", "overhead", "(rounds)", "target <= 1 ms"
    printf "%-42s %7.2fms %9.2fms %7.2fms %-12s %s\n", "  wall, whole run / 200", l / 200, f / 200, w, sw, (w <= 1 ? "PASS" : "FAIL")
    printf "%-42s %7.2fms %9.2fms %7.2fms %-12s %s\n", "  CPU, whole run / 200", lc * 1000 / 200, fc * 1000 / 200, c, sc, (c <= 1 ? "PASS" : "FAIL")
    printf "%-42s %7.2fms %9.2fms %7.2fms %-12s %s\n", "  wall, beyond a 1-step run / 199", (l - o) / 199, f / 200, wm, swm, (wm <= 1 ? "PASS" : "FAIL")
    printf "%-42s %7.2fms %9.2fms %7.2fms %-12s %s\n", "  CPU, beyond a 1-step run / 199", (lc - oc) * 1000 / 199, fc * 1000 / 200, cm, scm, (cm <= 1 ? "PASS" : "FAIL")
    printf "%-42s %7.0fms %9s CPU %.3fs\n", "  a 1-step run (fixed start-up + one step)", o, "", oc
    printf "%-42s %s\n", "  (medians of rounds, alternated; overheads", rounds " rounds, median of each round'"'"'s own)"
  }'
}
if [ -n "${LADLE_BENCH_STEPS_ONLY:-}" ]; then
  echo "load average: $load_steps; part 1's data dirs on $(findmnt -no FSTYPE -T "$data" 2>/dev/null || stat -f -c %T "$data")"
  per_step_table
  exit 0
fi

# 2. 10 jobs in 3 stages, ladle against gitlab-ci-local (shell executor).
mkdir -p "$work/ten" && cd "$work/ten"
cat > ladle.yml <<'YML'
name: ten
stages:
  - name: build
    steps: [{name: a, run: "true"}, {name: b, run: "true"}, {name: c, run: "true"}, {name: d, run: "true"}]
  - name: test
    steps: [{name: e, run: "true"}, {name: f, run: "true"}, {name: g, run: "true"}]
  - name: deploy
    steps: [{name: h, run: "true"}, {name: i, run: "true"}, {name: j, run: "true"}]
YML
{ echo "stages: [build, test, deploy]"
  for j in a b c d; do printf '%s:\n  stage: build\n  script: ["true"]\n' $j; done
  for j in e f g; do printf '%s:\n  stage: test\n  script: ["true"]\n' $j; done
  for j in h i j; do printf '%s:\n  stage: deploy\n  script: ["true"]\n' $j; done; } > .gitlab-ci.yml
git init -q -b main && git add -A && git -c user.email=b@b -c user.name=b commit -qm bench
hyperfine -N --warmup 1 --runs 5 --export-json "$work/ten.json" \
  "$LADLE --data $work/data2 run --backend local -q" \
  "$GCL --concurrency 4" >/dev/null
ten_ladle_ms=$(jq -r '.results[0].mean*1000' "$work/ten.json")
ten_gcl_ms=$(jq -r '.results[1].mean*1000' "$work/ten.json")

# 3. A step printing 200 MB to stdout: ladle's peak memory and the log's write rate.
mkdir -p "$work/big" && cd "$work/big"
cat > ladle.yml <<'YML'
name: big
stages:
  - name: s
    steps:
      - name: print
        run: yes 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' | head -c 200000000
YML
/usr/bin/time -f "%M %e" -o "$work/big.time" "$LADLE" --data "$work/data3" run --backend local -q >/dev/null
big_rss_mb=$(awk '{printf "%.1f", $1/1024}' "$work/big.time")
big_s=$(awk '{print $2}' "$work/big.time")
yes_s=$( { /usr/bin/time -f "%e" sh -c "yes 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' | head -c 200000000 > /dev/null"; } 2>&1 )
log_bytes=$(stat -c %s "$work/data3/logs/1/s/print.log")

echo "load average: $load_steps (part 1), $(cut -d' ' -f1-3 /proc/loadavg) (end)"
per_step_table
awk -v lc="$ladle_cpu" -v fc="$fork_cpu" -v l="$ladle_ms" -v f="$fork_ms" -v tl="$ten_ladle_ms" -v tg="$ten_gcl_ms" -v rss="$big_rss_mb" -v bs="$big_s" -v ys="$yes_s" -v lb="$log_bytes" 'BEGIN {
  printf "%-46s %10s %12s %s\n", "benchmark", "ladle", "reference", "result"
  printf "%-46s %8.0fms %10.0fms %s\n", "200 true steps vs 200 sh -c true forks", l, f, ""
  printf "%-46s %7.3fs %10.3fs %s\n", "  CPU-seconds, medians of the rounds", lc, fc, ""
  printf "%-46s %8.0fms %10.0fms %s\n", "10 jobs, 3 stages vs gitlab-ci-local (shell)", tl, tg, ""
  printf "%-46s %9.1fx %10s %s\n", "  speed-up (target >= 10x)", tg / tl, "", (tg / tl >= 10 ? "PASS" : "FAIL")
  printf "%-46s %8.1fMB %10s %s\n", "200 MB step: ladle peak RSS (target < 50 MB)", rss, "", (rss < 50 ? "PASS" : "FAIL")
  rate = 200 / bs
  printf "%-46s %6.0fMB/s %10s %s\n", "  log write rate, whole run (target >= 200)", rate, "", (rate >= 200 ? "PASS" : "FAIL")
  printf "%-46s %8.2fs %9.2fs %s\n", "  run time vs the printer alone to /dev/null", bs, ys, ""
  printf "%-46s %8.0fMB %10s %s\n", "  log file size", lb / 1e6, "", ""
}'
