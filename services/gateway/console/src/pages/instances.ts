// Instances: the registry, refreshed every 2 s.

import { get } from '../api';
import { h, replace } from '../dom';
import { ago, bytes, shortId } from '../format';
import { showError, clearError } from '../ui';
import type { InstanceInfo } from '../types';

function row(i: InstanceInfo, now: number): HTMLTableRowElement {
  const labels = Object.entries(i.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(', ');
  const mem = i.jobs.reduce((n, j) => n + (j.rss_bytes ?? 0), 0);
  return h('tr', { 'data-testid': 'instance-row', 'data-guid': i.guid, 'data-status': i.status },
    h('td', { class: 'mono id', 'data-testid': 'instance-guid' }, i.guid),
    h('td', null, i.hostname),
    h('td', { class: 'wrap-words' }, labels),
    h('td', { class: 'wrap-words' }, i.channels.join(', ')),
    h('td', { class: 'num' }, `${i.slots.used} / ${i.slots.total}`),
    h('td', { class: 'wrap-words' }, i.jobs.length === 0 ? '' : h('ul', { class: 'plain' }, ...i.jobs.map((j) => h('li', null,
      h('a', { href: `#/jobs/${encodeURIComponent(j.job_id)}`, class: 'mono' }, shortId(j.job_id)),
      ` ${j.command} pid ${j.pid}`, j.rss_bytes !== undefined ? ` ${bytes(j.rss_bytes)}` : '')))),
    h('td', { class: 'wrap-words' }, [i.executor_rss_bytes !== undefined ? `executor ${bytes(i.executor_rss_bytes)}` : '', mem ? `jobs ${bytes(mem)}` : ''].filter(Boolean).join(', ')),
    h('td', null, h('span', { class: `status status-${i.status}` }, i.status)),
    h('td', null, i.tree),
    h('td', null, i.version),
    h('td', { title: i.heartbeat_at }, ago(i.heartbeat_at, now)));
}

export async function renderInstances(root: HTMLElement): Promise<() => void> {
  const tbody = h('tbody', { 'data-testid': 'instances-body' });
  const count = h('span', { class: 'hint', 'data-testid': 'instances-count' });
  root.append(
    h('div', { class: 'title-row' }, h('h1', null, 'Instances'), count),
    h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'instances-table' },
      h('thead', null, h('tr', null, ...['GUID', 'Hostname', 'Labels', 'Channels', 'Slots', 'Running jobs', 'Memory', 'Status', 'Tree', 'Version', 'Last heartbeat'].map((t) => h('th', null, t)))),
      tbody)));
  let failed = false;
  const load = async () => {
    try {
      const list = await get<InstanceInfo[]>('/instances');
      const now = Date.now();
      replace(tbody, ...list.map((i) => row(i, now)));
      count.textContent = `${list.length} instance${list.length === 1 ? '' : 's'}`;
      if (failed) clearError();
      failed = false;
    } catch (e) {
      failed = true;
      showError(e);
    }
  };
  await load();
  const timer = window.setInterval(() => void load(), 2000);
  return () => window.clearInterval(timer);
}
