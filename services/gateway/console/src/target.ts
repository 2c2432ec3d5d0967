// Where a job runs: the default channel, a channel, an instance, all instances, or
// instances with labels (the target fields of POST /api/v1/jobs).

import { h } from './dom';
import type { CommandView } from './types';

export interface TargetFields {
  channel?: string;
  instance?: string;
  all_instances?: boolean;
  labels?: Record<string, string>;
}

export interface TargetChooser {
  el: HTMLElement;
  /** The target fields, or an error message. */
  value(): TargetFields | string;
}

const LABEL = /^[A-Za-z0-9_-]{1,64}$/;

export function parseLabels(text: string): Record<string, string> | string {
  const out: Record<string, string> = {};
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) return `'${part}' is not key=value`;
    const k = part.slice(0, eq).trim();
    if (!LABEL.test(k)) return `label key '${k}' must be 1 to 64 of A-Z a-z 0-9 _ -`;
    out[k] = part.slice(eq + 1).trim();
  }
  if (Object.keys(out).length === 0) return 'give at least one label as key=value';
  return out;
}

export function targetChooser(cmd: CommandView, prefix: string, initial: TargetFields = {}): TargetChooser {
  const mode = h('select', { id: `${prefix}-target`, 'data-testid': 'target-mode' },
    h('option', { value: 'default' }, 'default channel'),
    h('option', { value: 'channel' }, 'a channel'),
    h('option', { value: 'instance' }, 'an instance'),
    h('option', { value: 'all' }, 'all instances'),
    h('option', { value: 'labels' }, 'instances with labels'));
  const channel = h('select', { 'data-testid': 'target-channel' },
    ...cmd.channels.map((c) => h('option', { value: c }, c)));
  const instance = h('select', { 'data-testid': 'target-instance' },
    ...cmd.instances.map((i) => h('option', { value: i.guid }, `${i.hostname} (${i.guid.slice(0, 8)})`)));
  const labels = h('input', { type: 'text', placeholder: 'role=web, zone=a', 'data-testid': 'target-labels' });
  const extra = h('span', { class: 'target-extra' });

  if (initial.channel) { mode.value = 'channel'; channel.value = initial.channel; }
  else if (initial.instance) { mode.value = 'instance'; instance.value = initial.instance; }
  else if (initial.all_instances) mode.value = 'all';
  else if (initial.labels && Object.keys(initial.labels).length) {
    mode.value = 'labels';
    labels.value = Object.entries(initial.labels).map(([k, v]) => `${k}=${v}`).join(', ');
  }

  const show = () => {
    extra.replaceChildren();
    if (mode.value === 'channel') extra.append(channel);
    if (mode.value === 'instance') extra.append(instance);
    if (mode.value === 'labels') extra.append(labels);
  };
  mode.addEventListener('change', show);
  show();
  return {
    el: h('div', { class: 'field' }, h('label', { for: `${prefix}-target` }, 'Target'),
      h('div', { class: 'row' }, mode, extra)),
    value() {
      switch (mode.value) {
        case 'channel':
          return channel.value ? { channel: channel.value } : 'choose a channel';
        case 'instance':
          return instance.value ? { instance: instance.value } : 'choose an instance';
        case 'all':
          return { all_instances: true };
        case 'labels': {
          const l = parseLabels(labels.value);
          return typeof l === 'string' ? l : { labels: l };
        }
        default:
          return {};
      }
    },
  };
}
