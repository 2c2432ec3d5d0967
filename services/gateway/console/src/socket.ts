// The multiplexed WebSocket (GET /api/v1/ws, protocol.md section 10): job output
// subscriptions and the live job feed (watch_jobs), reconnecting with backoff and resuming
// each subscription from the chunk after the last one received. Chunks are taken strictly in
// sequence: frames left over from an earlier subscription of the same job, or a gap, make it
// resubscribe from the next sequence it needs, so output is neither lost nor repeated.

import { notifyUnauthorized } from './api';
import { BINARY_PROTOCOL, decodeBase64, decodeBinaryChunk } from './binary';
import type { EndFrame, Frame, Job, OutputChunk } from './types';

/** The server closes with this code when the token no longer authenticates. */
const CLOSE_UNAUTHORIZED = 4001;

export interface SubHandlers {
  chunk(c: OutputChunk): void;
  end(e: EndFrame): void;
  error(message: string): void;
}

interface Sub {
  handlers: SubHandlers;
  lastSeq: number;
  ended: boolean;
  resyncing: boolean;
  retry?: number;
  retryWait?: number;
}

/** Subscribe refusals that asking again cannot change; anything else is retried. */
const FINAL_REFUSALS = new Set(['forbidden', 'not_found', 'invalid_request', 'unauthorized']);

/** A live job list: `watching` is called each time the server says the watch is in place
 * (first time and after every reconnect); reload the list then and apply later frames. */
export interface Watcher {
  job(j: Job): void;
  removed(jobId: string): void;
  watching(): void;
}

export type Status = 'connecting' | 'open' | 'closed';

export class Mux {
  private ws: WebSocket | null = null;
  private subs = new Map<string, Sub>();
  private watchers = new Set<Watcher>();
  private watchRetry: number | undefined;
  private statusListeners = new Set<(s: Status) => void>();
  private errorListener: (msg: string) => void = () => {};
  private backoff = 500;
  private timer: number | undefined;
  private closedForGood = false;

  constructor(private token: string) {}

  onStatus(f: (s: Status) => void): () => void {
    this.statusListeners.add(f);
    return () => this.statusListeners.delete(f);
  }
  /** Errors not tied to a subscription (e.g. an operation the server refused). */
  onError(f: (msg: string) => void): void {
    this.errorListener = f;
  }

  status: Status = 'closed';

  private setStatus(s: Status): void {
    this.status = s;
    for (const f of this.statusListeners) f(s);
  }

  private url(): string {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${location.host}/api/v1/ws`;
  }

  private ensure(): void {
    if (this.closedForGood || this.ws) return;
    this.setStatus('connecting');
    // Binary chunk frames when the server offers them; JSON ones from an older server.
    const ws = new WebSocket(this.url(), [BINARY_PROTOCOL, 'taskwire', `bearer.${this.token}`]);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 500;
      this.setStatus('open');
      if (this.watchers.size > 0) this.send({ op: 'watch_jobs' });
      for (const [id, s] of this.subs) {
        if (s.ended) continue;
        if (s.retry !== undefined) window.clearTimeout(s.retry); // asked again right here
        s.retry = undefined;
        s.resyncing = false;
        this.send({ op: 'subscribe', job_id: id, from_seq: s.lastSeq + 1 });
      }
    };
    ws.onmessage = (ev) => this.dispatch(ev.data);
    ws.onclose = (ev) => {
      if (this.ws === ws) this.ws = null;
      this.setStatus('closed');
      if (ev.code === CLOSE_UNAUTHORIZED) {
        // the token expired: no reconnecting with it, sign in again
        this.close();
        notifyUnauthorized(ev.reason || 'The session ended: sign in again.');
        return;
      }
      this.scheduleReconnect();
    };
    ws.onerror = () => {
      // onclose follows and reconnects
    };
  }

  private wanted(): boolean {
    if (this.watchers.size > 0) return true;
    for (const s of this.subs.values()) if (!s.ended) return true;
    return false;
  }

  private scheduleReconnect(): void {
    if (this.closedForGood || !this.wanted() || this.timer !== undefined) return;
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, 10_000);
    this.timer = window.setTimeout(() => {
      this.timer = undefined;
      this.ensure();
    }, wait);
  }

  private send(msg: unknown): void {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
    else this.ensure(); // sent from onopen
  }

  private dispatch(data: unknown): void {
    if (data instanceof ArrayBuffer) {
      const c = decodeBinaryChunk(data);
      if (c) this.chunk(c);
      return;
    }
    if (typeof data !== 'string') return;
    let m: Frame;
    try {
      m = JSON.parse(data);
    } catch {
      return;
    }
    if (typeof m !== 'object' || m === null) return;
    switch (m.type) {
      case 'chunk':
        this.chunk({ job_id: m.job_id, seq: m.seq, stream: m.stream, bytes: decodeBase64(m.data) });
        return;
      case 'end': {
        const s = this.subs.get(m.job_id);
        // an end before all its chunks arrived belongs to an earlier subscription
        if (!s || s.ended || m.last_seq > s.lastSeq) return;
        s.ended = true;
        s.handlers.end(m);
        return;
      }
      case 'slow': {
        // that subscription was dropped for falling behind: resume after the last chunk shown
        // (a late frame of an earlier subscription only causes one harmless resubscribe)
        const s = this.subs.get(m.job_id);
        if (!s || s.ended) return;
        s.resyncing = true;
        this.send({ op: 'subscribe', job_id: m.job_id, from_seq: s.lastSeq + 1 });
        return;
      }
      case 'watching':
        for (const w of this.watchers) w.watching();
        return;
      case 'job':
        for (const w of this.watchers) w.job(m.job);
        return;
      case 'job_removed':
        for (const w of this.watchers) w.removed(m.job_id);
        return;
      case 'error': {
        const msg = m.error?.message ?? 'the server refused an operation';
        const s = m.job_id ? this.subs.get(m.job_id) : undefined;
        if (s && m.job_id) {
          if (s.ended) return;
          if (FINAL_REFUSALS.has(m.error?.code)) {
            s.ended = true; // refused: not asked again on reconnect
            s.handlers.error(msg);
          } else {
            this.retrySubscribe(m.job_id, s); // the server could not serve it now
          }
          return;
        }
        this.errorListener(msg);
        if (m.op === 'watch_jobs' && m.error?.code !== 'forbidden') this.retryWatch();
        return;
      }
      default:
        // submitted and control answer operations this page does not send; newer types
        return;
    }
  }

  /** Follows a job's output from `fromSeq`; returns the unsubscribe function. */
  private chunk(c: OutputChunk): void {
    const s = this.subs.get(c.job_id);
    if (!s || s.ended || c.seq <= s.lastSeq) return; // a repeat after a resume
    if (c.seq !== s.lastSeq + 1) {
      // a gap (a frame of an earlier subscription, or one lost): ask for what is missing
      if (!s.resyncing) {
        s.resyncing = true;
        this.send({ op: 'subscribe', job_id: c.job_id, from_seq: s.lastSeq + 1 });
      }
      return;
    }
    s.resyncing = false;
    s.retryWait = undefined;
    s.lastSeq = c.seq;
    s.handlers.chunk(c);
  }

  subscribe(jobId: string, fromSeq: number, handlers: SubHandlers): () => void {
    const sub: Sub = { handlers, lastSeq: fromSeq - 1, ended: false, resyncing: false };
    this.subs.set(jobId, sub);
    this.send({ op: 'subscribe', job_id: jobId, from_seq: fromSeq });
    return () => {
      if (this.subs.get(jobId) !== sub) return;
      this.subs.delete(jobId);
      if (sub.retry !== undefined) window.clearTimeout(sub.retry);
      if (!sub.ended && this.ws && this.ws.readyState === WebSocket.OPEN) {
        this.ws.send(JSON.stringify({ op: 'unsubscribe', job_id: jobId }));
      }
    };
  }

  /** Receives every new job, state change and deletion the caller may read. */
  watchJobs(w: Watcher): () => void {
    const first = this.watchers.size === 0;
    this.watchers.add(w);
    if (first) this.send({ op: 'watch_jobs' });
    return () => {
      if (!this.watchers.delete(w) || this.watchers.size > 0) return;
      if (this.watchRetry !== undefined) window.clearTimeout(this.watchRetry);
      this.watchRetry = undefined;
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ op: 'unwatch_jobs' }));
    };
  }

  /** Asks again for a job's output after a pause, unless it ended or was left meanwhile. */
  private retrySubscribe(jobId: string, s: Sub): void {
    if (s.retry !== undefined) return;
    const wait = s.retryWait ?? 2000;
    s.retryWait = Math.min(wait * 2, 30_000); // back off: each refusal is audited
    s.retry = window.setTimeout(() => {
      s.retry = undefined;
      if (this.subs.get(jobId) === s && !s.ended) {
        this.send({ op: 'subscribe', job_id: jobId, from_seq: s.lastSeq + 1 });
      }
    }, wait);
  }

  /** The server interrupted the watch: ask again after a pause (the list reloads on `watching`). */
  private retryWatch(): void {
    if (this.watchRetry !== undefined || this.watchers.size === 0) return;
    this.watchRetry = window.setTimeout(() => {
      this.watchRetry = undefined;
      if (this.watchers.size > 0) this.send({ op: 'watch_jobs' });
    }, 3000);
  }

  close(): void {
    this.closedForGood = true;
    if (this.timer !== undefined) window.clearTimeout(this.timer);
    if (this.watchRetry !== undefined) window.clearTimeout(this.watchRetry);
    for (const s of this.subs.values()) if (s.retry !== undefined) window.clearTimeout(s.retry);
    this.subs.clear();
    this.watchers.clear();
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }
}
