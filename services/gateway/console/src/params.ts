// A form generated from a command's ParamSpec list (protocol.md section 8), with the same
// checks the gateway makes, shown per field before submitting.

import { h, replace } from './dom';
import type { ParamSpec } from './types';

export interface ParamsForm {
  el: HTMLElement;
  /** The values to send, or null when a field is invalid (messages are shown). */
  values(): Record<string, unknown> | null;
  /** Shows a server refusal `parameter '<name>': <rule>` at its field; false if none matched. */
  showServerError(message: string): boolean;
  onChange(f: () => void): void;
}

type Control = HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;

interface Field { spec: ParamSpec; control: Control; error: HTMLElement }

const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

function patternRe(p: string): RegExp | null {
  try {
    return new RegExp(`^(?:${p})$`, 'u');
  } catch {
    try {
      return new RegExp(`^(?:${p})$`);
    } catch {
      return null; // the server checks it
    }
  }
}

/** Checks one raw input value; returns [value to send or undefined to omit, error]. */
export function check(spec: ParamSpec, raw: string): [unknown, string | null] {
  const empty = raw === '';
  if (empty) {
    if (spec.required && spec.default === undefined) return [undefined, 'is required'];
    return [undefined, null];
  }
  switch (spec.type) {
    case 'integer': {
      const t = raw.trim();
      if (!/^[+-]?\d+$/.test(t)) return [undefined, 'must be an integer'];
      const n = Number(t);
      if (!Number.isSafeInteger(n)) return [undefined, 'must be an integer that fits in 64 bits'];
      if (spec.min !== undefined && n < spec.min) return [undefined, `must be at least ${spec.min}`];
      if (spec.max !== undefined && n > spec.max) return [undefined, `must be at most ${spec.max}`];
      return [n, null];
    }
    case 'number': {
      const n = Number(raw.trim());
      if (!Number.isFinite(n)) return [undefined, 'must be a number'];
      if (spec.min !== undefined && n < spec.min) return [undefined, `must be at least ${spec.min}`];
      if (spec.max !== undefined && n > spec.max) return [undefined, `must be at most ${spec.max}`];
      return [n, null];
    }
    case 'boolean':
      if (raw !== 'true' && raw !== 'false') return [undefined, 'must be true or false'];
      return [raw === 'true', null];
    case 'enum':
      if (!(spec.values ?? []).includes(raw)) {
        return [undefined, `must be one of ${(spec.values ?? []).join(', ')}`];
      }
      return [raw, null];
    default: {
      // string (and anything unknown is sent as a string for the server to judge)
      const max = spec.max_len ?? 256;
      if ([...raw].length > max) return [undefined, `must be at most ${max} characters long`];
      if (raw.includes('\u0000')) return [undefined, 'must not contain NUL'];
      const rest = spec.multiline ? raw.replace(/[\n\t]/g, '') : raw;
      if (CONTROL_CHARS.test(rest)) {
        return [undefined, spec.multiline
          ? 'must not contain control characters other than newline and tab'
          : 'must not contain control characters'];
      }
      if (raw.startsWith('-') && !spec.allow_leading_dash) {
        return [undefined, "must not start with '-' (it could be read as an option)"];
      }
      if (spec.pattern !== undefined) {
        const re = patternRe(spec.pattern);
        if (re && !re.test(raw)) return [undefined, `must match the pattern ${spec.pattern}`];
      }
      return [raw, null];
    }
  }
}

function rules(spec: ParamSpec): string {
  const r: string[] = [spec.type];
  if (spec.min !== undefined) r.push(`min ${spec.min}`);
  if (spec.max !== undefined) r.push(`max ${spec.max}`);
  if (spec.pattern !== undefined) r.push(`pattern ${spec.pattern}`);
  if (spec.max_len !== undefined) r.push(`up to ${spec.max_len} characters`);
  if (spec.default !== undefined) r.push(`default ${JSON.stringify(spec.default)}`);
  return r.join(' · ');
}

function control(spec: ParamSpec, id: string, initial: unknown): Control {
  const testid = `param-${spec.name}`;
  const init = initial !== undefined ? initial : spec.default;
  const initText = init === undefined || init === null ? '' : String(init);
  if (spec.type === 'enum' || spec.type === 'boolean') {
    const values = spec.type === 'enum' ? (spec.values ?? []) : ['true', 'false'];
    const sel = h('select', { id, name: spec.name, 'data-testid': testid });
    const blank = spec.default !== undefined ? `(default: ${String(spec.default)})` : '(not set)';
    sel.append(h('option', { value: '' }, blank));
    for (const v of values) sel.append(h('option', { value: v }, v));
    sel.value = initial !== undefined ? initText : '';
    return sel;
  }
  if (spec.type === 'string' && spec.multiline) {
    return h('textarea', { id, name: spec.name, rows: 3, 'data-testid': testid, value: initText });
  }
  const numeric = spec.type === 'integer' || spec.type === 'number';
  return h('input', {
    id, name: spec.name, 'data-testid': testid,
    type: spec.secret ? 'password' : 'text',
    inputmode: numeric ? (spec.type === 'integer' ? 'numeric' : 'decimal') : null,
    autocomplete: 'off',
    spellcheck: 'false',
    value: spec.secret ? '' : initText,
    placeholder: spec.default !== undefined ? String(spec.default) : '',
  });
}

/** Builds the form; `initial` pre-fills values (e.g. a schedule's params). */
export function paramsForm(specs: ParamSpec[], prefix: string, initial: Record<string, unknown> = {}): ParamsForm {
  const fields: Field[] = [];
  const listeners: (() => void)[] = [];
  const el = h('div', { class: 'params', 'data-testid': 'params-form' });
  if (specs.length === 0) el.append(h('p', { class: 'hint' }, 'This command takes no parameters.'));
  for (const spec of specs) {
    const id = `${prefix}-param-${spec.name}`;
    const c = control(spec, id, initial[spec.name]);
    const error = h('div', { class: 'field-error', 'data-testid': `param-error-${spec.name}`, hidden: true });
    const f: Field = { spec, control: c, error };
    fields.push(f);
    const validate = () => {
      const [, err] = check(spec, c.value);
      setError(f, err);
      for (const l of listeners) l();
    };
    c.addEventListener('input', validate);
    c.addEventListener('change', validate);
    el.append(h('div', { class: 'field' },
      h('label', { for: id }, spec.name, spec.required && spec.default === undefined ? h('span', { class: 'req' }, ' *') : null),
      c,
      h('div', { class: 'hint' }, spec.description ? `${spec.description} — ` : '', rules(spec)),
      error));
  }
  return {
    el,
    values() {
      const out: Record<string, unknown> = {};
      let ok = true;
      for (const f of fields) {
        const [v, err] = check(f.spec, f.control.value);
        setError(f, err);
        if (err) ok = false;
        else if (v !== undefined) out[f.spec.name] = v;
      }
      return ok ? out : null;
    },
    showServerError(message) {
      const m = /^parameter '([^']+)': (.*)$/s.exec(message);
      const f = m && fields.find((x) => x.spec.name === m[1]);
      if (!f || !m) return false;
      setError(f, m[2]);
      return true;
    },
    onChange(f) {
      listeners.push(f);
    },
  };
}

function setError(f: Field, err: string | null): void {
  replace(f.error, err ? `${f.spec.name} ${err}` : '');
  f.error.hidden = !err;
  f.control.setAttribute('aria-invalid', err ? 'true' : 'false');
}
