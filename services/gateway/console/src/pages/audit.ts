// Audit: every API decision, newest first, with filters and paging; denials marked.

import { get, qs } from '../api';
import { h, replace, whenBreakable } from '../dom';
import { localToRfc3339 } from '../format';
import { showError } from '../ui';
import type { AuditEvent, AuditPage } from '../types';

function row(e: AuditEvent): HTMLTableRowElement {
  return h('tr', {
    'data-testid': 'audit-row', 'data-allowed': String(e.allowed), class: e.allowed ? '' : 'denied',
    'data-action': e.action,
  },
  h('td', { class: 'time', title: e.at }, whenBreakable(e.at)),
  h('td', null, e.actor ?? '(unauthenticated)'),
  h('td', { class: 'mono' }, e.action),
  h('td', { class: 'mono wrap' }, e.target ?? ''),
  h('td', null, h('span', { class: e.allowed ? 'allowed' : 'denied-badge' }, e.allowed ? 'allowed' : 'DENIED')),
  h('td', { class: 'wrap' }, e.reason),
  h('td', { class: 'mono wrap-words' }, e.source),
  h('td', null, e.via));
}

export async function renderAudit(root: HTMLElement): Promise<void> {
  const input = (name: string, placeholder: string) =>
    h('input', { type: 'text', name, placeholder, 'data-testid': `audit-filter-${name}`, 'aria-label': name });
  const actor = input('actor', 'actor');
  const action = input('action', 'action (jobs.kill or jobs.)');
  const target = input('target', 'target');
  const allowed = h('select', { 'data-testid': 'audit-filter-allowed', 'aria-label': 'allowed' },
    h('option', { value: '' }, 'allowed and denied'),
    h('option', { value: 'true' }, 'allowed only'),
    h('option', { value: 'false' }, 'denied only'));
  const since = h('input', { type: 'datetime-local', step: 1, 'data-testid': 'audit-filter-since', 'aria-label': 'since' });
  const until = h('input', { type: 'datetime-local', step: 1, 'data-testid': 'audit-filter-until', 'aria-label': 'until' });
  const tbody = h('tbody', { 'data-testid': 'audit-body' });
  const older = h('button', { 'data-testid': 'audit-older', hidden: true }, 'Older');
  const empty = h('p', { class: 'hint', hidden: true }, 'No entries match.');
  let next: string | undefined;
  let q: Record<string, string | undefined> = {};
  let gen = 0;

  const load = async (append: boolean) => {
    const g = append ? gen : ++gen;
    const query = qs(q).slice(1);
    if (append) older.disabled = true; // one page at a time, or a page comes twice
    try {
      const page = await get<AuditPage>('/audit', { ...q, cursor: append ? next : undefined, limit: 100 });
      if (g !== gen) return;
      if (!append) {
        replace(tbody);
        // what the list shows: the filters and the load it answers (newer loads drop older
        // answers), so a reader can tell this list from the one before
        tbody.dataset.query = query;
        tbody.dataset.load = String(g);
      }
      tbody.append(...page.entries.map(row));
      next = page.next;
      older.hidden = !next;
      empty.hidden = tbody.children.length > 0;
    } catch (e) {
      showError(e);
    } finally {
      if (append) older.disabled = false;
    }
  };
  const apply = (ev?: Event) => {
    ev?.preventDefault();
    q = {
      actor: actor.value.trim() || undefined,
      action: action.value.trim() || undefined,
      target: target.value.trim() || undefined,
      allowed: allowed.value || undefined,
      since: localToRfc3339(since.value),
      until: localToRfc3339(until.value),
    };
    void load(false);
  };
  older.addEventListener('click', () => void load(true));
  root.append(
    h('div', { class: 'title-row' }, h('h1', null, 'Audit log'),
      h('button', { type: 'button', 'data-testid': 'audit-refresh', onclick: () => void load(false) }, 'Refresh')),
    h('form', { class: 'filters', onsubmit: apply },
      actor, action, target, allowed,
      h('label', null, 'since ', since), h('label', null, 'until ', until),
      h('button', { type: 'submit', 'data-testid': 'audit-apply' }, 'Apply')),
    h('div', { class: 'table-wrap' }, h('table', { class: 'audit', 'data-testid': 'audit-table' },
      h('thead', null, h('tr', null, ...['At', 'Actor', 'Action', 'Target', 'Decision', 'Reason', 'Source', 'Via'].map((t) => h('th', null, t)))),
      tbody)),
    empty,
    h('div', { class: 'actions' }, older));
  await load(false);
}
