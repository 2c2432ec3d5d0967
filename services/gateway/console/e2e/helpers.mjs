// Shared setup of the console's end-to-end tests: the browser, sign-in, REST calls made
// outside the page, screenshots and waiting helpers.
//
// A wait names the exact state a test then asserts on, never "some element exists": a page
// (or a list, or a preview) drawn before the one the test asked for can hold the same
// elements. The console says what it shows for that purpose: the page body its address and
// render number (`open`), a list the filters and load it answers (`waitList`), the schedule
// preview the timing it was computed for, the output section that the job's end arrived.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

export const URL_BASE = (process.env.TW_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
export const ADMIN = process.env.TW_ADMIN_TOKEN ?? '';
export const VIEWER = process.env.TW_VIEWER_TOKEN ?? '';
export const SHOTS = process.env.TW_SCREENSHOTS ?? 'e2e-screenshots';
export const CHROMIUM = process.env.TW_CHROMIUM ?? '/usr/bin/chromium';
/** The longest any single wait may take. */
export const T = 20_000;

assert.ok(ADMIN, 'TW_ADMIN_TOKEN must be set');
mkdirSync(SHOTS, { recursive: true });

let browser;

export async function launch() {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true });
  return browser;
}

export async function close() {
  await browser?.close();
}

/** A fresh page in its own context (own sessionStorage), failing on page errors. `options`
 * are Playwright's context options (a phone: viewport, isMobile, hasTouch). */
export async function newPage(t, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1024, height: 800 }, ...options });
  const page = await context.newPage();
  page.setDefaultTimeout(T);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  t.after(async () => {
    await context.close();
    assert.deepEqual(errors.map(String), [], 'uncaught errors in the page');
  });
  return page;
}

export async function signIn(page, token) {
  await page.goto(`${URL_BASE}/#/signin`);
  await page.getByTestId('token-input').fill(token);
  await page.getByTestId('signin-button').click();
  await page.getByTestId('me-user').waitFor();
}

export async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, name), fullPage: true });
}

/** A REST call made outside the page. */
export async function api(token, method, path, body) {
  const res = await fetch(`${URL_BASE}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: res.status, json };
}

/** Ends a job if it still runs (cleanup; errors are ignored). */
export async function stopQuietly(token, jobId) {
  if (!jobId) return;
  try { await api(token, 'POST', `/jobs/${jobId}/kill`); } catch { /* already gone */ }
}

/** Goes to `hash` (`#/jobs`) in the signed-in page and waits until the page drawn for this
 * visit has its first load on screen (or failed: then the error banner says why). The page
 * before, even one at the same address, never passes for it. */
export async function open(page, hash) {
  const url = `${URL_BASE}/${hash}`;
  // already there: the page on screen is the one asked for, once it is ready
  const same = page.url() === url;
  const before = same ? 0 : await page.evaluate(() =>
    Number(document.querySelector('[data-testid="page-body"]')?.dataset.render ?? 0));
  if (!same) await page.goto(url);
  await page.waitForFunction(([want, n]) => {
    const body = document.querySelector('[data-testid="page-body"]');
    return !!body && body.dataset.route === want && Number(body.dataset.render) > n && !!body.dataset.ready;
  }, [hash, before], { timeout: T }).catch(async (e) => {
    const seen = await page.evaluate(() => ({ ...document.querySelector('[data-testid="page-body"]')?.dataset }));
    throw new Error(`${hash} was not drawn (page body: ${JSON.stringify(seen)}): ${e.message}`);
  });
}

/** The number of the load a list (`audit-body`, `jobs-body`) shows; 0 before its first. */
export async function listLoad(page, testid) {
  return page.evaluate((id) => Number(document.querySelector(`[data-testid="${id}"]`)?.dataset.load ?? 0), testid);
}

/** Waits until the list `testid` shows the answer of a load after load number `after`, made
 * for `query` (the filters as a query string: `actor=viewer&allowed=false`; '' for none). */
export async function waitList(page, testid, query, after) {
  await page.waitForFunction(([id, q, n]) => {
    const list = document.querySelector(`[data-testid="${id}"]`);
    return !!list && list.dataset.query === q && Number(list.dataset.load ?? 0) > n;
  }, [testid, query, after], { timeout: T }).catch(async (e) => {
    const seen = await page.evaluate((id) => ({ ...document.querySelector(`[data-testid="${id}"]`)?.dataset }), testid);
    throw new Error(`${testid} never showed a load after ${after} for "${query}" (it shows ${JSON.stringify(seen)}): ${e.message}`);
  });
}

/** Waits until the job page's output is complete: the job's end arrived after all of its
 * output and was drawn (the state shown can be final earlier, from the record). */
export async function waitEnded(page) {
  await page.waitForFunction(() =>
    document.querySelector('[data-testid="job-output"]')?.dataset.ended === 'true', null, { timeout: T });
}

/** Waits until the element's text equals `text`. */
export async function waitText(page, testid, text) {
  await page.waitForFunction(([id, want]) =>
    document.querySelector(`[data-testid="${id}"]`)?.textContent === want, [testid, text], { timeout: T });
}

/** Waits until the received output (plain text) contains `text`. */
export async function waitOutput(page, text) {
  await page.waitForFunction((want) =>
    (document.querySelector('[data-testid="output-text"]')?.textContent ?? '').includes(want), text, { timeout: T });
}

/** Opens the Run page, picks `command`, fills `params` (name -> text) and submits; returns
 * the job id from the job page's address. */
export async function runFromConsole(page, command, params = {}) {
  await open(page, '#/run');
  await page.locator(`[data-testid="command-item"][data-command="${command}"]`).click();
  await page.getByTestId('command-name').filter({ hasText: command }).waitFor();
  for (const [k, v] of Object.entries(params)) await page.getByTestId(`param-${k}`).fill(String(v));
  await page.getByTestId('run-button').click();
  await page.waitForURL(/#\/jobs\/[0-9a-f-]{36}$/, { timeout: T });
  return decodeURIComponent(new URL(page.url()).hash.slice('#/jobs/'.length));
}

/** Text of the terminal's rendered rows (xterm's DOM renderer), spaces normalised. */
export async function terminalRows(page) {
  return page.$$eval('.xterm-rows > div', (rows) => rows.map((r) => (r.textContent ?? '').replace(/\u00a0/g, ' ')));
}

/** Repeats `attempt` (e.g. a click on Refresh, then a check) until it returns true. */
export async function eventually(attempt, what, timeout = T) {
  const end = Date.now() + timeout;
  for (;;) {
    if (await attempt()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Every header and cell of the table `selector` that a reader of this window cannot bring
 * into view, each with why (empty when all can be). A cell can be seen when it lies inside the
 * window (and inside the visible part of the box it scrolls in), or when its box scrolls
 * sideways to it and that box is itself in sight: inside the window's width and no higher
 * than the window, so its scrollbar shows together with its rows. The page itself must never
 * scroll sideways. */
export async function unreachableCells(page, selector) {
  return page.evaluate((sel) => {
    const table = document.querySelector(sel);
    if (!table) return [`no table ${sel}`];
    const vw = document.documentElement.clientWidth;
    const vh = window.innerHeight;
    const px = (n) => Math.round(n);
    const out = [];
    const pageWidth = document.documentElement.scrollWidth;
    if (pageWidth > vw) out.push(`the page is ${pageWidth}px wide: it scrolls sideways in a ${vw}px window`);
    // the nearest box around the table that scrolls sideways (none: the page)
    let box = table.parentElement;
    while (box && box !== document.body && !['auto', 'scroll'].includes(getComputedStyle(box).overflowX)) {
      box = box.parentElement;
    }
    if (box === document.body) box = null;
    const b = box?.getBoundingClientRect();
    const clipLeft = Math.max(0, b ? b.left + box.clientLeft : 0);
    const clipRight = Math.min(vw, b ? b.left + box.clientLeft + box.clientWidth : vw);
    const heads = Array.from(table.querySelectorAll('thead th')).map((th) => th.textContent.trim() || '(actions)');
    // body cells out of reach for the same reason are told once per column, with a count
    const byColumn = new Map();
    for (const cell of table.querySelectorAll('th, td')) {
      const r = cell.getBoundingClientRect();
      if (r.width === 0) continue;
      if (r.left >= clipLeft - 0.5 && r.right <= clipRight + 0.5) continue; // in sight now
      const why = [];
      if (!box) {
        why.push('nothing around the table scrolls sideways');
      } else {
        if (box.scrollWidth <= box.clientWidth) why.push('its box does not scroll');
        const start = r.left - (b.left + box.clientLeft) + box.scrollLeft;
        if (start < -0.5 || start + r.width > box.scrollWidth + 0.5 || r.width > box.clientWidth + 0.5) {
          why.push('scrolling its box cannot show all of it');
        }
        if (b.left < -0.5 || b.right > vw + 0.5) why.push(`its box (${px(b.left)}-${px(b.right)} px) is itself outside the window`);
        if (b.height > vh + 0.5) {
          why.push(`its box is ${px(b.height)}px high, more than the ${vh}px window, so the box's scrollbar is out of sight wherever its rows are`);
        }
      }
      if (!why.length) continue;
      const at = `at ${px(r.left)}-${px(r.right)} px, beyond ${px(clipRight)} px: ${why.join('; ')}`;
      if (cell.tagName === 'TH') {
        out.push(`header "${heads[cell.cellIndex]}" ${at}`);
        continue;
      }
      const key = `${cell.cellIndex}|${why.join('; ')}`;
      const seen = byColumn.get(key);
      if (seen) seen.count += 1;
      else byColumn.set(key, { column: heads[cell.cellIndex], row: cell.parentElement.sectionRowIndex + 1, at, count: 1 });
    }
    for (const c of byColumn.values()) {
      out.push(`${c.count} "${c.column}" cell(s), the first in row ${c.row} ${c.at}`);
    }
    return out;
  }, selector);
}
