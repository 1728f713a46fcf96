// Flip -> SSE latency for tests/bench: flips toggle `bench-flip` in
// production through FLIP_BASE and times the arrival of each change's event
// on the SSE stream of STREAM_BASE (the same server, or another replica on
// the same database). Each flip waits for its own event (by revision).
// Usage: node sse_flip_latency.js FLIP_BASE STREAM_BASE TOKEN FLIPS
const http = require('http');
const [flipBase, streamBase, token, flips] =
    [process.argv[2], process.argv[3], process.argv[4], Number(process.argv[5])];
const auth = { Authorization: `Bearer ${token}` };
const keepAlive = new http.Agent({ keepAlive: true });
const seen = new Map();     // revision -> arrival time (an event may beat the POST's answer)
const waiters = new Map();  // revision -> resolve
let buf = '';
function onData(chunk) {
  buf += chunk;
  let i;
  while ((i = buf.indexOf('\n\n')) >= 0) {
    const m = /^id: (\d+)$/m.exec(buf.slice(0, i));
    buf = buf.slice(i + 2);
    if (!m) continue;
    const id = Number(m[1]), t = process.hrtime.bigint();
    seen.set(id, t);
    if (waiters.has(id)) { waiters.get(id)(t); waiters.delete(id); }
  }
}
function arrival(rev) {
  return seen.has(rev) ? Promise.resolve(seen.get(rev)) : new Promise((r) => waiters.set(rev, r));
}
function flip(on) {
  return new Promise((resolve, reject) => {
    const req = http.request(
        `${flipBase}/api/v1/toggles/bench-flip/environments/production/${on ? 'on' : 'off'}`,
        { method: 'POST', headers: auth, agent: keepAlive }, (res) => {
          res.resume();
          res.on('end', () => resolve(Number(String(res.headers.etag).replace(/"/g, ''))));
        });
    req.on('error', reject);
    req.end();
  });
}
setTimeout(() => { console.log('flip -> SSE: timed out'); process.exit(1); }, 120000);
http.get(`${streamBase}/api/v1/stream`, { headers: auth }, async (res) => {
  res.setEncoding('utf8');
  res.on('data', onData);
  await new Promise((r) => setTimeout(r, 300));  // subscribed
  const lat = [];
  for (let n = 0; n < flips; n++) {
    const t0 = process.hrtime.bigint();
    const rev = await flip(n % 2 === 0);
    lat.push(Number((await arrival(rev)) - t0) / 1e6);
  }
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(2);
  console.log(`median ${q(0.5)} ms, p99 ${q(0.99)} ms over ${flips} flips`);
  process.exit(0);
});
