// Sign in with an API token (kept in sessionStorage only, for this browser session).

import { errorMessage } from '../api';
import { h } from '../dom';
import { notice } from '../ui';
import type { Me } from '../types';

export function renderSignin(root: HTMLElement, opts: {
  message: string;
  onSignedIn: (me: Me, token: string) => void | Promise<void>;
}): void {
  const msg = notice('signin-error');
  if (opts.message) msg.error(opts.message);
  const input = h('input', {
    type: 'password', id: 'token', name: 'token', autocomplete: 'off', required: true,
    placeholder: 'API token', 'data-testid': 'token-input',
  });
  const button = h('button', { type: 'submit', class: 'primary', 'data-testid': 'signin-button' }, 'Sign in');
  const form = h('form', {
    class: 'card signin',
    onsubmit: async (ev: Event) => {
      ev.preventDefault();
      const token = input.value.trim();
      if (!token) {
        msg.error('Enter an API token.');
        return;
      }
      button.disabled = true;
      msg.clear();
      try {
        // Checked with this token only; nothing is stored until it is accepted.
        const me = await get_me(token);
        await opts.onSignedIn(me, token);
      } catch (e) {
        msg.error(errorMessage(e));
      } finally {
        button.disabled = false;
      }
    },
  },
  h('h1', null, 'Sign in'),
  h('label', { for: 'token' }, 'API token'),
  input,
  h('p', { class: 'hint' }, 'The token is kept for this browser tab only and sent as a bearer token.'),
  msg.el,
  h('div', { class: 'actions' }, button));
  root.append(form);
  input.focus();
}

async function get_me(token: string): Promise<Me> {
  const res = await fetch('/api/v1/me', { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store' });
  if (!res.ok) {
    let message = `the gateway answered ${res.status} ${res.statusText}`;
    try {
      const j = await res.json();
      if (j?.error?.message) message = String(j.error.message);
    } catch {
      // keep the status line
    }
    throw new Error(message);
  }
  return (await res.json()) as Me;
}

