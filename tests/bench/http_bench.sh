#!/bin/bash
# HTTP throughput of core's server beside nginx, measured in the same run:
# both serve the same ~100-byte JSON body on 127.0.0.1, one worker each
# (http_bench_server --threads 1, nginx worker_processes 1), and each gets
# `wrk -t1 -c32 -d10s --latency` after a 2 s warm-up. Prints req/s and p99
# side by side with the ratio. Target for the OFREP route: >= 60% of nginx;
# this bare route is the ceiling for it.
# Usage: tests/bench/http_bench.sh [BUILD_DIR]   (default: build)
#   LADLE_BENCH_THREADS=N  io threads for ladle (default 1)
#   LADLE_BENCH_SECONDS=N  measured seconds per server (default 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$(pwd)/$BUILD" ;; esac
SERVER="$BUILD/tests/bench/http_bench_server"
[ -x "$SERVER" ] || { echo "build it first: ninja -C $BUILD http_bench_server"; exit 2; }
THREADS=${LADLE_BENCH_THREADS:-1}
SECONDS_EACH=${LADLE_BENCH_SECONDS:-10}

# Debian's packages; policy-rc.d (or its absence of an init) keeps the
# packaged nginx service from starting, and only our own nginx is run below.
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian"
  log=/tmp/ladle-http-bench-apt.log
  apt-get install -y -qq --no-install-recommends "${need[@]}" >"$log" 2>&1 || { cat "$log"; exit 3; }
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

BODY='{"key":"bench-flag","reason":"STATIC","variant":"on","value":true,"metadata":{"source":"ladle-bench"}}'

work=$(mktemp -d /tmp/ladle-http-bench-XXXXXX)
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



# ladle: prints "listening on 127.0.0.1:PORT (...)" once bound.
"$SERVER" --threads "$THREADS" --body "$BODY" > "$work/ladle.out" 2>&1 &
ladle_pid=$!
for _ in $(seq 100); do grep -q listening "$work/ladle.out" && break; sleep 0.05; done
ladle_port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/ladle.out")
[ -n "$ladle_port" ] || { cat "$work/ladle.out"; exit 3; }

# nginx: a private config, pid file and temp dirs; one worker, no access log.
nginx_port=$(free_port 18480)
start_nginx "$nginx_port" "$BODY"

# Same bytes from both?
curl_body() { exec 3<>"/dev/tcp/127.0.0.1/$1"; printf 'GET /bench HTTP/1.0\r\n\r\n' >&3; cat <&3 | tail -n 1; exec 3<&-; }
[ "$(curl_body "$ladle_port")" = "$BODY" ] || { echo "ladle serves another body" >&2; exit 3; }
[ "$(curl_body "$nginx_port")" = "$BODY" ] || { echo "nginx serves another body" >&2; exit 3; }

run_wrk() {  # name port
  wrk -t1 -c32 -d2s "http://127.0.0.1:$2/bench" >/dev/null  # warm-up
  wrk -t1 -c32 -d"${SECONDS_EACH}s" --latency "http://127.0.0.1:$2/bench" > "$work/$1.wrk"
}
run_wrk ladle "$ladle_port"
run_wrk nginx "$nginx_port"

rps() { awk '/^Requests\/sec:/ {print $2}' "$work/$1.wrk"; }
p99() { awk '$1 == "99%" {print $2}' "$work/$1.wrk"; }
errors() { grep -E "Non-2xx|Socket errors" "$work/$1.wrk" || true; }
ladle_rps=$(rps ladle); nginx_rps=$(rps nginx)
ratio=$(awk -v a="$ladle_rps" -v b="$nginx_rps" 'BEGIN { printf "%.0f", 100 * a / b }')

echo "HTTP, ${#BODY}-byte JSON, wrk -t1 -c32 -d${SECONDS_EACH}s, 127.0.0.1, $(nproc) cores"
printf '%-28s %12s %10s\n' "server" "req/s" "p99"
printf '%-28s %12s %10s\n' "ladle (Router, ${THREADS} io thr.)" "$ladle_rps" "$(p99 ladle)"
printf '%-28s %12s %10s\n' "nginx 1 worker" "$nginx_rps" "$(p99 nginx)"
echo "ladle / nginx: ${ratio}% (target for the OFREP route: >= 60%)"
errors ladle; errors nginx
