// JSON shapes of the gateway's API (see shared/core/src/wire and services/gateway/src/routes).

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

export type JobState =
  | 'queued' | 'running' | 'succeeded' | 'failed' | 'stopped' | 'killed' | 'timed_out'
  | 'lost' | 'cancelled' | 'scheduled';

/** JobRecord, or StoredJob (record + what only the audit store keeps). */
export interface Job {
  job_id: string;
  command: string;
  params: Record<string, unknown>;
  target?: { channel?: string; instance?: string };
  requested_by: string;
  via?: string;
  queued_at: string | null;
  attempt?: number;
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
  updated_at?: string;
  argv?: string[];
  pid?: number;
  duration_ms?: number;
  ended_at?: string;
  peak_rss_bytes?: number;
  output_bytes?: number;
  last_seq?: number;
  output_truncated?: boolean;
  result?: unknown;
  tree?: unknown;
  not_before?: string;
  schedule_id?: string;
}

/** GET /api/v1/jobs: `scheduled` holds delayed jobs still waiting (first page only). */
export interface JobPage { jobs: Job[]; next?: string; scheduled?: Job[] }

/** POST /api/v1/jobs answer when it fanned out. */
export interface GroupView { group_id: string; jobs: Job[] }

/** KillReply */
export interface KillReply {
  job_id: string;
  outcome: string;
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
  tree: string;
  catalog: unknown[];
  started_at: string;
  heartbeat_at: string;
}

/** A schedule as the API shows it (Schedule + state + next_fires). */
export interface ScheduleView {
  id: string;
  name?: string;
  command: string;
  params: Record<string, unknown>;
  channel?: string;
  instance?: string;
  all_instances?: boolean;
  labels?: Record<string, string>;
  kind: 'cron' | 'once' | 'interval';
  cron?: string;
  time_zone?: string;
  at?: string;
  every?: string;
  start?: string;
  owner: string;
  owner_roles?: string[];
  enabled: boolean;
  overlap?: string;
  misfire?: string;
  jitter?: string;
  active_since: string;
  job_id?: string;
  created_at: string;
  updated_at: string;
  state: 'active' | 'paused' | 'done';
  next_fires: string[];
}

export interface FireRecord {
  schedule_id: string;
  fire_at: string;
  state: string;
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
  via: string;
}

export const TERMINAL: ReadonlySet<string> = new Set([
  'succeeded', 'failed', 'stopped', 'killed', 'timed_out', 'lost', 'cancelled',
]);
export const JOB_STATES: JobState[] = [
  'queued', 'running', 'succeeded', 'failed', 'stopped', 'killed', 'timed_out', 'lost', 'cancelled',
];
