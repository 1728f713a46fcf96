// The web UI's log, graph and admin features in headless Chromium
// (playwright-core) against a real `ladle serve` that this file starts
// (docs/server.md "The web UI"):
//
//   LADLE_BINARY=build/ladle node --test tests/web/ui_features_test.js
//
// A step printing ANSI colours shows them, not their codes; line links
// scroll to and mark their line; search counts and walks the matches; the
// raw log downloads as the step wrote it; an allowed failure is a warning;
// the pipeline is a graph (stages as columns, steps as nodes, needs as
// edges, matrix combinations grouped); services and caches show under their
// step; the trigger and re-run buttons show to an admin only and start runs.
// A log of 100,000 lines (each with a colour) opens with only the lines in view in the document;
// how long that takes is printed beside the time the same log takes to
// download as text in the same page (a figure, not a pass/fail bound).
//
// With LADLE_WEB_DIR=runner/serve/web the page's files come from that folder
// instead of the binary (to try a change of the UI without building).
//
// Needs playwright-core in tests/web/node_modules (scripts/install-deps.sh
// --test) and Debian's chromium: without them the tests are skipped, and fail
// under CI=true. Run by ctest as web_ui_browser (tests/CMakeLists.txt).
'use strict';

const {describe, test, before, after} = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const {spawn, execFileSync} = require('node:child_process');

const TOKEN = 'web-ui-admin-token-0123456789abcdef';
const WAIT = 20000;
const LONG_LINES = 100000;
const TICKS = 16;

let chromium = null;
let missing = '';
try {
  chromium = require('playwright-core').chromium;
} catch (e) {
  missing = 'playwright-core is not installed in tests/web/node_modules (scripts/install-deps.sh --test)';
}
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!missing && !fs.existsSync(CHROMIUM)) missing = CHROMIUM + ' is missing (apt-get install chromium)';
const BINARY = process.env.LADLE_BINARY ? path.resolve(process.env.LADLE_BINARY) : '';
if (!missing && !fs.existsSync(BINARY)) missing = 'LADLE_BINARY (the ladle binary) is not set or missing: "' + BINARY + '"';
if (missing && process.env.CI === 'true') throw new Error(missing);
const skip = missing ? missing : false;

// The pipeline under test: colours, a long log, an allowed failure and a need.
const PIPELINE = `name: app
stages:
  - name: build
    steps:
      - name: colour
        run: |
          printf '\\033[32mPASS\\033[0m unit\\n'
          printf '\\033[1;31mFAIL\\033[0m none\\n'
          printf '\\033[38;5;208morange\\033[0m \\033[48;2;10;20;30mdark\\033[0m \\033[3;4mslanted\\033[0m\\n'
          printf '\\033]0;a title\\007\\033[2K<b>not bold</b>\\n'
          printf '\\033[94mbright blue\\033[39m default\\n'
      - name: long
        run: |
          E=$(printf '\\033')
          seq 1 ${LONG_LINES} | sed "s/^/\${E}[32mline\${E}[0m /"
      - name: lint
        run: 'echo "lint: 3 problems"; exit 3'
        allow_failure: true
      - name: package
        needs: [colour]
        run: echo packaged
  - name: test
    steps:
      - {name: unit, run: echo unit tests}
  - name: live
    approval: manual
    steps:
      - name: ticks
        run: |
          for i in $(seq 1 ${TICKS}); do printf '\\033[3%dmtick %d\\033[0m\\n' $((i % 7 + 1)) $i; sleep 0.4; done
`;

const ctx = {};

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = srv.address().port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

function git(cwd, ...args) {
  return execFileSync('git', ['-c', 'user.name=ladle web', '-c', 'user.email=web@ladle.invalid',
                              '-c', 'commit.gpgsign=false', ...args], {cwd, encoding: 'utf8'}).trim();
}

async function http(method, p, body, token) {
  const r = await fetch(ctx.base + p, {
    method, body,
    headers: Object.assign({Authorization: 'Bearer ' + (token || TOKEN)}, body ? {'Content-Type': 'application/json'} : {}),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch (e) { /* text */ }
  return {status: r.status, headers: r.headers, text, json};
}

async function waitFor(what, fn, ms) {
  const deadline = Date.now() + (ms || 60000);
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('gave up waiting for ' + what);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function openPage(token) {
  const context = await ctx.browser.newContext({acceptDownloads: true, viewport: {width: 1280, height: 900}});
  await context.addInitScript((t) => localStorage.setItem('ladle.token', t), token || TOKEN);
  if (process.env.LADLE_WEB_DIR) {
    const types = {'index.html': 'text/html', 'app.js': 'text/javascript', 'app.css': 'text/css'};
    await context.route((url) => url.origin === ctx.base && (url.pathname === '/' || url.pathname.startsWith('/ui/')),
                        (route) => {
                          const name = new URL(route.request().url()).pathname.replace(/^\/(ui\/)?/, '') || 'index.html';
                          route.fulfill({status: 200, contentType: types[name] || 'text/plain',
                                         body: fs.readFileSync(path.join(process.env.LADLE_WEB_DIR, name))});
                        });
  }
  const page = await context.newPage();
  page.seen = {errors: [], elsewhere: []};
  page.on('pageerror', (e) => page.seen.errors.push(String(e)));
  page.on('console', (m) => {
    // Failed requests are judged by their responses below.
    if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) page.seen.errors.push(m.text());
  });
  page.on('response', (r) => {
    // A client token's probe of GET /api/v1/tokens is a 403 by design.
    if (r.status() >= 400 && !(r.status() === 403 && r.url().endsWith('/api/v1/tokens'))) {
      page.seen.errors.push(r.status() + ' ' + r.url());
    }
  });
  page.on('request', (r) => { if (!r.url().startsWith(ctx.base) && !r.url().startsWith('blob:')) page.seen.elsewhere.push(r.url()); });
  return page;
}

async function closePage(page, name) {
  const shots = process.env.LADLE_UI_SCREENSHOTS;
  if (shots && name) await page.screenshot({path: path.join(shots, name + '.png'), fullPage: true});
  assert.deepEqual(page.seen.errors, [], 'no script errors, CSP violations or failed requests');
  assert.deepEqual(page.seen.elsewhere, [], 'nothing is loaded from elsewhere');
  await page.context().close();
}

async function openLog(page, stage, step, extra) {
  await page.goto(ctx.base + '/#/runs/' + ctx.runId + '/' + stage + '/' + step + (extra || ''));
  await page.waitForFunction(() => document.querySelectorAll('#log .ll').length > 0, null, {timeout: WAIT});
}

describe('web UI in Chromium', {skip}, () => {
  before(async () => {
    ctx.root = fs.mkdtempSync(path.join(os.tmpdir(), 'ladle-web-ui-'));
    const repo = path.join(ctx.root, 'repo');
    fs.mkdirSync(repo);
    git(repo, 'init', '-q', '-b', 'main');
    fs.writeFileSync(path.join(repo, 'ladle.yml'), PIPELINE);
    git(repo, 'add', '-A');
    git(repo, 'commit', '-q', '-m', 'pipeline');
    ctx.commit = git(repo, 'rev-parse', 'HEAD');
    ctx.port = await freePort();
    ctx.base = 'http://127.0.0.1:' + ctx.port;
    fs.writeFileSync(path.join(ctx.root, 'server.yml'),
                     'listen: 127.0.0.1:' + ctx.port + '\ndata: ' + path.join(ctx.root, 'data') +
                     '\nworkers: 2\nbackend: local\nrepositories:\n  - name: app\n    url: ' + repo +
                     '\n    pipeline: ladle.yml\n');
    const log = fs.openSync(path.join(ctx.root, 'server.log'), 'a');
    ctx.server = spawn(BINARY, ['--data', path.join(ctx.root, 'data'), 'serve', '--config',
                                path.join(ctx.root, 'server.yml')],
                       {cwd: ctx.root, env: Object.assign({}, process.env, {LADLE_ADMIN_TOKEN: TOKEN, NO_COLOR: '1'}),
                        stdio: ['ignore', log, log]});
    ctx.serverExited = false;
    ctx.server.on('exit', () => { ctx.serverExited = true; });
    ctx.server.on('error', (e) => {
      ctx.serverExited = true;
      fs.appendFileSync(path.join(ctx.root, 'server.log'), 'cannot start ' + BINARY + ': ' + e.message + '\n');
    });
    await waitFor('/healthz', async () => {
      if (ctx.serverExited) throw new Error('ladle serve exited: ' + fs.readFileSync(path.join(ctx.root, 'server.log'), 'utf8'));
      try { return (await fetch(ctx.base + '/healthz')).ok; } catch (e) { return false; }
    }, 20000);
    // The run of the commit found at start, finished.
    const run = await waitFor('the run to finish', async () => {
      const list = await http('GET', '/api/v1/runs');
      const r = list.json && list.json.runs.find((x) => x.commit === ctx.commit);
      if (!r || ['queued', 'running'].includes(r.status)) return null;
      return r;
    }, 120000);
    ctx.runId = run.id;
    ctx.run = (await http('GET', '/api/v1/runs/' + run.id)).json;
    const client = await http('POST', '/api/v1/tokens', JSON.stringify({name: 'browser', role: 'client'}));
    assert.equal(client.status, 201, client.text);
    ctx.clientToken = client.json.secret;
    ctx.browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    if (ctx.browser) await ctx.browser.close();
    if (ctx.server && !ctx.serverExited) {
      ctx.server.kill('SIGTERM');
      await waitFor('ladle serve to stop', () => ctx.serverExited, 20000).catch(() => ctx.server.kill('SIGKILL'));
    }
    if (ctx.root) fs.rmSync(ctx.root, {recursive: true, force: true});
  });

  test('the run passed with an allowed failure, then waits for approval', () => {
    assert.equal(ctx.run.status, 'waiting', JSON.stringify(ctx.run));
    assert.deepEqual(ctx.run.stages.map((s) => s.status), ['success', 'success', 'waiting']);
    const lint = ctx.run.stages[0].steps.find((s) => s.name === 'lint');
    assert.equal(lint.status, 'failed');
    assert.equal(lint.allow_failure, true);
  });

  test('ANSI colours are rendered, not shown as codes; other sequences are dropped; text stays text', async () => {
    const page = await openPage();
    await openLog(page, 'build', 'colour');
    await page.waitForFunction(() => document.querySelectorAll('#log .ll').length === 5, null, {timeout: WAIT});
    const seen = await page.evaluate(() => {
      const log = document.getElementById('log');
      const colourOf = (text) => {
        const el = Array.from(log.querySelectorAll('.lt span')).find((s) => s.textContent === text);
        if (!el) return null;
        const cs = getComputedStyle(el);
        return {color: cs.color, background: cs.backgroundColor, weight: cs.fontWeight, style: cs.fontStyle,
                decoration: cs.textDecorationLine};
      };
      return {
        text: log.textContent,
        pass: colourOf('PASS'), fail: colourOf('FAIL'), orange: colourOf('orange'), dark: colourOf('dark'),
        slanted: colourOf('slanted'), bright: colourOf('bright blue'),
        bold_elements: log.querySelectorAll('b').length,
        numbers: Array.from(log.querySelectorAll('.ll .ln')).map((a) => getComputedStyle(a, '::before').content),
      };
    });
    assert.equal(seen.text, 'PASS unit\nFAIL none\norange dark slanted\n<b>not bold</b>\nbright blue default\n');
    assert.ok(!seen.text.includes('[32m') && !seen.text.includes('\x1b'), seen.text);
    const rgb = (c) => c.match(/\d+/g).slice(0, 3).map(Number);
    const [r, g, b] = rgb(seen.pass.color);
    assert.ok(g > 120 && r < 80 && b < 80, 'PASS is green: ' + seen.pass.color);
    const [fr, fg] = rgb(seen.fail.color);
    assert.ok(fr > 150 && fg < 80, 'FAIL is red: ' + seen.fail.color);
    assert.equal(seen.fail.weight, '700');
    assert.equal(seen.orange.color, 'rgb(255, 135, 0)', '256-colour 208');
    assert.equal(seen.dark.background, 'rgb(10, 20, 30)', '24-bit background');
    assert.equal(seen.slanted.style, 'italic');
    assert.equal(seen.slanted.decoration, 'underline');
    const [br, , bb] = rgb(seen.bright.color);
    assert.ok(bb > 200 && br < 150, 'bright blue: ' + seen.bright.color);
    assert.equal(seen.bold_elements, 0, 'log text is never markup');
    assert.deepEqual(seen.numbers, ['"1"', '"2"', '"3"', '"4"', '"5"']);
    await closePage(page, 'ansi');
  });

  test('a line link scrolls to its line and marks it; clicking a line number makes one', async () => {
    const page = await openPage();
    await openLog(page, 'build', 'long', '/L50000');
    await page.waitForSelector('#log .ll.target', {timeout: WAIT});
    const seen = await page.evaluate(() => {
      const target = document.querySelector('#log .ll.target');
      const box = document.getElementById('log').getBoundingClientRect();
      const line = target.getBoundingClientRect();
      return {n: target.dataset.n, text: target.querySelector('.lt').textContent,
              inView: line.top >= box.top && line.bottom <= box.bottom,
              inWindow: line.top >= 0 && line.bottom <= window.innerHeight,
              drawn: document.querySelectorAll('#log .ll').length, targets: document.querySelectorAll('#log .ll.target').length};
    });
    assert.equal(seen.n, '50000');
    assert.equal(seen.text, 'line 50000');
    assert.ok(seen.inView, 'the line is in the log\'s view');
    assert.ok(seen.inWindow, 'the log is in the window');
    assert.equal(seen.targets, 1);
    assert.ok(seen.drawn < 500, 'only the lines around the view are in the document: ' + seen.drawn);
    // A line's number is its link.
    const requests = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.click('#log .ll[data-n="50003"] .ln');
    await page.waitForFunction(() => /\/L50003$/.test(location.hash), null, {timeout: WAIT});
    await page.waitForSelector('#log .ll.target[data-n="50003"]', {timeout: WAIT});
    assert.equal(await page.evaluate(() => location.hash), '#/runs/' + ctx.runId + '/build/long/L50003');
    assert.equal(await page.locator('#log .ll.target').count(), 1);
    assert.deepEqual(requests.filter((u) => u.includes('/log')), [], 'the log is not read again');
    // Also as a query.
    await page.goto(ctx.base + '/#/runs/' + ctx.runId + '/build/colour?line=3');
    await page.waitForSelector('#log .ll.target[data-n="3"]', {timeout: WAIT});
    await closePage(page, 'line-link');
  });

  test('search highlights, counts and walks the matches', async () => {
    const page = await openPage();
    await openLog(page, 'build', 'long');
    await page.waitForFunction((n) => document.getElementById('log-count-lines').textContent ===
                               n.toLocaleString('en') + ' lines', LONG_LINES, {timeout: WAIT})
        .catch(async (e) => { throw new Error(e.message + ': ' + await page.textContent('#log-count-lines')); });
    await page.fill('#log-search', 'LINE 9999');
    // "line 9999" and "line 99990" to "line 99999", case-insensitively.
    await page.waitForFunction(() => document.getElementById('log-search-count').textContent === '1 of 11', null,
                               {timeout: WAIT});
    // A match is marked in pieces where its colours change ("line" is green).
    const current = async () => page.evaluate(() => {
      const marks = Array.from(document.querySelectorAll('#log mark.hit.current'));
      const box = document.getElementById('log').getBoundingClientRect();
      if (!marks.length) return null;
      const r = marks[0].getBoundingClientRect();
      return {line: marks[0].closest('.ll').dataset.n, text: marks.map((m) => m.textContent).join(''),
              inView: r.top >= box.top && r.bottom <= box.bottom, green: marks[0].classList.contains('a-f2')};
    });
    assert.deepEqual(await current(), {line: '9999', text: 'line 9999', inView: true, green: true});
    await page.click('#log-next');
    assert.equal(await page.textContent('#log-search-count'), '2 of 11');
    await page.waitForFunction(() => document.querySelector('#log mark.hit.current') &&
                               document.querySelector('#log mark.hit.current').closest('.ll').dataset.n === '99990');
    assert.deepEqual(await current(), {line: '99990', text: 'line 9999', inView: true, green: true});
    await page.press('#log-search', 'Shift+Enter');
    await page.press('#log-search', 'Shift+Enter');
    assert.equal(await page.textContent('#log-search-count'), '11 of 11');
    await page.waitForFunction(() => document.querySelector('#log mark.hit.current') &&
                               document.querySelector('#log mark.hit.current').closest('.ll').dataset.n === '99999');
    assert.ok((await page.locator('#log mark.hit').count()) >= 2, 'every match in view is marked');
    await page.fill('#log-search', 'no such text');
    await page.waitForFunction(() => document.getElementById('log-search-count').textContent === 'no match');
    assert.equal(await page.locator('#log mark').count(), 0);
    await closePage(page, 'search');
  });

  test('the raw log downloads as the step wrote it; plain text without escape codes', async () => {
    const direct = await http('GET', '/api/v1/runs/' + ctx.runId + '/steps/build/colour/log?download=1');
    assert.equal(direct.status, 200);
    assert.match(direct.headers.get('content-type'), /^text\/plain/);
    assert.equal(direct.headers.get('content-disposition'), 'attachment; filename="run-' + ctx.runId + '-build-colour.log"');
    assert.ok(direct.text.startsWith('\x1b[32mPASS\x1b[0m unit\n'), JSON.stringify(direct.text));
    assert.equal((await http('GET', '/api/v1/runs/' + ctx.runId + '/steps/build/colour/log?download=2')).status, 400);

    const page = await openPage();
    await openLog(page, 'build', 'colour');
    const [raw] = await Promise.all([page.waitForEvent('download'), page.click('#log-raw')]);
    assert.equal(raw.suggestedFilename(), 'run-' + ctx.runId + '-build-colour.log');
    assert.equal(fs.readFileSync(await raw.path(), 'utf8'), direct.text);
    const [plain] = await Promise.all([page.waitForEvent('download'), page.click('#log-plain')]);
    assert.equal(plain.suggestedFilename(), 'run-' + ctx.runId + '-build-colour.txt');
    assert.equal(fs.readFileSync(await plain.path(), 'utf8'),
                 'PASS unit\nFAIL none\norange dark slanted\n<b>not bold</b>\nbright blue default\n');
    await closePage(page, 'download');
  });

  test('an allowed failure is a warning, not a red failure', async () => {
    const page = await openPage();
    await page.goto(ctx.base + '/#/runs/' + ctx.runId);
    await page.waitForSelector('tr[data-step="build/lint"]', {timeout: WAIT});
    const seen = await page.evaluate(() => {
      const badge = document.querySelector('tr[data-step="build/lint"] .status');
      const node = document.querySelector('svg.graph .g-node[data-step="lint"]');
      return {text: badge.textContent, cls: badge.className, color: getComputedStyle(badge).color,
              bad: getComputedStyle(document.documentElement).getPropertyValue('--bad').trim(),
              warn: getComputedStyle(document.documentElement).getPropertyValue('--warn').trim(),
              node: node && node.getAttribute('class'), nodeColor: node && getComputedStyle(node).color,
              stage: document.querySelector('.stage .title .status').textContent};
    });
    assert.equal(seen.text, 'failed (allowed)');
    assert.equal(seen.cls, 'status s-allowed');
    const hex = (h) => 'rgb(' + [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)).join(', ') + ')';
    assert.equal(seen.color, hex(seen.warn), 'amber');
    assert.notEqual(seen.color, hex(seen.bad));
    assert.match(seen.node, /\bn-allowed\b/);
    assert.equal(seen.nodeColor, hex(seen.warn));
    assert.equal(seen.stage, 'success');
    assert.equal(await page.locator('.s-failed').count(), 0, 'nothing on the page is a red failure');
    await closePage(page, 'allowed');
  });

  test('the pipeline is a graph: stages as columns, steps as nodes, needs as edges; a node opens its log', async (t) => {
    const page = await openPage();
    await page.goto(ctx.base + '/#/runs/' + ctx.runId);
    await page.waitForSelector('svg.graph', {timeout: WAIT});
    const seen = await page.evaluate(() => ({
      columns: Array.from(document.querySelectorAll('svg.graph .g-col')).map((g) => g.dataset.stage),
      nodes: Array.from(document.querySelectorAll('svg.graph .g-node')).map((g) => g.dataset.stage + '/' + g.dataset.step),
      classes: Array.from(document.querySelectorAll('svg.graph .g-node')).map((g) => g.getAttribute('class')),
      edges: Array.from(document.querySelectorAll('svg.graph .g-edge')).map((e) => {
        const name = (id) => { const n = document.querySelector('svg.graph [data-node="' + id + '"]'); return n.dataset.stage + '/' + n.dataset.step; };
        return name(e.dataset.from) + ' -> ' + name(e.dataset.to);
      }),
      xs: Array.from(document.querySelectorAll('svg.graph .g-node .g-box')).map((r) => Number(r.getAttribute('x'))),
    }));
    assert.deepEqual(seen.columns, ['build', 'test', 'live']);
    assert.deepEqual(seen.nodes, ['build/colour', 'build/long', 'build/lint', 'build/package', 'test/unit', 'live/ticks']);
    assert.match(seen.classes[0], /\bn-success\b/);
    assert.equal(seen.xs[0], seen.xs[3], 'steps of one stage share a column');
    assert.ok(seen.xs[4] > seen.xs[0], 'a later stage is a column to the right');
    // needs in the run's JSON (docs/design.md "JSON shapes") are the edges.
    const wanted = [];
    for (const st of ctx.run.stages) {
      for (const s of st.steps) for (const n of s.needs || []) wanted.push((n.includes('/') ? n : st.name + '/' + n) + ' -> ' + st.name + '/' + s.name);
    }
    assert.deepEqual(seen.edges, wanted);
    if (!wanted.length) t.diagnostic('the run JSON has no "needs" yet: edges are tested with the documented shape below');
    await page.click('svg.graph .g-node[data-step="unit"]');
    await page.waitForFunction(() => document.getElementById('log-title').textContent === 'Log of test/unit', null,
                               {timeout: WAIT});
    assert.equal(await page.evaluate(() => location.hash), '#/runs/' + ctx.runId + '/test/unit');
    await page.waitForFunction(() => document.getElementById('log').textContent === 'unit tests\n', null, {timeout: WAIT});
    assert.match(await page.getAttribute('svg.graph .g-node[data-step="unit"]', 'class'), /\bselected\b/);
    await closePage(page, 'graph');
  });

  test('needs across stages, matrix steps grouped until opened, services and caches (the documented shape)', async () => {
    // docs/design.md "JSON shapes": a run as the server writes it with needs
    // naming STAGE/STEP, matrix combinations ({"of", "values"}), services and
    // caches; served to the page in place of the real run.
    const step = (name, status, extra) => Object.assign({name, status, exit_code: status === 'success' ? 0 : 1,
                                                         attempts: 1, started_at: null, finished_at: null,
                                                         failure_reason: null}, extra || {});
    const fixture = {
      id: ctx.runId, repo: 'app', pipeline: 'app', file: 'ladle.yml', commit: ctx.commit, branch: 'main',
      status: 'failed', created_at: ctx.run.created_at, started_at: null, finished_at: null, trigger: 'push',
      project: 'app', pipeline_path: 'ladle.yml', dirty: false, changed_paths: [], deployment: null,
      stages: [
        {name: 'build', status: 'success', environment: null, tests: null,
         steps: [step('compile', 'success', {cache: {key: 'deps-0a1b2c', paths: ['.cache/pip'], policy: 'pull-push'}})]},
        {name: 'test', status: 'failed', environment: null, tests: null,
         steps: [step('py.3.11', 'success', {display: 'py [PY=3.11]', matrix: {of: 'py', values: {PY: '3.11'}}, needs: ['build/compile']}),
                 step('py.3.12', 'failed', {display: 'py [PY=3.12]', matrix: {of: 'py', values: {PY: '3.12'}}, needs: ['build/compile']}),
                 step('py.3.13', 'success', {display: 'py [PY=3.13]', matrix: {of: 'py', values: {PY: '3.13'}}, needs: ['build/compile']}),
                 step('integration', 'success', {
                   services: [{name: 'db', image: 'postgres:16', status: 'success', port: 5432}]})]},
        {name: 'publish', status: 'skipped', environment: null, tests: null,
         steps: [step('wheel', 'skipped', {needs: ['test/py', 'build/compile']})]},
      ],
    };
    const page = await openPage();
    await page.route(ctx.base + '/api/v1/runs/' + ctx.runId, (route) =>
      route.fulfill({status: 200, contentType: 'application/json', body: JSON.stringify(fixture)}));
    await page.goto(ctx.base + '/#/runs/' + ctx.runId);
    await page.waitForSelector('svg.graph', {timeout: WAIT});
    const graph = () => page.evaluate(() => {
      const name = (id) => {
        const n = document.querySelector('svg.graph [data-node="' + id + '"]');
        return n.classList.contains('g-group') ? n.dataset.stage + '/' + n.dataset.step + '*' : n.dataset.stage + '/' + n.dataset.step;
      };
      return {
        columns: Array.from(document.querySelectorAll('svg.graph .g-col')).map((g) => g.dataset.stage),
        nodes: Array.from(document.querySelectorAll('svg.graph .g-node')).map((g) =>
          g.querySelector('.g-label').textContent + ' ' + g.getAttribute('class').match(/n-\w+/)[0]),
        edges: Array.from(document.querySelectorAll('svg.graph .g-edge')).map((e) => name(e.dataset.from) + ' -> ' + name(e.dataset.to)).sort(),
      };
    });
    assert.deepEqual(await graph(), {
      columns: ['build', 'test', 'publish'],
      nodes: ['compile n-success', 'py \u00d73 n-failed', 'integration n-success', 'wheel n-skipped'],
      edges: ['build/compile -> publish/wheel', 'build/compile -> test/py*', 'test/py* -> publish/wheel'],
    });
    await page.click('svg.graph .g-group[data-step="py"]');
    await page.waitForSelector('svg.graph .g-member', {timeout: WAIT});
    assert.deepEqual(await graph(), {
      columns: ['build', 'test', 'publish'],
      nodes: ['compile n-success', 'py \u00d73 n-failed', 'PY=3.11 n-success', 'PY=3.12 n-failed', 'PY=3.13 n-success',
              'integration n-success', 'wheel n-skipped'],
      edges: ['build/compile -> publish/wheel', 'build/compile -> test/py.3.11', 'build/compile -> test/py.3.12',
              'build/compile -> test/py.3.13', 'test/py.3.11 -> publish/wheel',
              'test/py.3.12 -> publish/wheel', 'test/py.3.13 -> publish/wheel'],
    });
    // Services and caches under their steps.
    const services = (await page.textContent('tr.services')).replace(/\s+/g, ' ').trim();
    assert.equal(services, 'services: db postgres:16 success (port: 5432)');
    const cache = (await page.textContent('tr.caches')).replace(/\s+/g, ' ').trim();
    assert.equal(cache, 'cache: key deps-0a1b2c .cache/pip (policy: pull-push)');
    // The step table shows a combination by its display name, linked by its id.
    assert.deepEqual(await page.$$eval('tr[data-step^="test/py"] a', (as) => as.map((a) => [a.textContent, a.getAttribute('href')])),
                     [['py [PY=3.11]', '#/runs/' + ctx.runId + '/test/py.3.11'], ['py [PY=3.12]', '#/runs/' + ctx.runId + '/test/py.3.12'],
                      ['py [PY=3.13]', '#/runs/' + ctx.runId + '/test/py.3.13']]);
    // A combination opens its own log.
    await page.route('**/steps/test/**', (route) => route.fulfill({status: 200, contentType: 'application/x-ndjson',
                                                                    body: '{"stream":"stdout","text":"3.12 failed"}\n'}));
    await page.click('svg.graph .g-member[data-step="py.3.12"]');
    await page.waitForFunction(() => document.getElementById('log-title').textContent === 'Log of test/py [PY=3.12]',
                               null, {timeout: WAIT});
    await page.waitForFunction(() => document.getElementById('log').textContent === '3.12 failed\n', null, {timeout: WAIT});
    await closePage(page, 'graph-matrix');
  });

  test('a followed log keeps its colours and numbers as lines arrive', async () => {
    const page = await openPage();
    await page.goto(ctx.base + '/#/runs/' + ctx.runId + '/live/ticks');
    await page.waitForSelector('#log-box:not([hidden])', {timeout: WAIT});
    const approve = page.locator('button[data-action="approve"][data-stage="live"]');
    await approve.click();
    // Samples of how many lines the page shows while the step runs.
    const counts = [];
    await waitFor('every tick', async () => {
      const n = await page.locator('#log .ll').count();
      counts.push(n);
      return n === TICKS;
    }, 30000);
    assert.ok(counts.some((n) => n > 0 && n < TICKS), 'lines appeared one after another: ' + counts.join(','));
    const seen = await page.evaluate(() => Array.from(document.querySelectorAll('#log .ll')).map((l) => [
      l.querySelector('.ln').dataset.n, l.querySelector('.lt').textContent,
      (l.querySelector('.lt span') || {}).className || '']));
    assert.deepEqual(seen, Array.from({length: TICKS}, (_, k) => [String(k + 1), 'tick ' + (k + 1), 'a-f' + ((k + 1) % 7 + 1)]));
    assert.ok(!(await page.textContent('#log')).includes('\x1b'));
    await page.waitForFunction(() => document.querySelector('h1 .status').textContent === 'success', null, {timeout: WAIT});
    await closePage(page, 'live');
  });

  test('trigger and re-run buttons show to an admin only, and start runs', async (t) => {
    // Re-run is for a finished run: the approval above finished it (or does so here).
    if ((await http('GET', '/api/v1/runs/' + ctx.runId)).json.status === 'waiting') {
      await http('POST', '/api/v1/runs/' + ctx.runId + '/stages/live/approve');
    }
    await waitFor('run ' + ctx.runId + ' to finish', async () =>
      (await http('GET', '/api/v1/runs/' + ctx.runId)).json.status === 'success', 30000);
    const client = await openPage(ctx.clientToken);
    const probed = client.waitForResponse((r) => r.url().endsWith('/api/v1/tokens'), {timeout: WAIT});
    await client.goto(ctx.base + '/#/runs/' + ctx.runId);
    await client.waitForSelector('.stage', {timeout: WAIT});
    assert.equal((await probed).status(), 403, 'the role probe: a client token may not list tokens');
    await client.waitForTimeout(100);
    assert.equal(await client.locator('button[data-action="rerun"]').count(), 0);
    await client.goto(ctx.base + '/#/');
    await client.waitForSelector('tr[data-run]', {timeout: WAIT});
    assert.ok(await client.locator('#trigger-open').isHidden());
    await closePage(client, 'admin-client');

    const page = await openPage();
    await page.goto(ctx.base + '/#/runs/' + ctx.runId);
    const button = page.locator('button[data-action="rerun"]');
    await button.waitFor({timeout: WAIT});
    // Does this server have the routes yet (docs/server.md "HTTP API: runs")?
    const missingRoute = (r) => r.status === 405 || (r.status === 404 && /no route/.test(r.text));
    const rerunRoute = !missingRoute(await http('POST', '/api/v1/runs/999999999/rerun'));
    await button.click();
    if (rerunRoute) {
      await page.waitForFunction((id) => /^#\/runs\/\d+$/.test(location.hash) && location.hash !== '#/runs/' + id,
                                 ctx.runId, {timeout: WAIT});
      const next = Number((await page.evaluate(() => location.hash)).split('/')[2]);
      assert.ok(next > ctx.runId);
      const run = await http('GET', '/api/v1/runs/' + next);
      assert.equal(run.status, 200);
      assert.equal(run.json.commit, ctx.commit, 'the re-run runs the same commit');
    } else {
      await page.waitForFunction(() => /cannot do that yet/.test(document.getElementById('banner').textContent),
                                 null, {timeout: WAIT});
      t.diagnostic('POST /api/v1/runs/{id}/rerun is not on this server yet: the button says so');
    }

    await page.goto(ctx.base + '/#/');
    await page.locator('#trigger-open').waitFor({state: 'visible', timeout: WAIT});
    await page.click('#trigger-open');
    await page.fill('#trigger-form input[name="repo"]', 'app');
    await page.selectOption('#trigger-form select[name="kind"]', 'commit');
    await page.fill('#trigger-form input[name="ref"]', 'not-hex');
    await page.click('#trigger-form button[type="submit"]');
    await page.waitForFunction(() => /is not a commit id/.test(document.getElementById('banner').textContent));
    await page.selectOption('#trigger-form select[name="kind"]', 'branch');
    await page.fill('#trigger-form input[name="ref"]', 'main');
    const triggerRoute = !missingRoute(await http('POST', '/api/v1/runs', '{}'));
    const before = (await http('GET', '/api/v1/runs')).json.runs[0].id;
    await page.click('#trigger-form button[type="submit"]');
    if (triggerRoute) {
      await page.waitForFunction((id) => /^#\/runs\/\d+$/.test(location.hash) && Number(location.hash.split('/')[2]) > id,
                                 before, {timeout: WAIT});
      const id = Number((await page.evaluate(() => location.hash)).split('/')[2]);
      const run = (await http('GET', '/api/v1/runs/' + id)).json;
      assert.equal(run.repo, 'app');
      assert.equal(run.branch, 'main');
    } else {
      await page.waitForFunction(() => /cannot do that yet/.test(document.getElementById('banner').textContent),
                                 null, {timeout: WAIT});
      t.diagnostic('POST /api/v1/runs is not on this server yet: the form says so');
    }
    await closePage(page, 'admin');
  });

  test('a log of 100,000 lines opens with only the lines in view in the document (figures printed)', async (t) => {
    const page = await openPage();
    await page.goto(ctx.base + '/#/runs/' + ctx.runId);
    await page.waitForSelector('tr[data-step="build/long"]', {timeout: WAIT});
    // The reference: the same log downloaded as text by the same page.
    const fetchMs = await page.evaluate(async (id) => {
      const t0 = performance.now();
      const r = await fetch('/api/v1/runs/' + id + '/steps/build/long/log?format=json',
                            {headers: {Authorization: 'Bearer ' + localStorage.getItem('ladle.token')}});
      await r.text();
      return performance.now() - t0;
    }, ctx.runId);
    const t0 = Date.now();
    await page.click('tr[data-step="build/long"] a');
    await page.waitForFunction((n) => {
      const last = document.querySelector('#log .ll[data-n="' + n + '"]');
      return last && document.getElementById('log-count-lines').textContent === n.toLocaleString('en') + ' lines';
    }, LONG_LINES, {timeout: 60000});
    const openMs = Date.now() - t0;
    // Scrolling to the middle draws the lines there.
    const t1 = Date.now();
    await page.evaluate(() => { const pre = document.getElementById('log'); pre.scrollTop = pre.scrollHeight / 2; });
    await page.waitForSelector('#log .ll[data-n="50000"]', {timeout: WAIT});
    const scrollMs = Date.now() - t1;
    const drawn = await page.locator('#log .ll').count();
    assert.ok(drawn < 500, 'lines in the document: ' + drawn);
    t.diagnostic('100,000-line log: opened (last line shown) in ' + openMs + ' ms; the same log fetched as JSON ' +
                'by the page in ' + Math.round(fetchMs) + ' ms; a scroll to the middle drawn in ' + scrollMs +
                ' ms; ' + drawn + ' lines in the document');
    await closePage(page, 'long-log');
  });
});
