// End-to-end tests of the web console against a running taskwire stack (see helpers.mjs for
// the environment: TW_URL, TW_ADMIN_TOKEN, TW_VIEWER_TOKEN, TW_SCREENSHOTS, TW_CHROMIUM).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ADMIN, T, URL_BASE, VIEWER, api, close, eventually, launch, listLoad, newPage, open, runFromConsole,
  shot, signIn, stopQuietly, terminalRows, unreachableCells, waitEnded, waitList, waitOutput, waitText,
} from './helpers.mjs';

before(launch);
after(close);

test('sign in shows who I am; a wrong token is refused and stays on sign in', async (t) => {
  const page = await newPage(t);
  await page.goto(`${URL_BASE}/`);
  await page.getByTestId('token-input').fill('tw_not_a_valid_token');
  await page.getByTestId('signin-button').click();
  const err = page.getByTestId('signin-error');
  await err.waitFor({ state: 'visible' });
  assert.ok((await err.textContent()).trim().length > 0, 'the refusal says why');
  assert.match(page.url(), /#\/signin$/);
  assert.equal(await page.getByTestId('me-user').count(), 0);
  await shot(page, 'signin-refused.png');

  await page.getByTestId('token-input').fill(ADMIN);
  await page.getByTestId('signin-button').click();
  await waitText(page, 'me-user', 'admin');
  const me = (await api(ADMIN, 'GET', '/me')).json;
  const roles = await page.getByTestId('me-roles').textContent();
  for (const r of me.roles) assert.ok(roles.includes(r), `role ${r} shown in "${roles}"`);
  if (me.super_user) assert.ok(roles.includes('super user'));
  await page.getByTestId('nav-audit').waitFor();
  await shot(page, 'signin.png');
});

test('run count from the form: validation, live output while running, then succeeded', async (t) => {
  const page = await newPage(t);
  await signIn(page, ADMIN);
  await open(page, '#/run');
  await page.getByTestId('command-search').fill('cou');
  await page.locator('[data-testid="command-item"][data-command="count"]').click();
  const n = page.getByTestId('param-n');
  const nError = page.getByTestId('param-error-n');
  await n.fill('0');
  await nError.waitFor({ state: 'visible' });
  assert.match(await nError.textContent(), /at least 1/);
  await n.fill('abc');
  assert.match(await nError.textContent(), /integer/);
  const countJobs = async () => (await api(ADMIN, 'GET', '/jobs?command=count&limit=500')).json.jobs.length;
  const before = await countJobs();
  const submits = [];
  const onRequest = (req) => { if (req.method() === 'POST' && req.url().includes('/api/v1/jobs')) submits.push(req.url()); };
  page.on('request', onRequest);
  await page.getByTestId('run-button').click(); // refused in the page: no job
  await waitText(page, 'run-error', 'Fix the fields marked above.');
  assert.ok(await nError.isVisible());
  assert.match(page.url(), /#\/run$/);
  assert.deepEqual(submits, [], 'an invalid form sent no submit');
  assert.equal(await countJobs(), before, 'an invalid form submitted nothing');
  page.off('request', onRequest);
  await n.fill('8');
  assert.equal(await nError.isVisible(), false);
  await page.getByTestId('run-button').click();
  await page.waitForURL(/#\/jobs\/[0-9a-f-]{36}$/);

  // the state shown at the moment `line 1` is on screen
  const stateAtLine1 = await page.waitForFunction(() => {
    const out = document.querySelector('[data-testid="output-text"]')?.textContent ?? '';
    return out.includes('line 1\n') ? document.querySelector('[data-testid="job-state"]')?.textContent : null;
  }, null, { timeout: T });
  assert.equal(await stateAtLine1.jsonValue(), 'running');
  await shot(page, 'run-streaming.png');

  await waitText(page, 'job-state', 'succeeded');
  await page.waitForFunction(() => document.querySelector('[data-testid="job-exit"]')?.dataset.exitCode === '0', null, { timeout: T });
  await waitEnded(page); // the record can say succeeded before the last lines arrived
  const out = await page.getByTestId('output-text').textContent();
  assert.equal(out, Array.from({ length: 8 }, (_, i) => `line ${i + 1}\n`).join(''));
  assert.equal(await page.getByTestId('kill-button').count(), 0, 'no kill button once ended');
  await shot(page, 'run-succeeded.png');
});

test('a \\r progress bar is drawn in place in the terminal', async (t) => {
  const page = await newPage(t);
  await signIn(page, ADMIN);
  await runFromConsole(page, 'bar');
  await waitText(page, 'job-state', 'succeeded');
  await waitOutput(page, 'done\n');
  // every intermediate state arrived, but the row shows only the last drawing
  assert.ok((await page.getByTestId('output-text').textContent()).includes('25%'));
  // the terminal draws after it parsed: wait until it drew the end, the bar and the line after
  await waitEnded(page);
  await page.waitForFunction(() => {
    const rows = Array.from(document.querySelectorAll('.xterm-rows > div'), (r) => (r.textContent ?? '').replace(/\u00a0/g, ' '));
    return rows.some((r) => r.includes('[####] 100%')) && rows.some((r) => r.trim() === 'done');
  }, null, { timeout: T });
  const rows = await terminalRows(page);
  const barRow = rows.find((r) => r.includes('100%'));
  assert.ok(barRow.includes('[####] 100%'), `bar row: ${barRow}`);
  assert.ok(!barRow.includes('25%'), `bar row still shows 25%: ${barRow}`);
  assert.ok(!rows.some((r) => r.includes('25%')), 'no row shows 25%');
  assert.ok(rows.some((r) => r.trim() === 'done'), 'the next line is on its own row');
  await shot(page, 'progress-bar.png');
});

test('kill a running job after confirming: the kill line and state killed', async (t) => {
  const page = await newPage(t);
  await signIn(page, ADMIN);
  const id = await runFromConsole(page, 'forever');
  t.after(() => stopQuietly(ADMIN, id));
  await waitOutput(page, 'tick 2\n');
  await waitText(page, 'job-state', 'running');
  await page.getByTestId('kill-button').click();
  await page.getByTestId('confirm-dialog').waitFor();
  await page.getByTestId('confirm-yes').click();
  await waitOutput(page, 'PROCESS KILLED BY admin AT');
  await waitText(page, 'job-state', 'killed');
  assert.equal(await page.getByTestId('kill-button').count(), 0);
  assert.equal(await page.getByTestId('stop-button').count(), 0);
  await page.getByTestId('job-ended-by').filter({ hasText: 'admin' }).waitFor();
  await shot(page, 'job-killed.png');
});

test('viewer: stop button but no kill button; a kill by hand is refused', async (t) => {
  assert.ok(VIEWER, 'TW_VIEWER_TOKEN must be set');
  const admins = await api(ADMIN, 'POST', '/jobs', { command: 'forever' });
  assert.equal(admins.status, 202, JSON.stringify(admins.json));
  const adminJob = admins.json.job_id;
  let viewerJob;
  t.after(async () => {
    await stopQuietly(ADMIN, viewerJob);
    await stopQuietly(ADMIN, adminJob);
  });

  const page = await newPage(t);
  await signIn(page, VIEWER);
  await waitText(page, 'me-user', 'viewer');
  assert.equal(await page.getByTestId('nav-audit').count(), 0, 'no audit link without read_audit');
  assert.equal(await page.getByTestId('nav-instances').count(), 0);
  viewerJob = await runFromConsole(page, 'count', { n: 100 });
  await waitOutput(page, 'line 1\n');
  await page.getByTestId('stop-button').waitFor();
  assert.equal(await page.getByTestId('kill-button').count(), 0);
  await shot(page, 'viewer-job.png');

  const refused = await page.evaluate(async (id) => {
    const token = sessionStorage.getItem('taskwire.token');
    const res = await fetch(`/api/v1/jobs/${id}/kill`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
    return { status: res.status, body: await res.json() };
  }, viewerJob);
  assert.equal(refused.status, 403);
  assert.match(refused.body.error.message, /kill/);

  // another user's job is not in the viewer's list, and its page refuses to show it
  await open(page, '#/jobs'); // the list as loaded, not only rows the live feed added
  await page.locator(`[data-testid="job-row"][data-job-id="${viewerJob}"]`).waitFor();
  assert.equal(await page.locator(`[data-testid="job-row"][data-job-id="${adminJob}"]`).count(), 0);
  await open(page, `#/jobs/${adminJob}`);
  await page.getByTestId('error-banner').filter({ hasText: /read_any|belongs to admin/ }).waitFor();
  assert.equal(await page.getByTestId('stop-button').count(), 0);
  assert.equal(await page.getByTestId('output-text').count(), 0);

  // the viewer's own stop works from the page
  await open(page, `#/jobs/${viewerJob}`);
  await page.getByTestId('stop-button').click();
  await page.getByTestId('confirm-yes').click();
  await waitText(page, 'job-state', 'stopped');
  const adminStop = await api(ADMIN, 'POST', `/jobs/${adminJob}/stop`);
  assert.equal(adminStop.status, 200, JSON.stringify(adminStop.json));
});

test('the jobs list updates live without a reload', async (t) => {
  const page = await newPage(t);
  await signIn(page, ADMIN);
  await open(page, '#/jobs');
  // the watch is in place (not only the socket open): every change from now on is a frame
  await page.waitForFunction(() => document.querySelector('[data-testid="live-status"]')?.dataset.watching === 'true', null, { timeout: T });
  await page.evaluate(() => { window.__noReload = true; });
  const sub = await api(ADMIN, 'POST', '/jobs', { command: 'count', params: { n: 3 } });
  assert.equal(sub.status, 202, JSON.stringify(sub.json));
  const id = sub.json.job_id;
  t.after(() => stopQuietly(ADMIN, id));
  const row = page.locator(`[data-testid="job-row"][data-job-id="${id}"]`);
  await row.waitFor();
  await page.waitForFunction((jid) =>
    document.querySelector(`[data-testid="job-row"][data-job-id="${jid}"]`)?.getAttribute('data-state') === 'succeeded',
  id, { timeout: T });
  assert.equal(await page.evaluate(() => window.__noReload), true, 'the page was not reloaded');
  assert.equal(await page.locator('[data-testid="job-row"]').first().getAttribute('data-job-id'), id, 'newest on top');
  await shot(page, 'jobs-live.png');

  // a narrow laptop screen: the page itself never scrolls sideways (wide tables scroll inside)
  await page.setViewportSize({ width: 800, height: 700 });
  for (const [name, hash] of [['jobs', '#/jobs'], ['job', `#/jobs/${id}`], ['run', '#/run']]) {
    await open(page, hash);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${name} page is ${overflow}px wider than an 800px window`);
    await shot(page, `narrow-${name}.png`);
  }
});

test('every column of the jobs list (and the other tables) can be reached at 1024 px and on a phone', async (t) => {
  // A list longer than the window, as in real use (a page holds 50 jobs): a table taller than
  // the window is where a sideways scrollbar at its bottom edge is out of sight.
  const ROWS = 30;
  const listed = (await api(ADMIN, 'GET', `/jobs?limit=${ROWS}`)).json.jobs.length;
  for (let i = listed; i < ROWS; i++) {
    const r = await api(ADMIN, 'POST', '/jobs', { command: 'hello', params: { name: 'Layout' } });
    assert.equal(r.status, 202, JSON.stringify(r.json));
  }
  const windows = [
    ['1024', { viewport: { width: 1024, height: 800 } }],
    ['phone', { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 }],
  ];
  // each table with at least this many rows (no other page has that table)
  const tables = [['jobs', ROWS], ['audit', 5], ['instances', 2]];
  for (const [size, options] of windows) {
    const page = await newPage(t, options);
    await signIn(page, ADMIN);
    for (const [name, rows] of tables) {
      const table = `[data-testid="${name}-table"]`;
      await page.goto(`${URL_BASE}/#/${name}`);
      // the jobs submitted just now may join the list from the live feed
      await page.waitForFunction(([sel, n]) => document.querySelectorAll(`${sel} tbody tr`).length >= n,
        [table, rows], { timeout: T });
      if (name === 'jobs') {
        const { tableHeight, windowHeight } = await page.evaluate((sel) => ({
          tableHeight: document.querySelector(sel).getBoundingClientRect().height, windowHeight: window.innerHeight,
        }), table);
        assert.ok(tableHeight > windowHeight, `${size}: the jobs table (${tableHeight}px) is taller than the window (${windowHeight}px)`);
      }
      await shot(page, `columns-${name}-${size}.png`);
      assert.deepEqual(await unreachableCells(page, table), [], `${size}: ${name} cells out of reach`);
    }
  }
});

test('instances page lists both executors', async (t) => {
  const page = await newPage(t);
  await signIn(page, ADMIN);
  await open(page, '#/instances');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="instance-row"]').length === 2, null, { timeout: T });
  const guids = await page.$$eval('[data-testid="instance-row"]', (rows) => rows.map((r) => r.getAttribute('data-guid')));
  assert.equal(new Set(guids).size, 2, `distinct GUIDs: ${guids}`);
  for (const g of guids) assert.match(g, /^[0-9a-f-]{36}$/);
  await shot(page, 'instances.png');
});

test('schedules: create with a live preview, pause, resume, delete', async (t) => {
  const page = await newPage(t);
  await signIn(page, ADMIN);
  await open(page, '#/schedules');
  await page.getByTestId('schedule-command').selectOption('hello');
  await page.getByTestId('param-name').fill('Console Test');

  // The preview of exactly this timing (it carries the timing it answers): the form starts
  // with a cron preview, and each change asks again.
  const previewOf = (timing) => page.waitForFunction((want) => {
    const list = document.querySelector('[data-testid="schedule-preview"]');
    if (!list?.dataset.timing) return null;
    const got = JSON.parse(list.dataset.timing);
    const key = (o) => JSON.stringify(Object.entries(o).sort());
    if (key(got) !== key(want)) return null;
    return Array.from(list.querySelectorAll('[data-testid="preview-fire"]'), (l) => Date.parse(l.getAttribute('title')));
  }, timing, { timeout: T }).then((h) => h.jsonValue());

  await page.getByTestId('schedule-kind').selectOption('interval');
  await page.getByTestId('schedule-every').fill('60s');
  const every = await previewOf({ kind: 'interval', every: '60s' });
  assert.ok(every.length >= 3, `${every.length} fires previewed`);
  assert.equal(every[1] - every[0], 60_000);

  await page.getByTestId('schedule-kind').selectOption('cron');
  await page.getByTestId('schedule-cron').fill('*/30 * * * * *');
  await page.getByTestId('schedule-tz').fill('Europe/Berlin');
  const cron = await previewOf({ kind: 'cron', cron: '*/30 * * * * *', time_zone: 'Europe/Berlin' });
  assert.ok(cron.length >= 3, `${cron.length} fires previewed`);
  assert.equal(cron[1] - cron[0], 30_000);
  assert.ok(cron.every((x) => new Date(x).getUTCSeconds() % 30 === 0), `fires on :00 and :30: ${cron.map((x) => new Date(x).toISOString())}`);

  const name = `e2e-${Date.now()}`;
  await page.getByTestId('schedule-name').fill(name);
  await page.getByTestId('schedule-create').click();
  const row = page.locator('[data-testid="schedule-row"]').filter({ hasText: name });
  await row.waitFor();
  const id = await row.getAttribute('data-schedule-id');
  t.after(() => api(ADMIN, 'DELETE', `/schedules/${id}`));
  const byId = `[data-testid="schedule-row"][data-schedule-id="${id}"]`;
  const stateIs = (s) => page.waitForFunction(([sel, want]) =>
    document.querySelector(sel)?.getAttribute('data-state') === want, [byId, s], { timeout: T });
  await stateIs('active');
  await shot(page, 'schedules.png');

  await page.locator(byId).getByTestId('schedule-pause').click();
  await stateIs('paused');
  await page.locator(byId).getByTestId('schedule-resume').click();
  await stateIs('active');

  const detail = await api(ADMIN, 'GET', `/schedules/${id}`);
  assert.equal(detail.json.kind, 'cron');
  assert.equal(detail.json.time_zone, 'Europe/Berlin');
  assert.deepEqual(detail.json.params, { name: 'Console Test' });

  await page.locator(byId).getByTestId('schedule-delete').click();
  await page.getByTestId('confirm-yes').click();
  await page.locator(byId).waitFor({ state: 'detached' });
  assert.equal((await api(ADMIN, 'GET', `/schedules/${id}`)).status, 404);
});

test('audit log lists entries and marks a denial', async (t) => {
  assert.ok(VIEWER, 'TW_VIEWER_TOKEN must be set');
  // the viewer may not run `forever`: a denied submit
  const denied = await api(VIEWER, 'POST', '/jobs', { command: 'forever' });
  assert.equal(denied.status, 403, JSON.stringify(denied.json));

  const page = await newPage(t);
  await signIn(page, ADMIN);
  await open(page, '#/audit');
  await page.getByTestId('audit-filter-actor').fill('viewer');
  await page.getByTestId('audit-filter-allowed').selectOption('false');
  const row = page.locator('[data-testid="audit-row"][data-allowed="false"][data-action="jobs.submit"]').first();
  // the audit store writes asynchronously: apply the filter again until the entry is there,
  // each time looking at the list this apply loaded (the one before holds denials too)
  await eventually(async () => {
    const before = await listLoad(page, 'audit-body');
    await page.getByTestId('audit-apply').click();
    await waitList(page, 'audit-body', 'actor=viewer&allowed=false', before);
    return (await row.count()) > 0;
  }, 'the denied submit in the audit log');
  assert.match(await row.getAttribute('class'), /denied/);
  assert.match(await row.textContent(), /viewer/);
  assert.equal(await page.locator('[data-testid="audit-row"][data-allowed="true"]').count(), 0, 'the filter shows denials only');
  await shot(page, 'audit.png');
});

test('ANSI colours render as colours and stderr is told apart', async (t) => {
  const page = await newPage(t);
  await signIn(page, ADMIN);
  await runFromConsole(page, 'colors');
  await waitText(page, 'job-state', 'succeeded');
  await waitOutput(page, 'to stderr');
  // xterm's DOM renderer puts each run of equally styled cells in a span with its style's classes
  const classOf = (text) => page.waitForFunction((want) => {
    const span = Array.from(document.querySelectorAll('.xterm-rows span'))
      .find((s) => (s.textContent ?? '').replace(/\u00a0/g, ' ').trim() === want);
    return span ? span.className : null;
  }, text, { timeout: T }).then((h) => h.jsonValue());
  assert.match(await classOf('green'), /xterm-fg-2\b/);
  const blue = await classOf('blue bold');
  assert.match(blue, /xterm-fg-(4|12)\b/, 'blue (bold text is drawn in the bright blue)');
  assert.match(blue, /xterm-bold/);
  assert.match(await classOf('to stderr'), /xterm-fg-1\b/, 'stderr is drawn in red');
  await shot(page, 'colours.png');
});

test('a job opened while it runs shows its output from the start, then live', async (t) => {
  const sub = await api(ADMIN, 'POST', '/jobs', { command: 'count', params: { n: 100 } });
  assert.equal(sub.status, 202, JSON.stringify(sub.json));
  const id = sub.json.job_id;
  t.after(() => stopQuietly(ADMIN, id));
  await eventually(async () => {
    const out = await fetch(`${URL_BASE}/api/v1/jobs/${id}/output`, { headers: { Authorization: `Bearer ${ADMIN}` } });
    return (await out.text()).includes('line 3\n');
  }, 'three lines before the page opens');

  const page = await newPage(t);
  await signIn(page, ADMIN);
  await open(page, `#/jobs/${id}`);
  const stateAtOpen = await page.waitForFunction(() => {
    const out = document.querySelector('[data-testid="output-text"]')?.textContent ?? '';
    return out.includes('line 3\n') ? document.querySelector('[data-testid="job-state"]')?.textContent : null;
  }, null, { timeout: T });
  assert.equal(await stateAtOpen.jsonValue(), 'running');
  await waitOutput(page, 'line 5\n'); // then live
  // away and straight back on the same socket: the page starts again from line 1, whatever
  // frames of the first subscription were still on their way
  await page.goto(`${URL_BASE}/#/jobs`);
  await open(page, `#/jobs/${id}`); // this visit's page, not the first one still on screen
  await waitOutput(page, 'line 7\n');
  assert.equal((await api(ADMIN, 'POST', `/jobs/${id}/stop`)).status, 200);
  await waitText(page, 'job-state', 'stopped');
  await waitEnded(page);
  const lines = (await page.getByTestId('output-text').textContent()).split('\n').filter((l) => l.startsWith('line '));
  assert.ok(lines.length >= 5, `${lines.length} lines`);
  assert.deepEqual(lines, lines.map((_, i) => `line ${i + 1}`), 'from line 1, no gap, no repeat');
});

test('a job delayed from the Run page waits as scheduled, is listed, then runs at its time', async (t) => {
  const page = await newPage(t);
  await signIn(page, ADMIN);
  await open(page, '#/run');
  await page.locator('[data-testid="command-item"][data-command="hello"]').click();
  // twelve seconds from now (room to see it waiting on both pages on a busy machine), as the
  // browser's own clock and time zone write it
  const local = await page.evaluate(() => {
    const d = new Date(Date.now() + 12_000);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  });
  await page.getByTestId('run-not-before').fill(local);
  await page.getByTestId('run-button').click();
  await page.waitForURL(/#\/jobs\/[0-9a-f-]{36}$/);
  const id = decodeURIComponent(new URL(page.url()).hash.slice('#/jobs/'.length));
  t.after(() => stopQuietly(ADMIN, id));
  await waitText(page, 'job-state', 'scheduled');

  await open(page, '#/jobs');
  const row = `[data-testid="job-row"][data-job-id="${id}"]`;
  await page.waitForFunction((sel) => document.querySelector(sel)?.getAttribute('data-state') === 'scheduled', row, { timeout: T });
  await shot(page, 'jobs-scheduled.png');
  await page.waitForFunction((sel) => document.querySelector(sel)?.getAttribute('data-state') === 'succeeded', row, { timeout: 12_000 + T });

  await open(page, `#/jobs/${id}`);
  await waitText(page, 'job-state', 'succeeded');
  await waitOutput(page, 'Hello, world!\n');
  const job = (await api(ADMIN, 'GET', `/jobs/${id}`)).json;
  // `local` has no zone: node reads it in the same local time zone as the browser wrote it
  assert.ok(Date.parse(job.queued_at) >= Date.parse(local), `queued ${job.queued_at} before ${local}`);
});
