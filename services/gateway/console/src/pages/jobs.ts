// Jobs: the history with filters and paging, updated live from the socket's job feed.

import { get, qs } from '../api';
import { h, replace, whenBreakable } from '../dom';
import { localToRfc3339, shortId } from '../format';
import { socket } from '../session';
import { showError } from '../ui';
import { JOB_STATES, isScheduled, type Job, type JobList, type JobView } from '../types';

interface Filters { user?: string; command?: string; state?: string; instance?: string; since?: string; until?: string }

function matches(j: JobView, f: Filters): boolean {
  if (f.user && j.requested_by !== f.user) return false;
  if (f.command && j.command !== f.command) return false;
  if (f.state && j.state !== f.state) return false;
  if (f.instance && (isScheduled(j) || j.instance !== f.instance)) return false;
  const q = j.queued_at ? new Date(j.queued_at).getTime() : NaN;
  if (f.since && !(q >= new Date(f.since).getTime())) return false;
  if (f.until && !(q < new Date(f.until).getTime())) return false;
  return true;
}

function cells(j: JobView): HTMLElement[] {
  const rec = isScheduled(j) ? undefined : j;
  const queued = isScheduled(j) ? ['not before ', whenBreakable(j.not_before)] : whenBreakable(j.queued_at);
  return [
    h('td', null, h('a', { href: `#/jobs/${encodeURIComponent(j.job_id)}`, class: 'mono', title: j.job_id }, shortId(j.job_id))),
    h('td', { class: 'mono' }, j.command),
    h('td', null, j.requested_by),
    h('td', null, h('span', { class: `state state-${j.state}` }, j.state)),
    h('td', null, rec?.hostname ?? '', rec?.instance ? h('div', { class: 'mono hint', title: rec.instance }, shortId(rec.instance)) : null),
    // times may wrap between date and time, so the table fits a 1024 px window
    h('td', { class: 'time' }, queued),
    h('td', { class: 'time' }, whenBreakable(rec?.started_at)),
    h('td', { class: 'time' }, whenBreakable(rec?.finished_at)),
    h('td', { class: 'num' }, rec?.exit_code !== undefined ? String(rec.exit_code) : rec?.signal ?? ''),
  ];
}

function time(iso: string | null | undefined): number {
  const t = iso ? Date.parse(iso) : NaN;
  return isNaN(t) ? 0 : t;
}

function row(j: JobView): HTMLTableRowElement {
  const updated = isScheduled(j) ? '' : j.updated_at;
  return h('tr', { 'data-testid': 'job-row', 'data-job-id': j.job_id, 'data-state': j.state, 'data-updated': updated }, ...cells(j));
}

/** Jobs deleted in this tab: a list read before the deletion reached the audit store, or a
 *  late frame, must not bring their rows back. */
const gone = new Set<string>();

/** Called once a job was deleted from this tab. */
export function forgetJob(id: string): void {
  gone.add(id);
}

export async function renderJobs(root: HTMLElement): Promise<() => void> {
  const input = (name: string, placeholder: string) =>
    h('input', { type: 'text', name, placeholder, 'data-testid': `filter-${name}`, 'aria-label': name });
  const user = input('user', 'user');
  const command = input('command', 'command');
  const instance = input('instance', 'instance GUID');
  const state = h('select', { name: 'state', 'data-testid': 'filter-state', 'aria-label': 'state' },
    h('option', { value: '' }, 'any state'), ...JOB_STATES.map((s) => h('option', { value: s }, s)));
  const since = h('input', { type: 'datetime-local', step: 1, 'data-testid': 'filter-since', 'aria-label': 'since' });
  const until = h('input', { type: 'datetime-local', step: 1, 'data-testid': 'filter-until', 'aria-label': 'until' });
  const tbody = h('tbody', { 'data-testid': 'jobs-body' });
  const older = h('button', { 'data-testid': 'jobs-older', hidden: true }, 'Older');
  const live = h('span', { class: 'live', 'data-testid': 'live-status' }, 'connecting');
  const empty = h('p', { class: 'hint', hidden: true }, 'No jobs match.');

  let filters: Filters = {};
  let next: string | undefined;
  const rows = new Map<string, HTMLTableRowElement>();
  const recent = new Map<string, Job>();
  let gen = 0;

  const load = async (append: boolean) => {
    const g = append ? gen : ++gen;
    const query = qs({ ...filters }).slice(1);
    // a full load holds everything up to now: only frames from here on need merging
    if (!append) recent.clear();
    try {
      const page = await get<JobList>('/jobs', { ...filters, cursor: append ? next : undefined, limit: 50 });
      if (g !== gen) return;
      if (!append) {
        replace(tbody);
        rows.clear();
        // what the list shows: the filters and the load it answers (newer loads drop older answers)
        tbody.dataset.query = query;
        tbody.dataset.load = String(g);
      }
      // delayed jobs waiting for their time come first, soonest on top
      for (const j of append ? [] : page.scheduled ?? []) {
        if (rows.has(j.job_id) || gone.has(j.job_id) || !matches(j, filters)) continue;
        const r = row(j);
        rows.set(j.job_id, r);
        tbody.append(r);
      }
      for (const j of page.jobs) {
        if (rows.has(j.job_id) || gone.has(j.job_id)) continue;
        const r = row(j);
        rows.set(j.job_id, r);
        tbody.append(r);
      }
      if (!append) {
        // live updates that raced with this page: newer than what the page says
        const byQueue = [...recent.values()].sort((a, b) => time(a.queued_at) - time(b.queued_at));
        for (const j of byQueue) {
          const shown = rows.get(j.job_id);
          if (shown && time(shown.dataset.updated) > time(j.updated_at)) continue;
          upsert(j);
        }
        recent.clear();
      }
      next = page.next;
      older.hidden = !next;
      empty.hidden = rows.size > 0;
    } catch (e) {
      showError(e);
    }
  };

  const apply = (ev?: Event) => {
    ev?.preventDefault();
    filters = {
      user: user.value.trim() || undefined,
      command: command.value.trim() || undefined,
      state: state.value || undefined,
      instance: instance.value.trim() || undefined,
      since: localToRfc3339(since.value),
      until: localToRfc3339(until.value),
    };
    void load(false);
  };
  older.addEventListener('click', () => void load(true));

  root.append(
    h('div', { class: 'title-row' }, h('h1', null, 'Jobs'), live),
    h('form', { class: 'filters', onsubmit: apply },
      user, command, state, instance,
      h('label', null, 'since ', since), h('label', null, 'until ', until),
      h('button', { type: 'submit', 'data-testid': 'filter-apply' }, 'Apply'),
      h('button', { type: 'button', onclick: () => { for (const i of [user, command, instance, since, until]) i.value = ''; state.value = ''; apply(); } }, 'Clear')),
    h('div', { class: 'table-wrap' },
      h('table', { class: 'jobs', 'data-testid': 'jobs-table' },
        h('thead', null, h('tr', null, ...['Job', 'Command', 'User', 'State', 'Instance', 'Queued', 'Started', 'Finished', 'Exit'].map((t) => h('th', null, t)))),
        tbody)),
    empty,
    h('div', { class: 'actions' }, older));

  /** Updates a row in place, or adds a new matching job at the top. */
  function upsert(j: Job): void {
    if (gone.has(j.job_id)) return;
    const old = rows.get(j.job_id);
    if (old) {
      const r = row(j);
      old.replaceWith(r);
      rows.set(j.job_id, r);
      return;
    }
    if (!matches(j, filters)) return;
    const r = row(j);
    rows.set(j.job_id, r);
    tbody.insertBefore(r, tbody.firstChild); // newest first
    empty.hidden = true;
  }

  const mux = socket();
  const showStatus = (s: string) => {
    live.textContent = s === 'open' ? 'live' : s;
    live.dataset.status = s;
    if (s !== 'open') delete live.dataset.watching;
  };
  showStatus(mux.status);
  const offStatus = mux.onStatus(showStatus);
  const offWatch = mux.watchJobs({
    job(j) {
      recent.set(j.job_id, j);
      upsert(j);
    },
    removed(id) {
      gone.add(id);
      recent.delete(id);
      rows.get(id)?.remove();
      rows.delete(id);
      empty.hidden = rows.size > 0;
    },
    // in place (again, after a reconnect): what changed meanwhile comes with a fresh list
    watching() {
      live.dataset.watching = 'true'; // every change from now on arrives as a frame
      void load(false);
    },
  });
  await load(false);
  return () => { offStatus(); offWatch(); gen++; };
}
