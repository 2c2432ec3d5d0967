// The output terminal of a job page: xterm.js fed with the chunk bytes as they are, so ANSI
// colours and `\r` progress bars render in place. stderr is drawn in red and `system` lines
// (PROCESS KILLED BY ...) in bold yellow. A hidden element keeps the plain text of everything
// received, for copying and for tests.

import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { blob, errorMessage } from './api';
import { h, replace } from './dom';
import { showError } from './ui';

const RED = '\x1b[31m';
const SYSTEM = '\x1b[1;33m';
const RESET = '\x1b[0m';
/** Characters of plain output kept beside the terminal. */
const TEXT_CAP = 8 * 1024 * 1024;

/** Output pipes carry bare `\n`: without a tty's onlcr, xterm would only move down a row.
 * `convertEol` stays false and the translation is done here, leaving `\r` alone. */
function onlcr(b: Uint8Array, prevCr: boolean): Uint8Array {
  let n = 0;
  for (let i = 0; i < b.length; i++) if (b[i] === 10 && !(i > 0 ? b[i - 1] === 13 : prevCr)) n++;
  if (n === 0) return b;
  const out = new Uint8Array(b.length + n);
  let j = 0;
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 10 && !(i > 0 ? b[i - 1] === 13 : prevCr)) out[j++] = 13;
    out[j++] = b[i];
  }
  return out;
}

export class TerminalView {
  readonly el: HTMLElement;
  private term: Terminal;
  private fit = new FitAddon();
  private text: HTMLElement;
  private counts: Record<string, number> = { stdout: 0, stderr: 0, system: 0 };
  private countsEl: HTMLElement;
  private decoders: Record<string, TextDecoder> = {};
  private follow = true;
  private followBtn: HTMLButtonElement;
  private lastCr = false;
  private textChars = 0;
  private onResize = () => this.refit();
  private host: HTMLElement;

  constructor(private jobId: string) {
    this.term = new Terminal({
      convertEol: false,
      disableStdin: true,
      cursorBlink: false,
      scrollback: 100_000,
      fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace',
      fontSize: 13,
      theme: { background: '#0d1117', foreground: '#d6dde6' },
      // OSC 8 hyperlinks in job output open only web addresses, in a new tab, after asking
      linkHandler: {
        allowNonHttpProtocols: false,
        activate: (_e, uri) => {
          if (!/^https?:\/\//i.test(uri)) return;
          if (window.confirm(`Open this link from the job's output?\n\n${uri}`)) {
            window.open(uri, '_blank', 'noopener,noreferrer');
          }
        },
      },
    });
    this.term.loadAddon(this.fit);
    this.host = h('div', { class: 'term-host', 'data-testid': 'terminal' });
    this.text = h('pre', { class: 'output-text', 'data-testid': 'output-text', hidden: true, 'aria-hidden': 'true' });
    this.countsEl = h('span', { class: 'stream-counts', 'data-testid': 'stream-counts' });
    this.followBtn = h('button', {
      type: 'button', 'data-testid': 'follow-toggle', 'aria-pressed': 'true',
      onclick: () => this.setFollow(!this.follow),
    }, 'Following');
    // the job page sets `data-ended="true"` here once the end arrived after all the output
    this.el = h('section', { class: 'terminal card', 'data-testid': 'job-output' },
      h('div', { class: 'term-toolbar' },
        h('strong', null, 'Output'),
        this.countsEl,
        h('span', { class: 'spacer' }),
        this.followBtn,
        h('button', { type: 'button', 'data-testid': 'copy-button', onclick: () => void this.copy() }, 'Copy'),
        h('button', { type: 'button', 'data-testid': 'download-button', onclick: () => void this.download() }, 'Download log')),
      this.host,
      this.text);
    this.renderCounts();
  }

  /** Call once `el` is in the document. */
  mount(): void {
    this.term.open(this.host);
    this.refit();
    window.addEventListener('resize', this.onResize);
  }

  dispose(): void {
    window.removeEventListener('resize', this.onResize);
    this.term.dispose();
  }

  private refit(): void {
    try {
      this.fit.fit();
    } catch {
      // not laid out yet
    }
  }

  setFollow(on: boolean): void {
    this.follow = on;
    this.followBtn.textContent = on ? 'Following' : 'Paused';
    this.followBtn.setAttribute('aria-pressed', String(on));
    if (on) this.term.scrollToBottom();
  }

  write(stream: string, data: Uint8Array): void {
    this.counts[stream] = (this.counts[stream] ?? 0) + data.length;
    this.renderCounts();
    const dec = (this.decoders[stream] ??= new TextDecoder('utf-8'));
    // the plain text is for copying and tests; past TEXT_CAP the terminal and Download have it
    if (this.textChars < TEXT_CAP) {
      const t = dec.decode(data, { stream: true });
      this.textChars += t.length;
      this.text.append(t);
    }
    const bytes = onlcr(data, this.lastCr);
    if (data.length) this.lastCr = data[data.length - 1] === 13;
    const keep = this.follow ? -1 : this.term.buffer.active.viewportY;
    const after = () => {
      if (keep < 0) this.term.scrollToBottom();
      else this.term.scrollToLine(keep);
    };
    if (stream === 'stderr') {
      this.term.write(RED);
      this.term.write(bytes);
      this.term.write(RESET, after);
    } else if (stream === 'system') {
      this.term.write(SYSTEM);
      this.term.write(bytes);
      this.term.write(RESET, after);
    } else {
      this.term.write(bytes, after);
    }
  }

  /** Resolves once everything written so far is parsed and drawn. */
  flushed(): Promise<void> {
    return new Promise((resolve) => this.term.write('', () => resolve()));
  }

  reset(): void {
    this.term.reset();
    replace(this.text);
    this.textChars = 0;
    this.counts = { stdout: 0, stderr: 0, system: 0 };
    this.decoders = {};
    this.lastCr = false;
    this.renderCounts();
  }

  private renderCounts(): void {
    const c = this.counts;
    replace(this.countsEl,
      h('span', { 'data-stream': 'stdout' }, `stdout ${c.stdout} B`), ' · ',
      h('span', { class: 'stderr', 'data-stream': 'stderr' }, `stderr ${c.stderr} B`), ' · ',
      h('span', { class: 'system', 'data-stream': 'system' }, `system ${c.system} B`));
  }

  private wholeBuffer(): string {
    const b = this.term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < b.length; i++) {
      const line = b.getLine(i);
      if (!line) continue;
      const s = line.translateToString(true);
      if (line.isWrapped && lines.length) lines[lines.length - 1] += s;
      else lines.push(s);
    }
    while (lines.length && lines[lines.length - 1] === '') lines.pop();
    return lines.join('\n') + '\n';
  }

  private async copy(): Promise<void> {
    const text = this.term.hasSelection() ? this.term.getSelection() : this.wholeBuffer();
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const ta = h('textarea', { class: 'offscreen', value: text });
      document.body.append(ta);
      ta.select();
      const ok = document.execCommand('copy');
      ta.remove();
      if (!ok) showError('The browser did not allow copying to the clipboard.');
    }
  }

  private async download(): Promise<void> {
    try {
      const b = await blob(`/jobs/${encodeURIComponent(this.jobId)}/output`);
      const url = URL.createObjectURL(b);
      const a = h('a', { href: url, download: `${this.jobId}.log`, class: 'offscreen' });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e) {
      showError(`Download failed: ${errorMessage(e)}`);
    }
  }
}
