#!/bin/bash
# `ladle store migrate` (runner/store/store_copy.cc, docs/server.md "Moving to
# PostgreSQL"): a data dir with RUNS runs of 2 stages and 50 steps each
# (100,000 steps by default), made by one real `ladle run` and rows added
# with sqlite3, copied into an empty database of a PostgreSQL this script
# starts. Beside it, in the same run, the same three tables through
# `sqlite3 -csv | psql \copy` into an empty database with the same schema:
# the floor of a COPY that converts nothing and checks nothing.
# Target (docs/server.md "Moving to PostgreSQL"): 100,000 steps in seconds.
# Usage: tests/bench/store_migrate_bench.sh [BUILD_DIR]   (default: build)
#   LADLE_BENCH_RUNS=N  runs (default 2000; 50 steps each)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$(pwd)/$BUILD" ;; esac
LADLE="$BUILD/ladle"
PGBIN=/usr/lib/postgresql/15/bin
[ -x "$LADLE" ] || { echo "build it first: ninja -C $BUILD ladle"; exit 2; }
[ -x "$PGBIN/postgres" ] || { echo "postgresql-15 missing (scripts/install-deps.sh --test)"; exit 3; }
for tool in sqlite3 psql; do
  command -v "$tool" >/dev/null || { echo "$tool missing (scripts/install-deps.sh --test)"; exit 3; }
done
RUNS=${LADLE_BENCH_RUNS:-2000}

work=$(mktemp -d /tmp/ladle-migrate-bench-XXXXXX)
chmod 755 "$work"
pg_pid=""
cleanup() {
  # Only what this script started, by pid: the postmaster (its pid file's
  # first line) gets SIGINT, PostgreSQL's fast shutdown, and is waited for.
  local pid
  if [ -n "$pg_pid" ] && pid=$(head -1 "$work/pg/data/postmaster.pid" 2>/dev/null); then
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  [ -n "$pg_pid" ] && { wait "$pg_pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

# PostgreSQL refuses to run as root: then it runs as the package's user.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres: "$work/pg"
as_pg "$PGBIN/initdb" -D "$work/pg/data" --auth=trust --no-sync -U postgres -E UTF8 \
  --locale=C.UTF-8 > "$work/initdb.log"
# shellcheck source=tests/bench/nginx_reference.sh
. "$(pwd)/tests/bench/nginx_reference.sh"  # free_port
port=$(free_port 18690)
as_pg "$PGBIN/postgres" -D "$work/pg/data" -k "$work/pg" -p "$port" \
  -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off > "$work/pg.log" 2>&1 &
pg_pid=$!
for _ in $(seq 100); do "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" && break; sleep 0.1; done
psql() { command psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }
psql -c "CREATE DATABASE ladle" -c "CREATE DATABASE floor"

# The data dir: one real run (the schema, a deployment), then RUNS more.
mkdir -p "$work/src" "$work/data" "$work/empty"
printf 'name: p\nstages:\n  - name: build\n    steps:\n      - {name: a, run: "true"}\n  - name: deploy\n    environment: staging\n    steps:\n      - {name: ship, run: "true"}\n' \
  > "$work/src/ladle.yml"
(cd "$work/src" && "$LADLE" --data "$work/data" run --backend local > /dev/null 2>&1)
sqlite3 "$work/data/ladle.db" <<SQL
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < $RUNS + 1)
INSERT INTO runs (id, repo, pipeline, file, commit_id, branch, status, created_at, started_at,
  finished_at, message, workspace, trigger, project, pipeline_path, dirty, changed_paths, ref)
SELECT i, 'app', 'p', 'ladle.yml', printf('%040x', i), 'main', 'success',
  '2026-12-05T08:04:51.755Z', '2026-12-05T08:04:51.756Z', '2026-12-05T08:05:51.755Z',
  'run ' || i, '/tmp/ws', 'push', 'app', 'ladle.yml', i % 2, '["a.go"]', 'refs/heads/main' FROM n;
INSERT INTO stages (run_id, name, ordinal, status, tests_total, tests_passed, tests_failed, tests_skipped)
SELECT id, 'build', 0, 'success', 4, 4, 0, 0 FROM runs WHERE id > 1;
INSERT INTO stages (run_id, name, ordinal, status, environment)
SELECT id, 'deploy', 1, 'success', 'staging' FROM runs WHERE id > 1;
WITH RECURSIVE k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < 49)
INSERT INTO steps (run_id, stage, name, ordinal, status, exit_code, attempts, started_at,
  finished_at, allow_failure, plan)
SELECT id, 'build', 'step-' || j, j, 'success', 0, 1, '2026-12-05T08:04:51.771Z',
  '2026-12-05T08:04:52.771Z', j % 2, '{"needs":["a"]}' FROM runs, k WHERE id > 1;
COMMIT;
SQL
steps=$(sqlite3 "$work/data/ladle.db" "SELECT count(*) FROM steps")

now() { date +%s.%N; }
t0=$(now)
"$LADLE" --data "$work/data" store migrate --to "postgresql://postgres@127.0.0.1:$port/ladle" \
  > "$work/migrate.out"
t1=$(now)

# The floor: the same schema (a migrate of an empty data dir creates it),
# then the three tables through CSV, as they are.
"$LADLE" --data "$work/empty" -q store migrate --to "postgresql://postgres@127.0.0.1:$port/floor"
copy() {  # TABLE COLUMNS
  sqlite3 -csv "$work/data/ladle.db" "SELECT $2 FROM $1" |
    psql -d floor -c "\\copy $1 ($2) FROM STDIN WITH (FORMAT csv)"
}
t2=$(now)
copy runs "id, repo, pipeline, file, commit_id, branch, status, created_at, started_at, finished_at, message, workspace, owner_pid, owner_start, trigger, rollback_environment, resume_stage, source_run, project, pipeline_path, dirty, changed_paths, tree, ref, rerun_of"
copy stages "run_id, name, ordinal, status, environment, tests_total, tests_passed, tests_failed, tests_skipped, message"
copy steps "run_id, stage, name, ordinal, status, exit_code, attempts, started_at, finished_at, failure_reason, allow_failure, failed_tests, failed_tests_more, kept, matrix, plan"
t3=$(now)

[ "$(psql -d ladle -Atc 'SELECT count(*) FROM steps')" = "$steps" ] || { echo "steps missing"; exit 1; }
sed -n '1,/^ladle.db schedules/p' "$work/migrate.out"
awk -v steps="$steps" -v runs="$((RUNS + 1))" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v t3="$t3" 'BEGIN {
  m = t1 - t0; f = t3 - t2
  printf "ladle store migrate: %d runs, %d steps in %.2f s (the whole command)\n", runs, steps, m
  printf "floor, sqlite3 -csv | psql \\copy of runs, stages, steps: %.2f s\n", f
  printf "migrate / floor: %.2fx\n", m / f
}'
