#!/bin/bash
# OFREP single evaluation (POST /ofrep/v1/evaluate/flags/{key}, a 50% rollout
# toggle, bearer token, 100 targeting keys) of `ladle toggles serve` beside
# nginx serving a static JSON body of the same size, both on 127.0.0.1: one io
# thread (`--io-threads 1`; LADLE_BENCH_THREADS=N for N) against one nginx
# worker (`worker_processes 1`), each under
# `wrk -t1 -c32 -d10s --latency` after a 2 s warm-up. Then the latency from
# sending a flip to an SSE subscriber receiving its event, median and p99
# over 200 flips (a small node client). Targets (issue 14): >= 85% of
# nginx's req/s, p99 < 2 ms, flip -> SSE median < 5 ms. Beside req/s, requests per
# CPU-second of each server's processes (from /proc: ladle's whole process,
# nginx's master and worker), steadier when others share the machine.
# Usage: tests/bench/ofrep_bench.sh [BUILD_DIR]   (default: build)
#   LADLE_BENCH_SECONDS=N  measured seconds per server (default 10)
#   LADLE_BENCH_FLIPS=N    flips for the SSE latency (default 200)
#   LADLE_BENCH_THREADS=N  ladle's io threads (default 1, against nginx's one worker)
#   LADLE_BENCH_PERF=FILE  also record ladle's measured run with `perf record -g`
#                          into FILE (installs Debian's linux-perf when missing);
#                          read it with `perf report -i FILE --no-children`
set -euo pipefail
cd "$(dirname "$0")/../.."
SRC=$(pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$(pwd)/$BUILD" ;; esac
LADLE="$BUILD/ladle"
[ -x "$LADLE" ] || { echo "build it first: ninja -C $BUILD ladle"; exit 2; }
SECONDS_EACH=${LADLE_BENCH_SECONDS:-10}
FLIPS=${LADLE_BENCH_FLIPS:-200}
THREADS=${LADLE_BENCH_THREADS:-1}
# The references are installed here, never by the test command. Debian's nginx
# package must not start its own service: policy-rc.d says no for this install.
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null || true
  rm -f /usr/sbin/policy-rc.d
fi
command -v wrk >/dev/null || { echo "wrk missing (apt-get install wrk)"; exit 3; }
PERF_OUT=${LADLE_BENCH_PERF:-}
if [ -n "$PERF_OUT" ] && ! command -v perf >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "nginx missing (apt-get install nginx)"; exit 3; }

work=$(mktemp -d /tmp/ladle-ofrep-bench-XXXXXX)
ladle_pid=""
nginx_pid=""
cleanup() {
  # Only what this script started, by pid.
  [ -n "$ladle_pid" ] && kill "$ladle_pid" 2>/dev/null && wait "$ladle_pid" 2>/dev/null || true
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=tests/bench/nginx_reference.sh
. "$(pwd)/tests/bench/nginx_reference.sh"  # the script runs from the repository root


# ladle: its own data dir, one 50% rollout toggle in production.
ladle_port=$(free_port 18570)
"$LADLE" --data "$work/data" toggles serve --listen "127.0.0.1:$ladle_port" \
  --io-threads "$THREADS" > "$work/ladle.out" 2>&1 &
ladle_pid=$!
wait_listening "$ladle_port"
TOKEN=$(cat "$work/data/admin.token")
base="http://127.0.0.1:$ladle_port"
curl -sf -H "Authorization: Bearer $TOKEN" -X POST "$base/api/v1/toggles" \
  -d '{"key":"bench-rollout","environments":{"production":{"enabled":true,"strategies":[{"rollout":{"percent":50}}]}}}' >/dev/null
curl -sf -H "Authorization: Bearer $TOKEN" -X POST "$base/api/v1/toggles" -d '{"key":"bench-flip"}' >/dev/null
BODY=$(curl -sf -H "Authorization: Bearer $TOKEN" -X POST "$base/ofrep/v1/evaluate/flags/bench-rollout" \
  -d '{"context":{"targetingKey":"user-1"}}')

# nginx: a private config; one worker, no access log, the same body.
nginx_port=$(free_port $((ladle_port + 1)))
start_nginx "$nginx_port" "$BODY"

export LADLE_BENCH_TOKEN=$TOKEN
# CPU seconds (user + system) used so far by the processes given and their
# children (nginx's worker), from /proc: on a machine shared with builds,
# requests per CPU-second moves less than requests per second.
cpu_seconds() {
  local pids="$*" p
  for p in $*; do pids="$pids $(cat "/proc/$p/task/$p/children" 2>/dev/null || true)"; done
  for p in $pids; do cat "/proc/$p/stat" 2>/dev/null || true; done |
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); t += $12 + $13 } END { printf "%.3f", t / hz }'
}
run_wrk() {  # name port pid
  wrk -t1 -c32 -d2s -s "$SRC/tests/bench/ofrep_bench.lua" "http://127.0.0.1:$2" >/dev/null
  local before; before=$(cpu_seconds "$3")
  local perf_pid=""
  if [ -n "$PERF_OUT" ] && [ "$1" = ladle ]; then
    perf record -q -g -p "$3" -o "$PERF_OUT" -- sleep "$SECONDS_EACH" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  wrk -t1 -c32 -d"${SECONDS_EACH}s" --latency -s "$SRC/tests/bench/ofrep_bench.lua" \
    "http://127.0.0.1:$2" > "$work/$1.wrk"
  if [ -n "$perf_pid" ]; then wait "$perf_pid" || true; fi
  awk -v a="$before" -v b="$(cpu_seconds "$3")" 'BEGIN { printf "%.3f", b - a }' > "$work/$1.cpu"
}
run_wrk ladle "$ladle_port" "$ladle_pid"
run_wrk nginx "$nginx_port" "$nginx_pid"

rps() { awk '/^Requests\/sec:/ {print $2}' "$work/$1.wrk"; }
p99() { awk '$1 == "99%" {print $2}' "$work/$1.wrk"; }
errors() { grep -E "Non-2xx|Socket errors" "$work/$1.wrk" || true; }
ladle_rps=$(rps ladle); nginx_rps=$(rps nginx)
ratio=$(awk -v a="$ladle_rps" -v b="$nginx_rps" 'BEGIN { printf "%.0f", 100 * a / b }')
# Requests answered per CPU-second of the server.
per_cpu() { awk -v n="$(awk '/requests in/ {print $1}' "$work/$1.wrk")" -v c="$(cat "$work/$1.cpu")" \
  'BEGIN { if (c > 0) printf "%.0f", n / c; else print "-" }'; }
ladle_cpu=$(per_cpu ladle); nginx_cpu=$(per_cpu nginx)
cpu_ratio=$(awk -v a="$ladle_cpu" -v b="$nginx_cpu" 'BEGIN { if (b > 0) printf "%.0f", 100 * a / b; else print "-" }')

threads_label="$THREADS io thread"; [ "$THREADS" = 1 ] || threads_label="${threads_label}s"
echo "OFREP single evaluation, 50% rollout, ${#BODY}-byte answer, wrk -t1 -c32 -d${SECONDS_EACH}s, 127.0.0.1, $(nproc) cores"
echo "ladle toggles serve --io-threads $THREADS against nginx worker_processes 1 (static body)"
printf '%-34s %12s %10s %14s\n' "server" "req/s" "p99" "req/CPU-s"
printf '%-34s %12s %10s %14s\n' "ladle toggles serve, $threads_label" "$ladle_rps" "$(p99 ladle)" "$ladle_cpu"
printf '%-34s %12s %10s %14s\n' "nginx, 1 worker (static)" "$nginx_rps" "$(p99 nginx)" "$nginx_cpu"
echo "ladle ($threads_label) / nginx (1 worker): ${ratio}% of req/s (target >= 85%, p99 < 2 ms); per CPU-second: ${cpu_ratio}%"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
errors ladle; errors nginx

# Flip -> SSE: one subscriber; each flip waits for its own event.
echo "flip -> SSE event, $FLIPS flips: $(node "$SRC/tests/bench/sse_flip_latency.js" "$base" "$base" "$TOKEN" "$FLIPS") (target median < 5 ms)"
