#!/bin/sh
# `ladle serve` (issue 5), each figure beside its target or reference:
#   1. commit to the first step's process started, local backend: with a push
#      webhook (target < 100 ms) and with polling every 1 s (target < poll + 100 ms);
#      on docker (when a daemon answers and ladle-test-busybox is imported, see
#      tests/env/docker_setup.sh) beside one plain `docker run`;
#   2. 1,000 queued runs of a trivial pipeline with 2 workers: runs per second,
#      beside the same pipeline run by `ladle run`, two processes at a time;
#   3. GET /api/v1/runs with 100,000 runs in the store (target < 10 ms);
#   4. idle resident memory of `ladle serve` (target < 20 MB).
# Bounded: every wait has a deadline; everything it starts is stopped by pid.
# Usage: tests/bench/serve_bench.sh [BUILD_DIR]   (default: build)
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$(pwd)/$BUILD" ;; esac
LADLE="$BUILD/ladle"
[ -x "$LADLE" ] || { echo "build ladle first (scripts/build.sh)"; exit 2; }
for tool in jq curl sqlite3 openssl python3; do
  command -v $tool >/dev/null || apt-get install -y -qq $tool >/dev/null
done

work=$(mktemp -d /tmp/ladle-serve-bench-XXXXXX)
server_pid=
stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
trap 'stop_server; rm -rf "$work"' EXIT
port=$((20000 + $$ % 20000))
url=http://127.0.0.1:$port
secret=bench-secret
now_ns() { date +%s%N; }

# Starts `ladle serve --config $1` and waits for /healthz.
start_server() {
  HOOK_SECRET=$secret "$LADLE" serve --config "$1" > "$work/serve.log" 2>&1 &
  server_pid=$!
  i=0
  until curl -sf "$url/healthz" >/dev/null; do
    i=$((i + 1)); [ $i -gt 200 ] && { cat "$work/serve.log"; exit 1; }
    sleep 0.05
  done
}

# Waits (at most $2 seconds) for file $1.
wait_file() {
  deadline=$(( $(date +%s) + $2 ))
  while [ ! -s "$1" ]; do
    [ "$(date +%s)" -gt "$deadline" ] && { echo "timed out waiting for $1"; tail -20 "$work/serve.log"; exit 1; }
    sleep 0.002
  done
}

# median and max of the numbers on stdin (one per line), as "MEDIAN MAX"
stats() { sort -n | awk '{a[NR]=$1} END {printf "%.1f %.1f", a[int((NR+1)/2)], a[NR]}'; }
p99() { sort -n | awk '{a[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; printf "%.2f", a[i]}'; }

new_repo() {
  rm -rf "$1" && mkdir -p "$1" && git -C "$1" init -q -b main
  printf '%s\n' "$2" > "$1/ladle.yml"
  git -C "$1" add -A && git -C "$1" -c user.email=b@b -c user.name=b commit -qm init
}
commit() { git -C "$1" -c user.email=b@b -c user.name=b commit -q --allow-empty -m "$2"; git -C "$1" rev-parse HEAD; }

push_hook() {  # repo-name commit
  body="{\"ref\":\"refs/heads/main\",\"after\":\"$2\",\"before\":\"0000000000000000000000000000000000000000\"}"
  sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" | sed 's/^.* //')
  curl -s -o /dev/null -X POST -H 'X-GitHub-Event: push' -H "X-Hub-Signature-256: sha256=$sig" \
    --data "$body" "$url/api/v1/hooks/push/$1"
}

# ---- 1. commit to first step ----
marks=$work/marks
mkdir -p "$marks"
mark_pipeline="name: latency
stages:
  - name: s
    steps:
      - name: mark
        run: date +%s%N > $marks/\$LADLE_COMMIT"
new_repo "$work/repo" "$mark_pipeline"
cat > "$work/server.yml" <<EOF
listen: 127.0.0.1:$port
data: $work/data
workers: 2
backend: local
repositories:
  - {name: hook, url: $work/repo, webhook_secret_env: HOOK_SECRET}
EOF
start_server "$work/server.yml"
wait_file "$marks/$(git -C "$work/repo" rev-parse HEAD)" 30   # the run of the head found at start
rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$server_pid/status)
sleep 2
idle_rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$server_pid/status)
: > "$work/hook.txt"
# The webhook sender is a running process (as GitHub's is), so its start-up
# is not counted: t0 is taken just before the request goes out.
cat > "$work/hook.py" <<'PY'
# Commits, sends the signed push webhook, and prints the milliseconds from the
# request to the mark the first step wrote (its file's mtime: the moment the
# step's process ran). With a database, waits for each run to end first.
import hashlib, hmac, http.client, json, os, sqlite3, subprocess, sys, time
repo, marks, port, secret, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
db = sys.argv[6] if len(sys.argv) > 6 else None
conn = http.client.HTTPConnection("127.0.0.1", port)
git = ["git", "-C", repo, "-c", "user.email=b@b", "-c", "user.name=b"]
for i in range(n):
    subprocess.run(git + ["commit", "-q", "--allow-empty", "-m", "hook %d" % i], check=True)
    c = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    body = json.dumps({"ref": "refs/heads/main", "after": c}).encode()
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    t0 = time.time_ns()
    conn.request("POST", "/api/v1/hooks/push/hook", body, {"X-GitHub-Event": "push", "X-Hub-Signature-256": sig})
    conn.getresponse().read()
    mark = os.path.join(marks, c)
    deadline = time.time() + 60
    while not os.path.exists(mark):
        if time.time() > deadline: sys.exit("no step for " + c)
        time.sleep(0.0005)
    print("%.2f" % ((os.stat(mark).st_mtime_ns - t0) / 1e6), flush=True)
    while db:
        row = sqlite3.connect(db).execute("SELECT status FROM runs WHERE commit_id = ?", (c,)).fetchone()
        if row and row[0] not in ("queued", "running"): break
        if time.time() > deadline: sys.exit("run of " + c + " did not end")
        time.sleep(0.02)
PY
python3 "$work/hook.py" "$work/repo" "$marks" "$port" "$secret" 30 >> "$work/hook.txt"
stop_server
set -- $(stats < "$work/hook.txt"); hook_median=$1 hook_max=$2

sed -i 's/webhook_secret_env: HOOK_SECRET}/poll: 1s}/' "$work/server.yml"
start_server "$work/server.yml"
sleep 1.5
: > "$work/poll.txt"
for i in $(seq 1 10); do
  c=$(commit "$work/repo" "poll $i")
  t0=$(now_ns)
  wait_file "$marks/$c" 30
  echo $(( ($(cat "$marks/$c") - t0) / 1000 )) | awk '{printf "%.2f\n", $1/1000}' >> "$work/poll.txt"
  sleep 0.$((i % 9 + 1))   # commits land at different points of the poll cycle
done
stop_server
set -- $(stats < "$work/poll.txt"); poll_median=$1 poll_max=$2

docker_line="docker: skipped (no daemon or no ladle-test-busybox image; run tests/env/docker_setup.sh)"
if docker image inspect ladle-test-busybox:latest >/dev/null 2>&1; then
  new_repo "$work/drepo" "name: latency
image: ladle-test-busybox:latest
stages:
  - name: s
    steps:
      - name: mark
        run: 'true'
        volumes: ['$marks:/marks']
        network: none"
  sed -i 's|run: .true.|run: date > /marks/$LADLE_COMMIT|' "$work/drepo/ladle.yml"
  git -C "$work/drepo" -c user.email=b@b -c user.name=b commit -qam docker
  sed -e 's/backend: local/backend: docker/' -e "s|url: $work/repo, poll: 1s|url: $work/drepo, webhook_secret_env: HOOK_SECRET|" \
      -e "s|data: $work/data|data: $work/ddata|" "$work/server.yml" > "$work/dserver.yml"
  start_server "$work/dserver.yml"
  wait_file "$marks/$(git -C "$work/drepo" rev-parse HEAD)" 60
  python3 "$work/hook.py" "$work/drepo" "$marks" "$port" "$secret" 10 "$work/ddata/ladle.db" > "$work/docker.txt"
  stop_server
  : > "$work/plain.txt"
  for i in $(seq 1 10); do
    t0=$(now_ns)
    docker run --rm --network none ladle-test-busybox:latest true
    echo $(( $(now_ns) - t0 )) | awk '{printf "%.1f\n", $1/1e6}' >> "$work/plain.txt"
  done
  set -- $(stats < "$work/docker.txt"); d_median=$1
  set -- $(stats < "$work/plain.txt"); p_median=$1
  docker_line=$(printf 'docker backend, push webhook, 10:  median %s ms; one plain `docker run --rm true` (create, start, wait, remove): %s ms' "$d_median" "$p_median")
fi

# ---- 2. 1,000 queued runs, 2 workers ----
new_repo "$work/many" "name: trivial
stages:
  - name: s
    steps:
      - {name: t, run: 'true'}"
tree=$(git -C "$work/many" rev-parse 'HEAD^{tree}')
head=$(git -C "$work/many" rev-parse HEAD)
i=0
while [ $i -lt 1000 ]; do
  echo "commit refs/heads/b$i"
  echo "committer b <b@b> 1700000000 +0000"
  echo "data 4"; printf "b%02d\n" $((i % 100))
  echo "from $head"
  echo "M 100644 inline n"; echo "data $(( ${#i} + 1 ))"; printf "%s\n" "$i"
  i=$((i + 1))
done | git -C "$work/many" fast-import --quiet
cat > "$work/many.yml" <<EOF
listen: 127.0.0.1:$port
data: $work/mdata
workers: 2
backend: local
repositories:
  - {name: many, url: $work/many, webhook_secret_env: HOOK_SECRET}
EOF
t0=$(now_ns)
start_server "$work/many.yml"
deadline=$(( $(date +%s) + 900 ))
while :; do
  done_runs=$(sqlite3 "$work/mdata/ladle.db" "SELECT count(*) FROM runs WHERE status = 'success'" 2>/dev/null || echo 0)
  [ "$done_runs" -ge 1001 ] && break
  [ "$(date +%s)" -gt "$deadline" ] && { echo "1,000 runs did not finish in 15 min ($done_runs done)"; exit 1; }
  sleep 0.2
done
t1=$(now_ns)
stop_server
span=$(sqlite3 "$work/mdata/ladle.db" "SELECT (julianday(max(finished_at)) - julianday(min(started_at))) * 86400 FROM runs")
serve_rate=$(echo "$span" | awk '{printf "%.1f", 1001/$1}')
wall=$(( (t1 - t0) / 1000000 ))
# The reference: the same pipeline through `ladle run`, 200 runs, two at a time.
mkdir -p "$work/single" && cp "$work/many/ladle.yml" "$work/single/"
(cd "$work/single" && git init -q -b main && git add -A && git -c user.email=b@b -c user.name=b commit -qm x)
t0=$(now_ns)
seq 1 200 | xargs -P 2 -I{} sh -c "cd $work/single && $LADLE --data $work/sdata run --backend local -q >/dev/null"
t1=$(now_ns)
run_rate=$(echo $(( (t1 - t0) / 1000000 )) | awk '{printf "%.1f", 200000/$1}')

# ---- 3. the runs list with 100,000 runs ----
sqlite3 "$work/mdata/ladle.db" <<'SQL'
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 99000)
INSERT INTO runs (repo, pipeline, file, commit_id, branch, status, created_at, started_at, finished_at, trigger)
SELECT 'many', 'trivial', 'ladle.yml', printf('%040x', x), 'b' || (x % 1000),
       CASE x % 20 WHEN 0 THEN 'failed' ELSE 'success' END,
       '2026-11-01T00:00:00.000Z', '2026-11-01T00:00:00.000Z', '2026-11-01T00:00:01.000Z', 'push'
FROM c;
SQL
total_runs=$(sqlite3 "$work/mdata/ladle.db" "SELECT count(*) FROM runs")
sed -i '/repositories:/,$d' "$work/many.yml"
start_server "$work/many.yml"
token=$(cat "$work/mdata/admin.token")
list_line=""
for query in "limit=50" "status=failed&limit=50" "branch=b7&limit=50" "repo=many&before=50000&limit=50"; do
  : > "$work/list.txt"
  for i in $(seq 1 200); do
    curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $token" "$url/api/v1/runs?$query" \
      | awk '{printf "%.3f\n", $1*1000}' >> "$work/list.txt"
  done
  set -- $(stats < "$work/list.txt")
  list_line="$list_line
  GET /api/v1/runs?$query: median $1 ms, p99 $(p99 < "$work/list.txt") ms"
done
stop_server

cat <<EOF

ladle serve benchmark ($(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ))
1. commit to the first step's process started (local backend)
   push webhook, 30 commits:   median $hook_median ms, max $hook_max ms     target < 100 ms
   polling every 1 s, 10:      median $poll_median ms, max $poll_max ms    target < 1100 ms
   $docker_line
2. 1,001 queued runs of a one-step pipeline, 2 workers
   ladle serve:                $serve_rate runs/s (first start to last end), ${wall} ms from server start to the last run
   ladle run, 2 at a time:     $run_rate runs/s (200 runs: the same executor, one process per run)
3. runs list with $total_runs runs in the store (200 requests each, curl on loopback)      target < 10 ms$list_line
4. ladle serve resident memory: $((rss_kb / 1024)) MB after its first run, $((idle_rss_kb / 1024)) MB idle 2 s later   target < 20 MB
EOF
