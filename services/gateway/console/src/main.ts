// Boot and hash routing: #/run, #/jobs, #/jobs/<id>, #/instances, #/schedules,
// #/schedules/<id>, #/audit, #/signin.

import '@xterm/xterm/css/xterm.css';
import './style.css';
import { ApiError, clearToken, get, getToken, onUnauthorized, setToken, errorMessage } from './api';
import { h, replace } from './dom';
import { can, currentMe, endSession, setSession, socket } from './session';
import { bannerElement, clearError, showError } from './ui';
import type { Me } from './types';
import { renderSignin } from './pages/signin';
import { renderRun } from './pages/run';
import { renderJobs } from './pages/jobs';
import { renderJob } from './pages/job';
import { renderInstances } from './pages/instances';
import { renderSchedules } from './pages/schedules';
import { renderSchedule } from './pages/schedule';
import { renderAudit } from './pages/audit';

export type Cleanup = () => void;
type Page = (root: HTMLElement, id?: string) => Cleanup | void | Promise<Cleanup | void>;

const header = h('header', { class: 'topbar' });
const main = h('main', { class: 'page' });
let cleanup: Cleanup | null = null;
let signinMessage = '';
let signedIn = false;
let renderSeq = 0;

function link(href: string, text: string, testid: string): HTMLElement {
  const active = location.hash === href || location.hash.startsWith(href + '/');
  return h('a', { href, class: active ? 'active' : '', 'data-testid': testid }, text);
}

function renderHeader(): void {
  if (!signedIn) {
    replace(header, h('span', { class: 'brand' }, 'taskwire'));
    return;
  }
  const me = currentMe();
  replace(header,
    h('span', { class: 'brand' }, 'taskwire'),
    h('nav', null,
      link('#/run', 'Run', 'nav-run'),
      link('#/jobs', 'Jobs', 'nav-jobs'),
      can('read_instances') && link('#/instances', 'Instances', 'nav-instances'),
      can('manage_schedules') && link('#/schedules', 'Schedules', 'nav-schedules'),
      can('read_audit') && link('#/audit', 'Audit', 'nav-audit')),
    h('span', { class: 'who' },
      h('span', { class: 'hint', title: 'Times are shown in this time zone' },
        Intl.DateTimeFormat().resolvedOptions().timeZone),
      h('span', { class: 'user', 'data-testid': 'me-user' }, me.user),
      h('span', { class: 'roles', 'data-testid': 'me-roles' },
        me.super_user ? ['super user', ...me.roles].join(', ') : me.roles.join(', ')),
      h('button', { 'data-testid': 'signout-button', onclick: signOut }, 'Sign out')));
}

function signOut(): void {
  clearToken();
  endSession();
  signedIn = false;
  signinMessage = '';
  go('#/signin');
}

function go(hash: string): void {
  if (location.hash === hash) void route();
  else location.hash = hash;
}

async function completeSignin(me: Me, token: string): Promise<void> {
  setToken(token);
  setSession(me, token);
  signedIn = true;
  signinMessage = '';
  socket().onError((msg) => showError(msg));
  go('#/run');
}

const routes: [RegExp, Page][] = [
  [/^#\/run(?:\?.*)?$/, renderRun],
  [/^#\/jobs$/, renderJobs],
  [/^#\/jobs\/([^/]+)$/, (r, id) => renderJob(r, id!, go)],
  [/^#\/instances$/, renderInstances],
  [/^#\/schedules$/, renderSchedules],
  [/^#\/schedules\/([^/]+)$/, (r, id) => renderSchedule(r, id!, go)],
  [/^#\/audit$/, renderAudit],
];

async function route(): Promise<void> {
  const seq = ++renderSeq;
  cleanup?.();
  cleanup = null;
  clearError();
  const hash = location.hash || '#/run';
  if (!signedIn || hash === '#/signin') {
    if (signedIn && hash === '#/signin') {
      // signing in again: forget the current session
      clearToken();
      endSession();
      signedIn = false;
    }
    renderHeader();
    replace(main);
    if (location.hash !== '#/signin') {
      history.replaceState(null, '', '#/signin');
    }
    renderSignin(main, { message: signinMessage, onSignedIn: completeSignin });
    return;
  }
  renderHeader();
  // Each page draws into its own container: one that finishes loading after the user moved on
  // draws into a detached element, never into the next page. The container says which
  // address it shows and which render it is, and `data-ready` once the page's first load is
  // drawn, so a reader can tell it from the page before, even one at the same address.
  const container = h('div', { class: 'page-body', 'data-testid': 'page-body', 'data-route': hash, 'data-render': seq });
  replace(main, container);
  for (const [re, page] of routes) {
    const m = re.exec(hash);
    if (!m) continue;
    try {
      const c = await page(container, m[1] ? decodeURIComponent(m[1]) : undefined);
      if (seq !== renderSeq) c?.();
      else {
        if (c) cleanup = c;
        container.dataset.ready = 'true';
      }
    } catch (e) {
      if (seq === renderSeq) {
        container.dataset.ready = 'error';
        showError(e);
      }
    }
    return;
  }
  go('#/run');
}

onUnauthorized((msg) => {
  clearToken();
  endSession();
  signedIn = false;
  signinMessage = msg;
  go('#/signin');
});

async function boot(): Promise<void> {
  document.body.append(header, bannerElement(), main);
  window.addEventListener('hashchange', () => void route());
  const token = getToken();
  if (token) {
    try {
      const me = await get<Me>('/me');
      setSession(me, token);
      signedIn = true;
      socket().onError((msg) => showError(msg));
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) signinMessage = errorMessage(e);
    }
  }
  await route();
}

void boot();
