// One schedule: its settings, next fires and fire history.

import { get } from '../api';
import { field, h } from '../dom';
import { shortId, when } from '../format';
import type { FireHistory, ScheduleView } from '../types';
import { scheduleActions, timingText } from './schedules';

export async function renderSchedule(root: HTMLElement, id: string, go: (hash: string) => void): Promise<void> {
  const path = `/schedules/${encodeURIComponent(id)}`;
  const [s, hist] = await Promise.all([
    get<ScheduleView>(path),
    get<FireHistory>(`${path}/history`),
  ]);
  const target = s.channel ? `channel ${s.channel}` : s.instance ? `instance ${s.instance}` : s.all_instances ? 'all instances'
    : s.labels && Object.keys(s.labels).length ? `labels ${Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(', ')}` : 'default channel';
  root.append(
    h('div', { class: 'title-row' },
      h('h1', null, 'Schedule ', h('span', { class: 'mono' }, s.name || s.id)),
      h('span', { class: `state state-${s.state}`, 'data-testid': 'schedule-state' }, s.state),
      scheduleActions(s, (deleted) => go(deleted ? '#/schedules' : `#/schedules/${encodeURIComponent(id)}`))),
    h('section', { class: 'card' }, h('dl', { class: 'details' },
      field('Id', h('span', { class: 'mono' }, s.id)),
      field('Command', h('span', { class: 'mono' }, s.command)),
      field('Parameters', h('code', null, JSON.stringify(s.params ?? {}))),
      field('Target', target),
      field('When', timingText(s)),
      field('Owner', s.owner),
      field('Overlap', s.overlap ?? 'skip'),
      field('Misfire', s.misfire ?? 'skip'),
      field('Jitter', s.jitter ?? 'none'),
      field('Active since', when(s.active_since)),
      field('Created', when(s.created_at)),
      field('Updated', when(s.updated_at)),
      field('Next fires', s.next_fires.length ? h('ol', { class: 'preview' }, ...s.next_fires.map((f) => h('li', null, when(f)))) : 'none'))),
    h('h2', null, 'Fire history (last day)'),
    h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'fires-table' },
      h('thead', null, h('tr', null, ...['Due', 'State', 'Job', 'Reason', 'By', 'Updated'].map((t) => h('th', null, t)))),
      h('tbody', null, ...hist.fires.map((f) => h('tr', { 'data-testid': 'fire-row', 'data-state': f.state },
        h('td', null, when(f.fire_at)),
        h('td', null, h('span', { class: `state state-${f.state}` }, f.state)),
        h('td', null, f.job_id ? h('a', { href: `#/jobs/${encodeURIComponent(f.job_id)}`, class: 'mono' }, shortId(f.job_id)) : ''),
        h('td', { class: 'wrap' }, f.reason ?? ''),
        h('td', { class: 'mono' }, f.by),
        h('td', null, when(f.updated_at))))))),
    hist.fires.length === 0 ? h('p', { class: 'hint' }, 'No fires in the last day.') : '');
}
