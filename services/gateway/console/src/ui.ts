// Shared page furniture: the error banner, notices and the in-page confirmation dialog.

import { h, replace } from './dom';
import { errorMessage } from './api';

const banner = h('div', { class: 'banner', role: 'alert', 'data-testid': 'error-banner', hidden: true });

export function bannerElement(): HTMLElement {
  return banner;
}

/** Shows an error to the user (the server's message when there is one). */
export function showError(e: unknown): void {
  replace(banner,
    h('span', { class: 'banner-text', 'data-testid': 'error-text' }, errorMessage(e)),
    h('button', { class: 'link', onclick: clearError, 'aria-label': 'Dismiss' }, '×'));
  banner.hidden = false;
}

export function clearError(): void {
  replace(banner);
  banner.hidden = true;
}

/** Asks in the page (not window.confirm); resolves true on yes. */
export function confirmDialog(question: string, yes = 'Yes'): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (v: boolean) => {
      overlay.remove();
      document.removeEventListener('keydown', onKey);
      resolve(v);
    };
    const onKey = (ev: KeyboardEvent) => {
      if (ev.key === 'Escape') done(false);
    };
    const overlay = h('div', { class: 'overlay' },
      h('div', { class: 'dialog', role: 'dialog', 'aria-modal': 'true', 'data-testid': 'confirm-dialog' },
        h('p', null, question),
        h('div', { class: 'actions' },
          h('button', { class: 'danger', 'data-testid': 'confirm-yes', onclick: () => done(true) }, yes),
          h('button', { 'data-testid': 'confirm-no', onclick: () => done(false) }, 'Cancel'))));
    document.addEventListener('keydown', onKey);
    document.body.appendChild(overlay);
    (overlay.querySelector('[data-testid="confirm-no"]') as HTMLElement).focus();
  });
}

/** A small message area that shows an error in red or a note in normal text. */
export function notice(testid: string): { el: HTMLElement; error(e: unknown): void; info(t: string): void; clear(): void } {
  const el = h('div', { class: 'notice', 'data-testid': testid, hidden: true });
  return {
    el,
    error(e) {
      el.className = 'notice error';
      replace(el, errorMessage(e));
      el.hidden = false;
    },
    info(t) {
      el.className = 'notice';
      replace(el, t);
      el.hidden = false;
    },
    clear() {
      replace(el);
      el.hidden = true;
    },
  };
}
