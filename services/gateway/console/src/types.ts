// JSON shapes of the gateway's API and socket, each mirroring one Rust type (its test pins
// the JSON). Change the Rust type first, then its mirror here: a field Rust skips when empty
// (`skip_serializing_if`) is optional here, one it always sends is required.
//
//   TypeScript                 Rust type, in shared/core/src/
//   Permission, Me,            wire/api/mod.rs
//     CommandView, ErrorDetail
//   ParamSpec                  catalog/param.rs
//   JobState, Target, Via      wire/job.rs
//   Job                        JobRecord (wire/job.rs), or StoredJob (wire/history.rs): the
//                              record and what only the audit store keeps
//   ScheduledJob               wire/api/jobs.rs: a delayed job not yet queued, the only
//                              thing in state `scheduled`
//   JobView                    wire/api/jobs.rs (GET /api/v1/jobs/{id}: ScheduledJob or Job)
//   JobList, GroupView,        wire/api/jobs.rs (GET and POST /api/v1/jobs)
//     Submitted
//   KillReply                  wire/kill.rs
//   InstanceInfo               wire/instance.rs
//   Schedule, Timing,          wire/schedule.rs
//     FireRecord
//   ScheduleView, ScheduleList wire/api/schedules.rs (Schedule + state + next_fires)
//     FirePreview, FireHistory
//   AuditEvent                 wire/audit.rs
//   AuditPage                  wire/history.rs (GET /api/v1/audit)
//   Frame, EndFrame,           wire/api/frames.rs (every frame the multiplexed socket sends,
//     ChunkFrame                tagged by `type`)

export type Permission =
  | 'run' | 'read_own' | 'read_any' | 'stop_own' | 'stop_any' | 'kill_own' | 'kill_any'
  | 'delete' | 'manage_schedules' | 'read_audit' | 'read_instances';

/** GET /api/v1/me */
export interface Me {
  user: string;
  roles: string[];
  super_user: boolean;
  permissions: Permission[];
}

/** ParamSpec (protocol.md section 8): common fields plus the rule fields of `type`. */
export interface ParamSpec {
  name: string;
  description?: string;
  required: boolean;
  default?: unknown;
  type: 'string' | 'integer' | 'enum' | 'boolean' | string;
  pattern?: string;
  max_len?: number;
  allow_leading_dash?: boolean;
  multiline?: boolean;
  min?: number;
  max?: number;
  values?: string[];
  /** Not in ParamSpec today; honoured (password input) if a catalog ever sends it. */
  secret?: boolean;
}

/** GET /api/v1/commands element. */
export interface CommandView {
  name: string;
  description: string;
  params: ParamSpec[];
  channels: string[];
  instances: { guid: string; hostname: string }[];
}

/** The state of a job record. `scheduled` is not one: see ScheduledJob. */
export type JobState =
  | 'queued' | 'running' | 'succeeded' | 'failed' | 'stopped' | 'killed' | 'timed_out'
  | 'lost' | 'cancelled';

/** Where a job runs: `{"channel": ..}` or `{"instance": ..}`. */
export type Target = { channel: string; instance?: never } | { instance: string; channel?: never };

/** The door a request came through. */
export type Via = 'http' | 'websocket' | 'nats' | 'schedule';

/** JobRecord, or StoredJob (the record + what only the audit store keeps: argv to tree). */
export interface Job {
  job_id: string;
  command: string;
  params: Record<string, unknown>;
  target: Target;
  requested_by: string;
  via: Via;
  queued_at: string;
  attempt: number;
  group_id?: string;
  retry_of?: string;
  state: JobState;
  instance?: string;
  hostname?: string;
  started_at?: string;
  finished_at?: string;
  exit_code?: number;
  signal?: string;
  error?: string;
  ended_by?: string;
  /** Set on a delayed job cancelled before its time: it was never queued. */
  cancelled_before_queued?: boolean;
  updated_at: string;
  argv?: string[];
  pid?: number;
  duration_ms?: number;
  ended_at?: string;
  peak_rss_bytes?: number;
  output_bytes?: number;
  last_seq?: number;
  output_truncated?: boolean;
  result?: unknown;
  tree?: { mode: 'cgroup' | 'process_group'; leftover: number; survivors: number };
}

/** A delayed job (POST /api/v1/jobs with `not_before`) still waiting for its time: no record
 * exists yet, it is a one-shot schedule. GET /api/v1/jobs/{id} answers this until the job is
 * queued, then the Job. */
export interface ScheduledJob {
  job_id: string;
  command: string;
  params: Record<string, unknown>;
  requested_by: string;
  state: 'scheduled';
  not_before: string;
  schedule_id: string;
  queued_at: null;
}

/** GET /api/v1/jobs/{id}, and a row of the jobs list: a job, or a delayed one not queued yet. */
export type JobView = Job | ScheduledJob;

export function isScheduled(j: JobView): j is ScheduledJob {
  return j.state === 'scheduled';
}

/** GET /api/v1/jobs: `scheduled` holds delayed jobs still waiting (first page only). */
export interface JobList { jobs: Job[]; next?: string; scheduled?: ScheduledJob[] }

/** POST /api/v1/jobs answer when it fanned out. */
export interface GroupView { group_id: string; jobs: Job[] }

/** POST /api/v1/jobs answer (and a `submitted` frame's `job`). */
export type Submitted = Job | GroupView | ScheduledJob;

export function isGroup(s: Submitted): s is GroupView {
  return 'group_id' in s && Array.isArray((s as GroupView).jobs);
}

/** KillReply */
export interface KillReply {
  job_id: string;
  outcome: 'signalled' | 'cancelled' | 'already_finished' | 'not_running_here'
    | 'instance_unreachable' | 'no_such_job';
  state?: JobState;
  signals?: string[];
  survivors?: number;
  message: string;
}

export interface InstanceInfo {
  guid: string;
  hostname: string;
  labels: Record<string, string>;
  channels: string[];
  slots: { used: number; total: number };
  channel_slots?: Record<string, { used: number; total: number }>;
  jobs: { job_id: string; command: string; pid: number; rss_bytes?: number; started_at: string }[];
  executor_rss_bytes?: number;
  version: string;
  status: 'serving' | 'draining';
  tree: 'cgroup' | 'process_group';
  /** CommandInfo list (shared/core/src/catalog/command.rs). */
  catalog: unknown[];
  started_at: string;
  heartbeat_at: string;
}

/** Schedule's `Timing`, flattened into it and tagged by `kind`. */
export type Timing =
  | { kind: 'cron'; cron: string; time_zone: string }
  | { kind: 'once'; at: string }
  | { kind: 'interval'; every: string; start?: string };

/** Schedule: its fields, target fields and timing side by side. */
export type Schedule = {
  id: string;
  name?: string;
  command: string;
  params: Record<string, unknown>;
  channel?: string;
  instance?: string;
  all_instances?: boolean;
  labels?: Record<string, string>;
  owner: string;
  owner_roles: string[];
  enabled: boolean;
  overlap: 'skip' | 'allow' | 'queue';
  misfire: 'skip' | 'run_once';
  jitter?: string;
  active_since: string;
  job_id?: string;
  created_at: string;
  updated_at: string;
} & Timing;

/** A schedule as the API shows it (Schedule + state + next_fires). */
export type ScheduleView = Schedule & {
  state: 'active' | 'paused' | 'done';
  next_fires: string[];
};

/** GET /api/v1/schedules */
export interface ScheduleList { schedules: ScheduleView[] }
/** POST /api/v1/schedules/preview */
export interface FirePreview { next_fires: string[] }
/** GET /api/v1/schedules/{id}/history: fires oldest first. */
export interface FireHistory { fires: FireRecord[]; next_since: string | null }

export interface FireRecord {
  schedule_id: string;
  fire_at: string;
  state: 'claimed' | 'waiting' | 'submitted' | 'denied' | 'skipped' | 'missed' | 'failed';
  by: string;
  job_id?: string;
  reason?: string;
  updated_at: string;
}

export interface AuditEvent {
  id: string;
  at: string;
  actor?: string;
  action: string;
  target?: string;
  allowed: boolean;
  reason: string;
  source: string;
  via: Via;
}

/** GET /api/v1/audit */
export interface AuditPage { entries: AuditEvent[]; next?: string }

export type ErrorCode =
  | 'unauthorized' | 'forbidden' | 'not_found' | 'method_not_allowed' | 'invalid_request'
  | 'payload_too_large' | 'invalid_params' | 'no_instance' | 'conflict' | 'unavailable' | 'internal';

/** The `error` of an error frame and of every REST error body (`{"error": ErrorDetail}`). */
export interface ErrorDetail { code: ErrorCode; message: string }

/** One output chunk of a subscription as a JSON frame; `data` is base64. */
export interface ChunkFrame {
  type: 'chunk'; job_id: string; seq: number; stream: 'stdout' | 'stderr' | 'system'; data: string;
}
/** One output chunk as a subscription hands it on, from a binary or a JSON frame. */
export interface OutputChunk {
  job_id: string; seq: number; stream: 'stdout' | 'stderr' | 'system'; bytes: Uint8Array;
}
/** A subscription's last frame: how the job ended, after `last_seq` chunks (`job_id` is
 * optional in Rust: the one-job stream leaves it out, the multiplexed socket always sends it). */
export interface EndFrame {
  type: 'end'; job_id: string; state: JobState; exit_code?: number; signal?: string;
  error?: string; result?: unknown; last_seq: number;
}

/** Every frame the multiplexed socket (GET /api/v1/ws, protocol.md section 10) sends. */
export type Frame =
  | ChunkFrame
  | EndFrame
  | { type: 'submitted'; ref: string; job: Submitted }
  | { type: 'control'; ref: string; reply: KillReply }
  | { type: 'watching' }
  | { type: 'job'; job: Job }
  | { type: 'job_removed'; job_id: string }
  /** That subscription was dropped for falling behind: subscribe again from `from_seq`. */
  | { type: 'slow'; job_id: string; from_seq: number }
  /** A refusal or failure, naming what it answers: a `ref`, a `job_id` or an `op`. */
  | { type: 'error'; ref?: string; job_id?: string; op?: string; error: ErrorDetail };

export const TERMINAL: ReadonlySet<string> = new Set<JobState>([
  'succeeded', 'failed', 'stopped', 'killed', 'timed_out', 'lost', 'cancelled',
]);
export const JOB_STATES: JobState[] = [
  'queued', 'running', 'succeeded', 'failed', 'stopped', 'killed', 'timed_out', 'lost', 'cancelled',
];
