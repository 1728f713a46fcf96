// Unit tests of the pure part of ladle's web UI (runner/serve/web/app.js: everything
// above "The page"), with node's own test runner and nothing else:
//
//   node --test tests/web/app_test.js
//
// app.js exports its pure functions through module.exports when loaded by
// node; the page part (DOM, fetch) is not loaded then. Every test asserts
// exact outputs. Tests whose name ends in "[bug]" describe behaviour that
// app.js should have but, at the time of writing, does not.
'use strict';

const {describe, test} = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

const app = require(path.join(__dirname, '../../runner/serve/web/app.js'));

// A fixed "now" so that relative times and running durations are exact.
const NOW = Date.parse('2024-05-01T12:00:00Z');
const ago = (ms) => new Date(NOW - ms).toISOString();
const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

// How many times `needle` occurs in `haystack`.
function count(haystack, needle) {
  return haystack.split(needle).length - 1;
}

const clone = (value) => JSON.parse(JSON.stringify(value));

describe('module', () => {
  test('exports the pure functions under node', () => {
    for (const name of ['escapeHtml', 'shortCommit', 'formatDuration', 'elapsed', 'relativeTime',
                        'statusBadge', 'parseRoute', 'routeHash', 'runsPath', 'logPath',
                        'deploymentsPath', 'parseSse', 'parseNdjson', 'matchesFilters', 'applyRunEvent',
                        'applyDetailEvent', 'runsTableHtml', 'runHtml', 'deploymentsHtml',
                        'currentDeployments', 'errorMessage', 'testsText']) {
      assert.equal(typeof app[name], 'function', name);
    }
    assert.deepEqual(app.STATUSES, ['queued', 'running', 'waiting', 'success', 'failed', 'skipped',
                                    'cancelled', 'interrupted', 'superseded']);
  });
});

// ---- Text -------------------------------------------------------------------

describe('escapeHtml', () => {
  test('escapes each of & < > " \'', () => {
    assert.equal(app.escapeHtml('&'), '&amp;');
    assert.equal(app.escapeHtml('<'), '&lt;');
    assert.equal(app.escapeHtml('>'), '&gt;');
    assert.equal(app.escapeHtml('"'), '&quot;');
    assert.equal(app.escapeHtml("'"), '&#39;');
  });

  test('escapes all of them inside ordinary text and leaves the rest alone', () => {
    assert.equal(app.escapeHtml('<a href="x">Tom & Jerry\'s</a>'),
                 '&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;');
    assert.equal(app.escapeHtml('plain text / ü 1+1=2'), 'plain text / ü 1+1=2');
  });

  test('escapes already escaped text again (no double-decoding shortcut)', () => {
    assert.equal(app.escapeHtml('&amp;'), '&amp;amp;');
  });

  test('null and undefined become the empty string', () => {
    assert.equal(app.escapeHtml(null), '');
    assert.equal(app.escapeHtml(undefined), '');
    assert.equal(app.escapeHtml(''), '');
  });

  test('numbers become their decimal text, 0 included', () => {
    assert.equal(app.escapeHtml(0), '0');
    assert.equal(app.escapeHtml(42), '42');
    assert.equal(app.escapeHtml(-1.5), '-1.5');
  });
});

describe('shortCommit', () => {
  test('keeps the first 10 characters', () => {
    assert.equal(app.shortCommit('0123456789abcdef0123456789abcdef01234567'), '0123456789');
    assert.equal(app.shortCommit('abc'), 'abc');
  });

  test('a run from a dirty tree shows +dirty', () => {
    assert.equal(app.shortCommit('0123456789abcdef0123456789abcdef01234567', true), '0123456789+dirty');
  });

  test('no commit gives the empty string', () => {
    assert.equal(app.shortCommit(''), '');
    assert.equal(app.shortCommit(null), '');
    assert.equal(app.shortCommit(undefined), '');
  });
});

describe('formatDuration', () => {
  test('below a second: whole milliseconds', () => {
    assert.equal(app.formatDuration(0), '0 ms');
    assert.equal(app.formatDuration(850), '850 ms');
    assert.equal(app.formatDuration(999), '999 ms');
  });

  test('1 s up to 10 s: seconds with one decimal', () => {
    assert.equal(app.formatDuration(1000), '1.0 s');
    assert.equal(app.formatDuration(4200), '4.2 s');
    assert.equal(app.formatDuration(9949), '9.9 s');
    // Rounded to tenths of a second first: 9.95 s is 10 s.
    assert.equal(app.formatDuration(9950), '10 s');
  });

  test('10 s up to a minute: whole seconds', () => {
    assert.equal(app.formatDuration(10000), '10 s');
    assert.equal(app.formatDuration(42000), '42 s');
    assert.equal(app.formatDuration(42400), '42 s');
    assert.equal(app.formatDuration(59499), '59 s');
  });

  test('a minute up to an hour: minutes and seconds', () => {
    assert.equal(app.formatDuration(60000), '1 min 0 s');
    assert.equal(app.formatDuration(3 * MIN + 12 * SEC), '3 min 12 s');
    assert.equal(app.formatDuration(59 * MIN + 59 * SEC), '59 min 59 s');
  });

  test('an hour and more: hours and minutes', () => {
    assert.equal(app.formatDuration(HOUR), '1 h 0 min');
    assert.equal(app.formatDuration(2 * HOUR + 5 * MIN), '2 h 5 min');
    assert.equal(app.formatDuration(2 * HOUR + 5 * MIN + 59 * SEC), '2 h 5 min');
    assert.equal(app.formatDuration(59 * MIN + 59.6 * SEC), '1 h 0 min');
    assert.equal(app.formatDuration(30 * HOUR), '30 h 0 min');
  });

  test('negative, null, undefined and NaN give the empty string', () => {
    assert.equal(app.formatDuration(-1), '');
    assert.equal(app.formatDuration(-5000), '');
    assert.equal(app.formatDuration(null), '');
    assert.equal(app.formatDuration(undefined), '');
    assert.equal(app.formatDuration(NaN), '');
  });

  test('just under a minute that rounds up to 60 s reads "1 min 0 s", not "60 s" [bug]', () => {
    assert.equal(app.formatDuration(59500), '1 min 0 s');
    assert.equal(app.formatDuration(59600), '1 min 0 s');
    assert.equal(app.formatDuration(59999), '1 min 0 s');
  });

  test('just under 10 s that rounds up to 10.0 reads "10 s", not "10.0 s" [bug]', () => {
    assert.equal(app.formatDuration(9960), '10 s');
    assert.equal(app.formatDuration(9999), '10 s');
  });
});

describe('relativeTime', () => {
  test('under 5 s (and times in the future) is "just now"', () => {
    assert.equal(app.relativeTime(ago(0), NOW), 'just now');
    assert.equal(app.relativeTime(ago(4999), NOW), 'just now');
    assert.equal(app.relativeTime(ago(-30 * SEC), NOW), 'just now');
  });

  test('seconds, minutes, hours and days ago, rounded down', () => {
    assert.equal(app.relativeTime(ago(5 * SEC), NOW), '5 s ago');
    assert.equal(app.relativeTime(ago(59 * SEC + 999), NOW), '59 s ago');
    assert.equal(app.relativeTime(ago(MIN), NOW), '1 min ago');
    assert.equal(app.relativeTime(ago(5 * MIN + 59 * SEC), NOW), '5 min ago');
    assert.equal(app.relativeTime(ago(HOUR - SEC), NOW), '59 min ago');
    assert.equal(app.relativeTime(ago(HOUR), NOW), '1 h ago');
    assert.equal(app.relativeTime(ago(3 * HOUR + 30 * MIN), NOW), '3 h ago');
    assert.equal(app.relativeTime(ago(DAY - SEC), NOW), '23 h ago');
    assert.equal(app.relativeTime(ago(DAY), NOW), '1 d ago');
    assert.equal(app.relativeTime(ago(2 * DAY + 23 * HOUR), NOW), '2 d ago');
  });

  test('a time string that does not parse, or none, gives the empty string', () => {
    assert.equal(app.relativeTime('yesterday-ish', NOW), '');
    assert.equal(app.relativeTime('2024-13-45T99:00:00Z', NOW), '');
    assert.equal(app.relativeTime('', NOW), '');
    assert.equal(app.relativeTime(null, NOW), '');
    assert.equal(app.relativeTime(undefined, NOW), '');
  });
});

describe('elapsed', () => {
  test('null when the item has not started', () => {
    assert.equal(app.elapsed({}, NOW), null);
    assert.equal(app.elapsed({started_at: null, finished_at: null}, NOW), null);
    assert.equal(app.elapsed({started_at: ''}, NOW), null);
    assert.equal(app.elapsed({started_at: 'not a time'}, NOW), null);
    assert.equal(app.elapsed(null, NOW), null);
    assert.equal(app.elapsed(undefined, NOW), null);
  });

  test('a running item counts up to now', () => {
    assert.equal(app.elapsed({started_at: ago(42 * SEC)}, NOW), 42 * SEC);
    assert.equal(app.elapsed({started_at: ago(42 * SEC), finished_at: null}, NOW), 42 * SEC);
    assert.equal(app.elapsed({started_at: ago(42 * SEC)}, NOW + 1000), 43 * SEC);
  });

  test('a finished item counts to finished_at, whatever now is', () => {
    const item = {started_at: '2024-05-01T10:00:00Z', finished_at: '2024-05-01T10:03:12.5Z'};
    assert.equal(app.elapsed(item, NOW), 192500);
    assert.equal(app.elapsed(item, NOW + DAY), 192500);
  });
});

describe('statusBadge', () => {
  test('a known status gets its class', () => {
    assert.equal(app.statusBadge('failed'), '<span class="status s-failed">failed</span>');
  });

  test('an unknown status gets s-unknown and its text escaped', () => {
    assert.equal(app.statusBadge('<b>odd</b>'),
                 '<span class="status s-unknown">&lt;b&gt;odd&lt;/b&gt;</span>');
  });
});

// ---- Routes -------------------------------------------------------------------

describe('parseRoute', () => {
  test('a + in a path segment is a plus (a space only in the query)', () => {
    assert.deepEqual(app.parseRoute('#/runs/3/build/c++?x=a+b'),
                     {view: 'run', id: 3, stage: 'build', step: 'c++'});
    assert.deepEqual(app.parseRoute('#/?branch=a+b'), {view: 'runs', filters: {branch: 'a b'}});
  });

  test('no hash, "#" and "#/" are the unfiltered runs list', () => {
    for (const hash of [undefined, null, '', '#', '#/', '/']) {
      assert.deepEqual(app.parseRoute(hash), {view: 'runs', filters: {}}, String(hash));
    }
  });

  test('the runs list takes repo, branch and status filters, decoded', () => {
    assert.deepEqual(app.parseRoute('#/?status=failed&branch=feature+x&repo=acme%2Fweb'),
                     {view: 'runs', filters: {repo: 'acme/web', branch: 'feature x', status: 'failed'}});
  });

  test('the runs list drops empty filter values and unknown keys', () => {
    assert.deepEqual(app.parseRoute('#/?repo=&branch&status=failed&page=3&&'),
                     {view: 'runs', filters: {status: 'failed'}});
  });

  test('one run', () => {
    assert.deepEqual(app.parseRoute('#/runs/12'), {view: 'run', id: 12});
    assert.deepEqual(app.parseRoute('#/runs/12/'), {view: 'run', id: 12});
  });

  test('one run with a stage and step whose names are encoded', () => {
    assert.deepEqual(app.parseRoute('#/runs/12/deploy%20prod/a%2Fb'),
                     {view: 'run', id: 12, stage: 'deploy prod', step: 'a/b'});
    assert.deepEqual(app.parseRoute('#/runs/7/test/unit'),
                     {view: 'run', id: 7, stage: 'test', step: 'unit'});
  });

  test('a stage without a step is the run alone', () => {
    assert.deepEqual(app.parseRoute('#/runs/12/test'), {view: 'run', id: 12});
  });

  test('deployments, with and without an environment', () => {
    assert.deepEqual(app.parseRoute('#/deployments'), {view: 'deployments', environment: ''});
    assert.deepEqual(app.parseRoute('#/deployments?environment=production'),
                     {view: 'deployments', environment: 'production'});
    assert.deepEqual(app.parseRoute('#/deployments?environment=eu%20prod%2F1'),
                     {view: 'deployments', environment: 'eu prod/1'});
    assert.deepEqual(app.parseRoute('#/deployments?environment='), {view: 'deployments', environment: ''});
  });

  test('anything else is the runs list', () => {
    for (const hash of ['#/runs/abc', '#/runs/0', '#/runs/012', '#/runs/-3', '#/runs/1.5', '#/runs',
                        '#/nowhere', '#/nowhere/12']) {
      assert.deepEqual(app.parseRoute(hash), {view: 'runs', filters: {}}, hash);
    }
    assert.deepEqual(app.parseRoute('#/runs/abc?status=failed'), {view: 'runs', filters: {status: 'failed'}});
  });

  test('bad percent-encoding does not throw and is dropped', () => {
    assert.deepEqual(app.parseRoute('#/runs/12/%E0%A4%A/x'), {view: 'run', id: 12});
    assert.deepEqual(app.parseRoute('#/runs/12/build/%'), {view: 'run', id: 12});
    assert.deepEqual(app.parseRoute('#/?status=%zz&repo=acme'), {view: 'runs', filters: {repo: 'acme'}});
    assert.deepEqual(app.parseRoute('#/?%zz=failed'), {view: 'runs', filters: {}});
    assert.deepEqual(app.parseRoute('#/deployments?environment=%'), {view: 'deployments', environment: ''});
    assert.deepEqual(app.parseRoute('#/%'), {view: 'runs', filters: {}});
  });
});

describe('routeHash', () => {
  test('the runs list, with empty filters dropped and values encoded', () => {
    assert.equal(app.routeHash({view: 'runs', filters: {}}), '#/');
    assert.equal(app.routeHash({view: 'runs'}), '#/');
    assert.equal(app.routeHash({view: 'runs', filters: {repo: '', branch: null, status: 'failed'}}),
                 '#/?status=failed');
    assert.equal(app.routeHash({view: 'runs', filters: {repo: 'acme/web', branch: 'feature x'}}),
                 '#/?repo=acme%2Fweb&branch=feature%20x');
  });

  test('one run, with a step only when both stage and step are given', () => {
    assert.equal(app.routeHash({view: 'run', id: 12}), '#/runs/12');
    assert.equal(app.routeHash({view: 'run', id: 12, stage: 'test'}), '#/runs/12');
    assert.equal(app.routeHash({view: 'run', id: 12, stage: 'deploy prod', step: 'a/b'}),
                 '#/runs/12/deploy%20prod/a%2Fb');
  });

  test('deployments, with and without an environment', () => {
    assert.equal(app.routeHash({view: 'deployments', environment: ''}), '#/deployments');
    assert.equal(app.routeHash({view: 'deployments'}), '#/deployments');
    assert.equal(app.routeHash({view: 'deployments', environment: 'eu prod'}),
                 '#/deployments?environment=eu%20prod');
  });

  test('routeHash(parseRoute(h)) gives back h for the hashes the UI makes', () => {
    for (const hash of ['#/', '#/?status=failed', '#/?repo=acme%2Fweb&branch=feature%20x&status=running',
                        '#/runs/12', '#/runs/12/deploy%20prod/a%2Fb', '#/runs/3/c%2B%2B/50%25',
                        '#/deployments', '#/deployments?environment=eu%20prod']) {
      assert.equal(app.routeHash(app.parseRoute(hash)), hash);
    }
  });

  test('parseRoute(routeHash(r)) gives back r, awkward names included', () => {
    const routes = [
      {view: 'runs', filters: {}},
      {view: 'runs', filters: {repo: 'a&b=c', branch: 'feature/x y+z', status: 'failed'}},
      {view: 'run', id: 1},
      {view: 'run', id: 12, stage: 'deploy prod', step: 'a/b'},
      {view: 'run', id: 99, stage: 'c++ & ü', step: 'what? #1 50%'},
      {view: 'deployments', environment: ''},
      {view: 'deployments', environment: 'eu prod/1?x#y'},
    ];
    for (const route of routes) assert.deepEqual(app.parseRoute(app.routeHash(route)), route);
  });

  test('a non-canonical hash settles after one round', () => {
    const once = app.routeHash(app.parseRoute('#/?status=failed&repo=acme&junk=1&branch='));
    assert.equal(once, '#/?repo=acme&status=failed');
    assert.equal(app.routeHash(app.parseRoute(once)), once);
  });
});

// ---- API addresses ------------------------------------------------------------

describe('runsPath', () => {
  test('no filters: limit 50 only', () => {
    assert.equal(app.runsPath(), '/api/v1/runs?limit=50');
    assert.equal(app.runsPath({}), '/api/v1/runs?limit=50');
    assert.equal(app.runsPath({repo: '', branch: '', status: ''}), '/api/v1/runs?limit=50');
  });

  test('filters encoded, then limit, then before', () => {
    assert.equal(app.runsPath({repo: 'acme/web', branch: 'feature x', status: 'failed'}, 120),
                 '/api/v1/runs?repo=acme%2Fweb&branch=feature%20x&status=failed&limit=50&before=120');
  });

  test('another limit', () => {
    assert.equal(app.runsPath({status: 'running'}, undefined, 20), '/api/v1/runs?status=running&limit=20');
  });

  test('keys other than repo, branch and status are not sent', () => {
    assert.equal(app.runsPath({page: 2, status: 'queued'}), '/api/v1/runs?status=queued&limit=50');
  });
});

describe('logPath', () => {
  test('followed, with stage and step names encoded', () => {
    assert.equal(app.logPath(12, 'deploy prod', 'a/b', true),
                 '/api/v1/runs/12/steps/deploy%20prod/a%2Fb/log?format=json&follow=1');
  });

  test('not followed', () => {
    assert.equal(app.logPath(7, 'test', 'unit', false), '/api/v1/runs/7/steps/test/unit/log?format=json');
    assert.equal(app.logPath(7, 'c++', '50%'), '/api/v1/runs/7/steps/c%2B%2B/50%25/log?format=json');
  });
});

describe('deploymentsPath', () => {
  test('without an environment', () => {
    assert.equal(app.deploymentsPath(''), '/api/v1/deployments?limit=50');
    assert.equal(app.deploymentsPath(undefined), '/api/v1/deployments?limit=50');
  });

  test('with an environment (encoded) and before', () => {
    assert.equal(app.deploymentsPath('production'), '/api/v1/deployments?environment=production&limit=50');
    assert.equal(app.deploymentsPath('eu prod', 7), '/api/v1/deployments?environment=eu%20prod&limit=50&before=7');
  });
});

// ---- Streams --------------------------------------------------------------------

describe('parseSse', () => {
  const ev = (id, event, data) => ({id, event, data});

  test('two events in one chunk', () => {
    const text = 'id: 1\nevent: run\ndata: {"id":1}\n\nid: 2\nevent: step\ndata: {"run_id":1}\n\n';
    assert.deepEqual(app.parseSse(text), {
      events: [ev('1', 'run', '{"id":1}'), ev('2', 'step', '{"run_id":1}')],
      rest: '',
    });
  });

  test('an event split over two chunks: the rest fed back with the next chunk', () => {
    const first = app.parseSse('id: 3\nevent: run\ndata: {"id"');
    assert.deepEqual(first, {events: [], rest: 'id: 3\nevent: run\ndata: {"id"'});
    const second = app.parseSse(first.rest + ':3}\n\nid: 4\nev');
    assert.deepEqual(second, {events: [ev('3', 'run', '{"id":3}')], rest: 'id: 4\nev'});
  });

  test('an event split between its two closing line breaks', () => {
    const first = app.parseSse('data: x\n');
    assert.deepEqual(first, {events: [], rest: 'data: x\n'});
    assert.deepEqual(app.parseSse(first.rest + '\n'), {events: [ev(null, 'message', 'x')], rest: ''});
  });

  test('comment lines are ignored, alone or inside an event', () => {
    assert.deepEqual(app.parseSse(': keep-alive\n\n'), {events: [], rest: ''});
    assert.deepEqual(app.parseSse(':hello\nevent: run\n: in between\ndata: {}\n\n'),
                     {events: [ev(null, 'run', '{}')], rest: ''});
  });

  test('several data lines join with \\n', () => {
    assert.deepEqual(app.parseSse('data: line 1\ndata: line 2\ndata:\ndata: line 4\n\n').events,
                     [ev(null, 'message', 'line 1\nline 2\n\nline 4')]);
  });

  test('only one space after the colon is removed', () => {
    assert.deepEqual(app.parseSse('data:x\n\ndata:  two\n\n').events,
                     [ev(null, 'message', 'x'), ev(null, 'message', ' two')]);
  });

  test('CRLF and lone CR work as LF', () => {
    assert.deepEqual(app.parseSse('id: 5\r\nevent: run\r\ndata: {}\r\n\r\nid: 6\revent: stage\rdata: []\r\rid: 7'), {
      events: [ev('5', 'run', '{}'), ev('6', 'stage', '[]')],
      rest: 'id: 7',
    });
  });

  test('a chunk that ends in CR waits: it may be half of a CRLF', () => {
    const first = app.parseSse('data: a\r\n\r');
    assert.deepEqual(first, {events: [], rest: 'data: a\n\r'});
    assert.deepEqual(app.parseSse(first.rest + '\n'), {events: [ev(null, 'message', 'a')], rest: ''});
  });

  test('the id is kept, and an event with an id but no data still comes out', () => {
    assert.deepEqual(app.parseSse('id: 1700000000123\nevent: run\ndata: {}\n\n').events,
                     [ev('1700000000123', 'run', '{}')]);
    assert.deepEqual(app.parseSse('id: 9\n\n').events, [ev('9', 'message', null)]);
  });

  test('a block with neither data nor id (the retry line) is no event', () => {
    assert.deepEqual(app.parseSse('retry: 3000\n\n'), {events: [], rest: ''});
    assert.deepEqual(app.parseSse('event: run\n\n'), {events: [], rest: ''});
  });

  test('an "event: reset" comes out as such, with or without an id', () => {
    assert.deepEqual(app.parseSse('id: 1700000000500\nevent: reset\ndata: {"last_id":1700000000500}\n\n').events,
                     [ev('1700000000500', 'reset', '{"last_id":1700000000500}')]);
    assert.deepEqual(app.parseSse('event: reset\ndata: {"last_id":5}\n\n').events,
                     [ev(null, 'reset', '{"last_id":5}')]);
  });

  test('a CRLF split between two chunks is one line break, not two [bug]', () => {
    // 'data: a\r\ndata: b\r\n\r\n' is one event whose data is "a\nb". When a
    // chunk ends between the \r and the \n, the \r is already turned into \n
    // in the rest, and the next chunk's \n makes a second, empty line.
    const first = app.parseSse('data: a\r');
    const second = app.parseSse(first.rest + '\ndata: b\r\n\r\n');
    assert.deepEqual(first.events.concat(second.events), [ev(null, 'message', 'a\nb')]);
  });
});

describe('parseNdjson', () => {
  test('complete lines are parsed in order', () => {
    assert.deepEqual(app.parseNdjson('{"stream":"stdout","text":"a"}\n{"stream":"stderr","text":"b"}\n'), {
      records: [{stream: 'stdout', text: 'a'}, {stream: 'stderr', text: 'b'}],
      rest: '',
    });
  });

  test('an unfinished last line is the rest, completed by the next chunk', () => {
    const first = app.parseNdjson('{"text":"a"}\n{"te');
    assert.deepEqual(first, {records: [{text: 'a'}], rest: '{"te'});
    assert.deepEqual(app.parseNdjson(first.rest + 'xt":"b"}\n'), {records: [{text: 'b'}], rest: ''});
    assert.deepEqual(app.parseNdjson('{"text":"c"}'), {records: [], rest: '{"text":"c"}'});
  });

  test('blank lines are skipped', () => {
    assert.deepEqual(app.parseNdjson('\n   \n{"a":1}\n\n\t\n{"a":2}\n'), {records: [{a: 1}, {a: 2}], rest: ''});
  });

  test('a line that is not JSON becomes a stderr record, not an exception', () => {
    let out;
    assert.doesNotThrow(() => { out = app.parseNdjson('{"text":"ok"}\nnot json {\n{"text":"after"}\n'); });
    assert.deepEqual(out, {
      records: [
        {text: 'ok'},
        {stream: 'stderr', text: '(ladle web UI: a log line that is not JSON: not json {)'},
        {text: 'after'},
      ],
      rest: '',
    });
  });
});

// ---- Keeping data current -------------------------------------------------------

describe('matchesFilters', () => {
  const run = {id: 1, repo: 'acme/web', branch: 'main', status: 'failed'};

  test('no filters take every run', () => {
    assert.equal(app.matchesFilters(run, {}), true);
    assert.equal(app.matchesFilters(run, undefined), true);
    assert.equal(app.matchesFilters(run, {repo: '', branch: '', status: ''}), true);
  });

  test('each filter must match exactly', () => {
    assert.equal(app.matchesFilters(run, {repo: 'acme/web'}), true);
    assert.equal(app.matchesFilters(run, {repo: 'acme'}), false);
    assert.equal(app.matchesFilters(run, {branch: 'main'}), true);
    assert.equal(app.matchesFilters(run, {branch: 'Main'}), false);
    assert.equal(app.matchesFilters(run, {status: 'failed'}), true);
    assert.equal(app.matchesFilters(run, {status: 'success'}), false);
    assert.equal(app.matchesFilters(run, {repo: 'acme/web', branch: 'main', status: 'failed'}), true);
    assert.equal(app.matchesFilters(run, {repo: 'acme/web', branch: 'main', status: 'running'}), false);
  });
});

describe('applyRunEvent', () => {
  const list = (...ids) => ids.map((id) => ({id, repo: 'acme', branch: 'main', status: 'running'}));
  const ids = (runs) => runs.map((r) => r.id);

  test('a known run is replaced where it is, order kept', () => {
    const runs = list(12, 11, 10);
    const update = {id: 11, repo: 'acme', branch: 'main', status: 'success'};
    const out = app.applyRunEvent(runs, update, {}, 50);
    assert.deepEqual(ids(out), [12, 11, 10]);
    assert.equal(out[1], update);
    assert.equal(out[0], runs[0]);
    assert.equal(out[2], runs[2]);
  });

  test('a new run with a higher id goes on top', () => {
    const out = app.applyRunEvent(list(12, 11, 10), {id: 13, status: 'queued'}, {}, 50);
    assert.deepEqual(ids(out), [13, 12, 11, 10]);
  });

  test('a new run on an empty list is the list', () => {
    assert.deepEqual(app.applyRunEvent([], {id: 1, status: 'queued'}, {}, 50), [{id: 1, status: 'queued'}]);
  });

  test('a run the status filter no longer takes is removed', () => {
    const out = app.applyRunEvent(list(12, 11, 10), {id: 11, repo: 'acme', branch: 'main', status: 'success'},
                                  {status: 'running'}, 50);
    assert.deepEqual(ids(out), [12, 10]);
  });

  test('a new run the filters do not take is not added', () => {
    const out = app.applyRunEvent(list(12, 11, 10), {id: 13, repo: 'other', branch: 'main', status: 'running'},
                                  {repo: 'acme'}, 50);
    assert.deepEqual(ids(out), [12, 11, 10]);
  });

  test('an older unknown run is not added when the page is full (it belongs to an older page)', () => {
    const out = app.applyRunEvent(list(12, 11, 10), {id: 5, status: 'running'}, {}, 3);
    assert.deepEqual(ids(out), [12, 11, 10]);
  });

  test('an older unknown run is added in order when the page is not full', () => {
    const out = app.applyRunEvent(list(12, 10), {id: 5, status: 'running'}, {}, 50);
    assert.deepEqual(ids(out), [12, 10, 5]);
    const between = app.applyRunEvent(list(12, 10), {id: 11, status: 'running'}, {}, 50);
    assert.deepEqual(ids(between), [12, 11, 10]);
  });

  test('a full list stays at the limit: the oldest run falls off', () => {
    const out = app.applyRunEvent(list(12, 11, 10), {id: 13, status: 'queued'}, {}, 3);
    assert.deepEqual(ids(out), [13, 12, 11]);
  });

  test('the default limit is 50', () => {
    const runs = list(...Array.from({length: 50}, (_, i) => 100 - i));  // 100 .. 51
    const out = app.applyRunEvent(runs, {id: 101, status: 'queued'}, {});
    assert.equal(out.length, 50);
    assert.equal(out[0].id, 101);
    assert.equal(out[49].id, 52);
    assert.deepEqual(ids(app.applyRunEvent(runs, {id: 7, status: 'queued'}, {})), ids(runs));
  });

  test('a list longer than the limit (older pages loaded) keeps its length', () => {
    const out = app.applyRunEvent(list(12, 11, 10, 9), {id: 13, status: 'queued'}, {}, 3);
    assert.deepEqual(ids(out), [13, 12, 11, 10]);
  });

  test('the input array and its runs are not mutated', () => {
    const runs = list(12, 11, 10);
    const before = clone(runs);
    const outs = [
      app.applyRunEvent(runs, {id: 13, status: 'queued'}, {}, 3),
      app.applyRunEvent(runs, {id: 11, status: 'success'}, {}, 3),
      app.applyRunEvent(runs, {id: 11, status: 'success'}, {status: 'running'}, 3),
      app.applyRunEvent(runs, {id: 5, status: 'running'}, {}, 3),
    ];
    assert.deepEqual(runs, before);
    for (const out of outs) assert.notEqual(out, runs);
  });

  test('an unknown run inside the page\'s range of ids is added even when the page is full [bug]', () => {
    // Filtered on failed, the page shows 10, 8 and 6; run 9 then fails. The
    // newest three failed runs are now 10, 9 and 8: run 9 belongs on this
    // page, not on an older one.
    const failed = (id) => ({id, status: 'failed'});
    const out = app.applyRunEvent([failed(10), failed(8), failed(6)], failed(9), {status: 'failed'}, 3);
    assert.deepEqual(ids(out), [10, 9, 8]);
  });
});

describe('applyDetailEvent', () => {
  const fixture = () => ({
    id: 7,
    status: 'running',
    repo: 'acme',
    deployment: {environment: 'production', status: 'running'},
    stages: [
      {name: 'build', status: 'success', steps: [{name: 'compile', status: 'success', exit_code: 0}]},
      {name: 'deploy prod', status: 'running', environment: 'production',
       steps: [{name: 'a/b', status: 'running', exit_code: null}]},
    ],
  });

  test('a run event merges the run\'s fields but keeps its stages and deployment', () => {
    const run = fixture();
    const stages = run.stages;
    const ok = app.applyDetailEvent(run, 'run', {
      id: 7, status: 'success', finished_at: '2024-05-01T12:00:00Z', stages: [], deployment: null,
    });
    assert.equal(ok, true);
    const want = fixture();
    want.status = 'success';
    want.finished_at = '2024-05-01T12:00:00Z';
    assert.deepEqual(run, want);
    assert.equal(run.stages, stages);
  });

  test('a message the event lacks is gone (the server leaves out empty ones)', () => {
    const run = fixture();
    run.message = 'queued behind run 6';
    run.stages[1].message = 'waits for approval; to go on: ladle approve 7 deploy prod';
    assert.equal(app.applyDetailEvent(run, 'stage', {run_id: 7, name: 'deploy prod', status: 'running'}), true);
    assert.equal('message' in run.stages[1], false);
    assert.equal(app.applyDetailEvent(run, 'run', {id: 7, status: 'running'}), true);
    assert.equal('message' in run, false);
    assert.equal(app.applyDetailEvent(run, 'stage', {run_id: 7, name: 'build', status: 'success', message: 'gate passed'}), true);
    assert.equal(run.stages[0].message, 'gate passed');
  });

  test('a stage event updates that stage, not its steps', () => {
    const run = fixture();
    const ok = app.applyDetailEvent(run, 'stage', {
      run_id: 7, name: 'deploy prod', status: 'waiting', message: 'needs approval', steps: [],
    });
    assert.equal(ok, true);
    const want = fixture();
    want.stages[1].status = 'waiting';
    want.stages[1].message = 'needs approval';
    assert.deepEqual(run, want);
  });

  test('a step event updates that step', () => {
    const run = fixture();
    const ok = app.applyDetailEvent(run, 'step', {
      run_id: 7, stage: 'deploy prod', name: 'a/b', status: 'failed', exit_code: 1, failure_reason: 'exit status 1',
    });
    assert.equal(ok, true);
    const want = fixture();
    Object.assign(want.stages[1].steps[0], {status: 'failed', exit_code: 1, failure_reason: 'exit status 1'});
    assert.deepEqual(run, want);
  });

  test('an unknown stage or step returns false and changes nothing', () => {
    const run = fixture();
    assert.equal(app.applyDetailEvent(run, 'stage', {run_id: 7, name: 'publish', status: 'running'}), false);
    assert.equal(app.applyDetailEvent(run, 'step', {run_id: 7, stage: 'publish', name: 'x', status: 'running'}),
                 false);
    assert.equal(app.applyDetailEvent(run, 'step', {run_id: 7, stage: 'build', name: 'lint', status: 'running'}),
                 false);
    assert.deepEqual(run, fixture());
  });

  test('a stage or step event on a run without stages yet returns false', () => {
    const run = {id: 7, status: 'queued'};
    assert.equal(app.applyDetailEvent(run, 'stage', {run_id: 7, name: 'build', status: 'running'}), false);
    assert.equal(app.applyDetailEvent(run, 'step', {run_id: 7, stage: 'build', name: 'c', status: 'running'}),
                 false);
    assert.deepEqual(run, {id: 7, status: 'queued'});
  });

  test('events of another run are ignored: true, nothing changed', () => {
    const run = fixture();
    assert.equal(app.applyDetailEvent(run, 'run', {id: 8, status: 'failed'}), true);
    assert.equal(app.applyDetailEvent(run, 'stage', {run_id: 8, name: 'build', status: 'failed'}), true);
    assert.equal(app.applyDetailEvent(run, 'step', {run_id: 8, stage: 'build', name: 'compile', status: 'failed'}),
                 true);
    assert.equal(app.applyDetailEvent(run, 'stage', {run_id: 8, name: 'unknown', status: 'failed'}), true);
    assert.deepEqual(run, fixture());
  });

  test('no run loaded: true', () => {
    assert.equal(app.applyDetailEvent(null, 'run', {id: 7, status: 'failed'}), true);
  });
});

// ---- Views ------------------------------------------------------------------------

describe('runsTableHtml', () => {
  const run = (fields) => Object.assign({
    id: 42, status: 'success', repo: 'acme/web', branch: 'main',
    commit: '0123456789abcdef0123456789abcdef01234567', trigger: 'push',
    created_at: ago(5 * MIN), started_at: ago(5 * MIN), finished_at: ago(5 * MIN - 192 * SEC),
  }, fields);

  test('an empty list without filters says how runs appear', () => {
    assert.equal(app.runsTableHtml([], NOW, false),
                 '<p class="empty">No runs yet. Push a commit to a watched branch (or send its webhook): ' +
                 'its run appears here as it is queued.</p>');
  });

  test('an empty filtered list says that nothing matches', () => {
    assert.equal(app.runsTableHtml([], NOW, true), '<p class="empty">No run matches these filters.</p>');
  });

  test('one run, exactly', () => {
    const r = run({});
    assert.equal(app.runsTableHtml([r], NOW, false),
                 '<table class="runs"><thead><tr><th>run</th><th>status</th><th>repository</th>' +
                 '<th>branch</th><th>commit</th><th>trigger</th><th>created</th><th class="num">took</th>' +
                 '</tr></thead><tbody>' +
                 '<tr data-run="42"><td><a href="#/runs/42">#42</a></td>' +
                 '<td><span class="status s-success">success</span></td><td>acme/web</td><td>main</td>' +
                 '<td class="mono" title="0123456789abcdef0123456789abcdef01234567">0123456789</td>' +
                 '<td>push</td><td><span class="ago" data-t="' + r.created_at + '" title="' + r.created_at + '">5 min ago</span></td>' +
                 '<td class="num">3 min 12 s</td></tr></tbody></table>');
  });

  test('a hostile branch name is escaped, never raw', () => {
    const html = app.runsTableHtml([run({branch: '<script>alert(1)</script>'})], NOW, false);
    assert.ok(html.includes('<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>'), html);
    assert.ok(!html.includes('<script>'), html);
  });

  test('a run from a dirty tree shows its commit +dirty', () => {
    const html = app.runsTableHtml([run({dirty: true})], NOW, false);
    assert.ok(html.includes('>0123456789+dirty</td>'), html);
  });

  test('the commit is shortened to 10 characters, the full one in the title', () => {
    const html = app.runsTableHtml([run({})], NOW, false);
    assert.ok(html.includes('title="0123456789abcdef0123456789abcdef01234567">0123456789</td>'), html);
  });

  test('each run links to #/runs/ID', () => {
    const html = app.runsTableHtml([run({id: 3}), run({id: 2})], NOW, false);
    assert.ok(html.includes('<a href="#/runs/3">#3</a>'), html);
    assert.ok(html.includes('<a href="#/runs/2">#2</a>'), html);
    assert.ok(html.indexOf('#/runs/3') < html.indexOf('#/runs/2'));
  });

  test('a run with a message gets a message row after it; one without does not', () => {
    const html = app.runsTableHtml([run({message: 'queued behind run 41 & 40'})], NOW, false);
    assert.ok(html.includes('<td class="num">3 min 12 s</td></tr><tr class="detail"><td></td>' +
                            '<td colspan="7" class="muted">queued behind run 41 &amp; 40</td></tr>'), html);
    assert.equal(count(app.runsTableHtml([run({})], NOW, false), 'class="detail"'), 0);
  });

  test('a running run shows its time so far; one not started shows none', () => {
    const html = app.runsTableHtml([run({id: 2, status: 'running', finished_at: null, started_at: ago(42 * SEC)}),
                                    run({id: 1, status: 'queued', started_at: null, finished_at: null})],
                                   NOW, false);
    assert.ok(html.includes('<td class="num"><span class="took" data-start="' + ago(42 * SEC) + '">42 s</span></td></tr>'),
              html);
    assert.ok(html.endsWith('<td class="num"></td></tr></tbody></table>'), html);
  });

  test('a rollback run names its environment, escaped', () => {
    const html = app.runsTableHtml([run({trigger: 'rollback', rollback_environment: 'eu <prod>'})], NOW, false);
    assert.ok(html.includes('<td>rollback <span class="env">rollback of eu &lt;prod&gt;</span></td>'), html);
  });
});

describe('testsText', () => {
  test('passed, failed, skipped of total', () => {
    assert.equal(app.testsText({passed: 3, failed: 1, skipped: 0, total: 4}), '3 passed, 1 failed, 0 skipped of 4');
  });

  test('no tests: empty', () => {
    assert.equal(app.testsText(null), '');
    assert.equal(app.testsText(undefined), '');
  });
});

describe('runHtml', () => {
  const fixture = (fields) => Object.assign({
    id: 7, status: 'waiting', repo: 'acme/web', branch: 'main',
    commit: '0123456789abcdef0123456789abcdef01234567', pipeline: 'ci', file: '.ladle.yml', trigger: 'push',
    created_at: ago(10 * MIN), started_at: ago(10 * MIN), finished_at: null,
    stages: [
      {name: 'test', status: 'failed', tests: {passed: 3, failed: 1, skipped: 0, total: 4},
       steps: [
         {name: 'unit', status: 'success', exit_code: 0, started_at: ago(9 * MIN), finished_at: ago(9 * MIN - 42 * SEC)},
         {name: 'lint', status: 'failed', exit_code: 1, failure_reason: 'exit status 1', allow_failure: true,
          attempts: 2, started_at: ago(9 * MIN), finished_at: ago(9 * MIN - 850)},
       ]},
      {name: 'deploy prod', status: 'waiting', environment: 'production', message: 'needs approval',
       steps: [{name: 'a/b', status: 'queued', exit_code: null}]},
    ],
  }, fields);

  test('the heading and facts', () => {
    const html = app.runHtml(fixture({}), NOW);
    assert.ok(html.startsWith('<h1>Run 7 <span class="status s-waiting">waiting</span></h1><dl class="facts">' +
                              '<dt>repository</dt><dd>acme/web</dd><dt>branch</dt><dd>main</dd>' +
                              '<dt>commit</dt><dd><span class="mono">0123456789abcdef0123456789abcdef01234567' +
                              '</span></dd><dt>pipeline</dt><dd>ci <span class="muted">(.ladle.yml)</span></dd>' +
                              '<dt>trigger</dt><dd>push</dd>'), html);
    // Still running: the clock ticks the duration in place.
    assert.ok(html.includes('<dt>took</dt><dd><span class="took" data-start="2024-05-01T11:50:00.000Z">10 min 0 s' +
                            '</span></dd></dl>'), html);
  });

  test('a run from a dirty tree shows its commit +dirty and the changed paths', () => {
    const html = app.runHtml(fixture({dirty: true, changed_paths: ['src/a.c', '<b>.txt']}), NOW);
    assert.ok(html.includes('<dt>commit</dt><dd><span class="mono">0123456789abcdef0123456789abcdef01234567+dirty' +
                            '</span> (changed: src/a.c, &lt;b&gt;.txt)</dd>'), html);
  });

  test('every stage name and step is present, in order', () => {
    const html = app.runHtml(fixture({}), NOW);
    assert.ok(html.includes('<section class="stage"><div class="title"><span class="name">test</span>' +
                            '<span class="status s-failed">failed</span>'), html);
    assert.ok(html.includes('<span class="name">deploy prod</span><span class="status s-waiting">waiting</span>' +
                            '<span class="env">production</span>'), html);
    // In the stages' sections (the graph above them names them too).
    const stages = html.slice(html.indexOf('<section class="stage">'));
    const order = ['>test<', '>unit<', '>lint<', '>deploy prod<', '>a/b<'].map((s) => stages.indexOf(s));
    assert.ok(order.every((i) => i >= 0), String(order));
    assert.deepEqual(order, order.slice().sort((a, b) => a - b));
    assert.equal(count(html, '<section class="stage">'), 2);
    assert.ok(html.includes('<p class="message muted">needs approval</p>'), html);
  });

  test('a waiting stage has an approve button naming it; other stages do not', () => {
    const html = app.runHtml(fixture({}), NOW);
    assert.ok(html.includes('<button type="button" class="primary" data-action="approve" data-run="7" ' +
                            'data-stage="deploy prod">Approve deploy prod</button>'), html);
    assert.equal(count(html, 'data-action="approve"'), 1);
  });

  test('the approve button escapes the stage name', () => {
    const run = fixture({});
    run.stages[1].name = 'say "hi" <now>';
    const html = app.runHtml(run, NOW);
    assert.ok(html.includes('data-stage="say &quot;hi&quot; &lt;now&gt;">Approve say &quot;hi&quot; &lt;now&gt;' +
                            '</button>'), html);
    assert.ok(!html.includes('<now>'), html);
  });

  test('an active run (queued, running, waiting) has the cancel button; a finished one does not', () => {
    const cancel = '<div class="actions"><button type="button" class="danger" data-action="cancel" data-run="7">' +
                   'Cancel run</button></div>';
    for (const status of ['queued', 'running', 'waiting']) {
      assert.equal(count(app.runHtml(fixture({status}), NOW), cancel), 1, status);
    }
    for (const status of ['success', 'failed', 'skipped', 'cancelled', 'interrupted', 'superseded']) {
      assert.equal(count(app.runHtml(fixture({status}), NOW), 'data-action="cancel"'), 0, status);
    }
  });

  test('a stage names its failed tests, 10 at most, then how many more; escaped', () => {
    const run = fixture({});
    const many = [];
    for (let i = 0; i < 8; i++) many.push({suite: 'cart', name: 't' + i, message: 'expected <1>'});
    run.stages[0].steps[0].failed_tests = many;
    run.stages[0].steps[0].failed_tests_more = 1;
    run.stages[0].steps[1].failed_tests = [{suite: 'Cart totals', name: 'Cart totals tax', message: ''},
                                           {suite: 's', name: 'x', message: 'm'},
                                           {suite: 's', name: 'y', message: 'm'}];
    const html = app.runHtml(run, NOW);
    assert.ok(html.includes('<ul class="failed-tests"><li><span class="mono">cart.t0</span> ' +
                            '<span class="muted">expected &lt;1&gt;</span></li>'), html);
    assert.ok(html.includes('<li><span class="mono">Cart totals tax</span></li>'), html);
    assert.ok(html.includes('<li><span class="mono">s.x</span>'), html);
    assert.ok(!html.includes('s.y'), html);
    assert.equal(count(html, '<li><span class="mono">'), 10);
    assert.ok(html.includes('<li class="muted">and 2 more failed tests</li></ul>'), html);
    // The list sits in its stage, before the steps.
    assert.ok(html.indexOf('failed-tests') < html.indexOf('>unit</a></td>'), html);
    assert.equal(app.failedTestsHtml(fixture({}).stages[0]), '');
  });

  test('a kept step shows the command that enters its container', () => {
    const run = fixture({});
    run.stages[0].steps[1].kept = 'docker start ladle-kept-1 >/dev/null && docker exec -i ladle-kept-1 sh';
    const html = app.runHtml(run, NOW);
    assert.ok(html.includes('<tr class="kept"><td colspan="5"><span class="muted">container kept; enter it with:' +
                            '</span> <code>docker start ladle-kept-1 &gt;/dev/null &amp;&amp; docker exec -i ' +
                            'ladle-kept-1 sh</code></td></tr>'), html);
    assert.ok(html.indexOf('>lint<') < html.indexOf('tr class="kept"'), html);
    assert.equal(count(html, 'class="kept"'), 1);
  });

  test('a stage\'s tests are summed up', () => {
    const html = app.runHtml(fixture({}), NOW);
    assert.ok(html.includes('<span class="muted">tests: 3 passed, 1 failed, 0 skipped of 4</span>'), html);
    assert.equal(count(html, 'tests: '), 1);
  });

  test('the step of the route is the selected row, and only it', () => {
    const html = app.runHtml(fixture({}), NOW, {view: 'run', id: 7, stage: 'deploy prod', step: 'a/b'});
    assert.ok(html.includes('<tr class="selected" data-step="deploy prod/a/b"><td><a href="#/runs/7/deploy%20prod/a%2Fb">' +
                            'a/b</a></td>'), html);
    assert.equal(count(html, 'class="selected"'), 1);
    assert.equal(count(app.runHtml(fixture({}), NOW), 'class="selected"'), 0);
    assert.equal(count(app.runHtml(fixture({}), NOW, {view: 'run', id: 7, stage: 'test', step: 'a/b'}),
                       'class="selected"'), 0);
  });

  test('a step row: link, status, exit code, duration and notes with the failure reason', () => {
    const html = app.runHtml(fixture({}), NOW);
    // A failure it was allowed: a warning, not a red "failed" (docs/server.md "The web UI").
    assert.ok(html.includes('<tr class="allowed" data-step="test/lint"><td><a href="#/runs/7/test/lint">lint</a></td>' +
                            '<td><span class="status s-allowed" title="failed, allowed to fail">failed (allowed)</span>' +
                            '</td><td class="num">exit 1</td><td class="num">850 ms</td>' +
                            '<td class="muted">exit status 1, 2 attempts</td></tr>'), html);
    assert.ok(html.includes('<tr data-step="test/unit"><td><a href="#/runs/7/test/unit">unit</a></td>' +
                            '<td><span class="status s-success">success</span></td><td class="num">exit 0</td>' +
                            '<td class="num">42 s</td><td class="muted"></td></tr>'), html);
    assert.ok(html.includes('<tr data-step="deploy prod/a/b"><td><a href="#/runs/7/deploy%20prod/a%2Fb">a/b</a></td>' +
                            '<td><span class="status s-queued">queued</span></td><td class="num"></td>' +
                            '<td class="num"></td><td class="muted"></td></tr>'), html);
  });

  test('step links encode names so that they survive parseRoute', () => {
    const run = fixture({});
    run.stages[0].steps[0].name = 'c++ & 50%';
    const html = app.runHtml(run, NOW);
    assert.ok(html.includes('<a href="#/runs/7/test/c%2B%2B%20%26%2050%25">c++ &amp; 50%</a>'), html);
    assert.deepEqual(app.parseRoute('#/runs/7/test/c%2B%2B%20%26%2050%25'),
                     {view: 'run', id: 7, stage: 'test', step: 'c++ & 50%'});
  });

  test('a run without stages says it has not started', () => {
    const html = app.runHtml(fixture({status: 'queued', stages: []}), NOW);
    assert.ok(html.includes('<p class="empty">No stages yet: the run has not started.</p>'), html);
    assert.ok(html.endsWith('<p class="empty">No stages yet: the run has not started.</p>'), html);
  });

  test('the run\'s message, its deployment and its rollback source', () => {
    const html = app.runHtml(fixture({
      status: 'success', message: 'done <ok>', rollback_environment: 'production', source_run: 3,
      deployment: {environment: 'production', status: 'success', rollback: true},
    }), NOW);
    assert.ok(html.includes('<dt>rollback</dt><dd>of production to the commit of <a href="#/runs/3">run 3</a></dd>'),
              html);
    assert.ok(html.includes('<dt>deployment</dt><dd><span class="env">production</span> ' +
                            '<span class="status s-success">success</span> rollback</dd>'), html);
    assert.ok(html.includes('<p class="message">done &lt;ok&gt;</p>'), html);
  });
});

describe('currentDeployments', () => {
  test('the newest deployment of each environment, in order of first appearance', () => {
    const list = [
      {id: 5, environment: 'production'}, {id: 4, environment: 'staging'},
      {id: 3, environment: 'production'}, {id: 2, environment: 'qa'}, {id: 1, environment: 'staging'},
    ];
    assert.deepEqual(app.currentDeployments(list).map((d) => d.id), [5, 4, 2]);
    assert.deepEqual(app.currentDeployments([]), []);
  });
});

describe('deploymentsHtml', () => {
  const dep = (id, environment, fields) => Object.assign({
    id, environment, run_id: id * 10, stage: 'deploy', repo: 'acme/web', branch: 'main',
    commit: 'fedcba9876543210fedcba9876543210fedcba98', status: 'success',
    started_at: ago(HOUR), finished_at: ago(HOUR - 30 * SEC),
  }, fields);
  const list = () => [dep(5, 'production'), dep(4, 'eu prod', {rollback: true}), dep(3, 'production'),
                      dep(2, 'qa', {status: 'failed'})];

  test('an empty list without an environment filter', () => {
    assert.equal(app.deploymentsHtml([], NOW, ''),
                 '<p class="empty">No deployments yet: a run records one when it reaches a stage with an ' +
                 'environment.</p>');
  });

  test('an empty list with an environment filter names it, escaped', () => {
    assert.equal(app.deploymentsHtml([], NOW, 'production'), '<p class="empty">No deployment to production yet.</p>');
    assert.equal(app.deploymentsHtml([], NOW, '<b>prod</b>'),
                 '<p class="empty">No deployment to &lt;b&gt;prod&lt;/b&gt; yet.</p>');
  });

  test('one environments row per environment, newest first-seen, each with a rollback button', () => {
    const html = app.deploymentsHtml(list(), NOW, '');
    const environments = html.slice(0, html.indexOf('<h2>History</h2>'));
    assert.equal(count(environments, '<tr><td><a href="#/deployments?environment='), 3);
    assert.equal(count(html, 'data-action="rollback"'), 3);
    const order = ['data-environment="production"', 'data-environment="eu prod"', 'data-environment="qa"']
        .map((s) => environments.indexOf(s));
    assert.ok(order.every((i) => i >= 0), String(order));
    assert.deepEqual(order, order.slice().sort((a, b) => a - b));
    // production's current deployment is the newest (run 50), not run 30.
    assert.ok(environments.includes('<tr><td><a href="#/deployments?environment=production">production</a></td>' +
                                    '<td><span class="status s-success">success</span></td>' +
                                    '<td><a href="#/runs/50">#50</a></td>' +
                                    '<td class="mono" title="fedcba9876543210fedcba9876543210fedcba98">fedcba9876</td>' +
                                    '<td><span class="ago" data-t="' + ago(HOUR) + '" title="' + ago(HOUR) + '">1 h ago</span></td>' +
                                    '<td><button type="button" class="danger" data-action="rollback" ' +
                                    'data-environment="production">Roll back…</button></td></tr>'), environments);
    assert.ok(!environments.includes('#/runs/30'), environments);
  });

  test('an environment name is encoded in links and escaped in text', () => {
    const html = app.deploymentsHtml([dep(1, 'eu "prod" <1>')], NOW, '');
    assert.ok(html.includes('<a href="#/deployments?environment=eu%20%22prod%22%20%3C1%3E">' +
                            'eu &quot;prod&quot; &lt;1&gt;</a>'), html);
    assert.ok(html.includes('data-environment="eu &quot;prod&quot; &lt;1&gt;"'), html);
    assert.ok(!html.includes('<1>'), html);
  });

  test('the history lists every deployment, rollbacks marked', () => {
    const html = app.deploymentsHtml(list(), NOW, '');
    const history = html.slice(html.indexOf('<h2>History</h2>'));
    assert.equal(count(history, '<tr><td>'), 4);
    assert.ok(history.includes('<tr><td>eu prod</td><td><span class="status s-success">success</span> rollback</td>' +
                               '<td><a href="#/runs/40">#40</a></td><td>deploy</td><td>acme/web</td><td>main</td>' +
                               '<td class="mono" title="fedcba9876543210fedcba9876543210fedcba98">fedcba9876</td>' +
                               '<td><span class="ago" data-t="' + ago(HOUR) + '" title="' + ago(HOUR) + '">1 h ago</span></td>' +
                               '<td class="num">30 s</td></tr>'), history);
    assert.ok(history.endsWith('</tbody></table>'), history);
  });
});

describe('errorMessage', () => {
  test('the message of a JSON error body', () => {
    assert.equal(app.errorMessage(409, '{"error":"conflict","message":"run 7 has finished"}', 'cancel run 7'),
                 'cancel run 7: run 7 has finished (409)');
  });

  test('a short body that is not JSON, trimmed', () => {
    assert.equal(app.errorMessage(502, 'Bad Gateway\n', 'runs'), 'runs: Bad Gateway (502)');
  });

  test('an empty or missing body gives HTTP and the status', () => {
    assert.equal(app.errorMessage(500, '', 'runs'), 'runs: HTTP 500 (500)');
    assert.equal(app.errorMessage(500, undefined, 'runs'), 'runs: HTTP 500 (500)');
    assert.equal(app.errorMessage(500, null, 'runs'), 'runs: HTTP 500 (500)');
  });

  test('a long body that is not JSON gives HTTP and the status', () => {
    assert.equal(app.errorMessage(503, '<html>' + 'x'.repeat(400) + '</html>', 'deployments'),
                 'deployments: HTTP 503 (503)');
  });

  test('a body of white space only gives HTTP and the status, not an empty message [bug]', () => {
    assert.equal(app.errorMessage(502, ' \n', 'runs'), 'runs: HTTP 502 (502)');
  });
});

describe('tickText', () => {
  test('"ago" cells and running durations as the clock moves', () => {
    assert.equal(app.tickText('ago', ago(5 * MIN), NOW), '5 min ago');
    assert.equal(app.tickText('ago', ago(5 * MIN), NOW + 60 * SEC), '6 min ago');
    assert.equal(app.tickText('took', ago(42 * SEC), NOW), '42 s');
    assert.equal(app.tickText('took', ago(42 * SEC), NOW + 30 * SEC), '1 min 12 s');
    assert.equal(app.tickText('took', 'not a time', NOW), '');
  });

  test('a finished run\'s duration is plain text: the clock leaves it be', () => {
    const html = app.runsTableHtml([{id: 3, status: 'success', repo: 'r', branch: 'b', commit: 'c',
                                     started_at: ago(MIN), finished_at: ago(MIN - 5 * SEC)}], NOW, false);
    assert.ok(html.includes('<td class="num">5.0 s</td>'), html);
    assert.equal(html.includes('class="took"'), false, html);
  });
});

describe('toggles', () => {
  const toggle = (fields) => Object.assign({
    key: 'new-checkout', type: 'release', description: 'one-page checkout', revision: 3,
    environments: {production: {enabled: false, strategies: []}},
  }, fields);

  test('strategies in a few words', () => {
    assert.equal(app.strategiesText([]), '');
    assert.equal(app.strategiesText(undefined), '');
    assert.equal(app.strategiesText([{rollout: {percent: 25}}]), 'rollout 25%');
    assert.equal(app.strategiesText([{users: ['alice']}]), '1 user');
    assert.equal(app.strategiesText([{users: ['a', 'b', 'c']}, {rollout: {percent: 10}, constraints: [{}, {}]}]),
                 '3 users; rollout 10% with 2 constraints');
    assert.equal(app.strategiesText([{constraints: [{}]}]), '1 constraint');
    assert.equal(app.strategiesText([{}]), 'a strategy');
  });

  test('environments: production first, then by name, each once', () => {
    assert.deepEqual(app.toggleEnvironments([
      toggle({environments: {staging: {}, dev: {}}}),
      toggle({environments: {production: {}, staging: {}}}),
    ]), ['production', 'dev', 'staging']);
    assert.deepEqual(app.toggleEnvironments([]), []);
  });

  test('no toggles says where they come from', () => {
    assert.ok(app.togglesHtml([]).startsWith('<p class="empty">No toggles yet.'));
  });

  test('an off toggle offers "Turn on", an on one "Turn off" with its strategies', () => {
    const html = app.togglesHtml([
      toggle(),
      toggle({key: 'dark-mode', environments: {production: {enabled: true, strategies: [{rollout: {percent: 25}}]}}}),
    ]);
    const rolloutButton = (key) => ' <button type="button" data-action="rollout" data-key="' + key +
                                   '" data-environment="production">Rollout…</button></td>';
    assert.ok(html.includes('<td data-env="production"><span class="status s-skipped">off</span> ' +
                            '<button type="button" data-action="flip" data-key="new-checkout" ' +
                            'data-environment="production" data-to="on">Turn on</button>' +
                            rolloutButton('new-checkout')), html);
    assert.ok(html.includes('<td data-env="production"><span class="status s-success">on</span> ' +
                            '<span class="muted">rollout 25%</span> <button type="button" data-action="flip" ' +
                            'data-key="dark-mode" data-environment="production" data-to="off">Turn off</button>' +
                            rolloutButton('dark-mode')), html);
  });

  test('an environment a toggle lacks is a dash; keys and descriptions are escaped', () => {
    const html = app.togglesHtml([
      toggle({key: 'a"b', description: '<img src=x>', environments: {staging: {enabled: true, strategies: []}}}),
      toggle(),
    ]);
    assert.ok(html.includes('<th>production</th><th>staging</th>'), html);
    assert.ok(html.includes('<tr data-toggle="a&quot;b">'), html);
    assert.ok(html.includes('<div class="muted">&lt;img src=x&gt;</div>'), html);
    assert.ok(!html.includes('<img'), html);
    assert.ok(html.includes('<td class="muted">-</td>'), html);
  });

  test('a rollout keeps a lone rollout strategy\'s other fields, else replaces the strategies', () => {
    const lone = [{rollout: {percent: 10, stickiness: 'userId', group: 'g'}, constraints: [{attribute: 'country'}]}];
    const next = app.rolloutStrategies(lone, 25);
    assert.deepEqual(next, [{rollout: {percent: 25, stickiness: 'userId', group: 'g'}, constraints: [{attribute: 'country'}]}]);
    assert.equal(lone[0].rollout.percent, 10, 'the current strategies are not changed');
    assert.deepEqual(app.rolloutStrategies([{users: ['a']}], 5), [{rollout: {percent: 5}}]);
    assert.deepEqual(app.rolloutStrategies([{rollout: {percent: 1}}, {users: ['a']}], 5), [{rollout: {percent: 5}}]);
    assert.deepEqual(app.rolloutStrategies(undefined, 0), [{rollout: {percent: 0}}]);
    assert.deepEqual(app.rolloutStrategies([], 100), [{rollout: {percent: 100}}]);
  });

  test('percentages: whole numbers from 0 to 100, with or without %', () => {
    assert.equal(app.parsePercent('25'), 25);
    assert.equal(app.parsePercent(' 25 % '), 25);
    assert.equal(app.parsePercent('0'), 0);
    assert.equal(app.parsePercent('100%'), 100);
    for (const bad of ['', '101', '-1', '2.5', 'half', '25%%', null, undefined]) {
      assert.equal(app.parsePercent(bad), null, String(bad));
    }
  });

  test('the toggles route', () => {
    assert.deepEqual(app.parseRoute('#/toggles'), {view: 'toggles'});
    assert.equal(app.routeHash({view: 'toggles'}), '#/toggles');
  });
});

describe('artifactsHtml', () => {
  const run = {id: 7, artifacts: [
    {stage: 'build', step: 'compile', path: 'out/app bin', size: 12},
    {stage: 'build', step: 'lint', path: 'report.txt', size: 3},
  ]};
  test("a step's files as download buttons with the encoded route", () => {
    const html = app.artifactsHtml(run, {name: 'build'}, {name: 'compile'});
    assert.ok(html.includes('data-action="artifact" data-path="/api/v1/runs/7/artifacts/build/compile/out/app%20bin"'), html);
    assert.ok(html.includes('>out/app bin</button> <span class="muted">(12 B)</span>'), html);
    assert.ok(!html.includes('report.txt'), html);
  });
  test('nothing for a step without artifacts, or a run not loaded with them', () => {
    assert.equal(app.artifactsHtml(run, {name: 'test'}, {name: 'unit'}), '');
    assert.equal(app.artifactsHtml({id: 7}, {name: 'build'}, {name: 'compile'}), '');
  });
  test('runHtml shows them under their step', () => {
    const html = app.runHtml({id: 7, status: 'success', stages: [{name: 'build', status: 'success',
      steps: [{name: 'compile', status: 'success'}]}], artifacts: run.artifacts}, Date.now());
    assert.ok(html.includes('<tr class="artifacts">'), html);
  });
});

// ---- Logs: ANSI colours, search, line links (docs/server.md "The web UI") ----

describe('parseAnsiLine', () => {
  const look = (line) => {
    const p = app.parseAnsiLine(line);
    return {text: p.text, runs: (p.runs || []).map((r) => [p.text.slice(r.start, r.end), r.cls, r.fg, r.bg])};
  };

  test('the 8 colours and reset: a class each, no code left', () => {
    assert.deepEqual(look('\x1b[32mPASS\x1b[0m ok'), {text: 'PASS ok', runs: [['PASS', 'a-f2', '', '']]});
    assert.deepEqual(look('\x1b[41mX\x1b[49mY'), {text: 'XY', runs: [['X', 'a-b1', '', '']]});
  });

  test('bright colours, bold, dim, italic, underline, strike and their ends', () => {
    assert.deepEqual(look('\x1b[91;1ma\x1b[22;103mb\x1b[2;3;4;9mc\x1b[23;24;29md\x1b[39;49;22me').runs, [
      ['a', 'a-f9 a-bold', '', ''], ['b', 'a-f9 a-b11', '', ''],
      ['c', 'a-f9 a-b11 a-dim a-italic a-underline a-strike', '', ''], ['d', 'a-f9 a-b11 a-dim', '', '']]);
  });

  test('256 colours: 0-15 as classes, the cube and the greys as rgb', () => {
    assert.deepEqual(look('\x1b[38;5;9ma\x1b[38;5;208mb\x1b[48;5;232mc\x1b[38;5;16md').runs, [
      ['a', 'a-f9', '', ''], ['b', '', 'rgb(255, 135, 0)', ''], ['c', '', 'rgb(255, 135, 0)', 'rgb(8, 8, 8)'],
      ['d', '', 'rgb(0, 0, 0)', 'rgb(8, 8, 8)']]);
  });

  test('24-bit colours, with semicolons or colons', () => {
    assert.deepEqual(look('\x1b[38;2;1;2;3;48;2;4;5;6mx').runs, [['x', '', 'rgb(1, 2, 3)', 'rgb(4, 5, 6)']]);
    assert.deepEqual(look('\x1b[38:2::10:20:30mx').runs, [['x', '', 'rgb(10, 20, 30)', '']]);
    assert.deepEqual(look('\x1b[38:2:10:20:30mx').runs, [['x', '', 'rgb(10, 20, 30)', '']]);
    // Out of range: ignored, not a crash.
    assert.deepEqual(look('\x1b[38;2;300;0;0mx'), {text: 'x', runs: []});
    assert.deepEqual(look('\x1b[38;5mx\x1b[38mx'), {text: 'xx', runs: []});
  });

  test('ESC [ m is a reset; inverse swaps colours', () => {
    assert.deepEqual(look('\x1b[31ma\x1b[mb'), {text: 'ab', runs: [['a', 'a-f1', '', '']]});
    assert.deepEqual(look('\x1b[31;7ma').runs, [['a', 'a-inv-fg a-b1', '', '']]);
  });

  test('every other sequence is dropped: cursor, erase, OSC titles and links, charsets, private modes', () => {
    assert.equal(app.parseAnsiLine('\x1b[2K\x1b[1G\x1b[?25lA\x1b]0;title\x07B\x1b]8;;http://x\x1b\\C\x1b(BD\x1b7E\x1b').text,
                 'ABCDE');
    assert.equal(app.parseAnsiLine('cut \x1b[3').text, 'cut ');
    assert.equal(app.parseAnsiLine('\x9b31mC1').text, 'C1');
  });

  test('control characters go, tabs stay; a carriage return shows what came after it', () => {
    assert.equal(app.parseAnsiLine('a\tb\x07\x00c\x7f').text, 'a\tbc');
    assert.equal(app.parseAnsiLine('10%\r50%\r100%').text, '100%');
    assert.equal(app.parseAnsiLine('done\r').text, 'done');
  });

  test('a colour lasts into the next line until it is reset', () => {
    const first = app.parseAnsiLine('\x1b[33mwarn');
    const second = app.parseAnsiLine('still', first.state);
    assert.deepEqual(second.runs, [{start: 0, end: 5, cls: 'a-f3', fg: '', bg: ''}]);
    const third = app.parseAnsiLine('\x1b[0mplain', second.state);
    assert.equal(third.runs, null);
  });

  test('text is never interpreted as markup', () => {
    assert.deepEqual(look('<b>&amp;</b>'), {text: '<b>&amp;</b>', runs: []});
  });

  test('stripAnsi keeps the lines and drops the codes', () => {
    assert.equal(app.stripAnsi('\x1b[32mPASS\x1b[0m\n\x1b[1mx\x1b[0m\n'), 'PASS\nx\n');
  });
});

describe('findMatches and lineSegments', () => {
  const lines = ['Line 1', 'no', 'line line', 'LINE'].map((text) => ({text}));

  test('finds every occurrence, case-insensitively, with a limit', () => {
    assert.deepEqual(app.findMatches(lines, 'line').matches.map((m) => [m.line, m.start]),
                     [[0, 0], [2, 0], [2, 5], [3, 0]]);
    assert.deepEqual(app.findMatches(lines, 'line', 2).matches.length, 3);
    assert.deepEqual(app.findMatches(lines, 'line', 0, 2), {
      matches: [{line: 0, start: 0, end: 4}, {line: 2, start: 0, end: 4}], more: true});
    assert.deepEqual(app.findMatches(lines, ''), {matches: [], more: false});
  });

  test('a line is cut where its colours and its matches change', () => {
    const runs = [{start: 0, end: 4, cls: 'a-f2', fg: '', bg: ''}];
    assert.deepEqual(app.lineSegments('PASS all', runs, [{start: 2, end: 6, current: true}]), [
      {text: 'PA', cls: 'a-f2', fg: '', bg: '', mark: 0}, {text: 'SS', cls: 'a-f2', fg: '', bg: '', mark: 2},
      {text: ' a', cls: '', fg: '', bg: '', mark: 2}, {text: 'll', cls: '', fg: '', bg: '', mark: 0}]);
    assert.deepEqual(app.lineSegments('x', null, null), [{text: 'x', cls: '', fg: '', bg: '', mark: 0}]);
  });

  test('line links: #/runs/ID/STAGE/STEP/L123 or ?line=123', () => {
    assert.deepEqual(app.parseRoute('#/runs/12/test/unit/L40'), {view: 'run', id: 12, stage: 'test', step: 'unit', line: 40});
    assert.deepEqual(app.parseRoute('#/runs/12/test/unit?line=40'), {view: 'run', id: 12, stage: 'test', step: 'unit', line: 40});
    assert.deepEqual(app.parseRoute('#/runs/12/test/unit/L0'), {view: 'run', id: 12, stage: 'test', step: 'unit'});
    assert.deepEqual(app.parseRoute('#/runs/12/test/unit/Lx'), {view: 'run', id: 12, stage: 'test', step: 'unit'});
    assert.equal(app.lineHash(12, 'deploy prod', 'a [X=1]', 7), '#/runs/12/deploy%20prod/a%20%5BX%3D1%5D/L7');
    assert.deepEqual(app.parseRoute(app.lineHash(12, 'deploy prod', 'a [X=1]', 7)),
                     {view: 'run', id: 12, stage: 'deploy prod', step: 'a [X=1]', line: 7});
    assert.equal(app.rawLogPath(3, 'a b', 'c'), '/api/v1/runs/3/steps/a%20b/c/log?download=1');
  });
});

// ---- Allowed failures, the graph, services, caches, triggers ----

describe('stepBadge', () => {
  test('a failure it was allowed is a warning', () => {
    assert.equal(app.stepBadge({status: 'failed', allow_failure: true}),
                 '<span class="status s-allowed" title="failed, allowed to fail">failed (allowed)</span>');
    assert.equal(app.stepBadge({status: 'failed'}), '<span class="status s-failed">failed</span>');
    assert.equal(app.stepBadge({status: 'success', allow_failure: true}), '<span class="status s-success">success</span>');
  });
});

describe('graphModel', () => {
  const step = (name, status, extra) => Object.assign({name, status}, extra || {});
  const run = {id: 5, stages: [
    {name: 'build', status: 'success', steps: [step('compile', 'success'), step('lint', 'failed', {allow_failure: true})]},
    {name: 'test', status: 'failed', steps: [
      step('go [GO=1.21]', 'success', {matrix: {of: 'go', values: {GO: '1.21'}}, needs: ['build/compile']}),
      step('go [GO=1.22]', 'failed', {matrix: {of: 'go', values: {GO: '1.22'}}, needs: ['build/compile']}),
      step('report', 'skipped', {needs: ['go']})]},
  ]};
  const names = (m) => {
    const byId = new Map(m.nodes.map((n) => [n.id, n.label]));
    return m.edges.map((e) => byId.get(e.from) + ' -> ' + byId.get(e.to));
  };

  test('stages are columns, steps nodes in order, a matrix one node until opened', () => {
    const m = app.graphModel(run);
    assert.deepEqual(m.columns.map((c) => c.stage), ['build', 'test']);
    assert.deepEqual(m.nodes.map((n) => [n.label, n.status, n.kind]), [
      ['compile', 'success', 'step'], ['lint', 'allowed', 'step'], ['go \u00d72', 'failed', 'group'],
      ['report', 'skipped', 'step']]);
    assert.equal(m.nodes[0].x, m.nodes[1].x);
    assert.ok(m.nodes[2].x > m.nodes[0].x);
    assert.deepEqual(names(m), ['compile -> go \u00d72', 'go \u00d72 -> report']);
    assert.equal(m.nodes[0].href, '#/runs/5/build/compile');
  });

  test('opened, a matrix shows each combination with its own edges', () => {
    const m = app.graphModel(run, new Set(['test/go']));
    assert.deepEqual(m.nodes.map((n) => n.label), ['compile', 'lint', 'go \u00d72', 'GO=1.21', 'GO=1.22', 'report']);
    assert.deepEqual(names(m), ['compile -> GO=1.21', 'compile -> GO=1.22', 'GO=1.21 -> report', 'GO=1.22 -> report']);
    assert.equal(m.nodes[3].href, '#/runs/5/test/go%20%5BGO%3D1.21%5D');
  });

  test('unknown needs draw nothing; a run without needs has no edges', () => {
    const bare = {id: 1, stages: [{name: 's', status: 'success', steps: [step('a', 'success', {needs: ['nope', 'x/y']})]}]};
    assert.deepEqual(app.graphModel(bare).edges, []);
    assert.deepEqual(app.graphModel({id: 1, stages: []}).nodes, []);
  });

  test('the SVG escapes names and marks the selected step', () => {
    const evil = {id: 2, stages: [{name: '<s>', status: 'success', steps: [step('"a"&', 'success')]}]};
    const svg = app.graphSvg(evil, app.graphModel(evil), {stage: '<s>', step: '"a"&'});
    assert.ok(!svg.includes('<s>') && !svg.includes('"a"&'), svg);
    assert.ok(svg.includes('&lt;s&gt;') && svg.includes('&quot;a&quot;&amp;'), svg);
    assert.ok(svg.includes('class="g-node n-success selected"'), svg);
    assert.ok(!/style=/.test(svg), 'no style attribute: the CSP forbids them');
  });

  test('a group shows its worst status', () => {
    assert.equal(app.groupStatus(['success', 'allowed']), 'allowed');
    assert.equal(app.groupStatus(['success', 'running', 'failed']), 'failed');
    assert.equal(app.groupStatus(['success', 'skipped']), 'success');
  });
});

describe('services and caches', () => {
  test('listed under the step, escaped', () => {
    assert.equal(app.servicesHtml({services: [{name: 'db', image: 'postgres:16', status: 'success', port: 5432}, 'cache<1>']}),
                 '<tr class="services"><td colspan="5"><span class="muted">services:</span> <span class="svc" ' +
                 'data-service="db"><b>db</b> <code>postgres:16</code> <span class="status s-success">success</span> ' +
                 '<span class="muted">(port: 5432)</span></span> <span class="svc" data-service="cache&lt;1&gt;">' +
                 '<b>cache&lt;1&gt;</b></span></td></tr>');
    assert.equal(app.servicesHtml({}), '');
    assert.equal(app.cacheHtml({cache: {key: 'k-1', paths: ['a', 'b'], policy: 'pull', restored: true}}),
                 '<tr class="caches"><td colspan="5"><span class="muted">cache:</span> <span class="cache">key ' +
                 '<code>k-1</code> <code>a, b</code> <span class="muted">(policy: pull, restored: true)</span></span>' +
                 '</td></tr>');
    assert.equal(app.cacheHtml({cache: null}), '');
  });
});

describe('triggerBody', () => {
  test('a repository and a branch, tag or commit', () => {
    assert.deepEqual(app.triggerBody(' app ', 'branch', ' main '), {body: '{"repo":"app","branch":"main"}'});
    assert.deepEqual(app.triggerBody('app', 'tag', 'v1.2'), {body: '{"repo":"app","tag":"v1.2"}'});
    assert.deepEqual(app.triggerBody('app', 'commit', 'abc123'), {body: '{"repo":"app","commit":"abc123"}'});
    assert.match(app.triggerBody('', 'branch', 'main').error, /name the repository/);
    assert.match(app.triggerBody('app', 'branch', ' ').error, /name the branch/);
    assert.match(app.triggerBody('app', 'commit', 'xyz').error, /not a commit id/);
    assert.match(app.triggerBody('app', 'ref', 'x').error, /branch, a tag or a commit/);
  });
});

describe('runHtml: graph and re-run', () => {
  const run = {id: 9, status: 'success', repo: 'r', stages: [{name: 's', status: 'success', steps: [{name: 'a', status: 'success'}]}]};
  test('the graph sits above the stages; re-run only for an admin and a finished run', () => {
    const html = app.runHtml(run, NOW, {admin: true});
    assert.ok(html.indexOf('<svg class="graph"') < html.indexOf('<section class="stage">'), html);
    assert.ok(html.includes('data-action="rerun" data-run="9">Re-run</button>'), html);
    assert.ok(!app.runHtml(run, NOW, {}).includes('data-action="rerun"'));
    assert.ok(!app.runHtml(Object.assign({}, run, {status: 'running'}), NOW, {admin: true}).includes('data-action="rerun"'));
  });
});

describe('matrix combinations by their display name', () => {
  test('the table and the graph show `display`; links use the id', () => {
    const run = {id: 4, status: 'success', stages: [{name: 't', status: 'success', steps: [
      {name: 'go.1.21-linux', display: 'go [OS=linux, GO=1.21]', status: 'success',
       matrix: {of: 'go', values: {GO: '1.21', OS: 'linux'}}}]}]};
    assert.equal(app.stepName(run.stages[0].steps[0]), 'go [OS=linux, GO=1.21]');
    assert.equal(app.stepName({name: 'plain'}), 'plain');
    const html = app.runHtml(run, NOW);
    assert.ok(html.includes('<a href="#/runs/4/t/go.1.21-linux">go [OS=linux, GO=1.21]</a>'), html);
    const m = app.graphModel(run, new Set(['t/go']));
    assert.deepEqual(m.nodes.map((n) => n.label), ['go \u00d71', 'OS=linux, GO=1.21']);
    assert.equal(m.nodes[1].href, '#/runs/4/t/go.1.21-linux');
  });
});
