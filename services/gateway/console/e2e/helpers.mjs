// Shared setup of the console's end-to-end tests: the browser, sign-in, REST calls made
// outside the page, screenshots and polling helpers.

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

/** A fresh page in its own context (own sessionStorage), failing on page errors. */
export async function newPage(t) {
  const context = await browser.newContext({ viewport: { width: 1024, height: 800 } });
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
  await page.goto(`${URL_BASE}/#/run`);
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
