// A tiny DOM helper. Text is always set as text nodes, never parsed as HTML: every string
// from the server is treated as hostile.

import { when } from './format';

export type Child = Node | string | number | null | undefined | false | Child[];
type Handler = (ev: any) => void;
export type Attrs = Record<string, string | number | boolean | Handler | null | undefined>;

/** Creates an element: `on*` attributes become listeners, `class`/`data-*`/others attributes,
 * `value`/`checked`/`disabled`/`selected` properties. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') {
        el.addEventListener(k.slice(2), v as EventListener);
      } else if (k === 'value' || k === 'checked' || k === 'selected' || k === 'disabled') {
        (el as any)[k] = v;
      } else {
        el.setAttribute(k, v === true ? '' : String(v));
      }
    }
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Replaces all children of `el`. */
export function replace(el: Node, ...children: Child[]): void {
  while (el.firstChild) el.removeChild(el.firstChild);
  append(el, children);
}

/** A label + value row for a definition list. */
export function field(label: string, value: Child, testid?: string): HTMLElement[] {
  return [h('dt', null, label), h('dd', testid ? { 'data-testid': testid } : null, value)];
}

/** A time as `when` writes it, for a table cell that may wrap: it breaks only between the
 * date and the time (never at a date's hyphens). */
export function whenBreakable(iso: string | null | undefined): Child {
  const s = when(iso);
  const space = s.indexOf(' ');
  if (space < 0) return s;
  return [h('span', { class: 'nowrap' }, s.slice(0, space)), ' ', h('span', { class: 'nowrap' }, s.slice(space + 1))];
}
