#!/bin/sh
# `ladle repro` (docs/running.md "Reproduce a server's step"), beside its reference:
# a pipeline whose build step keeps 50 MB of artifacts runs on a real
# `ladle serve` on 127.0.0.1 (local backend); then the time from starting
#   - `ladle repro RUN test/unit` (the run, the commit's tree and 50 MB of
#     artifacts over HTTP on loopback), and
#   - `ladle run --step test/unit` of the same commit with the same artifacts
#     kept by a local run (the reference),
# to the step's first line (the step writes a timestamp as its first act).
# Target: repro within 2x of the reference. Median of 3 each.
# Bounded: every wait has a deadline; the server is stopped by its pid.
# Usage: tests/bench/repro_bench.sh [BUILD_DIR]   (default: build)
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$(pwd)/$BUILD" ;; esac
LADLE="$BUILD/ladle"
[ -x "$LADLE" ] || { echo "build ladle first (scripts/build.sh)"; exit 2; }
for tool in jq curl; do
  command -v $tool >/dev/null || apt-get install -y -qq $tool >/dev/null
done

work=$(mktemp -d /tmp/ladle-repro-bench-XXXXXX)
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
token=repro-bench-token-0123456789abcdef
now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {printf "%.0f", a[int((NR+1)/2)]}'; }

repo=$work/repo
mkdir -p "$repo"
git -C "$repo" init -q -b main
cat > "$repo/ladle.yml" <<'EOF'
name: repro-bench
stages:
  - name: build
    steps:
      - name: compile
        run: |
          mkdir -p out
          for i in 1 2 3 4 5; do head -c 10485760 /dev/urandom > out/part$i; done
        artifacts: [out/]
  - name: test
    steps:
      - name: unit
        run: |
          if [ -n "${MARK:-}" ]; then date +%s%N > "$MARK"; fi
          echo first line
          test "$(cat out/part* | wc -c)" = 52428800
EOF
git -C "$repo" add -A
git -C "$repo" -c user.email=b@b -c user.name=b commit -qm init

cat > "$work/server.yml" <<EOF
listen: 127.0.0.1:$port
data: $work/server-data
backend: local
repositories:
  - name: app
    url: $repo
    pipeline: ladle.yml
    poll: 1s
EOF
LADLE_ADMIN_TOKEN=$token "$LADLE" serve --config "$work/server.yml" > "$work/serve.log" 2>&1 &
server_pid=$!
i=0
until curl -sf "$url/healthz" >/dev/null; do
  i=$((i + 1)); [ $i -gt 200 ] && { cat "$work/serve.log"; exit 1; }
  sleep 0.05
done
# The server finds the commit at start and runs it.
run=
deadline=$(( $(date +%s) + 120 ))
while :; do
  run=$(curl -sf -H "Authorization: Bearer $token" "$url/api/v1/runs?status=success" | jq -r '.runs[0].id // empty')
  [ -n "$run" ] && break
  [ "$(date +%s)" -gt "$deadline" ] && { echo "the server's run did not succeed"; tail -20 "$work/serve.log"; exit 1; }
  sleep 0.2
done

# The reference needs the same artifacts kept locally: one full local run.
(cd "$repo" && NO_COLOR=1 "$LADLE" --data "$work/local" -q run --backend local ladle.yml > "$work/local-run.log" 2>&1) \
  || { echo "the local run failed"; cat "$work/local-run.log"; exit 1; }

# Runs "$@" in the repository with MARK set; prints ms from start to the mark.
first_line_ms() {
  mark=$work/mark.$$.$(now_ns)
  start=$(now_ns)
  (cd "$repo" && NO_COLOR=1 "$@" --env MARK="$mark" > "$work/last.log" 2>&1) \
    || { echo "failed: $*" >&2; cat "$work/last.log" >&2; exit 1; }
  [ -s "$mark" ] || { echo "no first line: $*" >&2; cat "$work/last.log" >&2; exit 1; }
  echo $(( ($(cat "$mark") - start) / 1000000 ))
}

: > "$work/repro.ms"; : > "$work/run.ms"
for i in 1 2 3; do
  first_line_ms "$LADLE" --data "$work/local" repro "$run" test/unit --server "$url" --token "$token" \
    --backend local >> "$work/repro.ms"
  first_line_ms "$LADLE" --data "$work/local" run --backend local ladle.yml --step test/unit >> "$work/run.ms"
done
repro_ms=$(median < "$work/repro.ms")
run_ms=$(median < "$work/run.ms")
ratio=$(awk -v a="$repro_ms" -v b="$run_ms" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
echo "ladle repro, 50 MB of artifacts over loopback, start to the step's first line: ${repro_ms} ms (median of 3: $(tr '\n' ' ' < "$work/repro.ms"))"
echo "ladle run --step with local artifacts (reference):                         ${run_ms} ms (median of 3: $(tr '\n' ' ' < "$work/run.ms"))"
echo "ratio: ${ratio}x (target: within 2x)"
