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
    if (parts.length >= 4 && parts[2] && parts[3]) {
      route.stage = parts[2];
      route.step = parts[3];
      // A line of the step's log: '#/runs/12/test/unit/L40' (or ?line=40).
      const line = /^L([1-9][0-9]{0,8})$/.exec(parts[4] || '') || /^([1-9][0-9]{0,8})$/.exec(params.line || '');
      if (line) route.line = Number(line[1]);
    }
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
      if (route.line) hash += '/L' + Number(route.line);
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

// The body of POST /api/v1/runs (docs/server.md "HTTP API: runs"):
// {body} or {error} for a person.
function triggerBody(repo, kind, ref) {
  const r = String(repo || '').trim(), v = String(ref || '').trim();
  if (!r) return {error: 'Start a run: name the repository.'};
  if (!['branch', 'tag', 'commit'].includes(kind)) return {error: 'Start a run: choose a branch, a tag or a commit.'};
  if (!v) return {error: 'Start a run: name the ' + kind + '.'};
  if (kind === 'commit' && !/^[0-9a-fA-F]{4,64}$/.test(v)) {
    return {error: 'Start a run: "' + v + '" is not a commit id (4 to 64 hexadecimal digits).'};
  }
  const body = {repo: r};
  body[kind] = v;
  return {body: JSON.stringify(body)};
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

// ---- Logs: ANSI colours, lines, search (docs/server.md "The web UI") -----------

// What a terminal shows of one SGR state: colours are null (the default), 0-255
// (xterm's palette; 0-15 become classes, so that dark mode has its own) or an
// "rgb(r, g, b)" text (24-bit).
function ansiInitial() {
  return {fg: null, bg: null, bold: false, dim: false, italic: false, underline: false,
          inverse: false, strike: false};
}

function ansiIsPlain(s) {
  return s.fg === null && s.bg === null && !s.bold && !s.dim && !s.italic && !s.underline &&
         !s.inverse && !s.strike;
}

// xterm's 256 colours: 16-231 a 6x6x6 cube, 232-255 greys.
function xtermRgb(n) {
  if (n >= 232) {
    const g = 8 + (n - 232) * 10;
    return 'rgb(' + g + ', ' + g + ', ' + g + ')';
  }
  const levels = [0, 95, 135, 175, 215, 255];
  const i = n - 16;
  return 'rgb(' + levels[Math.floor(i / 36)] + ', ' + levels[Math.floor(i / 6) % 6] + ', ' + levels[i % 6] + ')';
}

function byte(text) {
  if (!/^[0-9]{1,3}$/.test(text || '')) return null;
  const n = Number(text);
  return n <= 255 ? n : null;
}

// 38/48 followed by 5;N or 2;R;G;B (or their colon forms 38:5:N, 38:2::R:G:B):
// {color, used} with `used` the parameters it took after 38/48; color null
// when malformed.
function extendedColor(params, i) {
  const mode = params[i + 1];
  if (mode === '5') {
    const n = byte(params[i + 2]);
    return {color: n, used: 2};
  }
  if (mode === '2') {
    const r = byte(params[i + 2]), g = byte(params[i + 3]), b = byte(params[i + 4]);
    return {color: r === null || g === null || b === null ? null : 'rgb(' + r + ', ' + g + ', ' + b + ')', used: 4};
  }
  return {color: null, used: params.length};  // unknown: the rest of the sequence means nothing
}

// States are shared, one object per distinct state, and what a sequence does
// to each is remembered: a log's colours cost two map look-ups a line.
const STATES = new Map();      // key -> the state
const STEPS = new WeakMap();   // state -> Map(parameters -> state)

function stateKey(s) {
  return s.fg + '|' + s.bg + '|' + (s.bold ? 1 : 0) + (s.dim ? 1 : 0) + (s.italic ? 1 : 0) +
         (s.underline ? 1 : 0) + (s.inverse ? 1 : 0) + (s.strike ? 1 : 0);
}

function internState(s) {
  const key = stateKey(s);
  let shared = STATES.get(key);
  if (!shared) {
    if (STATES.size > 4096) STATES.clear();  // bounded: a log of ever new 24-bit colours
    STATES.set(key, s);
    shared = s;
  }
  return shared;
}

// Applies the parameters of one "ESC [ ... m" to a state: the resulting state
// (shared; never changed).
function applySgr(state, paramText) {
  let steps = STEPS.get(state);
  let next = steps && steps.get(paramText);
  if (next) return next;
  next = internState(computeSgr(state, paramText));
  if (!steps) {
    steps = new Map();
    STEPS.set(state, steps);
  }
  if (steps.size < 256) steps.set(paramText, next);
  return next;
}

function computeSgr(state, paramText) {
  const s = {fg: state.fg, bg: state.bg, bold: state.bold, dim: state.dim, italic: state.italic,
             underline: state.underline, inverse: state.inverse, strike: state.strike};
  const groups = paramText === '' ? ['0'] : paramText.split(';');
  for (let i = 0; i < groups.length; i++) {
    const group = groups[i];
    if (group.includes(':')) {
      // ITU T.416 form: one group carries its sub-parameters.
      const sub = group.split(':');
      if (sub[0] === '38' || sub[0] === '48') {
        // 38:2::R:G:B has an empty colour-space id; 38:2:R:G:B has none.
        const parts = sub[1] === '2' && sub.length >= 6 ? [sub[0], '2', sub[3], sub[4], sub[5]] : sub;
        const c = extendedColor(parts, 0).color;
        if (c !== null) s[sub[0] === '38' ? 'fg' : 'bg'] = c;
      } else if (sub[0] === '4') {
        s.underline = sub[1] !== '0';
      }
      continue;
    }
    const code = group === '' ? 0 : Number(group);
    if (!Number.isInteger(code) || code < 0) continue;
    if (code === 0) {
      s.fg = null; s.bg = null;
      s.bold = s.dim = s.italic = s.underline = s.inverse = s.strike = false;
    }
    else if (code === 1) s.bold = true;
    else if (code === 2) s.dim = true;
    else if (code === 3) s.italic = true;
    else if (code === 4 || code === 21) s.underline = true;
    else if (code === 7) s.inverse = true;
    else if (code === 9) s.strike = true;
    else if (code === 22) { s.bold = false; s.dim = false; }
    else if (code === 23) s.italic = false;
    else if (code === 24) s.underline = false;
    else if (code === 27) s.inverse = false;
    else if (code === 29) s.strike = false;
    else if (code >= 30 && code <= 37) s.fg = code - 30;
    else if (code === 39) s.fg = null;
    else if (code >= 40 && code <= 47) s.bg = code - 40;
    else if (code === 49) s.bg = null;
    else if (code >= 90 && code <= 97) s.fg = code - 90 + 8;
    else if (code >= 100 && code <= 107) s.bg = code - 100 + 8;
    else if (code === 38 || code === 48) {
      const ext = extendedColor(groups, i);
      if (ext.color !== null) s[code === 38 ? 'fg' : 'bg'] = ext.color;
      i += ext.used;
    }
  }
  return s;
}

// How one state looks: {cls, fg, bg}: classes for the attributes and the 16
// colours, CSS colours for the others ('' when none). Inverse swaps them.
// Looks of the states seen so far: a log uses a handful.
const LOOKS = new Map();

function ansiLook(s) {
  const key = stateKey(s);
  let look = LOOKS.get(key);
  if (!look) {
    look = computeLook(s);
    if (LOOKS.size > 4096) LOOKS.clear();
    LOOKS.set(key, look);
  }
  return look;
}

function computeLook(s) {
  let fg = s.fg, bg = s.bg;
  const cls = [];
  if (s.inverse) {
    fg = s.bg === null ? 'inv-fg' : s.bg;
    bg = s.fg === null ? 'inv-bg' : s.fg;
  }
  let fgCss = '', bgCss = '';
  if (fg === 'inv-fg') cls.push('a-inv-fg');
  else if (typeof fg === 'number' && fg < 16) cls.push('a-f' + fg);
  else if (typeof fg === 'number') fgCss = xtermRgb(fg);
  else if (fg) fgCss = fg;
  if (bg === 'inv-bg') cls.push('a-inv-bg');
  else if (typeof bg === 'number' && bg < 16) cls.push('a-b' + bg);
  else if (typeof bg === 'number') bgCss = xtermRgb(bg);
  else if (bg) bgCss = bg;
  if (s.bold) cls.push('a-bold');
  if (s.dim) cls.push('a-dim');
  if (s.italic) cls.push('a-italic');
  if (s.underline) cls.push('a-underline');
  if (s.strike) cls.push('a-strike');
  return {cls: cls.join(' '), fg: fgCss, bg: bgCss};
}

// One line of a log as a terminal would show it: {text, runs, state}.
// `text` has no escape sequence and no control character but tabs (SGR
// sequences become `runs`, every other sequence is dropped: cursor moves, OSC
// titles and links, charset switches); a carriage return shows what was
// written after it, as a terminal overwrites the line. `runs` is null or
// [{start, end, cls, fg, bg}] over `text`. `state` is the SGR state at the
// end of the line, which the next line of the same stream starts with.
function parseAnsiLine(line, startState) {
  let state = startState || ansiInitial();
  const input = String(line);
  // The common case: nothing to interpret.
  if (!/[\x00-\x08\x0a-\x1f\x7f\x9b]/.test(input)) {
    return {text: input, runs: ansiIsPlain(state) || !input ? null : [Object.assign({start: 0, end: input.length}, ansiLook(state))], state};
  }
  let text = '';
  const runs = [];
  let runStart = 0;
  let look = ansiIsPlain(state) ? null : ansiLook(state);
  const close = () => {
    if (look && text.length > runStart) runs.push(Object.assign({start: runStart, end: text.length}, look));
    runStart = text.length;
  };
  let i = 0;
  const n = input.length;
  while (i < n) {
    const c = input.charCodeAt(i);
    if (c === 0x1b || c === 0x9b) {
      let j = c === 0x9b ? i + 1 : i + 2;
      const kind = c === 0x9b ? '[' : input[i + 1];
      if (kind === '[') {
        // CSI: parameters 0x30-0x3f, intermediates 0x20-0x2f, a final 0x40-0x7e.
        const p0 = j;
        while (j < n && input.charCodeAt(j) >= 0x30 && input.charCodeAt(j) <= 0x3f) j++;
        const params = input.slice(p0, j);
        while (j < n && input.charCodeAt(j) >= 0x20 && input.charCodeAt(j) <= 0x2f) j++;
        if (j < n && input.charCodeAt(j) >= 0x40 && input.charCodeAt(j) <= 0x7e) {
          if (input[j] === 'm' && /^[0-9;:]*$/.test(params)) {
            close();
            state = applySgr(state, params);
            look = ansiIsPlain(state) ? null : ansiLook(state);
          }
          i = j + 1;
        } else {
          i = j;  // cut off: dropped
        }
      } else if (kind === ']' || kind === 'P' || kind === '_' || kind === '^' || kind === 'X') {
        // OSC, DCS and the other strings: up to BEL or ESC \ (or the line's end).
        while (j < n && input.charCodeAt(j) !== 0x07 && !(input.charCodeAt(j) === 0x1b && input[j + 1] === '\\')) j++;
        i = j < n ? (input.charCodeAt(j) === 0x07 ? j + 1 : j + 2) : n;
      } else if (kind !== undefined && input.charCodeAt(i + 1) >= 0x20 && input.charCodeAt(i + 1) <= 0x2f) {
        // ESC, intermediates, a final: "ESC ( B" and the like.
        j = i + 1;
        while (j < n && input.charCodeAt(j) >= 0x20 && input.charCodeAt(j) <= 0x2f) j++;
        i = Math.min(n, j + 1);
      } else {
        i = Math.min(n, i + 2);  // ESC and one character ("ESC 7", "ESC M"), or a lone ESC
      }
      continue;
    }
    if (c === 0x0d) {
      // CR: what follows replaces the line (a trailing CR changes nothing).
      if (i + 1 < n) {
        close();
        text = '';
        runs.length = 0;
        runStart = 0;
      }
      i++;
      continue;
    }
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) { i++; continue; }
    // Plain characters up to the next special one.
    let j = i + 1;
    while (j < n) {
      const d = input.charCodeAt(j);
      if ((d < 0x20 && d !== 0x09) || d === 0x7f || d === 0x9b) break;
      j++;
    }
    text += input.slice(i, j);
    i = j;
  }
  close();
  return {text, runs: runs.length ? runs : null, state};
}

// A log's text without its escape sequences (what "Plain text" saves).
function stripAnsi(text) {
  let state = ansiInitial();
  return String(text).split('\n').map((line) => {
    const parsed = parseAnsiLine(line, state);
    state = parsed.state;
    return parsed.text;
  }).join('\n');
}

// Where `query` occurs in `lines` ([{text}]), case-insensitively, from line
// `from` on: [{line, start, end}], at most `limit` (then `more` is true).
function findMatches(lines, query, from, limit) {
  const matches = [];
  const q = String(query || '').toLowerCase();
  if (!q) return {matches, more: false};
  const max = limit || 100000;
  for (let l = from || 0; l < lines.length; l++) {
    const text = lines[l].text;
    // Lower-cased only when it may match: most lines are skipped cheaply.
    const lower = text.toLowerCase();
    let at = lower.indexOf(q);
    while (at >= 0) {
      if (matches.length >= max) return {matches, more: true};
      matches.push({line: l, start: at, end: at + q.length});
      at = lower.indexOf(q, at + q.length);
    }
  }
  return {matches, more: false};
}

// A line cut into pieces that look the same: [{text, cls, fg, bg, mark}]
// where `mark` is 0 (no match), 1 (a match) or 2 (the current match).
// `marks` is [{start, end, current}] in order.
function lineSegments(text, runs, marks) {
  const cuts = new Set([0, text.length]);
  for (const r of runs || []) { cuts.add(r.start); cuts.add(r.end); }
  for (const m of marks || []) { cuts.add(Math.min(m.start, text.length)); cuts.add(Math.min(m.end, text.length)); }
  const points = Array.from(cuts).sort((a, b) => a - b);
  const out = [];
  for (let k = 0; k + 1 < points.length; k++) {
    const a = points[k], b = points[k + 1];
    if (a >= b) continue;
    const run = (runs || []).find((r) => r.start <= a && b <= r.end);
    const mark = (marks || []).find((m) => m.start <= a && b <= m.end);
    out.push({text: text.slice(a, b), cls: run ? run.cls : '', fg: run ? run.fg : '', bg: run ? run.bg : '',
              mark: mark ? (mark.current ? 2 : 1) : 0});
  }
  return out;
}

// A log line's address: '#/runs/12/test/unit/L40'.
function lineHash(id, stage, step, line) {
  return routeHash({view: 'run', id, stage, step, line});
}

function rawLogPath(id, stage, step) {
  return '/api/v1/runs/' + id + '/steps/' + encodeURIComponent(stage) + '/' +
         encodeURIComponent(step) + '/log?download=1';
}

// ---- The pipeline as a graph (docs/server.md "The web UI") ----------------------

// A failed step with allow_failure is a warning, not a failure (docs/design.md
// "JSON shapes": allow_failure appears only on a failure it forgave).
function allowedFailure(step) {
  return !!(step && step.status === 'failed' && step.allow_failure);
}

function stepBadge(step) {
  if (allowedFailure(step)) return '<span class="status s-allowed" title="failed, allowed to fail">failed (allowed)</span>';
  return statusBadge(step.status);
}

// The name people read: a matrix combination's `display` ("go [GO=1.21]"),
// else its name (docs/design.md "JSON shapes").
function stepName(step) {
  return typeof step.display === 'string' && step.display ? step.display : step.name;
}

// A step's look in the graph: its status, 'allowed' for a forgiven failure.
function nodeStatus(step) {
  if (allowedFailure(step)) return 'allowed';
  return STATUSES.includes(step.status) ? step.status : 'unknown';
}

// The status a matrix group shows: the worst of its combinations.
const GROUP_ORDER = ['failed', 'running', 'waiting', 'queued', 'interrupted', 'cancelled', 'allowed',
                     'superseded', 'success', 'skipped', 'unknown'];
function groupStatus(statuses) {
  let best = GROUP_ORDER.length - 1;
  for (const s of statuses) best = Math.min(best, GROUP_ORDER.indexOf(s) < 0 ? best : GROUP_ORDER.indexOf(s));
  return statuses.length ? GROUP_ORDER[best] : 'unknown';
}

// "PY=3.11, OS=debian" of a matrix combination.
function matrixLabel(step) {
  const shown = /\[(.+)\]$/.exec(typeof step.display === 'string' ? step.display : '');
  if (shown) return shown[1];  // in the order written
  const values = step.matrix && step.matrix.values;
  if (!values || typeof values !== 'object') return step.name;
  return Object.keys(values).map((k) => k + '=' + values[k]).join(', ');
}

function stepHref(runId, stage, step) {
  return routeHash({view: 'run', id: runId, stage, step});
}

const GRAPH = {nodeW: 176, nodeH: 30, gapY: 10, colGap: 64, top: 44, left: 12, indent: 14};

// Where each stage, step and need goes: {width, height, columns, nodes, edges}.
// Stages are columns in order; steps are nodes down a column; the
// combinations of a matrix step (`matrix.of`) are one node until `expanded`
// (a Set of group keys, "STAGE/OF") holds it; a need is an edge from the
// needed step (same stage: "STEP", earlier stage: "STAGE/STEP"; a matrix step
// by its name means all of its combinations) to the step that needs it.
function graphModel(run, expanded) {
  const open = expanded || new Set();
  const columns = [], nodes = [], edges = [];
  const nodeOf = new Map();      // "stage\u0000step" -> node id shown for that step
  const groupsOf = new Map();    // "stage\u0000of" -> [node ids of its combinations or its group]
  const stages = run.stages || [];
  let height = GRAPH.top;
  stages.forEach((stage, si) => {
    const x = GRAPH.left + si * (GRAPH.nodeW + GRAPH.colGap);
    columns.push({stage: stage.name, status: STATUSES.includes(stage.status) ? stage.status : 'unknown', x,
                  environment: stage.environment || ''});
    let y = GRAPH.top;
    const groups = new Map();
    for (const step of stage.steps || []) {
      const of = step.matrix && typeof step.matrix.of === 'string' ? step.matrix.of : null;
      if (of !== null) {
        const key = stage.name + '/' + of;
        if (!groups.has(key)) groups.set(key, {key, of, steps: []});
        groups.get(key).steps.push(step);
      }
    }
    const placedGroups = new Set();
    for (const step of stage.steps || []) {
      const of = step.matrix && typeof step.matrix.of === 'string' ? step.matrix.of : null;
      if (of === null) {
        const id = 'n' + nodes.length;
        nodes.push({id, kind: 'step', stage: stage.name, step: step.name, label: step.name,
                    status: nodeStatus(step), x, y, w: GRAPH.nodeW, h: GRAPH.nodeH,
                    href: stepHref(run.id, stage.name, step.name)});
        nodeOf.set(stage.name + '\u0000' + step.name, id);
        y += GRAPH.nodeH + GRAPH.gapY;
        continue;
      }
      const key = stage.name + '/' + of;
      if (placedGroups.has(key)) continue;
      placedGroups.add(key);
      const group = groups.get(key);
      const gid = 'n' + nodes.length;
      const isOpen = open.has(key);
      nodes.push({id: gid, kind: 'group', group: key, stage: stage.name, step: of,
                  label: of + ' \u00d7' + group.steps.length, open: isOpen,
                  status: groupStatus(group.steps.map(nodeStatus)), x, y, w: GRAPH.nodeW, h: GRAPH.nodeH});
      y += GRAPH.nodeH + GRAPH.gapY;
      const members = [];
      for (const step of group.steps) {
        if (isOpen) {
          const id = 'n' + nodes.length;
          nodes.push({id, kind: 'step', stage: stage.name, step: step.name, label: matrixLabel(step),
                      display: stepName(step),
                      member: key, status: nodeStatus(step), x: x + GRAPH.indent, y,
                      w: GRAPH.nodeW - GRAPH.indent, h: GRAPH.nodeH,
                      href: stepHref(run.id, stage.name, step.name)});
          nodeOf.set(stage.name + '\u0000' + step.name, id);
          members.push(id);
          y += GRAPH.nodeH + GRAPH.gapY;
        } else {
          nodeOf.set(stage.name + '\u0000' + step.name, gid);
        }
      }
      groupsOf.set(stage.name + '\u0000' + of, isOpen ? members : [gid]);
    }
    height = Math.max(height, y);
  });
  // The nodes a need names, seen from a step of `stage`.
  const resolve = (stageName, need) => {
    const text = String(need);
    const local = (st, name) => {
      const k = st + '\u0000' + name;
      if (nodeOf.has(k)) return [nodeOf.get(k)];
      if (groupsOf.has(k)) return groupsOf.get(k);
      return null;
    };
    const same = local(stageName, text);
    if (same) return same;
    const slash = text.indexOf('/');
    if (slash > 0) return local(text.slice(0, slash), text.slice(slash + 1)) || [];
    return [];
  };
  const seen = new Set();
  const byId = new Map(nodes.map((n) => [n.id, n]));
  for (const stage of stages) {
    for (const step of stage.steps || []) {
      if (!Array.isArray(step.needs)) continue;
      const to = nodeOf.get(stage.name + '\u0000' + step.name);
      for (const need of step.needs) {
        for (const from of resolve(stage.name, need)) {
          const key = from + '>' + to;
          if (from === to || seen.has(key)) continue;
          seen.add(key);
          edges.push({from, to, d: edgePath(byId.get(from), byId.get(to))});
        }
      }
    }
  }
  const width = GRAPH.left * 2 + Math.max(1, stages.length) * GRAPH.nodeW + Math.max(0, stages.length - 1) * GRAPH.colGap;
  return {width, height: height + GRAPH.gapY, columns, nodes, edges};
}

// An edge from the right of `a` to the left of `b`; within one column, a
// loop out to the right.
function edgePath(a, b) {
  const y1 = a.y + a.h / 2, y2 = b.y + b.h / 2;
  const x1 = a.x + a.w;
  if (b.x > a.x + a.w) {
    const x2 = b.x - 2, dx = Math.max(16, (x2 - x1) / 2);
    return 'M' + x1 + ' ' + y1 + ' C' + (x1 + dx) + ' ' + y1 + ' ' + (x2 - dx) + ' ' + y2 + ' ' + x2 + ' ' + y2;
  }
  const x2 = b.x + b.w + 2, out = Math.max(x1, x2) + 26;
  return 'M' + x1 + ' ' + y1 + ' C' + out + ' ' + y1 + ' ' + out + ' ' + y2 + ' ' + x2 + ' ' + y2;
}

// Text that fits a node: at most `max` characters, with an ellipsis.
function fitLabel(text, max) {
  const s = String(text);
  return s.length <= max ? s : s.slice(0, max - 1) + '\u2026';
}

// The graph as SVG markup (every name escaped; colours by class: the page's
// Content-Security-Policy allows no style attribute).
function graphSvg(run, model, selected) {
  const m = model;
  const sel = selected || {};
  let svg = '<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="' + m.width + '" height="' + m.height +
            '" viewBox="0 0 ' + m.width + ' ' + m.height + '" role="img" aria-label="pipeline graph of run ' +
            Number(run.id) + '"><defs><marker id="g-arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" ' +
            'markerHeight="7" orient="auto"><path class="g-arrow" d="M0 0 L8 4 L0 8 z"/></marker></defs>';
  for (const c of m.columns) {
    svg += '<g class="g-col s-' + c.status + '" data-stage="' + escapeHtml(c.stage) + '"><title>' +
           escapeHtml(c.stage + ': ' + c.status + (c.environment ? ' (' + c.environment + ')' : '')) +
           '</title><circle class="g-dot" cx="' + (c.x + 6) + '" cy="' + (GRAPH.top - 20) + '" r="5"/>' +
           '<text class="g-stage" x="' + (c.x + 16) + '" y="' + (GRAPH.top - 15) + '">' +
           escapeHtml(fitLabel(c.stage, 20)) + '</text></g>';
  }
  for (const e of m.edges) {
    svg += '<path class="g-edge" data-from="' + e.from + '" data-to="' + e.to + '" d="' + e.d +
           '" marker-end="url(#g-arrow)"/>';
  }
  for (const n of m.nodes) {
    const chars = Math.floor((n.w - 24) / 7.2);
    const isSel = n.kind === 'step' && sel.stage === n.stage && sel.step === n.step;
    const body = '<title>' + escapeHtml((n.kind === 'group' ? n.step + ' (matrix, ' + n.label.split('\u00d7')[1] +
                                                 ' combinations)' : n.stage + '/' + (n.display || n.step)) + ': ' + n.status) +
                 '</title><rect class="g-box" x="' + n.x + '" y="' + n.y + '" width="' + n.w + '" height="' + n.h +
                 '" rx="5"/><rect class="g-bar" x="' + n.x + '" y="' + n.y + '" width="5" height="' + n.h +
                 '" rx="2"/><text class="g-label" x="' + (n.x + 12) + '" y="' + (n.y + n.h / 2 + 4) + '">' +
                 escapeHtml(fitLabel(n.label, chars)) + '</text>';
    const cls = 'g-node n-' + n.status + (n.kind === 'group' ? ' g-group' + (n.open ? ' open' : '') : '') +
                (n.member ? ' g-member' : '') + (isSel ? ' selected' : '');
    const data = ' data-node="' + n.id + '" data-stage="' + escapeHtml(n.stage) + '" data-step="' + escapeHtml(n.step) + '"';
    if (n.kind === 'group') {
      svg += '<g class="' + cls + '"' + data + ' data-group="' + escapeHtml(n.group) + '" role="button" tabindex="0">' +
             body + '<text class="g-toggle" x="' + (n.x + n.w - 14) + '" y="' + (n.y + n.h / 2 + 4) + '">' +
             (n.open ? '\u25be' : '\u25b8') + '</text></g>';
    } else {
      svg += '<a class="' + cls + '"' + data + ' href="' + escapeHtml(n.href) + '">' + body + '</a>';
    }
  }
  return svg + '</svg>';
}

// ---- Services and caches of a step (docs/pipeline.md) ----

function factsText(item, skip) {
  const bits = [];
  for (const key of Object.keys(item || {})) {
    if (skip.includes(key)) continue;
    const v = item[key];
    if (v === null || v === undefined || v === '' || typeof v === 'object' && !Array.isArray(v)) continue;
    bits.push(key + ': ' + (Array.isArray(v) ? v.join(', ') : String(v)));
  }
  return bits.join(', ');
}

// step.services: [{name, image, status?, ...}] (or names); shown under the step.
function servicesHtml(step) {
  const list = Array.isArray(step.services) ? step.services : [];
  if (!list.length) return '';
  let html = '<tr class="services"><td colspan="5"><span class="muted">services:</span>';
  for (const s of list) {
    const svc = typeof s === 'string' ? {name: s} : (s || {});
    const status = typeof svc.status === 'string' ? svc.status : '';
    html += ' <span class="svc" data-service="' + escapeHtml(svc.name) + '"><b>' + escapeHtml(svc.name) + '</b>' +
            (svc.image ? ' <code>' + escapeHtml(svc.image) + '</code>' : '') +
            (status ? ' ' + statusBadge(status) : '');
    const more = factsText(svc, ['name', 'image', 'status', 'env', 'command']);
    if (more) html += ' <span class="muted">(' + escapeHtml(more) + ')</span>';
    html += '</span>';
  }
  return html + '</td></tr>';
}

// step.cache: {key, paths, policy, ...} or a list of them; shown under the step.
function cacheHtml(step) {
  const list = Array.isArray(step.cache) ? step.cache : step.cache && typeof step.cache === 'object' ? [step.cache] : [];
  if (!list.length) return '';
  let html = '<tr class="caches"><td colspan="5"><span class="muted">cache:</span>';
  for (const c of list) {
    const cache = c || {};
    const paths = Array.isArray(cache.paths) ? cache.paths.join(', ') : cache.paths || '';
    html += ' <span class="cache">' + (cache.key ? 'key <code>' + escapeHtml(cache.key) + '</code>' : '') +
            (paths ? ' <code>' + escapeHtml(paths) + '</code>' : '');
    const more = factsText(cache, ['key', 'paths']);
    if (more) html += ' <span class="muted">(' + escapeHtml(more) + ')</span>';
    html += '</span>';
  }
  return html + '</td></tr>';
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
  if (step.allow_failure && !allowedFailure(step)) notes.push('allowed to fail');
  if (step.attempts > 1) notes.push(step.attempts + ' attempts');
  const cls = (selected ? 'selected' : '') + (allowedFailure(step) ? ' allowed' : '');
  return '<tr' + (cls ? ' class="' + cls.trim() + '"' : '') + ' data-step="' + escapeHtml(stage.name + '/' + step.name) +
         '"><td><a href="' + escapeHtml(href) + '">' +
         escapeHtml(stepName(step)) + '</a></td><td>' + stepBadge(step) + '</td><td class="num">' +
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
  } else if (r.admin) {
    html += '<div class="actions"><button type="button" class="primary" data-action="rerun" data-run="' +
            Number(run.id) + '">Re-run</button></div>';
  }
  const stages = run.stages || [];
  if (!stages.length) html += '<p class="empty">No stages yet: the run has not started.</p>';
  else html += '<section class="graph-box" id="graph">' + graphSvg(run, graphModel(run, r.expanded), r) + '</section>';
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
        html += servicesHtml(step);
        html += cacheHtml(step);
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
  rolloutStrategies, parsePercent, parseAnsiLine, applySgr, ansiLook, stripAnsi, findMatches, lineSegments,
  lineHash, rawLogPath, allowedFailure, stepBadge, stepName, graphModel, graphSvg, groupStatus, servicesHtml, cacheHtml,
  triggerBody,
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
  admin: false, adminFor: null, expanded: new Set(),
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
    $('trigger-open').hidden = !state.admin;
    if (!state.admin) $('trigger-form').hidden = true;
    const repos = Array.from(new Set(state.runs.map((run) => run.repo))).sort();
    const list = $('trigger-repos');
    if (list.children.length !== repos.length) {
      list.replaceChildren(...repos.map((name) => { const o = doc.createElement('option'); o.value = name; return o; }));
    }
  } else if (r.view === 'run' && state.run) {
    $('run-body').innerHTML = runHtml(state.run, now, Object.assign({}, r, {admin: state.admin, expanded: state.expanded}));
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
  if (state.route.view === 'run' && state.route.id !== state.expandedRun) {
    state.expanded = new Set();
    state.expandedRun = state.route.id;
  }
  const r = state.route;
  const view = $('view');
  if (r.view === 'runs') {
    const f = r.filters;
    view.innerHTML =
        '<form class="filters" id="filters"><input name="repo" placeholder="repository" value="' +
        escapeHtml(f.repo || '') + '"><input name="branch" placeholder="branch" value="' +
        escapeHtml(f.branch || '') + '"><select name="status">' + statusOptions(f.status) +
        '</select><button type="submit">Filter</button><span class="grow"></span>' +
        '<button type="button" id="trigger-open" class="primary" hidden>Start a run…</button></form>' +
        '<form class="filters trigger" id="trigger-form" hidden><strong>Start a run of</strong>' +
        '<input name="repo" placeholder="repository" list="trigger-repos" aria-label="repository" value="' +
        escapeHtml(f.repo || '') + '"><datalist id="trigger-repos"></datalist><select name="kind" ' +
        'aria-label="what to run"><option value="branch">branch</option><option value="tag">tag</option>' +
        '<option value="commit">commit</option></select><input name="ref" placeholder="main" aria-label="ref" value="' +
        escapeHtml(f.branch || '') + '"><button type="submit" class="primary">Start</button>' +
        '<button type="button" id="trigger-close">Close</button></form><div id="runs-table"></div>' +
        '<div class="more"><button type="button" id="runs-more" hidden>Older runs</button></div>';
    $('filters').addEventListener('submit', (e) => {
      e.preventDefault();
      const form = e.target;
      root.location.hash = routeHash({view: 'runs', filters: {
        repo: form.repo.value.trim(), branch: form.branch.value.trim(), status: form.status.value}});
    });
    $('runs-more').addEventListener('click', () => loadRuns(true).catch(failed));
    $('trigger-open').addEventListener('click', () => {
      $('trigger-form').hidden = false;
      $('trigger-form').repo.focus();
    });
    $('trigger-close').addEventListener('click', () => { $('trigger-form').hidden = true; });
    $('trigger-form').addEventListener('submit', (e) => {
      e.preventDefault();
      triggerRun(e.target).catch(failed);
    });
  } else if (r.view === 'run') {
    view.innerHTML =
        '<p><a href="#/">&larr; all runs</a></p><div id="run-body"></div>' +
        '<section id="log-box" hidden><h2 id="log-title"></h2><div class="log-tools">' +
        '<input id="log-search" type="search" placeholder="search the log" aria-label="search the log" ' +
        'autocomplete="off" spellcheck="false"><button type="button" id="log-prev" title="previous match ' +
        '(Shift+Enter)" aria-label="previous match">&uarr;</button><button type="button" id="log-next" ' +
        'title="next match (Enter)" aria-label="next match">&darr;</button><span id="log-search-count" ' +
        'class="muted" aria-live="polite"></span><span class="grow"></span><span id="log-count-lines" ' +
        'class="muted"></span><button type="button" id="log-raw" title="the log as the step wrote it, ' +
        'escape codes included">Raw log</button><button type="button" id="log-plain" title="the log as ' +
        'shown here, without escape codes">Plain text</button></div><pre class="log" id="log">' +
        '<div class="ls" id="log-lines-box"><div class="lw" id="log-window"></div></div></pre></section>';
    let searchTimer = null;
    $('log-search').addEventListener('input', (e) => {
      root.clearTimeout(searchTimer);
      const q = e.target.value;
      searchTimer = root.setTimeout(() => searchLog(q), 120);
    });
    $('log-search').addEventListener('keydown', (e) => {
      if (e.key !== 'Enter') return;
      e.preventDefault();
      root.clearTimeout(searchTimer);
      if (state.log && state.log.query !== e.target.value) searchLog(e.target.value);
      else stepMatch(e.shiftKey ? -1 : 1);
    });
    $('log-prev').addEventListener('click', () => stepMatch(-1));
    $('log-next').addEventListener('click', () => stepMatch(1));
    $('log-raw').addEventListener('click', downloadRawLog);
    $('log-plain').addEventListener('click', downloadPlainLog);
    $('log').addEventListener('scroll', () => {
      const L = state.log, pre = $('log');
      if (L) L.follow = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - LINE_HEIGHT;
      scheduleDraw(false);
    }, {passive: true});
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
  probeAdmin();
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
//
// docs/server.md "The web UI": every line is parsed once as it arrives (ANSI
// colours into runs, other escape sequences dropped) and kept; only the lines
// in view, and a few screens around them, are in the document, so a log of
// 100,000 lines opens as fast as a short one. Log text reaches the document
// through textContent only.

const LINE_HEIGHT = 18;      // px: pre.log .ll in app.css
const OVERSCAN = 60;         // lines drawn above and below the view
const MAX_LINES = 2000000;   // kept in the page; the rest is in the raw log
const MAX_MATCHES = 100000;

function stopLog() {
  if (state.log && state.log.controller) state.log.controller.abort();
  state.log = null;
}

function scheduleDraw(force) {
  const L = state.log;
  if (!L) return;
  if (force) L.force = true;
  if (L.drawPending) return;
  L.drawPending = true;
  root.requestAnimationFrame(() => {
    if (state.log !== L) return;
    L.drawPending = false;
    drawLog(L);
  });
}

// The matches on lines [a, b), each {start, end, current}, by line.
function marksIn(L, a, b) {
  const out = new Map();
  const m = L.matches;
  let lo = 0, hi = m.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (m[mid].line < a) lo = mid + 1; else hi = mid; }
  for (let k = lo; k < m.length && m[k].line < b; k++) {
    if (!out.has(m[k].line)) out.set(m[k].line, []);
    out.get(m[k].line).push({start: m[k].start, end: m[k].end, current: k === L.current});
  }
  return out;
}

function lineElement(L, i, marks) {
  const line = L.lines[i];
  const div = doc.createElement('div');
  div.className = 'll' + (line.err ? ' stderr' : '') + (L.target === i + 1 ? ' target' : '');
  div.dataset.n = String(i + 1);
  const a = doc.createElement('a');
  a.className = 'ln';
  a.href = lineHash(L.route.id, L.route.stage, L.route.step, i + 1);
  a.dataset.n = String(i + 1);
  a.setAttribute('aria-label', 'line ' + (i + 1));
  div.appendChild(a);
  const text = doc.createElement('span');
  text.className = 'lt';
  if (!line.runs && !marks) {
    text.textContent = line.text;
  } else {
    for (const seg of lineSegments(line.text, line.runs, marks)) {
      const el = doc.createElement(seg.mark ? 'mark' : 'span');
      const cls = (seg.cls ? seg.cls + ' ' : '') + (seg.mark === 2 ? 'hit current' : seg.mark ? 'hit' : '');
      if (cls.trim()) el.className = cls.trim();
      // CSSOM, not a style attribute: the page's CSP allows no inline style.
      if (seg.fg) el.style.color = seg.fg;
      if (seg.bg && !seg.mark) el.style.backgroundColor = seg.bg;
      el.textContent = seg.text;
      text.appendChild(el);
    }
  }
  div.appendChild(text);
  // The line's end, for textContent and copying; not shown (a block ends the line).
  const nl = doc.createElement('span');
  nl.className = 'nl';
  nl.textContent = '\n';
  div.appendChild(nl);
  return div;
}

function drawLog(L) {
  const pre = $('log'), box = $('log-lines-box'), win = $('log-window');
  if (!pre || !box) return;
  const n = L.lines.length;
  box.style.height = (n * LINE_HEIGHT) + 'px';
  const top = pre.scrollTop, h = pre.clientHeight || 600;
  const va = Math.min(n, Math.floor(top / LINE_HEIGHT)), vb = Math.min(n, Math.ceil((top + h) / LINE_HEIGHT));
  $('log-count-lines').textContent = n ? n.toLocaleString('en') + (n === 1 ? ' line' : ' lines') : '';
  const d = L.drawn;
  if (!L.force && d && va >= d.a && vb <= d.b) return;
  L.force = false;
  const a = Math.max(0, va - OVERSCAN), b = Math.min(n, vb + OVERSCAN);
  const frag = doc.createDocumentFragment();
  const marks = marksIn(L, a, b);
  for (let i = a; i < b; i++) frag.appendChild(lineElement(L, i, marks.get(i)));
  win.style.top = (a * LINE_HEIGHT) + 'px';
  win.replaceChildren(frag);
  if (!n && L.done) win.textContent = '(no output)';
  L.drawn = {a, b, n};
}

// Scrolls so that line `n` (from 1) is in view, a third down.
function scrollToLine(n) {
  const pre = $('log');
  const y = (n - 1) * LINE_HEIGHT;
  if (y < pre.scrollTop || y + LINE_HEIGHT > pre.scrollTop + pre.clientHeight) {
    pre.scrollTop = Math.max(0, y - Math.floor(pre.clientHeight / 3));
  }
}

// Opens a line's address: the line is scrolled to and marked, now or when it
// arrives.
function gotoLine(n, intoView) {
  const L = state.log;
  if (!L) return;
  L.target = n || 0;
  L.targetShown = false;
  if (intoView) L.targetIntoView = true;
  showTarget(L);
  scheduleDraw(true);
}

function showTarget(L) {
  if (!L.target || L.targetShown || L.target > L.lines.length) return;
  L.targetShown = true;
  L.follow = false;
  scrollToLine(L.target);
  if (L.targetIntoView) {
    L.targetIntoView = false;
    $('log-box').scrollIntoView({block: 'start'});
  }
}

function addRecords(L, records) {
  const first = L.lines.length;
  for (const rec of records) {
    const stream = rec.stream === 'stderr' ? 'stderr' : 'stdout';
    for (const part of String(rec.text === undefined ? '' : rec.text).split('\n')) {
      if (L.lines.length >= MAX_LINES) { L.truncated = true; break; }
      const p = parseAnsiLine(part, L.states[stream]);
      L.states[stream] = p.state;
      L.lines.push({text: p.text, runs: p.runs, err: stream === 'stderr'});
    }
  }
  if (L.query && L.lines.length > first && !L.more) {
    const found = findMatches(L.lines, L.query, first, MAX_MATCHES - L.matches.length);
    L.matches = L.matches.concat(found.matches);
    L.more = found.more;
    if (L.current < 0 && L.matches.length) L.current = 0;
    showCount(L);
  }
}

function showCount(L) {
  const el = $('log-search-count');
  if (!L.query) { el.textContent = ''; return; }
  const total = L.matches.length.toLocaleString('en') + (L.more ? '+' : '');
  el.textContent = L.matches.length ? (L.current + 1).toLocaleString('en') + ' of ' + total : 'no match';
}

function searchLog(query) {
  const L = state.log;
  if (!L) return;
  L.query = query;
  const found = findMatches(L.lines, query, 0, MAX_MATCHES);
  L.matches = found.matches;
  L.more = found.more;
  // The first match of the log; Enter walks down from there.
  L.current = L.matches.length ? 0 : -1;
  showCount(L);
  if (L.current >= 0) { L.follow = false; scrollToLine(L.matches[L.current].line + 1); }
  scheduleDraw(true);
}

function stepMatch(delta) {
  const L = state.log;
  if (!L || !L.matches.length) return;
  L.current = (L.current + delta + L.matches.length) % L.matches.length;
  L.follow = false;
  showCount(L);
  scrollToLine(L.matches[L.current].line + 1);
  scheduleDraw(true);
}

function logFileName(route, suffix) {
  return ('run-' + route.id + '-' + route.stage + '-' + route.step).replace(/[^A-Za-z0-9._=-]+/g, '_') + suffix;
}

function saveBlob(blob, name) {
  const url = root.URL.createObjectURL(blob);
  const a = doc.createElement('a');
  a.href = url;
  a.download = name;
  doc.body.appendChild(a);
  a.click();
  a.remove();
  root.setTimeout(() => root.URL.revokeObjectURL(url), 60000);
}

// The log as the step wrote it (escape codes and all), from the server.
async function downloadRawLog() {
  const L = state.log;
  if (!L) return;
  const r = L.route;
  try {
    const response = await api(rawLogPath(r.id, r.stage, r.step), {raw: true}, 'raw log of ' + r.stage + '/' + r.step);
    const disposition = response.headers.get('Content-Disposition') || '';
    const named = /filename="([^"]+)"/.exec(disposition);
    saveBlob(await response.blob(), named ? named[1] : logFileName(r, '.log'));
  } catch (err) {
    failed(err);
  }
}

// The log as the page shows it, without escape codes.
function downloadPlainLog() {
  const L = state.log;
  if (!L) return;
  const text = L.lines.map((l) => l.text).join('\n') + (L.lines.length ? '\n' : '');
  saveBlob(new root.Blob([text], {type: 'text/plain;charset=utf-8'}), logFileName(L.route, '.txt'));
}

async function startLog(route) {
  const L = {route, lines: [], states: {stdout: null, stderr: null}, controller: new AbortController(),
             query: '', matches: [], current: -1, more: false, target: 0, drawn: null, follow: true};
  state.log = L;
  $('log-box').hidden = false;
  // A matrix combination's name is an id; people read its `display`.
  const shown = state.run && (state.run.stages || []).find((st) => st.name === route.stage);
  const named = shown && (shown.steps || []).find((st) => st.name === route.step);
  $('log-title').textContent = 'Log of ' + route.stage + '/' + (named ? stepName(named) : route.step);
  $('log-search').value = '';
  $('log-search-count').textContent = '';
  $('log-window').replaceChildren();
  $('log').scrollTop = 0;
  if (route.line) gotoLine(route.line, true);
  const pre = $('log');
  try {
    const response = await api(logPath(route.id, route.stage, route.step, true),
                               {raw: true, signal: L.controller.signal}, 'log of ' + route.stage + '/' + route.step);
    await readChunks(response, parseNdjson, (parsed) => {
      if (state.log !== L || !parsed.records.length) return;
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - LINE_HEIGHT;
      addRecords(L, parsed.records);
      $('log-lines-box').style.height = (L.lines.length * LINE_HEIGHT) + 'px';
      showTarget(L);
      if (L.follow && atBottom && !L.target) pre.scrollTop = pre.scrollHeight;
      scheduleDraw(false);
    });
    if (state.log !== L) return;
    L.done = true;
    if (L.truncated) showBanner('This log has more than ' + MAX_LINES.toLocaleString('en') + ' lines: the page shows the first ones; "Raw log" has all of it.', true);
    scheduleDraw(true);
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

// ---- Addresses within a run; the graph's matrix groups ----

// A line link of the log on show only moves to that line: the log is not
// read again.
function onHashChange() {
  const next = parseRoute(root.location.hash);
  const cur = state.route;
  if (next.view === 'run' && cur.view === 'run' && next.id === cur.id && next.stage && next.stage === cur.stage &&
      next.step === cur.step && state.log) {
    cur.line = next.line;
    if (!next.line) delete cur.line;
    gotoLine(next.line || 0, false);
    return;
  }
  show();
}

function toggleGroup(key) {
  if (state.expanded.has(key)) state.expanded.delete(key);
  else state.expanded.add(key);
  render();
}

// ---- Who holds the token: an admin sees the trigger and re-run buttons ----

// GET /api/v1/tokens answers an admin token only (docs/toggles.md "HTTP API"):
// 200 is an admin, anything else is not. Asked once per token.
async function probeAdmin() {
  const t = currentToken();
  if (!t || state.adminFor === t) return;
  state.adminFor = t;
  let admin = false;
  try {
    await api('/api/v1/tokens', {}, 'tokens');
    admin = true;
  } catch (e) {
    admin = false;
    if (e.status === 0) state.adminFor = null;  // the server is away: ask again next time
  }
  if (state.adminFor !== t) return;
  if (admin !== state.admin) {
    state.admin = admin;
    render();
  }
}

// An answer of the trigger and re-run routes in words for people.
function kindError(err, what) {
  if (err && (err.status === 405 || err.status === 404 && /no route for/.test(err.message))) {
    return new ApiError(err.status, what + ': this server cannot do that yet (an older ladle serve; ' +
                        'docs/server.md "HTTP API: runs" names the version that can).');
  }
  if (err && err.status === 403) {
    return new ApiError(403, what + ': only an admin token may do that; this browser holds a client token ' +
                        '(Token, top right, to use another).');
  }
  return err;
}

// The run an answer of POST /api/v1/runs or .../rerun names.
function answeredRun(answer) {
  if (!answer) return null;
  if (answer.run_id) return Number(answer.run_id);
  if (answer.id) return Number(answer.id);
  if (answer.run && answer.run.id) return Number(answer.run.id);
  if (Array.isArray(answer.runs) && answer.runs.length) return Number(answer.runs[0].id || answer.runs[0]);
  return null;
}

async function triggerRun(form) {
  const made = triggerBody(form.repo.value, form.kind.value, form.ref.value);
  if (made.error) { showBanner(made.error); return; }
  const what = 'Start a run of ' + form.repo.value.trim() + ' ' + form.kind.value + ' ' + form.ref.value.trim();
  let answer;
  try {
    answer = await api('/api/v1/runs', {method: 'POST', body: made.body,
                                        headers: {'Content-Type': 'application/json'}}, what);
  } catch (err) {
    throw kindError(err, what);
  }
  const id = answeredRun(answer);
  if (id) { root.location.hash = '#/runs/' + id; return; }
  showBanner(answer && answer.message ? answer.message : 'started', true);
  scheduleRefetch();
}

async function rerun(button) {
  const id = button.dataset.run;
  const what = 'Re-run run ' + id;
  button.disabled = true;
  try {
    const answer = await api('/api/v1/runs/' + id + '/rerun', {method: 'POST'}, what);
    const next = answeredRun(answer);
    if (next) { root.location.hash = '#/runs/' + next; return; }
    showBanner(answer && answer.message ? answer.message : 'queued', true);
  } catch (err) {
    failed(kindError(err, what));
  } finally {
    button.disabled = false;
  }
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
  if (action === 'rerun') return rerun(button);
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
    state.admin = false;
    state.adminFor = null;
    render();
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
  $('view').addEventListener('click', (e) => {
    const group = e.target.closest('svg.graph [data-group]');
    if (group) toggleGroup(group.dataset.group);
  });
  $('view').addEventListener('keydown', (e) => {
    const group = e.target.closest && e.target.closest('svg.graph [data-group]');
    if (group && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); toggleGroup(group.dataset.group); }
  });
  root.addEventListener('hashchange', onHashChange);
  // "5 s ago" and the durations of what runs grow by themselves: their
  // text changes in place, so a selection or a hovered button stays.
  root.setInterval(tick, 1000);
  show();
  followEvents();
}

if (doc.readyState === 'loading') doc.addEventListener('DOMContentLoaded', start);
else start();

})(typeof window !== 'undefined' ? window : globalThis);
