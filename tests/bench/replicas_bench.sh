#!/bin/sh
# Several `ladle serve` on one PostgreSQL (issue 15; docs/server.md
# "Replicas"), each figure beside its reference measured in this same run:
#   1. 1,001 queued one-step runs (a repository with 1,000 branches, listed at
#      start) on 1, 2 and 3 replicas with 2 workers each, against today's
#      single server on SQLite with 2 workers: runs per second, from the
#      first run's start to the last run's end (the stores' own times).
#   2. OFREP single evaluation on a `ladle toggles serve` backed by
#      PostgreSQL against one backed by SQLite: `wrk -t1 -c32`, one io thread
#      each, five alternating rounds of 5 s, medians (target: the same req/s
#      within 10 %; evaluation never reads the database).
#   3. A flip through one replica to an SSE subscriber of another, median
#      and p99 over 200 flips, beside the same on one server (target: median
#      under 20 ms).
#   4. A step's log (1 MB) fetched 100 times from the replica that ran it
#      and through another replica (which passes the request on): median
#      milliseconds of each, the cost of the proxy (docs/design.md "Logs and
#      artifacts of replicas").
# Every replica runs on this machine (2 cores are shared by all of them and
# by PostgreSQL): the runs per second say what one machine's cores give, not
# what three machines would.
# PostgreSQL: Debian's postgresql-15, initdb'd into a temp dir, stopped at the
# end; as root it runs as the `postgres` user. Installed here when missing,
# with wrk and nodejs: never by the test command.
# Usage: tests/bench/replicas_bench.sh [BUILD_DIR]   (default: build)
#   LADLE_BENCH_PARTS="1 2 3 4"  the parts to run (2 and 3 share their servers)
set -eu
cd "$(dirname "$0")/../.."
SRC=$(pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$(pwd)/$BUILD" ;; esac
LADLE="$BUILD/ladle"
[ -x "$LADLE" ] || { echo "build ladle first (scripts/build.sh)"; exit 2; }
PGBIN=/usr/lib/postgresql/15/bin
for pkg in postgresql wrk nodejs sqlite3 curl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
done
[ -x "$PGBIN/initdb" ] || { echo "postgresql-15 missing"; exit 3; }

work=$(mktemp -d /tmp/ladle-replicas-bench-XXXXXX)
chmod 755 "$work"
pids=""
pg_started=""
cleanup() {
  # Only what this script started, by pid.
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $pids; do wait "$p" 2>/dev/null || true; done
  [ -n "$pg_started" ] && as_pg "$PGBIN/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
now_ns() { date +%s%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- PostgreSQL ----
pg_port=$(free_port)
mkdir -p "$work/pg" "$work/pgsock"
[ "$(id -u)" = 0 ] && chown postgres "$work/pg" "$work/pgsock"
as_pg "$PGBIN/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$work/pg" -l "$work/pgsock/log" -w \
  -o "-p $pg_port -k $work/pgsock -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
pg_started=1
psql_() { psql -h 127.0.0.1 -p "$pg_port" -U postgres -Atq "$@"; }
new_db() { psql_ -d postgres -c "CREATE DATABASE $1" && echo "postgresql://postgres@127.0.0.1:$pg_port/$1"; }

# ---- 1. queued runs on 1, 2, 3 replicas ----
repo=$work/many
mkdir -p "$repo" && git -C "$repo" init -q -b main
printf 'name: trivial\nstages:\n  - name: s\n    steps:\n      - {name: t, run: "true"}\n' > "$repo/ladle.yml"
git -C "$repo" add -A && git -C "$repo" -c user.email=b@b -c user.name=b commit -qm init
head=$(git -C "$repo" rev-parse HEAD)
i=0
while [ $i -lt 1000 ]; do
  echo "commit refs/heads/b$i"
  echo "committer b <b@b> 1700000000 +0000"
  echo "data 4"; printf "b%02d\n" $((i % 100))
  echo "from $head"
  echo "M 100644 inline n"; echo "data $(( ${#i} + 1 ))"; printf "%s\n" "$i"
  i=$((i + 1))
done | git -C "$repo" fast-import --quiet

# server.yml of replica $2 (0-based) on store $1 ("" = SQLite).
config() {
  port=$(free_port)
  {
    echo "listen: 127.0.0.1:$port"
    echo "data: $work/data-$3-$2"
    echo "workers: 2"
    echo "backend: local"
    [ -n "$1" ] && echo "store: $1"
    echo "repositories:"
    echo "  - {name: many, url: $repo, webhook_secret_env: HOOK_SECRET}"
  } > "$work/$3-$2.yml"
  echo "$port"
}
wait_up() {  # port log
  i=0
  until curl -sf "http://127.0.0.1:$1/healthz" >/dev/null; do
    i=$((i + 1)); [ $i -gt 400 ] && { cat "$2"; exit 1; }
    sleep 0.05
  done
}
stop_all() {
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $pids; do wait "$p" 2>/dev/null || true; done
  pids=""
}
# Runs $1 replicas (0: the SQLite server) until 1,001 runs succeeded; sets
# $rate (runs/s). Not in a subshell: the cleanup must know every pid.
queue_run() {
  n=$1
  label=sqlite
  store=""
  if [ "$n" -gt 0 ]; then label=pg$n; store=$(new_db "bench_$label"); fi
  count=$n; [ "$n" = 0 ] && count=1
  r=0
  while [ $r -lt "$count" ]; do
    port=$(config "$store" $r $label)
    HOOK_SECRET=s LADLE_ADMIN_TOKEN=bench-admin-token-0123456789 \
      "$LADLE" serve --config "$work/$label-$r.yml" > "$work/$label-$r.log" 2>&1 &
    pids="$pids $!"
    wait_up "$port" "$work/$label-$r.log"
    r=$((r + 1))
  done
  deadline=$(( $(date +%s) + 900 ))
  while :; do
    if [ "$n" = 0 ]; then
      done_runs=$(sqlite3 "$work/data-$label-0/ladle.db" "SELECT count(*) FROM runs WHERE status = 'success'" 2>/dev/null || echo 0)
    else
      done_runs=$(psql_ -d "bench_$label" -c "SELECT count(*) FROM runs WHERE status = 'success'" 2>/dev/null || echo 0)
    fi
    [ "$done_runs" -ge 1001 ] && break
    [ "$(date +%s)" -gt "$deadline" ] && { echo "$label: 1,001 runs did not finish in 15 min ($done_runs done)"; tail -5 "$work/$label-0.log"; exit 1; }
    sleep 0.2
  done
  stop_all
  if [ "$n" = 0 ]; then
    span=$(sqlite3 "$work/data-$label-0/ladle.db" "SELECT (julianday(max(finished_at)) - julianday(min(started_at))) * 86400 FROM runs")
  else
    span=$(psql_ -d "bench_$label" -c "SELECT extract(epoch FROM max(finished_at::timestamptz) - min(started_at::timestamptz)) FROM runs")
    per=$(psql_ -d "bench_$label" -c "SELECT count(DISTINCT replica) FROM runs")
    echo "$per" > "$work/$label.replicas"
  fi
  rate=$(echo "$span" | awk '{printf "%.1f", 1001/$1}')
}
PARTS=${LADLE_BENCH_PARTS:-1 2 3 4}
part() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
if part 1; then
echo "1. 1,001 queued one-step runs (local backend), 2 workers per server, $(nproc) cores shared by all"
queue_run 0
sqlite_rate=$rate
printf '%-44s %10s runs/s\n' "one ladle serve on SQLite (reference)" "$sqlite_rate"
for n in 1 2 3; do
  queue_run $n
  printf '%-44s %10s runs/s  (%s of SQLite; runs carried out by %s replica(s))\n' \
    "$n replica(s) on PostgreSQL" "$rate" \
    "$(awk -v a="$rate" -v b="$sqlite_rate" 'BEGIN { printf "%.2fx", a / b }')" "$(cat "$work/pg$n.replicas")"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
fi

TOKEN=bench-admin-token-0123456789
# ---- 2. OFREP on PostgreSQL against SQLite ----
toggles_serve() {  # label port [store]
  if [ -n "${3:-}" ]; then
    LADLE_ADMIN_TOKEN=$TOKEN "$LADLE" --data "$work/t-$1" toggles serve --listen "127.0.0.1:$2" \
      --io-threads 1 --store "$3" > "$work/t-$1.log" 2>&1 &
  else
    LADLE_ADMIN_TOKEN=$TOKEN "$LADLE" --data "$work/t-$1" toggles serve --listen "127.0.0.1:$2" \
      --io-threads 1 > "$work/t-$1.log" 2>&1 &
  fi
  pids="$pids $!"
  echo $! > "$work/t-$1.pid"
  wait_up "$2" "$work/t-$1.log"
  curl -sf -H "Authorization: Bearer $TOKEN" -X POST "http://127.0.0.1:$2/api/v1/toggles" \
    -d '{"key":"bench-rollout","environments":{"production":{"enabled":true,"strategies":[{"rollout":{"percent":50}}]}}}' >/dev/null || true
  curl -sf -H "Authorization: Bearer $TOKEN" -X POST "http://127.0.0.1:$2/api/v1/toggles" \
    -d '{"key":"bench-flip"}' >/dev/null || true
}
export LADLE_BENCH_TOKEN=$TOKEN
# CPU seconds (user + system) that process $1 has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / hz }' "/proc/$1/stat"; }
wrk_rps() {  # port seconds [pid] -> "req/s p99 requests-per-CPU-second"
  before=0; [ -n "${3:-}" ] && before=$(cpu_s "$3")
  wrk -t1 -c32 -d"$2"s --latency -s "$SRC/tests/bench/ofrep_bench.lua" "http://127.0.0.1:$1" > "$work/wrk.out"
  after=0; [ -n "${3:-}" ] && after=$(cpu_s "$3")
  awk -v c="$(awk -v a="$before" -v b="$after" 'BEGIN { print b - a }')" \
    '/^Requests\/sec:/ {r=$2} $1 == "99%" {p=$2} / requests in / {n=$1}
     END {printf "%s %s %.0f\n", r, p, (c > 0 ? n / c : 0)}' "$work/wrk.out"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# wrk's latencies ("850.00us", "1.20ms", "1.02s") in milliseconds.
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/, "", v); v/=1000} else if (v ~ /ms$/) sub(/ms$/, "", v); else if (v ~ /s$/) {sub(/s$/, "", v); v*=1000}; printf "%.2f\n", v}'; }
if part 2 || part 3; then
toggle_store=$(new_db bench_toggles)
sq_port=$(free_port); toggles_serve sqlite "$sq_port"
pg_port_a=$(free_port); toggles_serve pg-a "$pg_port_a" "$toggle_store"
fi
if part 2; then
wrk_rps "$sq_port" 2 >/dev/null; wrk_rps "$pg_port_a" 2 >/dev/null  # warm-up
# Five alternating rounds of 5 s, so that both see the same machine.
: > "$work/sq.rps"; : > "$work/pg.rps"
for round in 1 2 3 4 5; do
  wrk_rps "$sq_port" 5 "$(cat "$work/t-sqlite.pid")" >> "$work/sq.rps"
  wrk_rps "$pg_port_a" 5 "$(cat "$work/t-pg-a.pid")" >> "$work/pg.rps"
done
sq_cpu=$(cut -d' ' -f3 "$work/sq.rps" | median); pg_cpu=$(cut -d' ' -f3 "$work/pg.rps" | median)
sq_rps=$(cut -d' ' -f1 "$work/sq.rps" | median); sq_p99=$(cut -d' ' -f2 "$work/sq.rps" | to_ms | median)
pg_rps=$(cut -d' ' -f1 "$work/pg.rps" | median); pg_p99=$(cut -d' ' -f2 "$work/pg.rps" | to_ms | median)
echo
echo "2. OFREP single evaluation, 50% rollout, wrk -t1 -c32, one io thread each, medians of 5 alternating rounds of 5 s"
printf '%-44s %10s req/s  p99 %s ms  %s req/CPU-s\n' "ladle toggles serve on SQLite (reference)" "$sq_rps" "$sq_p99" "$sq_cpu"
printf '%-44s %10s req/s  p99 %s ms  %s req/CPU-s\n' "ladle toggles serve on PostgreSQL" "$pg_rps" "$pg_p99" "$pg_cpu"
echo "PostgreSQL / SQLite: $(awk -v a="$pg_rps" -v b="$sq_rps" 'BEGIN { printf "%.0f%%", 100 * a / b }') of req/s," \
  "$(awk -v a="$pg_cpu" -v b="$sq_cpu" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "-" }') per CPU-second (target: within 10 %)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

fi
# ---- 3. flip -> SSE, same server and another replica ----
if part 3; then
pg_port_b=$(free_port); toggles_serve pg-b "$pg_port_b" "$toggle_store"
echo
echo "3. flip -> SSE event, 200 flips"
printf '%-44s %s\n' "one server on SQLite (reference)" \
  "$(node "$SRC/tests/bench/sse_flip_latency.js" "http://127.0.0.1:$sq_port" "http://127.0.0.1:$sq_port" "$TOKEN" 200)"
printf '%-44s %s (target median < 20 ms)\n' "flip on replica a, subscriber on replica b" \
  "$(node "$SRC/tests/bench/sse_flip_latency.js" "http://127.0.0.1:$pg_port_a" "http://127.0.0.1:$pg_port_b" "$TOKEN" 200)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
stop_all

fi
# ---- 4. a log from its replica and through another ----
if part 4; then
log_repo=$work/logs
mkdir -p "$log_repo" && git -C "$log_repo" init -q -b main
printf 'name: log\nstages:\n  - name: s\n    steps:\n      - {name: print, run: "head -c 750000 /dev/zero | base64"}\n' > "$log_repo/ladle.yml"
git -C "$log_repo" add -A && git -C "$log_repo" -c user.email=b@b -c user.name=b commit -qm init
log_store=$(new_db bench_logs)
log_ports=""
for r in 0 1; do
  port=$(free_port)
  printf 'listen: 127.0.0.1:%s\ndata: %s\nworkers: 1\nbackend: local\nstore: %s\nrepositories:\n  - {name: logs, url: %s, webhook_secret_env: HOOK_SECRET}\n' \
    "$port" "$work/data-log-$r" "$log_store" "$log_repo" > "$work/log-$r.yml"
  HOOK_SECRET=s LADLE_ADMIN_TOKEN=$TOKEN "$LADLE" serve --config "$work/log-$r.yml" > "$work/log-$r.log" 2>&1 &
  pids="$pids $!"
  wait_up "$port" "$work/log-$r.log"
  log_ports="$log_ports $port"
done
deadline=$(( $(date +%s) + 120 ))
until [ "$(psql_ -d bench_logs -c "SELECT count(*) FROM runs WHERE status = 'success'")" = 1 ]; do
  [ "$(date +%s)" -gt "$deadline" ] && { echo "the log run did not finish"; exit 1; }
  sleep 0.2
done
run_id=$(psql_ -d bench_logs -c "SELECT id FROM runs LIMIT 1")
owner=$(psql_ -d bench_logs -c "SELECT replica FROM runs LIMIT 1")
owner_url=$(psql_ -d bench_logs -c "SELECT url FROM replicas WHERE id = '$owner'")
for port in $log_ports; do
  case "$owner_url" in *":$port") direct=$port ;; *) proxied=$port ;; esac
done
fetch_ms() {  # port -> median ms of 100 fetches
  i=0
  while [ $i -lt 100 ]; do
    curl -sf -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" \
      "http://127.0.0.1:$1/api/v1/runs/$run_id/steps/s/print/log"
    i=$((i + 1))
  done | sort -n | awk '{a[NR]=$1} END {printf "%.2f", 1000 * a[int((NR+1)/2)]}'
}
size=$(curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$direct/api/v1/runs/$run_id/steps/s/print/log" | wc -c)
direct_ms=$(fetch_ms "$direct")
proxied_ms=$(fetch_ms "$proxied")
echo
echo "4. a step's log ($size bytes), 100 fetches each, median"
printf '%-44s %8s ms\n' "from the replica that ran it (reference)" "$direct_ms"
printf '%-44s %8s ms  (%s ms for the hop)\n' "through another replica" "$proxied_ms" \
  "$(awk -v a="$proxied_ms" -v b="$direct_ms" 'BEGIN { printf "%+.2f", a - b }')"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
stop_all
fi
