#!/bin/bash
# Toggle writes over HTTP against a real `ladle toggles serve` (its own data
# dir, 127.0.0.1): 4,000 toggles created one by one (POST /api/v1/toggles,
# one keep-alive connection, each waiting for its answer), then, with 5,000
# toggles in the store, flips of one toggle (POST .../on and .../off in turn),
# each timed from sending to the answer. Beside them, in the same run, the
# round trip of GET /healthz: the HTTP floor a write cannot beat.
# Targets (docs/toggles.md "Store"): 4,000 creates in under 10 s in all;
# a flip with 5,000 toggles under 2 ms median.
# Usage: tests/bench/toggle_write_bench.sh [BUILD_DIR]   (default: build)
#   LADLE_BENCH_CREATES=N  toggles created and timed (default 4000)
#   LADLE_BENCH_STORE=N    toggles in the store for the flips (default 5000)
#   LADLE_BENCH_FLIPS=N    flips timed (default 500)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$(pwd)/$BUILD" ;; esac
LADLE="$BUILD/ladle"
[ -x "$LADLE" ] || { echo "build it first: ninja -C $BUILD ladle"; exit 2; }
command -v node >/dev/null || { echo "node missing (scripts/install-deps.sh --test)"; exit 3; }
CREATES=${LADLE_BENCH_CREATES:-4000}
STORE=${LADLE_BENCH_STORE:-5000}
FLIPS=${LADLE_BENCH_FLIPS:-500}

work=$(mktemp -d /tmp/ladle-toggle-write-bench-XXXXXX)
ladle_pid=""
cleanup() {
  # Only what this script started, by pid.
  [ -n "$ladle_pid" ] && kill "$ladle_pid" 2>/dev/null && wait "$ladle_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=tests/bench/nginx_reference.sh
. "$(pwd)/tests/bench/nginx_reference.sh"  # free_port, wait_listening

port=$(free_port 18590)
"$LADLE" --data "$work/data" toggles serve --listen "127.0.0.1:$port" > "$work/ladle.out" 2>&1 &
ladle_pid=$!
wait_listening "$port"
for _ in $(seq 100); do [ -s "$work/data/admin.token" ] && break; sleep 0.05; done
TOKEN=$(cat "$work/data/admin.token")

cat > "$work/writes.js" <<'JS'
const http = require('http');
const [base, token] = [process.argv[2], process.argv[3]];
const [creates, store, flips] = process.argv.slice(4).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
function send(method, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode < 300 ? resolve() :
        reject(new Error(`${method} ${path}: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}
// Each toggle has one strategy in production, so compiling one is not free.
const toggle = (i) => JSON.stringify({ key: `bench-${String(i).padStart(5, '0')}`,
  environments: { production: { enabled: true, strategies: [
    { rollout: { percent: 50 }, constraints: [{ attribute: 'country', operator: 'in', values: ['NL', 'BE'] }] }] } } });
async function timed(n, fn) {
  const ms = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn(i);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return ms;
}
const q = (ms, p) => { const s = [...ms].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(2); };
(async () => {
  const floor0 = await timed(200, () => send('GET', '/healthz'));
  const t0 = process.hrtime.bigint();
  await timed(creates, (i) => send('POST', '/api/v1/toggles', toggle(i)));
  const createSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  for (let i = creates; i < store; i++) await send('POST', '/api/v1/toggles', toggle(i));
  const key = `bench-${String(Math.floor(store / 2)).padStart(5, '0')}`;
  const flip = await timed(flips, (i) => send('POST', `/api/v1/toggles/${key}/environments/production/${i % 2 ? 'on' : 'off'}`));
  const floor = await timed(200, () => send('GET', '/healthz'));
  console.log(`${creates} creates one by one over HTTP: ${createSeconds.toFixed(2)} s in all ` +
              `(${(createSeconds * 1000 / creates).toFixed(2)} ms each; target < 10 s)`);
  console.log(`flip with ${store} toggles, ${flips} flips: median ${q(flip, 0.5)} ms, p99 ${q(flip, 0.99)} ms ` +
              `(target median < 2 ms)`);
  console.log(`reference GET /healthz round trip: median ${q(floor0, 0.5)} ms empty, ` +
              `${q(floor, 0.5)} ms with ${store} toggles`);
})().catch((e) => { console.error(e.message); process.exit(1); });
JS
echo "ladle toggles serve, 127.0.0.1, $(nproc) cores, one keep-alive connection"
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$ladle_pid/stat"; }
cpu0=$(cpu)
node "$work/writes.js" "http://127.0.0.1:$port" "$TOKEN" "$CREATES" "$STORE" "$FLIPS"
echo "ladle CPU for the whole run: $(awk -v a="$cpu0" -v b="$(cpu)" 'BEGIN { printf "%.2f", b - a }') s"
