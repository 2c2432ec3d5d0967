// Schedules: the list (pause, resume, delete) and the create form with a live preview of the
// next fires.

import { del, errorMessage, get, post } from '../api';
import { h, replace, whenBreakable } from '../dom';
import { localToRfc3339, shortId, when } from '../format';
import { paramsForm, type ParamsForm } from '../params';
import { targetChooser, type TargetChooser } from '../target';
import { confirmDialog, notice, showError } from '../ui';
import type { CommandView, FirePreview, ScheduleList, ScheduleView } from '../types';

export function timingText(s: ScheduleView): string {
  if (s.kind === 'cron') return `cron ${s.cron} (${s.time_zone ?? 'UTC'})`;
  if (s.kind === 'once') return `once at ${when(s.at)}`;
  return `every ${s.every}${s.start ? ` from ${when(s.start)}` : ''}`;
}

/** Pause/resume/delete buttons of one schedule; `changed` is called after each. */
export function scheduleActions(s: ScheduleView, changed: (deleted: boolean) => void): HTMLElement {
  const act = async (what: 'pause' | 'resume' | 'delete') => {
    try {
      if (what === 'delete') {
        if (!(await confirmDialog(`Delete schedule ${s.name || shortId(s.id)} (${s.command})?`, 'Delete'))) return;
        await del(`/schedules/${encodeURIComponent(s.id)}`);
      } else {
        await post(`/schedules/${encodeURIComponent(s.id)}/${what}`);
      }
      changed(what === 'delete');
    } catch (e) {
      showError(e);
    }
  };
  return h('span', { class: 'row-actions' },
    s.enabled
      ? h('button', { type: 'button', 'data-testid': 'schedule-pause', onclick: () => void act('pause') }, 'Pause')
      : h('button', { type: 'button', 'data-testid': 'schedule-resume', onclick: () => void act('resume') }, 'Resume'),
    h('button', { type: 'button', class: 'danger', 'data-testid': 'schedule-delete', onclick: () => void act('delete') }, 'Delete'));
}

export async function renderSchedules(root: HTMLElement): Promise<void> {
  const tbody = h('tbody', { 'data-testid': 'schedules-body' });
  const empty = h('p', { class: 'hint', hidden: true }, 'No schedules yet.');
  let gen = 0;
  const load = async () => {
    const g = ++gen;
    try {
      const { schedules } = await get<ScheduleList>('/schedules');
      if (g !== gen) return; // a later load (after a pause, resume, create) is already asked
      tbody.dataset.load = String(g);
      replace(tbody, ...schedules.map((s) => h('tr', { 'data-testid': 'schedule-row', 'data-schedule-id': s.id, 'data-state': s.state },
        h('td', { class: 'wrap-words' }, h('a', { href: `#/schedules/${encodeURIComponent(s.id)}` }, s.name || shortId(s.id))),
        h('td', { class: 'mono' }, s.command),
        h('td', { class: 'wrap-words' }, timingText(s)),
        h('td', null, s.owner),
        h('td', null, h('span', { class: `state state-${s.state}`, 'data-testid': 'schedule-state' }, s.state)),
        h('td', { class: 'time' }, s.next_fires.length ? whenBreakable(s.next_fires[0]) : ''),
        h('td', null, scheduleActions(s, () => void load())))));
      empty.hidden = schedules.length > 0;
    } catch (e) {
      showError(e);
    }
  };
  root.append(
    h('h1', null, 'Schedules'),
    h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'schedules-table' },
      h('thead', null, h('tr', null, ...['Name', 'Command', 'When', 'Owner', 'State', 'Next fire', ''].map((t) => h('th', null, t)))),
      tbody)),
    empty);
  const commands = await get<CommandView[]>('/commands');
  root.append(createForm(commands, () => void load()));
  await load();
}

function createForm(commands: CommandView[], created: () => void): HTMLElement {
  const sel = (testid: string, values: string[]) =>
    h('select', { 'data-testid': testid }, ...values.map((v) => h('option', { value: v }, v)));
  const text = (testid: string, placeholder = '', value = '') =>
    h('input', { type: 'text', 'data-testid': testid, placeholder, value, autocomplete: 'off', spellcheck: 'false' });
  const lab = (label: string, el: HTMLElement, hidden = false) => {
    const wrap = h('div', { class: 'field' }, h('label', null, label), el);
    wrap.hidden = hidden;
    return wrap;
  };

  const name = text('schedule-name', 'optional name');
  const command = sel('schedule-command', commands.map((c) => c.name));
  const kind = sel('schedule-kind', ['cron', 'interval', 'once']);
  const cron = text('schedule-cron', 'sec min hour day month weekday', '0 */5 * * * *');
  let tzGuess = 'UTC';
  try { tzGuess = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'; } catch { /* UTC */ }
  const tz = text('schedule-tz', 'IANA zone, e.g. Europe/Berlin', tzGuess);
  const at = h('input', { type: 'datetime-local', step: 1, 'data-testid': 'schedule-at' });
  const every = text('schedule-every', 'e.g. 90s, 15m, 2h', '60s');
  const start = h('input', { type: 'datetime-local', step: 1, 'data-testid': 'schedule-start' });
  const overlap = sel('schedule-overlap', ['skip', 'allow', 'queue']);
  const misfire = sel('schedule-misfire', ['skip', 'run_once']);
  const jitter = text('schedule-jitter', 'e.g. 5s (optional)');
  const enabled = h('input', { type: 'checkbox', checked: true, 'data-testid': 'schedule-enabled' });
  const preview = h('ol', { class: 'preview', 'data-testid': 'schedule-preview' });
  const previewMsg = notice('schedule-preview-error');
  const msg = notice('schedule-error');
  const paramsHost = h('div');
  const targetHost = h('div');
  const button = h('button', { type: 'submit', class: 'primary', 'data-testid': 'schedule-create' }, 'Create schedule');

  const cronF = [lab('Cron (with seconds)', cron), lab('Time zone', tz)];
  const onceF = [lab('At', at)];
  const intervalF = [lab('Every', every), lab('Start (optional)', start)];

  let params: ParamsForm | null = null;
  let target: TargetChooser | null = null;
  const pickCommand = () => {
    const c = commands.find((x) => x.name === command.value);
    replace(paramsHost);
    replace(targetHost);
    params = target = null;
    if (!c) return;
    params = paramsForm(c.params, 'sched');
    target = targetChooser(c, 'sched');
    paramsHost.append(params.el);
    targetHost.append(target.el);
  };
  command.addEventListener('change', pickCommand);
  pickCommand();

  const timing = (): Record<string, unknown> => {
    switch (kind.value) {
      case 'cron':
        return { kind: 'cron', cron: cron.value.trim(), time_zone: tz.value.trim() || 'UTC' };
      case 'once':
        return { kind: 'once', at: localToRfc3339(at.value) };
      default: {
        const t: Record<string, unknown> = { kind: 'interval', every: every.value.trim() };
        const s = localToRfc3339(start.value);
        if (s) t.start = s;
        return t;
      }
    }
  };

  // The preview answers the timing last asked about: each request has a number, an answer to
  // an older one (a slower request sent before the last keystroke) is dropped, and the list
  // carries the timing it was computed for (`data-timing`, the JSON sent).
  let previewGen = 0;
  let previewTimer: number | undefined;
  const refreshPreview = () => {
    window.clearTimeout(previewTimer);
    previewTimer = window.setTimeout(async () => {
      const g = ++previewGen;
      const t = timing();
      if (t.kind === 'once' && !t.at) {
        replace(preview);
        preview.dataset.timing = JSON.stringify(t);
        previewMsg.info('Choose the instant.');
        return;
      }
      try {
        const r = await post<FirePreview>('/schedules/preview', t);
        if (g !== previewGen) return; // a newer request was sent: its answer is the one shown
        previewMsg.clear();
        replace(preview, ...r.next_fires.map((f) => h('li', { 'data-testid': 'preview-fire', title: f }, when(f))));
        preview.dataset.timing = JSON.stringify(t);
        if (r.next_fires.length === 0) previewMsg.info('It never fires from now on.');
      } catch (e) {
        if (g !== previewGen) return;
        replace(preview);
        preview.dataset.timing = JSON.stringify(t);
        previewMsg.error(e);
      }
    }, 250);
  };
  const showKind = () => {
    for (const f of cronF) f.hidden = kind.value !== 'cron';
    for (const f of onceF) f.hidden = kind.value !== 'once';
    for (const f of intervalF) f.hidden = kind.value !== 'interval';
    refreshPreview();
  };
  kind.addEventListener('change', showKind);
  for (const el of [cron, tz, at, every, start]) {
    el.addEventListener('input', refreshPreview);
    el.addEventListener('change', refreshPreview);
  }
  showKind();

  return h('form', {
    class: 'card schedule-form', 'data-testid': 'schedule-form',
    onsubmit: async (ev: Event) => {
      ev.preventDefault();
      msg.clear();
      if (!params || !target) { msg.error('Choose a command.'); return; }
      const p = params.values();
      const t = target.value();
      if (typeof t === 'string') { msg.error(t); return; }
      if (!p) { msg.error('Fix the fields marked above.'); return; }
      const body: Record<string, unknown> = {
        command: command.value, params: p, ...t, ...timing(),
        overlap: overlap.value, misfire: misfire.value, enabled: enabled.checked,
      };
      if (name.value.trim()) body.name = name.value.trim();
      if (jitter.value.trim()) body.jitter = jitter.value.trim();
      button.disabled = true;
      try {
        const s = await post<ScheduleView>('/schedules', body);
        msg.info(`Created schedule ${s.name || s.id}.`);
        created();
      } catch (e) {
        params.showServerError(errorMessage(e));
        msg.error(e);
      } finally {
        button.disabled = false;
      }
    },
  },
  h('h2', null, 'New schedule'),
  lab('Name', name),
  lab('Command', command),
  paramsHost,
  targetHost,
  lab('Kind', kind),
  ...cronF, ...onceF, ...intervalF,
  h('div', { class: 'field' }, h('label', null, 'Next fires'), preview, previewMsg.el),
  h('div', { class: 'row' }, lab('Overlap', overlap), lab('Misfire', misfire), lab('Jitter', jitter)),
  h('label', { class: 'check' }, enabled, ' enabled'),
  msg.el,
  h('div', { class: 'actions' }, button));
}
