// Drives ladle's web UI in headless Chromium (playwright-core) against a
// running `ladle serve`, as a person would: no token yet, then paste one,
// find the run, open it, read a step's log, approve the waiting stage, watch
// the run finish without reloading, look at the deployments, turn a toggle
// on in production and roll it out to 25 %.
//
// Usage: node ui_browser.js BASE_URL TOKEN RUN_ID STAGE STEP APPROVE_STAGE TOGGLE
// With LADLE_UI_SCREENSHOTS=DIR it also saves a screenshot of each view there.
// Prints one JSON object of what the page showed; exit 0 even when the page
// showed something unexpected (the C++ test judges), non-zero only when the
// browser could not be driven at all. Started by tests/e2e/serve_test.cc.
'use strict';

const {chromium} = require('playwright-core');

const [base, token, runId, stage, step, approveStage, toggle] = process.argv.slice(2);
const WAIT = 15000;

// Whatever happens, the script ends: a hung browser must not hang ctest.
const guard = setTimeout(() => {
  process.stderr.write('ui_browser.js: gave up after 50 s\n');
  process.exit(3);
}, 50000);

async function main() {
  const seen = {console_errors: [], page_errors: [], requests_elsewhere: []};
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // This machine's network is closed: nothing but the server under test.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    page.on('dialog', (d) => {
      seen.dialogs = (seen.dialogs || []).concat([d.message()]);
      d.accept(d.type() === 'prompt' ? '25%' : undefined);  // the rollout asks for a share
    });
    let phase = '';
    page.on('console', (m) => {
      if (m.type() === 'error') seen.console_errors.push(phase + ': ' + m.text());
    });
    page.on('pageerror', (e) => seen.page_errors.push(String(e)));
    page.on('request', (r) => {
      if (!r.url().startsWith(base)) seen.requests_elsewhere.push(r.url());
    });
    const shots = process.env.LADLE_UI_SCREENSHOTS;
    const step_ = async (name, fn) => {
      phase = name;
      try {
        await fn();
        if (shots) await page.screenshot({path: shots + '/' + name.replace(/\W+/g, '-') + '.png', fullPage: true});
      } catch (e) {
        seen.failed_at = seen.failed_at || name + ': ' + String(e.message || e).split('\n')[0];
      }
    };

    await step_('open', async () => {
      await page.goto(base + '/', {waitUntil: 'load'});
      await page.locator('#token-form').waitFor({state: 'visible', timeout: WAIT});
      seen.token_form_without_token = true;
    });

    await step_('wrong token', async () => {
      await page.fill('#token-input', 'not-a-token');
      await page.click('#token-entry button[type=submit]');
      await page.locator('#token-form').waitFor({state: 'visible', timeout: WAIT});
      await page.waitForFunction(() => /refused/.test(document.getElementById('token-why').textContent),
                                 null, {timeout: WAIT});
      seen.wrong_token_message = await page.textContent('#token-why');
    });

    await step_('token', async () => {
      await page.fill('#token-input', token);
      await page.click('#token-entry button[type=submit]');
      const row = page.locator('tr[data-run="' + runId + '"]');
      await row.waitFor({timeout: WAIT});
      seen.list_row = (await row.innerText()).replace(/\s+/g, ' ').trim();
      seen.token_form_hidden = await page.locator('#token-form').isHidden();
    });

    await step_('live', async () => {
      await page.waitForFunction(() => document.getElementById('live').textContent === 'live', null,
                                 {timeout: WAIT});
      seen.live = true;
    });

    await step_('run', async () => {
      await page.click('tr[data-run="' + runId + '"] a');
      await page.locator('.stage').first().waitFor({timeout: WAIT});
      seen.run_heading = (await page.textContent('h1')).replace(/\s+/g, ' ').trim();
      seen.stages = await page.$$eval('.stage .title .name', (els) => els.map((e) => e.textContent));
      seen.steps = await page.$$eval('.stage table.steps a', (els) => els.map((e) => e.textContent));
      // docs/running.md "Tests by name": the stage names its failed tests.
      seen.failed_tests = await page.$$eval('.stage .failed-tests li',
                                            (els) => els.map((e) => e.textContent.replace(/\s+/g, ' ').trim()));
    });

    await step_('log', async () => {
      await page.click('.stage table.steps a:text-is("' + step + '")');
      await page.waitForFunction(() => document.getElementById('log').textContent.length > 0, null,
                                 {timeout: WAIT});
      await page.waitForTimeout(300);
      seen.log_title = await page.textContent('#log-title');
      seen.log = await page.textContent('#log');
      seen.hash_after_step_click = await page.evaluate(() => location.hash);
    });

    await step_('approve', async () => {
      const button = page.locator('button[data-action="approve"][data-stage="' + approveStage + '"]');
      await button.waitFor({timeout: WAIT});
      await button.click();
      // The run finishes on the server; the page hears it through the event
      // stream, with no reload.
      await page.waitForFunction(() => {
        const h = document.querySelector('h1 .status');
        return h && h.textContent === 'success';
      }, null, {timeout: 30000});
      seen.status_after_approve = await page.textContent('h1 .status');
      seen.approve_buttons_left = await page.locator('button[data-action="approve"]').count();
      seen.stage_messages_after_approve = await page.$$eval('.stage .message', (els) => els.map((e) => e.textContent));
      seen.banner = await page.textContent('#banner');
    });

    await step_('deployments', async () => {
      await page.click('a[data-nav="deployments"]');
      await page.locator('table.environments tbody tr').first().waitFor({timeout: WAIT});
      seen.environments = await page.$$eval('table.environments tbody tr',
                                            (rows) => rows.map((r) => r.innerText.replace(/\s+/g, ' ').trim()));
      seen.rollback_buttons = await page.locator('button[data-action="rollback"]').count();
    });

    await step_('toggles', async () => {
      await page.click('a[data-nav="toggles"]');
      const cell = page.locator('tr[data-toggle="' + toggle + '"] td[data-env="production"]');
      await cell.waitFor({timeout: WAIT});
      seen.toggle_before = (await cell.innerText()).replace(/\s+/g, ' ').trim();
      await cell.locator('button[data-action="flip"]').click();
      await page.waitForFunction((key) => {
        const c = document.querySelector('tr[data-toggle="' + key + '"] td[data-env="production"] .status');
        return c && c.textContent === 'on';
      }, toggle, {timeout: WAIT});
      seen.toggle_after = (await cell.innerText()).replace(/\s+/g, ' ').trim();
      await cell.locator('button[data-action="rollout"]').click();
      await page.waitForFunction((key) => {
        const c = document.querySelector('tr[data-toggle="' + key + '"] td[data-env="production"]');
        return c && /rollout 25%/.test(c.textContent);
      }, toggle, {timeout: WAIT});
      seen.toggle_after_rollout = (await cell.innerText()).replace(/\s+/g, ' ').trim();
    });

    await step_('reload keeps the token', async () => {
      await page.reload({waitUntil: 'load'});
      await page.locator('table.toggles tbody tr').first().waitFor({timeout: WAIT});
      seen.token_kept_after_reload = await page.locator('#token-form').isHidden();
    });
  } finally {
    await browser.close();
  }
  return seen;
}

main().then((seen) => {
  clearTimeout(guard);
  process.stdout.write(JSON.stringify(seen) + '\n');
}, (err) => {
  clearTimeout(guard);
  process.stderr.write('ui_browser.js: ' + (err && err.stack || err) + '\n');
  process.exit(2);
});
