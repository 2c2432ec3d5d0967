// One job: its record, live output (replayed from seq 1, then live), stop/kill/delete.

import { del, get, post } from '../api';
import { field, h, replace } from '../dom';
import { bytes, duration, shortId, when } from '../format';
import { canOnJob, can, socket } from '../session';
import { TerminalView } from '../terminal';
import { confirmDialog, notice, showError } from '../ui';
import { TERMINAL, isScheduled, type EndFrame, type Job, type JobView, type KillReply, type ScheduledJob } from '../types';
import { forgetJob } from './jobs';

/** States in which stop and kill apply (to a delayed job too: they cancel it). */
const ACTIVE = new Set<JobView['state']>(['queued', 'running', 'scheduled']);

export async function renderJob(root: HTMLElement, id: string, go: (hash: string) => void): Promise<() => void> {
  // a delayed job is a ScheduledJob until its time, then a Job
  let job = await get<JobView>(`/jobs/${encodeURIComponent(id)}`);
  let ended: EndFrame | null = null;
  let disposed = false;

  const stateEl = h('span', { class: 'state', 'data-testid': 'job-state' });
  const exitEl = h('span', { class: 'exit', 'data-testid': 'job-exit' });
  const details = h('dl', { class: 'details', 'data-testid': 'job-details' });
  const controls = h('div', { class: 'actions', 'data-testid': 'job-controls' });
  const reply = notice('control-reply');
  const term = new TerminalView(job.job_id);

  root.append(
    h('div', { class: 'job-head' },
      h('h1', null, 'Job ', h('span', { class: 'mono', 'data-testid': 'job-id' }, job.job_id)),
      h('div', { class: 'job-status' }, stateEl, exitEl)),
    controls, reply.el, term.el, h('section', { class: 'card' }, details));
  term.mount();

  /** The state to show: the record's, unless the output already said more. */
  const shownState = (): JobView['state'] => {
    if (TERMINAL.has(job.state)) return job.state;
    if (ended) return ended.state;
    return job.state;
  };

  const render = () => {
    const st = shownState();
    stateEl.textContent = st;
    stateEl.className = `state state-${st}`;
    const rec = isScheduled(job) ? undefined : job;
    const code = rec && TERMINAL.has(rec.state) ? rec.exit_code : ended?.exit_code ?? rec?.exit_code;
    const sig = rec && TERMINAL.has(rec.state) ? rec.signal : ended?.signal ?? rec?.signal;
    exitEl.textContent = code !== undefined && code !== null ? `exit ${code}` : sig ? `signal ${sig}` : '';
    exitEl.dataset.exitCode = code !== undefined && code !== null ? String(code) : '';
    renderControls(st);
    renderDetails();
  };

  const renderDetails = () => {
    if (isScheduled(job)) {
      renderWaiting(job);
      return;
    }
    const j = job;
    const started = j.started_at ? new Date(j.started_at).getTime() : NaN;
    const finished = j.finished_at ? new Date(j.finished_at).getTime() : NaN;
    const dur = j.duration_ms ?? (!isNaN(started) && !isNaN(finished) ? finished - started : undefined);
    replace(details,
      field('Command', h('span', { class: 'mono' }, j.command), 'job-command'),
      field('Parameters', h('code', null, JSON.stringify(j.params ?? {}))),
      j.argv && field('Argv', h('code', null, JSON.stringify(j.argv))),
      field('Target', h('code', null, JSON.stringify(j.target ?? {}))),
      field('Instance', j.instance ? h('span', null, h('span', { class: 'mono' }, j.instance), j.hostname ? ` (${j.hostname})` : '') : ''),
      field('Requested by', j.requested_by, 'job-requested-by'),
      field('Via', j.via ?? ''),
      field('Queued', when(j.queued_at)),
      field('Started', when(j.started_at)),
      field('Finished', when(j.finished_at)),
      field('Duration', duration(dur)),
      field('State', j.state),
      field('Exit code', j.exit_code !== undefined ? String(j.exit_code) : ''),
      j.signal && field('Signal', j.signal),
      j.error && field('Error', j.error, 'job-error'),
      j.ended_by && field('Ended by', j.ended_by, 'job-ended-by'),
      j.pid !== undefined && field('PID', String(j.pid)),
      j.peak_rss_bytes !== undefined && field('Peak memory', bytes(j.peak_rss_bytes)),
      j.output_bytes !== undefined && field('Output', bytes(j.output_bytes) + (j.output_truncated ? ' (truncated)' : '')),
      j.result !== undefined && field('Result', h('code', null, JSON.stringify(j.result))),
      j.group_id && field('Group', h('span', { class: 'mono' }, j.group_id)),
      j.attempt !== undefined && j.attempt > 1 && field('Attempt', String(j.attempt)));
  };

  /** A delayed job before its time: what was asked and when it is due. */
  const renderWaiting = (j: ScheduledJob) => {
    replace(details,
      field('Command', h('span', { class: 'mono' }, j.command), 'job-command'),
      field('Parameters', h('code', null, JSON.stringify(j.params ?? {}))),
      field('Requested by', j.requested_by, 'job-requested-by'),
      field('Not before', when(j.not_before)),
      field('State', j.state),
      field('Schedule', h('span', { class: 'mono' }, j.schedule_id)));
  };

  const control = async (mode: 'stop' | 'kill') => {
    const verb = mode === 'stop' ? 'Stop' : 'Kill';
    const what = job.state === 'queued' || job.state === 'scheduled' ? 'cancel it (it never starts)' : mode === 'stop' ? 'stop it gracefully' : 'kill its whole process tree';
    if (!(await confirmDialog(`${verb} job ${shortId(job.job_id)} (${job.command})? This will ${what}.`, verb))) return;
    reply.clear();
    try {
      const r = await post<KillReply>(`/jobs/${encodeURIComponent(job.job_id)}/${mode}`);
      reply.info(`${verb}: ${r.outcome}${r.signals?.length ? ` (${r.signals.join(', ')})` : ''} — ${r.message}`);
      void refresh();
    } catch (e) {
      reply.error(e);
    }
  };

  const renderControls = (st: JobView['state']) => {
    const mine = job.requested_by;
    const live = ACTIVE.has(st);
    replace(controls,
      live && canOnJob(mine, 'stop_own', 'stop_any') &&
        h('button', { 'data-testid': 'stop-button', onclick: () => void control('stop') }, st === 'running' ? 'Stop' : 'Cancel (stop)'),
      live && canOnJob(mine, 'kill_own', 'kill_any') &&
        h('button', { class: 'danger', 'data-testid': 'kill-button', onclick: () => void control('kill') }, st === 'running' ? 'Kill' : 'Cancel (kill)'),
      TERMINAL.has(st) && can('delete') && canOnJob(mine, 'delete', 'read_any') &&
        h('button', {
          class: 'danger', 'data-testid': 'delete-button',
          onclick: async () => {
            if (!(await confirmDialog(`Delete job ${shortId(job.job_id)} with its output?`, 'Delete'))) return;
            try {
              await del(`/jobs/${encodeURIComponent(job.job_id)}`);
              forgetJob(job.job_id);
              go('#/jobs');
            } catch (e) {
              reply.error(e);
            }
          },
        }, 'Delete'),
      h('a', { href: '#/jobs', class: 'button-link' }, 'All jobs'));
  };

  let refreshing = false;
  const refresh = async () => {
    if (refreshing || disposed) return;
    refreshing = true;
    try {
      const j = await get<JobView>(`/jobs/${encodeURIComponent(id)}`);
      // a terminal state is final: never go back to an older answer
      if (!(TERMINAL.has(job.state) && !TERMINAL.has(j.state))) job = j;
      if (!disposed) {
        render();
        follow();
      }
    } catch (e) {
      if (!disposed) showError(e);
    } finally {
      refreshing = false;
    }
  };

  render();
  // A delayed job has no output until it is queued at its time: follow it from then on.
  let unsubscribe: (() => void) | null = null;
  const follow = () => {
    if (unsubscribe || disposed || job.state === 'scheduled') return;
    unsubscribe = subscribe();
  };
  const subscribe = () => socket().subscribe(job.job_id, 1, {
    chunk(c) {
      if (job.state === 'queued') {
        job = { ...job, state: 'running' } satisfies Job; // output means it runs; the record follows
        render();
      }
      term.write(c.stream, c.bytes);
    },
    end(e) {
      ended = e;
      render();
      void term.flushed().then(() => { if (!disposed) term.el.dataset.ended = 'true'; });
      void refresh();
    },
    error(message) {
      showError(`Output: ${message}`);
    },
  });
  follow();
  // the record changes beside the output (claimed, ended, extra fields from the audit store)
  const timer = window.setInterval(() => {
    const rec = isScheduled(job) ? undefined : job;
    if (!rec || !TERMINAL.has(rec.state) || (rec.output_bytes === undefined && Date.now() - (rec.finished_at ? new Date(rec.finished_at).getTime() : 0) < 15_000)) {
      void refresh();
    }
  }, 1500);

  return () => {
    disposed = true;
    window.clearInterval(timer);
    unsubscribe?.();
    term.dispose();
  };
}

