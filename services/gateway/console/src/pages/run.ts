// Run: pick a command I may run, fill its generated form, choose a target, submit.

import { errorMessage, get, post } from '../api';
import { h, replace } from '../dom';
import { paramsForm } from '../params';
import { targetChooser } from '../target';
import { notice } from '../ui';
import { localToRfc3339, shortId } from '../format';
import { isGroup, type CommandView, type Submitted } from '../types';

function newKey(): string {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return 'console-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export async function renderRun(root: HTMLElement): Promise<void> {
  const list = h('ul', { class: 'command-list', 'data-testid': 'command-list' });
  const detail = h('section', { class: 'card command-detail', 'data-testid': 'command-detail' },
    h('p', { class: 'hint' }, 'Choose a command.'));
  const search = h('input', {
    type: 'search', placeholder: 'Search commands', 'data-testid': 'command-search', 'aria-label': 'Search commands',
  });
  root.append(h('h1', null, 'Run a command'),
    h('div', { class: 'run-layout' },
      h('aside', { class: 'card' }, search, list),
      detail));

  const commands = await get<CommandView[]>('/commands');
  let selected: string | null = null;
  const showList = () => {
    const q = search.value.trim().toLowerCase();
    replace(list);
    const shown = commands.filter((c) => !q || c.name.toLowerCase().includes(q) || c.description.toLowerCase().includes(q));
    if (shown.length === 0) list.append(h('li', { class: 'hint' }, commands.length ? 'No command matches.' : 'You may not run any command.'));
    for (const c of shown) {
      list.append(h('li', null, h('button', {
        class: 'command-item' + (c.name === selected ? ' selected' : ''),
        'data-testid': 'command-item', 'data-command': c.name,
        onclick: () => { selected = c.name; showList(); showCommand(detail, c); },
      }, h('span', { class: 'mono' }, c.name), c.description ? h('span', { class: 'hint' }, c.description) : null)));
    }
  };
  search.addEventListener('input', showList);
  showList();
  const wanted = new URLSearchParams(location.hash.split('?')[1] ?? '').get('command');
  const first = commands.find((c) => c.name === wanted);
  if (first) { selected = first.name; showList(); showCommand(detail, first); }
}

function showCommand(detail: HTMLElement, cmd: CommandView): void {
  const form = paramsForm(cmd.params, 'run');
  const target = targetChooser(cmd, 'run');
  const msg = notice('run-error');
  const result = h('div', { 'data-testid': 'run-result' });
  const button = h('button', { type: 'submit', class: 'primary', 'data-testid': 'run-button' }, `Run ${cmd.name}`);
  // Optional: queue the job at (not before) this instant, in the browser's time zone.
  const notBefore = h('input', { type: 'datetime-local', step: 1, 'data-testid': 'run-not-before', 'aria-label': 'not before' });
  let key = newKey(); // one Idempotency-Key per intended submit: a retry returns the same job
  form.onChange(() => { key = newKey(); });
  notBefore.addEventListener('input', () => { key = newKey(); });
  replace(detail,
    h('h2', { class: 'mono', 'data-testid': 'command-name' }, cmd.name),
    h('p', { 'data-testid': 'command-description' }, cmd.description || '(no description)'),
    h('form', {
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        msg.clear();
        replace(result);
        const params = form.values();
        const t = target.value();
        if (typeof t === 'string') { msg.error(t); return; }
        if (!params) { msg.error('Fix the fields marked above.'); return; }
        const at = localToRfc3339(notBefore.value);
        if (notBefore.value && !at) { msg.error('"Not before" is not a date and time.'); return; }
        button.disabled = true;
        try {
          const body = { command: cmd.name, params, ...t, ...(at ? { not_before: at } : {}) };
          const res = await post<Submitted>('/jobs', body, { 'Idempotency-Key': key });
          key = newKey();
          if (isGroup(res)) {
            const g = res;
            result.append(h('p', null, `Submitted ${g.jobs.length} jobs (group `, h('span', { class: 'mono' }, shortId(g.group_id)), '):'),
              h('ul', { 'data-testid': 'group-jobs' }, ...g.jobs.map((j) => h('li', null,
                h('a', { href: `#/jobs/${encodeURIComponent(j.job_id)}`, class: 'mono', 'data-testid': 'group-job-link' }, shortId(j.job_id)),
                ` on ${j.hostname ?? j.target.instance ?? ''}`))));
          } else {
            location.hash = `#/jobs/${encodeURIComponent(res.job_id)}`; // a job, or a delayed one
          }
        } catch (e) {
          form.showServerError(errorMessage(e));
          msg.error(e);
        } finally {
          button.disabled = false;
        }
      },
    }, form.el, target.el,
      h('label', { class: 'field' }, h('span', null, 'Not before (optional: run later)'), notBefore),
      msg.el, h('div', { class: 'actions' }, button)),
    result);
}
