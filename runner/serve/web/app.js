// ladle's web UI (GET / of `ladle serve`): the runs, one run's stages,
// steps and logs, the deployments, kept live by the runs API's event stream.
// No framework and no build step: the server embeds this file as it is.
//
// Everything above "The page" is pure (no DOM, no network) and is tested by
// tests/web/app_test.js under node; the page part wires it to the document.
'use strict';

(function (root) {

const STATUSES = ['queued', 'running', 'waiting', 'success', 'failed', 'skipped',
                  'cancelled', 'interrupted', 'superseded'];
const ACTIVE = new Set(['queued', 'running', 'waiting']);
const PAGE_SIZE = 50;

// ---- Text ---------------------------------------------------------------

function escapeHtml(value) {
  return String(value === undefined || value === null ? '' : value).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  }[c]));
}

// docs/running.md "Same inputs as CI": a run from a dirty tree shows +dirty.
function shortCommit(commit, dirty) {
  return commit ? String(commit).slice(0, 10) + (dirty ? '+dirty' : '') : '';
}

function parseTime(text) {
  if (!text) return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : ms;
}

// "850 ms", "4.2 s", "42 s", "3 min 12 s", "2 h 5 min".
function formatDuration(ms) {
  if (ms === null || ms === undefined || !(ms >= 0)) return '';
  // Rounded first, then placed: 59.6 s is "1 min 0 s", not "60 s".
  if (Math.round(ms) < 1000) return Math.round(ms) + ' ms';
  const tenths = Math.round(ms / 100);
  if (tenths < 100) return (tenths / 10).toFixed(1) + ' s';
  const total = Math.round(ms / 1000);
  if (total < 60) return total + ' s';
  if (total < 3600) return Math.floor(total / 60) + ' min ' + (total % 60) + ' s';
  return Math.floor(total / 3600) + ' h ' + Math.floor((total % 3600) / 60) + ' min';
}

// How long a run, stage or step took, or has taken so far; null before it started.
function elapsed(item, now) {
  const start = parseTime(item && item.started_at);
  if (start === null) return null;
  const end = parseTime(item.finished_at);
  return (end === null ? now : end) - start;
}

// "just now", "12 s ago", "5 min ago", "3 h ago", "2 d ago".
function relativeTime(text, now) {
  const t = parseTime(text);
  if (t === null) return '';
  const s = Math.floor((now - t) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  if (s < 86400) return Math.floor(s / 3600) + ' h ago';
  return Math.floor(s / 86400) + ' d ago';
}

function statusBadge(status) {
  const known = STATUSES.includes(status) ? status : 'unknown';
  return '<span class="status s-' + known + '">' + escapeHtml(status) + '</span>';
}

// "5 min ago", marked so that the page's clock can tick it in place.
function timeCell(text, now) {
  if (!text) return '';
  return '<span class="ago" data-t="' + escapeHtml(text) + '" title="' + escapeHtml(text) + '">' +
         escapeHtml(relativeTime(text, now)) + '</span>';
}

// How long it took, or has taken so far; one still running is marked so
// that the page's clock can tick it in place.
function tookCell(item, now) {
  const text = escapeHtml(formatDuration(elapsed(item, now)));
  if (!item || !item.started_at || item.finished_at) return text;
  return '<span class="took" data-start="' + escapeHtml(item.started_at) + '">' + text + '</span>';
}

// What the clock changes in HTML already on the page: [{kind, time}] ->
// the text each now shows. Pure, for the tests; the page applies it.
function tickText(kind, time, now) {
  if (kind === 'ago') return relativeTime(time, now);
  const start = parseTime(time);
  return start === null ? '' : formatDuration(now - start);
}

// ---- Routes (the part of the address after '#') -------------------------

function parseQuery(text) {
  const out = {};
  if (!text) return out;
  for (const part of text.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const key = decodeComponent(eq < 0 ? part : part.slice(0, eq), true);
    const value = eq < 0 ? '' : decodeComponent(part.slice(eq + 1), true);
    if (key !== null && value !== null && value !== '') out[key] = value;
  }
  return out;
}

// '+' is a space in a query, itself in a path.
function decodeComponent(text, query) {
  try { return decodeURIComponent(query ? text.replace(/\+/g, ' ') : text); } catch (e) { return null; }
}

function queryString(params) {
  const parts = [];
  for (const key of Object.keys(params)) {
    const value = params[key];
    if (value === undefined || value === null || value === '') continue;
    parts.push(encodeURIComponent(key) + '=' + encodeURIComponent(value));
  }
  return parts.length ? '?' + parts.join('&') : '';
}

// '#/?status=failed' -> {view: 'runs', filters: {status: 'failed'}};
// '#/runs/12/test/unit' -> {view: 'run', id: 12, stage: 'test', step: 'unit'};
// '#/deployments?environment=production' -> {view: 'deployments', environment: ...}.
// Anything else is the runs list.
function parseRoute(hash) {
  let text = String(hash || '').replace(/^#/, '');
  let query = '';
  const q = text.indexOf('?');
  if (q >= 0) { query = text.slice(q + 1); text = text.slice(0, q); }
  const parts = text.split('/').filter((p) => p !== '').map((p) => decodeComponent(p, false));
  const params = parseQuery(query);
  if (parts[0] === 'runs' && /^[1-9][0-9]*$/.test(parts[1] || '')) {
    const route = {view: 'run', id: Number(parts[1])};
    if (parts.length >= 4 && parts[2] && parts[3]) { route.stage = parts[2]; route.step = parts[3]; }
    return route;
  }
  if (parts[0] === 'deployments') return {view: 'deployments', environment: params.environment || ''};
  if (parts[0] === 'toggles') return {view: 'toggles'};
  const filters = {};
  for (const key of ['repo', 'branch', 'status']) if (params[key]) filters[key] = params[key];
  return {view: 'runs', filters};
}

function routeHash(route) {
  if (route.view === 'run') {
    let hash = '#/runs/' + route.id;
    if (route.stage && route.step) {
      hash += '/' + encodeURIComponent(route.stage) + '/' + encodeURIComponent(route.step);
    }
    return hash;
  }
  if (route.view === 'deployments') return '#/deployments' + queryString({environment: route.environment});
  if (route.view === 'toggles') return '#/toggles';
  return '#/' + queryString(route.filters || {});
}

// ---- API addresses --------------------------------------------------------

function runsPath(filters, before, limit) {
  const f = filters || {};
  return '/api/v1/runs' + queryString({repo: f.repo, branch: f.branch, status: f.status,
                                       limit: limit || PAGE_SIZE, before});
}

function logPath(id, stage, step, follow) {
  return '/api/v1/runs/' + id + '/steps/' + encodeURIComponent(stage) + '/' +
         encodeURIComponent(step) + '/log' + queryString({format: 'json', follow: follow ? 1 : ''});
}

function deploymentsPath(environment, before) {
  return '/api/v1/deployments' + queryString({environment, limit: PAGE_SIZE, before});
}

// ---- Streams --------------------------------------------------------------

// Splits Server-Sent Events text into complete events and the unfinished
// rest: {events: [{id, event, data}], rest}. Comment lines are skipped;
// several data lines join with '\n'; CRLF works as LF.
function parseSse(text) {
  const events = [];
  // A chunk that ends in '\r' may end in the middle of a CRLF: that '\r'
  // waits for the next chunk.
  const held = text.endsWith('\r') ? '\r' : '';
  const normal = (held ? text.slice(0, -1) : text).replace(/\r\n?/g, '\n');
  let start = 0;
  for (;;) {
    const end = normal.indexOf('\n\n', start);
    if (end < 0) break;
    const block = normal.slice(start, end);
    start = end + 2;
    const ev = {id: null, event: 'message', data: null};
    for (const line of block.split('\n')) {
      if (line === '' || line[0] === ':') continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'id') ev.id = value;
      else if (field === 'event') ev.event = value;
      else if (field === 'data') ev.data = ev.data === null ? value : ev.data + '\n' + value;
    }
    if (ev.data !== null || ev.id !== null) events.push(ev);
  }
  return {events, rest: normal.slice(start) + held};
}

// Splits newline-delimited JSON into parsed records and the unfinished rest.
// A line that is not JSON becomes a stderr record saying so, not an exception.
function parseNdjson(text) {
  const records = [];
  let start = 0;
  for (;;) {
    const end = text.indexOf('\n', start);
    if (end < 0) break;
    const line = text.slice(start, end);
    start = end + 1;
    if (line.trim() === '') continue;
    try {
      records.push(JSON.parse(line));
    } catch (e) {
      records.push({stream: 'stderr', text: '(ladle web UI: a log line that is not JSON: ' + line + ')'});
    }
  }
  return {records, rest: text.slice(start)};
}

// ---- Keeping data current from events ----------------------------------------

function matchesFilters(run, filters) {
  const f = filters || {};
  return (!f.repo || run.repo === f.repo) && (!f.branch || run.branch === f.branch) &&
         (!f.status || run.status === f.status);
}

// The runs list after a `run` event: the run replaced where it is, a new run
// that the filters take added on top, a run the filters no longer take
// removed. Runs are newest (highest id) first; the list keeps its length
// limit. Returns a new array.
function applyRunEvent(runs, run, filters, limit) {
  const max = limit || PAGE_SIZE;
  const without = runs.filter((r) => r.id !== run.id);
  if (!matchesFilters(run, filters)) return without;
  // Sorted in, then cut to the page: a run older than a full page's oldest
  // falls off the end (it belongs to an older page).
  const merged = without.concat([run]).sort((a, b) => b.id - a.id);
  return merged.slice(0, Math.max(max, runs.length));
}

// Applies a `run`, `stage` or `step` event to one run's full JSON in place.
// An event carries the whole record (the server leaves out an empty
// `message`, so a message the event lacks is gone). Returns false when the event names a stage or step the run does not have
// yet (the caller fetches the run again).
function applyDetailEvent(run, type, data) {
  if (!run || data.run_id !== run.id && !(type === 'run' && data.id === run.id)) return true;
  if (type === 'run') {
    for (const key of Object.keys(data)) if (key !== 'stages' && key !== 'deployment') run[key] = data[key];
    if (!('message' in data)) delete run.message;
    return true;
  }
  const stage = (run.stages || []).find((s) => s.name === (type === 'stage' ? data.name : data.stage));
  if (!stage) return false;
  if (type === 'stage') {
    for (const key of Object.keys(data)) if (key !== 'run_id' && key !== 'steps') stage[key] = data[key];
    if (!('message' in data)) delete stage.message;
    return true;
  }
  if (type === 'step') {
    const step = (stage.steps || []).find((s) => s.name === data.name);
    if (!step) return false;
    for (const key of Object.keys(data)) if (key !== 'run_id' && key !== 'stage') step[key] = data[key];
    return true;
  }
  return true;
}

// ---- Views (HTML strings; every value from the server is escaped) -------------

function runLink(id, label) {
  return '<a href="#/runs/' + Number(id) + '">' + escapeHtml(label === undefined ? '#' + id : label) + '</a>';
}

function runsTableHtml(runs, now, filtered) {
  if (!runs.length) {
    return '<p class="empty">' + (filtered
      ? 'No run matches these filters.'
      : 'No runs yet. Push a commit to a watched branch (or send its webhook): its run appears here as it is queued.') +
      '</p>';
  }
  let html = '<table class="runs"><thead><tr><th>run</th><th>status</th><th>repository</th>' +
             '<th>branch</th><th>commit</th><th>trigger</th><th>created</th><th class="num">took</th>' +
             '</tr></thead><tbody>';
  for (const run of runs) {
    html += '<tr data-run="' + Number(run.id) + '"><td>' + runLink(run.id) + '</td><td>' +
            statusBadge(run.status) + '</td><td>' + escapeHtml(run.repo) + '</td><td>' +
            escapeHtml(run.branch) + '</td><td class="mono" title="' + escapeHtml(run.commit) + '">' +
            escapeHtml(shortCommit(run.commit, run.dirty)) + '</td><td>' + escapeHtml(run.trigger || '') +
            (run.rollback_environment ? ' <span class="env">rollback of ' + escapeHtml(run.rollback_environment) +
                                        '</span>' : '') +
            '</td><td>' + timeCell(run.created_at, now) + '</td><td class="num">' +
            tookCell(run, now) + '</td></tr>';
    if (run.message) {
      html += '<tr class="detail"><td></td><td colspan="7" class="muted">' + escapeHtml(run.message) + '</td></tr>';
    }
  }
  return html + '</tbody></table>';
}

function testsText(tests) {
  if (!tests) return '';
  return tests.passed + ' passed, ' + tests.failed + ' failed, ' + tests.skipped + ' skipped of ' + tests.total;
}

function stepHtml(run, stage, step, now, selected) {
  const href = '#/runs/' + Number(run.id) + '/' + encodeURIComponent(stage.name) + '/' +
               encodeURIComponent(step.name);
  const notes = [];
  if (step.failure_reason) notes.push(step.failure_reason);
  if (step.allow_failure) notes.push('allowed to fail');
  if (step.attempts > 1) notes.push(step.attempts + ' attempts');
  return '<tr' + (selected ? ' class="selected"' : '') + '><td><a href="' + escapeHtml(href) + '">' +
         escapeHtml(step.name) + '</a></td><td>' + statusBadge(step.status) + '</td><td class="num">' +
         (step.exit_code === null || step.exit_code === undefined ? '' : 'exit ' + escapeHtml(step.exit_code)) +
         '</td><td class="num">' + tookCell(step, now) + '</td><td class="muted">' +
         escapeHtml(notes.join(', ')) + '</td></tr>';
}

// A failed test case as people read it: "suite.name" (the suite dropped
// when the name starts with it), as FailedTestLine in run_store.cc.
function failedTestName(t) {
  const suite = String(t.suite || '');
  const name = String(t.name || '');
  if (!name) return suite;
  return !suite || name.startsWith(suite) ? name : suite + '.' + name;
}

// docs/running.md "Tests by name": the failed test cases of a stage's steps,
// at most 10, then how many more.
function failedTestsHtml(stage) {
  const shown = [];
  let more = 0;
  for (const step of stage.steps || []) {
    for (const t of step.failed_tests || []) {
      if (shown.length < 10) shown.push(t);
      else more++;
    }
    more += Number(step.failed_tests_more) || 0;
  }
  if (!shown.length && !more) return '';
  let html = '<ul class="failed-tests">';
  for (const t of shown) {
    html += '<li><span class="mono">' + escapeHtml(failedTestName(t)) + '</span>' +
            (t.message ? ' <span class="muted">' + escapeHtml(t.message) + '</span>' : '') + '</li>';
  }
  if (more) html += '<li class="muted">and ' + more + ' more failed test' + (more === 1 ? '' : 's') + '</li>';
  return html + '</ul>';
}

// docs/backends.md "keep": the command that enters a step's kept container.
function keptHtml(step) {
  if (!step.kept) return '';
  return '<tr class="kept"><td colspan="5"><span class="muted">container kept; enter it with:</span> <code>' +
         escapeHtml(step.kept) + '</code></td></tr>';
}

// The files a step kept (run.artifacts, from GET /api/v1/runs/{id}/artifacts)
// as download buttons: a download needs the token, so a plain link would not do
// (docs/server.md "HTTP API: runs").
function artifactsHtml(run, stage, step) {
  const files = (run.artifacts || []).filter((a) => a.stage === stage.name && a.step === step.name);
  if (!files.length) return '';
  let html = '<tr class="artifacts"><td colspan="5"><span class="muted">artifacts:</span>';
  for (const a of files) {
    const path = '/api/v1/runs/' + Number(run.id) + '/artifacts/' + encodeURIComponent(stage.name) + '/' +
                 encodeURIComponent(step.name) + '/' + String(a.path).split('/').map(encodeURIComponent).join('/');
    html += ' <button type="button" class="link" data-action="artifact" data-path="' + escapeHtml(path) +
            '" data-name="' + escapeHtml(a.path) + '">' + escapeHtml(a.path) + '</button> <span class="muted">(' +
            escapeHtml(a.size) + ' B)</span>';
  }
  return html + '</td></tr>';
}

// One run with its stages and steps. `route` marks the step whose log shows.
function runHtml(run, now, route) {
  const r = route || {};
  let html = '<h1>Run ' + Number(run.id) + ' ' + statusBadge(run.status) + '</h1>';
  html += '<dl class="facts">';
  const fact = (name, value) => { if (value) html += '<dt>' + name + '</dt><dd>' + value + '</dd>'; };
  fact('repository', escapeHtml(run.repo));
  fact('branch', escapeHtml(run.branch));
  if (run.commit) fact('commit', '<span class="mono">' + escapeHtml(run.commit + (run.dirty ? '+dirty' : '')) + '</span>' +
      (run.dirty && run.changed_paths && run.changed_paths.length
         ? ' (changed: ' + escapeHtml(run.changed_paths.slice(0, 10).join(', ')) +
           (run.changed_paths.length > 10 ? ', ...' : '') + ')' : ''));
  fact('pipeline', escapeHtml(run.pipeline) + (run.file ? ' <span class="muted">(' + escapeHtml(run.file) + ')</span>' : ''));
  fact('trigger', escapeHtml(run.trigger || ''));
  if (run.rollback_environment) {
    fact('rollback', 'of ' + escapeHtml(run.rollback_environment) +
         (run.source_run ? ' to the commit of ' + runLink(run.source_run, 'run ' + run.source_run) : ''));
  }
  fact('created', timeCell(run.created_at, now));
  fact('took', tookCell(run, now));
  if (run.deployment) {
    const d = run.deployment;
    fact('deployment', '<span class="env">' + escapeHtml(d.environment) + '</span> ' + statusBadge(d.status) +
         (d.rollback ? ' rollback' : ''));
  }
  html += '</dl>';
  if (run.message) html += '<p class="message">' + escapeHtml(run.message) + '</p>';
  if (ACTIVE.has(run.status)) {
    html += '<div class="actions"><button type="button" class="danger" data-action="cancel" data-run="' +
            Number(run.id) + '">Cancel run</button></div>';
  }
  const stages = run.stages || [];
  if (!stages.length) html += '<p class="empty">No stages yet: the run has not started.</p>';
  for (const stage of stages) {
    html += '<section class="stage"><div class="title"><span class="name">' + escapeHtml(stage.name) +
            '</span>' + statusBadge(stage.status);
    if (stage.environment) html += '<span class="env">' + escapeHtml(stage.environment) + '</span>';
    if (stage.tests) html += '<span class="muted">tests: ' + escapeHtml(testsText(stage.tests)) + '</span>';
    if (stage.status === 'waiting') {
      html += '<button type="button" class="primary" data-action="approve" data-run="' + Number(run.id) +
              '" data-stage="' + escapeHtml(stage.name) + '">Approve ' + escapeHtml(stage.name) + '</button>';
    }
    html += '</div>';
    if (stage.message) html += '<p class="message muted">' + escapeHtml(stage.message) + '</p>';
    html += failedTestsHtml(stage);
    if ((stage.steps || []).length) {
      html += '<table class="steps"><tbody>';
      for (const step of stage.steps) {
        html += stepHtml(run, stage, step, now, r.stage === stage.name && r.step === step.name);
        html += keptHtml(step);
        html += artifactsHtml(run, stage, step);
      }
      html += '</tbody></table>';
    }
    html += '</section>';
  }
  return html;
}

// The newest deployment of each environment, in order of first appearance
// (the list is newest first).
function currentDeployments(deployments) {
  const seen = new Map();
  for (const d of deployments) if (!seen.has(d.environment)) seen.set(d.environment, d);
  return Array.from(seen.values());
}

function deploymentsHtml(deployments, now, environment) {
  if (!deployments.length) {
    return '<p class="empty">' + (environment
      ? 'No deployment to ' + escapeHtml(environment) + ' yet.'
      : 'No deployments yet: a run records one when it reaches a stage with an environment.') + '</p>';
  }
  let html = '<h2>Environments</h2><table class="environments"><thead><tr><th>environment</th>' +
             '<th>latest</th><th>run</th><th>commit</th><th>when</th><th></th></tr></thead><tbody>';
  for (const d of currentDeployments(deployments)) {
    html += '<tr><td><a href="#/deployments?environment=' + encodeURIComponent(d.environment) + '">' +
            escapeHtml(d.environment) + '</a></td><td>' + statusBadge(d.status) + (d.rollback ? ' rollback' : '') +
            '</td><td>' + runLink(d.run_id) + '</td><td class="mono" title="' + escapeHtml(d.commit) + '">' +
            escapeHtml(shortCommit(d.commit, d.dirty)) + '</td><td>' + timeCell(d.started_at, now) + '</td><td>' +
            '<button type="button" class="danger" data-action="rollback" data-environment="' +
            escapeHtml(d.environment) + '">Roll back…</button></td></tr>';
  }
  html += '</tbody></table><h2>History</h2><table class="deployments"><thead><tr><th>environment</th>' +
          '<th>status</th><th>run</th><th>stage</th><th>repository</th><th>branch</th><th>commit</th>' +
          '<th>started</th><th class="num">took</th></tr></thead><tbody>';
  for (const d of deployments) {
    html += '<tr><td>' + escapeHtml(d.environment) + '</td><td>' + statusBadge(d.status) +
            (d.rollback ? ' rollback' : '') + '</td><td>' + runLink(d.run_id) + '</td><td>' +
            escapeHtml(d.stage) + '</td><td>' + escapeHtml(d.repo) + '</td><td>' + escapeHtml(d.branch) +
            '</td><td class="mono" title="' + escapeHtml(d.commit) + '">' + escapeHtml(shortCommit(d.commit, d.dirty)) +
            '</td><td>' + timeCell(d.started_at, now) + '</td><td class="num">' +
            tookCell(d, now) + '</td></tr>';
  }
  return html + '</tbody></table>';
}

// One environment's strategies in a few words: "rollout 25%", "3 users",
// "rollout 10%, 2 constraints"; "" when there are none (on for everyone).
function strategiesText(strategies) {
  const parts = [];
  for (const st of strategies || []) {
    const bits = [];
    if (st.rollout && typeof st.rollout.percent === 'number') bits.push('rollout ' + st.rollout.percent + '%');
    if (Array.isArray(st.users)) bits.push(st.users.length + (st.users.length === 1 ? ' user' : ' users'));
    const c = Array.isArray(st.constraints) ? st.constraints.length : 0;
    if (c) bits.push(c + (c === 1 ? ' constraint' : ' constraints'));
    parts.push(bits.length ? bits.join(' with ') : 'a strategy');
  }
  return parts.join('; ');
}

// The strategies after a rollout to `percent`, as `ladle toggles rollout`
// makes them: a lone rollout strategy keeps its stickiness, group and
// constraints (users keep their buckets as the percentage grows); anything
// else is replaced by one rollout.
function rolloutStrategies(current, percent) {
  if (Array.isArray(current) && current.length === 1 && current[0] && current[0].rollout) {
    const next = JSON.parse(JSON.stringify(current));
    next[0].rollout.percent = percent;
    return next;
  }
  return [{rollout: {percent}}];
}

// "25", "25%" or " 25 % " -> 25; anything but a whole number 0-100 -> null.
function parsePercent(text) {
  const m = /^\s*(\d{1,3})\s*%?\s*$/.exec(String(text === undefined || text === null ? '' : text));
  if (!m) return null;
  const n = Number(m[1]);
  return n <= 100 ? n : null;
}

// The environments the toggles name, production first, then by name.
function toggleEnvironments(toggles) {
  const names = new Set();
  for (const t of toggles) for (const env of Object.keys(t.environments || {})) names.add(env);
  return Array.from(names).sort((a, b) => (a === 'production' ? -1 : b === 'production' ? 1 : a < b ? -1 : a > b ? 1 : 0));
}

function togglesHtml(toggles) {
  if (!toggles.length) {
    return '<p class="empty">No toggles yet. A pipeline stage with <code>toggles: FILE</code> creates them, off; ' +
           'or <code>ladle toggles create KEY</code>.</p>';
  }
  const envs = toggleEnvironments(toggles);
  let html = '<table class="toggles"><thead><tr><th>toggle</th>';
  for (const env of envs) html += '<th>' + escapeHtml(env) + '</th>';
  html += '</tr></thead><tbody>';
  for (const t of toggles) {
    html += '<tr data-toggle="' + escapeHtml(t.key) + '"><td><span class="key">' + escapeHtml(t.key) + '</span> ' +
            (t.type ? '<span class="env">' + escapeHtml(t.type) + '</span>' : '') +
            (t.description ? '<div class="muted">' + escapeHtml(t.description) + '</div>' : '') + '</td>';
    for (const env of envs) {
      const e = (t.environments || {})[env];
      if (!e) { html += '<td class="muted">-</td>'; continue; }
      const detail = e.enabled ? strategiesText(e.strategies) : '';
      html += '<td data-env="' + escapeHtml(env) + '"><span class="status ' + (e.enabled ? 's-success">on' : 's-skipped">off') +
              '</span>' + (detail ? ' <span class="muted">' + escapeHtml(detail) + '</span>' : '') +
              ' <button type="button" data-action="flip" data-key="' + escapeHtml(t.key) + '" data-environment="' +
              escapeHtml(env) + '" data-to="' + (e.enabled ? 'off' : 'on') + '">' + (e.enabled ? 'Turn off' : 'Turn on') +
              '</button> <button type="button" data-action="rollout" data-key="' + escapeHtml(t.key) +
              '" data-environment="' + escapeHtml(env) + '">Rollout…</button></td>';
    }
    html += '</tr>';
  }
  return html + '</tbody></table>';
}

// The message of a failed API call: the server's {"error", "message"} when
// it sent one.
function errorMessage(status, bodyText, what) {
  let message = '';
  try {
    const body = JSON.parse(bodyText);
    if (body && typeof body.message === 'string') message = body.message;
  } catch (e) { /* not JSON */ }
  const text = (bodyText || '').trim();
  if (!message) message = text && text.length < 300 ? text : 'HTTP ' + status;
  return what + ': ' + message + ' (' + status + ')';
}

const pure = {
  STATUSES, escapeHtml, shortCommit, formatDuration, elapsed, relativeTime, statusBadge,
  parseRoute, routeHash, runsPath, logPath, deploymentsPath, parseSse, parseNdjson, matchesFilters,
  applyRunEvent, applyDetailEvent, runsTableHtml, runHtml, artifactsHtml, deploymentsHtml, currentDeployments,
  errorMessage, testsText, failedTestsHtml, keptHtml, tickText, strategiesText, toggleEnvironments, togglesHtml,
  rolloutStrategies, parsePercent,
};

if (typeof module !== 'undefined' && module.exports) {
  module.exports = pure;
  return;
}

// ---- The page ---------------------------------------------------------------------

const TOKEN_KEY = 'ladle.token';
const doc = root.document;
const $ = (id) => doc.getElementById(id);

const state = {
  route: parseRoute(root.location.hash),
  runs: [], nextBefore: null, run: null, deployments: [], deploymentsNext: null, toggles: [],
  loaded: false, lastEventId: null, events: null, log: null, refetch: null,
};

function token() {
  try { return root.localStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
}

function setToken(value) {
  try {
    if (value) root.localStorage.setItem(TOKEN_KEY, value);
    else root.localStorage.removeItem(TOKEN_KEY);
  } catch (e) { /* storage disabled: the token lasts for this page only */ }
  state.memoryToken = value;
}

function currentToken() { return token() || state.memoryToken || ''; }

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options, what) {
  const opts = options || {};
  const headers = Object.assign({Authorization: 'Bearer ' + currentToken()}, opts.headers || {});
  let response;
  try {
    response = await root.fetch(path, Object.assign({}, opts, {headers}));
  } catch (e) {
    throw new ApiError(0, (what || path) + ': the ladle server does not answer (' + e.message + ')');
  }
  if (opts.raw && response.ok) return response;
  const text = await response.text();
  if (!response.ok) throw new ApiError(response.status, errorMessage(response.status, text, what || path));
  return text ? JSON.parse(text) : null;
}

function showBanner(message, info) {
  const banner = $('banner');
  banner.textContent = message || '';
  banner.className = info ? 'info' : '';
  banner.hidden = !message;
}

function showTokenForm(why) {
  $('token-why').textContent = why || 'The runs API answers only to a token of this server.';
  $('token-form').hidden = false;
  $('token-input').focus();
}

function failed(err) {
  if (err && err.status === 401) {
    showTokenForm(currentToken() ? 'The stored token was refused: ' + err.message
                                 : 'The runs API answers only to a token of this server.');
    showBanner('');
    return;
  }
  showBanner(err && err.message ? err.message : String(err));
}

function render() {
  const now = Date.now();
  for (const a of doc.querySelectorAll('[data-nav]')) {
    a.classList.toggle('current', a.dataset.nav === (state.route.view === 'run' ? 'runs' : state.route.view));
  }
  if (!state.loaded) return;
  const r = state.route;
  if (r.view === 'runs') {
    const filtered = Object.keys(r.filters).length > 0;
    $('runs-table').innerHTML = runsTableHtml(state.runs, now, filtered);
    $('runs-more').hidden = !state.nextBefore;
  } else if (r.view === 'run' && state.run) {
    $('run-body').innerHTML = runHtml(state.run, now, r);
  } else if (r.view === 'deployments') {
    $('deployments-body').innerHTML = deploymentsHtml(state.deployments, now, r.environment);
    $('deployments-more').hidden = !state.deploymentsNext;
  } else if (r.view === 'toggles') {
    $('toggles-body').innerHTML = togglesHtml(state.toggles);
  }
  doc.title = r.view === 'run' && state.run ? 'ladle: run ' + state.run.id + ' ' + state.run.status : 'ladle';
}

function tick() {
  const now = Date.now();
  for (const el of doc.querySelectorAll('#view .ago')) {
    const text = tickText('ago', el.dataset.t, now);
    if (el.textContent !== text) el.textContent = text;
  }
  for (const el of doc.querySelectorAll('#view .took')) {
    const text = tickText('took', el.dataset.start, now);
    if (el.textContent !== text) el.textContent = text;
  }
}

function statusOptions(selected) {
  let html = '<option value="">any status</option>';
  for (const s of STATUSES) {
    html += '<option' + (s === selected ? ' selected' : '') + '>' + s + '</option>';
  }
  return html;
}

// Lays out the view's frame (filters, containers), then loads its data.
async function show() {
  state.route = parseRoute(root.location.hash);
  state.loaded = false;
  stopLog();
  const r = state.route;
  const view = $('view');
  if (r.view === 'runs') {
    const f = r.filters;
    view.innerHTML =
        '<form class="filters" id="filters"><input name="repo" placeholder="repository" value="' +
        escapeHtml(f.repo || '') + '"><input name="branch" placeholder="branch" value="' +
        escapeHtml(f.branch || '') + '"><select name="status">' + statusOptions(f.status) +
        '</select><button type="submit">Filter</button></form><div id="runs-table"></div>' +
        '<div class="more"><button type="button" id="runs-more" hidden>Older runs</button></div>';
    $('filters').addEventListener('submit', (e) => {
      e.preventDefault();
      const form = e.target;
      root.location.hash = routeHash({view: 'runs', filters: {
        repo: form.repo.value.trim(), branch: form.branch.value.trim(), status: form.status.value}});
    });
    $('runs-more').addEventListener('click', () => loadRuns(true).catch(failed));
  } else if (r.view === 'run') {
    view.innerHTML = '<p><a href="#/">&larr; all runs</a></p><div id="run-body"></div>' +
                     '<section id="log-box" hidden><h2 id="log-title"></h2><pre class="log" id="log"></pre></section>';
  } else if (r.view === 'toggles') {
    view.innerHTML = '<p class="muted">Toggles of every environment; a change here is an audit event ' +
                     'like any other (<code>ladle toggles history KEY</code>).</p><div id="toggles-body"></div>';
  } else {
    view.innerHTML =
        '<form class="filters" id="env-filter"><input name="environment" placeholder="environment" value="' +
        escapeHtml(r.environment || '') + '"><button type="submit">Filter</button></form>' +
        '<div id="deployments-body"></div><div class="more"><button type="button" id="deployments-more" hidden>' +
        'Older deployments</button></div>';
    $('env-filter').addEventListener('submit', (e) => {
      e.preventDefault();
      root.location.hash = routeHash({view: 'deployments', environment: e.target.environment.value.trim()});
    });
    $('deployments-more').addEventListener('click', () => loadDeployments(true).catch(failed));
  }
  render();
  if (!currentToken()) { showTokenForm(); return; }
  try {
    if (r.view === 'runs') await loadRuns(false);
    else if (r.view === 'run') await loadRun();
    else if (r.view === 'toggles') await loadToggles();
    else await loadDeployments(false);
    $('token-form').hidden = true;
    showBanner('');
  } catch (err) {
    failed(err);
  }
}

// The paged lists: where a view's items and its next page's `before` are
// kept, and the address of a page.
const LISTS = {
  runs: {next: 'nextBefore', path: (route, before) => runsPath(route.filters, before)},
  deployments: {next: 'deploymentsNext', path: (route, before) => deploymentsPath(route.environment, before)},
};

// Loads the first page of a list view, or with `more` appends the next.
async function loadList(view, more) {
  const list = LISTS[view];
  const route = state.route;
  const page = await api(list.path(route, more ? state[list.next] : undefined), {}, view);
  if (state.route !== route) return;
  state[view] = more ? state[view].concat(page[view]) : page[view];
  state[list.next] = page.next_before || null;
  state.loaded = true;
  render();
}

const loadRuns = (more) => loadList('runs', more);
const loadDeployments = (more) => loadList('deployments', more);

async function loadRun() {
  const route = state.route;
  const run = await api('/api/v1/runs/' + route.id, {}, 'run ' + route.id);
  if (state.route !== route) return;
  state.run = run;
  try {  // the UI works without them (an older server has no such route)
    const list = await api('/api/v1/runs/' + route.id + '/artifacts', {}, 'artifacts of run ' + route.id);
    if (state.route !== route) return;
    run.artifacts = (list && list.artifacts) || [];
  } catch (e) {
    run.artifacts = [];
  }
  state.loaded = true;
  render();
  if (route.stage && route.step && !state.log) startLog(route);
}

// Toggles change outside the runs' event stream (the CLI, a pipeline's
// sync): the view reads them again every few seconds while it is open.
async function loadToggles() {
  const route = state.route;
  const list = await api('/api/v1/toggles', {}, 'toggles');
  if (state.route !== route) return;
  state.toggles = list.toggles || [];
  state.loaded = true;
  render();
  root.clearTimeout(state.togglesTimer);
  state.togglesTimer = root.setTimeout(() => {
    if (state.route === route) loadToggles().catch(failed);
  }, 5000);
}

// Reads a streamed response to its end: `parse` (parseNdjson, parseSse)
// splits what has arrived into complete pieces and the unfinished rest, and
// `deliver` gets each batch of pieces.
async function readChunks(response, parse, deliver) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let rest = '';
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    const parsed = parse(rest + decoder.decode(value, {stream: true}));
    rest = parsed.rest;
    deliver(parsed);
  }
}

// ---- A step's log, followed while the step runs ----

function stopLog() {
  if (state.log) state.log.abort();
  state.log = null;
}

async function startLog(route) {
  const controller = new AbortController();
  state.log = controller;
  $('log-box').hidden = false;
  $('log-title').textContent = 'Log of ' + route.stage + '/' + route.step;
  const pre = $('log');
  pre.textContent = '';
  const append = (records) => {
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    const frag = doc.createDocumentFragment();
    for (const rec of records) {
      const line = doc.createElement('span');
      if (rec.stream === 'stderr') line.className = 'stderr';
      line.textContent = rec.text + '\n';
      frag.appendChild(line);
    }
    pre.appendChild(frag);
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  };
  try {
    const response = await api(logPath(route.id, route.stage, route.step, true),
                               {raw: true, signal: controller.signal}, 'log of ' + route.stage + '/' + route.step);
    await readChunks(response, parseNdjson, (parsed) => append(parsed.records));
    if (!pre.textContent) pre.textContent = '(no output)';
  } catch (err) {
    if (err.name !== 'AbortError') failed(err);
  }
}

// ---- Live: the runs event stream ----

function setLive(on, text) {
  const live = $('live');
  live.className = 'live ' + (on ? 'on' : 'off');
  live.textContent = text;
}

function onEvent(ev) {
  if (ev.id) state.lastEventId = ev.id;
  if (ev.event === 'reset') { show(); return; }
  if (!['run', 'stage', 'step'].includes(ev.event) || !ev.data) return;
  let data;
  try { data = JSON.parse(ev.data); } catch (e) { return; }
  const r = state.route;
  if (r.view === 'runs' && ev.event === 'run' && state.loaded) {
    state.runs = applyRunEvent(state.runs, data, r.filters, PAGE_SIZE);
    render();
  } else if (r.view === 'run' && state.run) {
    if (!applyDetailEvent(state.run, ev.event, data)) scheduleRefetch();
    else render();
    if (ev.event === 'run' && data.id === state.run.id && !ACTIVE.has(data.status)) scheduleRefetch();
  } else if (r.view === 'deployments' && ev.event === 'stage' && data.environment) {
    scheduleRefetch();
  }
}

// Several events in a burst cause one fetch.
function scheduleRefetch() {
  if (state.refetch) return;
  state.refetch = root.setTimeout(() => {
    state.refetch = null;
    const r = state.route;
    const load = r.view === 'run' ? loadRun()
        : r.view === 'deployments' ? loadDeployments(false)
        : r.view === 'toggles' ? loadToggles()
        : loadRuns(false);
    load.catch(failed);
  }, 250);
}

// A new token ends the wait before the next attempt at once.
function wakeEvents() {
  if (state.events) state.events.abort();
  if (state.wake) state.wake();
}

async function followEvents() {
  let delay = 1000;
  for (;;) {
    if (!currentToken()) { setLive(false, 'no token'); await pause(60000); continue; }
    const controller = new AbortController();
    state.events = controller;
    try {
      const headers = state.lastEventId ? {'Last-Event-ID': state.lastEventId} : {};
      const response = await api('/api/v1/runs/stream', {raw: true, headers, signal: controller.signal},
                                 'event stream');
      setLive(true, 'live');
      delay = 1000;
      await readChunks(response, parseSse, (parsed) => parsed.events.forEach(onEvent));
      setLive(false, 'reconnecting');
    } catch (err) {
      setLive(false, err.status === 401 ? 'no valid token' : 'reconnecting');
      if (err.status === 401) failed(err);
    }
    if (await pause(delay)) delay = 1000;
    else delay = Math.min(delay * 2, 15000);
  }
}

// Waits `ms`, or less when wakeEvents() is called; true when woken.
function pause(ms) {
  return new Promise((resolve) => {
    const timer = root.setTimeout(() => { state.wake = null; resolve(false); }, ms);
    state.wake = () => { root.clearTimeout(timer); state.wake = null; resolve(true); };
  });
}

// ---- Actions (admin token) ----

// Fetches an artifact with the token and hands it to the browser as a download.
async function downloadArtifact(button) {
  try {
    const response = await api(button.dataset.path, {raw: true}, 'artifact ' + button.dataset.name);
    const url = root.URL.createObjectURL(await response.blob());
    const a = doc.createElement('a');
    a.href = url;
    a.download = button.dataset.name.split('/').pop();
    doc.body.appendChild(a);
    a.click();
    a.remove();
    root.setTimeout(() => root.URL.revokeObjectURL(url), 60000);
  } catch (err) {
    failed(err);
  }
}

async function act(button) {
  const action = button.dataset.action;
  if (action === 'artifact') return downloadArtifact(button);
  try {
    let answer;
    if (action === 'cancel') {
      const id = button.dataset.run;
      if (!root.confirm('Cancel run ' + id + '? Its running steps are stopped.')) return;
      answer = await api('/api/v1/runs/' + id + '/cancel', {method: 'POST'}, 'cancel run ' + id);
    } else if (action === 'approve') {
      const id = button.dataset.run, stage = button.dataset.stage;
      answer = await api('/api/v1/runs/' + id + '/stages/' + encodeURIComponent(stage) + '/approve',
                         {method: 'POST'}, 'approve ' + stage + ' of run ' + id);
    } else if (action === 'flip') {
      const key = button.dataset.key, env = button.dataset.environment, to = button.dataset.to;
      if (!root.confirm('Turn ' + key + ' ' + to + ' in ' + env + '?')) return;
      const toggle = await api('/api/v1/toggles/' + encodeURIComponent(key) + '/environments/' +
                               encodeURIComponent(env) + '/' + to, {method: 'POST'}, 'turn ' + key + ' ' + to);
      answer = {message: key + ' is ' + to + ' in ' + env + ' (revision ' + (toggle && toggle.revision) + ')'};
    } else if (action === 'rollout') {
      const key = button.dataset.key, env = button.dataset.environment;
      const text = root.prompt('Roll ' + key + ' out in ' + env + ' to what share of users (0-100 %)? ' +
                               'It is turned on; users keep their buckets as the share grows.', '');
      if (text === null) return;
      const percent = parsePercent(text);
      if (percent === null) {
        showBanner('Rollout of ' + key + ': "' + text + '" is not a percentage from 0 to 100.');
        return;
      }
      const toggle = await setRollout(key, env, percent);
      answer = {message: key + ' is rolled out to ' + percent + '% in ' + env + ' (revision ' + toggle.revision + ')'};
    } else if (action === 'rollback') {
      const env = button.dataset.environment;
      const to = root.prompt('Roll back ' + env + '.\nLeave empty to redeploy the deployment before the current ' +
                             'one, or give the run whose commit to deploy:', '');
      if (to === null) return;
      const body = to.trim() ? JSON.stringify({to_run: Number(to.trim())}) : '';
      if (to.trim() && !/^[1-9][0-9]*$/.test(to.trim())) {
        showBanner('Roll back ' + env + ': "' + to.trim() + '" is not a run number.');
        return;
      }
      answer = await api('/api/v1/environments/' + encodeURIComponent(env) + '/rollback',
                         {method: 'POST', body, headers: {'Content-Type': 'application/json'}}, 'roll back ' + env);
      if (answer && answer.run_id) { root.location.hash = '#/runs/' + answer.run_id; return; }
    }
    showBanner(answer && answer.message ? answer.message : 'done', true);
    scheduleRefetch();
  } catch (err) {
    failed(err);
  }
}

// GET, then PUT with If-Match, so that a change made meanwhile is not
// overwritten (412: read again and retry, three times at most).
async function setRollout(key, env, percent) {
  const path = '/api/v1/toggles/' + encodeURIComponent(key);
  for (let attempt = 0; ; ++attempt) {
    const toggle = await api(path, {}, 'toggle ' + key);
    const current = ((toggle.environments || {})[env] || {}).strategies;
    const body = JSON.stringify({enabled: true, strategies: rolloutStrategies(current, percent)});
    try {
      return await api(path + '/environments/' + encodeURIComponent(env),
                       {method: 'PUT', body, headers: {'Content-Type': 'application/json',
                                                       'If-Match': '"' + toggle.revision + '"'}},
                       'roll out ' + key);
    } catch (err) {
      if (err.status !== 412 || attempt >= 2) throw err;
    }
  }
}

function start() {
  $('token-entry').addEventListener('submit', (e) => {
    e.preventDefault();
    const value = $('token-input').value.trim();
    if (!value) return;
    setToken(value);
    $('token-input').value = '';
    $('token-form').hidden = true;
    wakeEvents();
    show();
  });
  $('token-forget').addEventListener('click', () => {
    setToken('');
    wakeEvents();
    showTokenForm('The token is forgotten.');
  });
  $('token-button').addEventListener('click', () => {
    const form = $('token-form');
    if (form.hidden) showTokenForm(); else form.hidden = true;
  });
  $('view').addEventListener('click', (e) => {
    const button = e.target.closest('button[data-action]');
    if (button) act(button);
  });
  root.addEventListener('hashchange', show);
  // "5 s ago" and the durations of what runs grow by themselves: their
  // text changes in place, so a selection or a hovered button stays.
  root.setInterval(tick, 1000);
  show();
  followEvents();
}

if (doc.readyState === 'loading') doc.addEventListener('DOMContentLoaded', start);
else start();

})(typeof window !== 'undefined' ? window : globalThis);
