// The multiplexed WebSocket (GET /api/v1/ws, protocol.md section 10): job output
// subscriptions and the live job feed (watch_jobs), reconnecting with backoff and resuming
// each subscription from the chunk after the last one received.

import type { Job } from './types';

export interface Chunk { type: 'chunk'; job_id: string; seq: number; stream: string; data: string }
export interface End {
  type: 'end'; job_id: string; state: string; exit_code?: number; signal?: string;
  error?: string; result?: unknown; last_seq: number;
}

export interface SubHandlers {
  chunk(c: Chunk): void;
  end(e: End): void;
  error(message: string): void;
}

interface Sub { handlers: SubHandlers; lastSeq: number; ended: boolean }

export type Status = 'connecting' | 'open' | 'closed';

export class Mux {
  private ws: WebSocket | null = null;
  private subs = new Map<string, Sub>();
  private watchers = new Set<(j: Job) => void>();
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
    const ws = new WebSocket(this.url(), ['taskwire', `bearer.${this.token}`]);
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 500;
      this.setStatus('open');
      if (this.watchers.size > 0) this.send({ op: 'watch_jobs' });
      for (const [id, s] of this.subs) {
        if (!s.ended) this.send({ op: 'subscribe', job_id: id, from_seq: s.lastSeq + 1 });
      }
    };
    ws.onmessage = (ev) => this.dispatch(ev.data);
    ws.onclose = () => {
      if (this.ws === ws) this.ws = null;
      this.setStatus('closed');
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
    if (typeof data !== 'string') return;
    let m: any;
    try {
      m = JSON.parse(data);
    } catch {
      return;
    }
    switch (m.type) {
      case 'chunk': {
        const s = this.subs.get(m.job_id);
        if (!s || m.seq <= s.lastSeq) return; // duplicate after a resume
        s.lastSeq = m.seq;
        s.handlers.chunk(m as Chunk);
        return;
      }
      case 'end': {
        const s = this.subs.get(m.job_id);
        if (!s) return;
        s.ended = true;
        s.handlers.end(m as End);
        return;
      }
      case 'slow': {
        const s = this.subs.get(m.job_id);
        if (!s) return;
        s.lastSeq = Math.max(0, Number(m.from_seq) - 1);
        this.send({ op: 'subscribe', job_id: m.job_id, from_seq: m.from_seq });
        return;
      }
      case 'job':
        if (m.job) for (const f of this.watchers) f(m.job as Job);
        return;
      case 'error': {
        const msg = m.error?.message ?? 'the server refused an operation';
        if (m.job_id && this.subs.has(m.job_id)) this.subs.get(m.job_id)!.handlers.error(msg);
        else this.errorListener(msg);
        return;
      }
      default:
        return;
    }
  }

  /** Follows a job's output from `fromSeq`; returns the unsubscribe function. */
  subscribe(jobId: string, fromSeq: number, handlers: SubHandlers): () => void {
    const sub: Sub = { handlers, lastSeq: fromSeq - 1, ended: false };
    this.subs.set(jobId, sub);
    this.send({ op: 'subscribe', job_id: jobId, from_seq: fromSeq });
    return () => {
      if (this.subs.get(jobId) !== sub) return;
      this.subs.delete(jobId);
      if (!sub.ended && this.ws && this.ws.readyState === WebSocket.OPEN) {
        this.ws.send(JSON.stringify({ op: 'unsubscribe', job_id: jobId }));
      }
    };
  }

  /** Receives every new job and state change the caller may read. */
  watchJobs(f: (j: Job) => void): () => void {
    const first = this.watchers.size === 0;
    this.watchers.add(f);
    if (first) this.send({ op: 'watch_jobs' });
    return () => {
      this.watchers.delete(f);
    };
  }

  close(): void {
    this.closedForGood = true;
    if (this.timer !== undefined) window.clearTimeout(this.timer);
    this.subs.clear();
    this.watchers.clear();
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }
}
