//! Folds a job's lifecycle events into its executions row. Events may arrive in any order
//! (several writers, redeliveries): each event fills only its own columns, a column once set
//! keeps its first value, and the state only moves forward (queued, running, then the first
//! terminal state). The SQL upsert ([`crate::tables::EXECUTIONS`]) applies the same rule
//! against the stored row, so the row ends up the same whatever the order.

use chrono::{DateTime, Utc};
use taskwire_core::wire::{EventKind, JobEvent, JobState, Target, TreeMode};
use taskwire_migrations::entity::executions;

/// Microseconds since the Unix epoch.
pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// 0 queued, 1 running, 2 ended.
pub fn rank(state: JobState) -> i16 {
    match state {
        JobState::Queued => 0,
        JobState::Running => 1,
        _ => 2,
    }
}

fn tree_mode(m: TreeMode) -> String {
    match m {
        TreeMode::Cgroup => "cgroup",
        TreeMode::ProcessGroup => "process_group",
    }
    .to_string()
}

fn json<T: serde::Serialize>(v: &T) -> Option<serde_json::Value> {
    serde_json::to_value(v).ok()
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The columns one event sets (everything else `None`).
pub fn row_of(e: &JobEvent) -> executions::Model {
    let at = micros(e.at);
    let state = e.kind.state();
    let mut m = executions::Model {
        job_id: e.job_id,
        command: None,
        params: None,
        target: None,
        channel: None,
        group_id: None,
        retry_of: None,
        attempt: None,
        requested_by: None,
        via: None,
        queued_at_us: None,
        instance: e.instance,
        hostname: None,
        argv: None,
        pid: None,
        tree_mode: None,
        started_at_us: None,
        state: state.as_str().to_string(),
        state_rank: rank(state),
        exit_code: None,
        signal: None,
        error: None,
        finished_at_us: None,
        duration_ms: None,
        ended_by: None,
        ended_at_us: None,
        peak_rss_bytes: None,
        output_bytes: None,
        last_seq: None,
        output_truncated: None,
        result: None,
        leftover: None,
        survivors: None,
        updated_at_us: at,
    };
    if state.is_terminal() {
        m.finished_at_us = Some(at);
    }
    match &e.kind {
        EventKind::Queued { spec } => {
            m.command = Some(spec.command.clone());
            m.params = json(&spec.params);
            m.target = json(&spec.target);
            if let Target::Channel(c) = &spec.target {
                m.channel = Some(c.clone());
            }
            m.group_id = spec.group_id;
            m.retry_of = spec.retry_of;
            m.attempt = Some(i32::try_from(spec.attempt).unwrap_or(i32::MAX));
            m.requested_by = Some(spec.requested_by.clone());
            m.via = json(&spec.via).and_then(|v| v.as_str().map(str::to_string));
            m.queued_at_us = Some(micros(spec.queued_at));
        }
        EventKind::Started {
            pid,
            argv,
            hostname,
            tree,
        } => {
            m.pid = Some(i64::from(*pid));
            m.argv = json(argv);
            m.hostname = Some(hostname.clone());
            m.tree_mode = Some(tree_mode(*tree));
            m.started_at_us = Some(at);
        }
        EventKind::Exited {
            exit_code,
            signal,
            duration_ms,
            peak_rss_bytes,
            output_bytes,
            last_seq,
            output_truncated,
            result,
            error,
            ended_by,
            tree,
            ..
        } => {
            m.exit_code = *exit_code;
            m.signal = signal.clone();
            m.duration_ms = Some(i64_of(*duration_ms));
            m.peak_rss_bytes = peak_rss_bytes.map(i64_of);
            m.output_bytes = Some(i64_of(*output_bytes));
            m.last_seq = Some(i64_of(*last_seq));
            m.output_truncated = Some(*output_truncated);
            m.result = result.clone();
            m.error = error.clone();
            if let Some(by) = ended_by {
                m.ended_by = Some(by.clone());
                m.ended_at_us = Some(at);
            }
            m.tree_mode = Some(tree_mode(tree.mode));
            m.leftover = Some(i32::try_from(tree.leftover).unwrap_or(i32::MAX));
            m.survivors = Some(i32::try_from(tree.survivors).unwrap_or(i32::MAX));
        }
        EventKind::SpawnFailed { argv, reason } => {
            m.argv = json(argv);
            m.error = Some(reason.clone());
        }
        EventKind::Rejected { reason } | EventKind::Lost { reason } => {
            m.error = Some(reason.clone());
        }
        EventKind::Cancelled { by } => {
            m.ended_by = Some(by.clone());
            m.ended_at_us = Some(at);
        }
    }
    m
}

/// Merges `later` into `first` by the rule above (what the upsert does in SQL).
pub fn merge(first: &mut executions::Model, later: executions::Model) {
    macro_rules! keep_first {
        ($($f:ident),*) => { $( if first.$f.is_none() { first.$f = later.$f; } )* };
    }
    keep_first!(
        command,
        params,
        target,
        channel,
        group_id,
        retry_of,
        attempt,
        requested_by,
        via,
        queued_at_us,
        instance,
        hostname,
        argv,
        pid,
        tree_mode,
        started_at_us,
        exit_code,
        signal,
        error,
        finished_at_us,
        duration_ms,
        ended_by,
        ended_at_us,
        peak_rss_bytes,
        output_bytes,
        last_seq,
        output_truncated,
        result,
        leftover,
        survivors
    );
    if later.state_rank > first.state_rank {
        first.state = later.state;
        first.state_rank = later.state_rank;
    }
    first.updated_at_us = first.updated_at_us.max(later.updated_at_us);
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskwire_core::wire::{JobSpec, TreeReport, Via};
    use uuid::Uuid;

    fn events() -> Vec<JobEvent> {
        let job = Uuid::from_u128(7);
        let inst = Uuid::from_u128(9);
        let t0: DateTime<Utc> = "2026-01-02T03:04:05Z".parse().unwrap();
        let spec = JobSpec::new(
            "report",
            Target::Channel("default".into()),
            "alice",
            Via::Nats,
        )
        .with_id(job)
        .queued_at(t0);
        let ev = |secs: i64, kind| JobEvent {
            job_id: job,
            at: t0 + chrono::Duration::seconds(secs),
            instance: Some(inst),
            kind,
        };
        vec![
            JobEvent {
                instance: None,
                ..ev(0, EventKind::Queued { spec })
            },
            ev(
                1,
                EventKind::Started {
                    pid: 9,
                    argv: vec!["/bin/report".into()],
                    hostname: "web-1".into(),
                    tree: TreeMode::Cgroup,
                },
            ),
            ev(
                3,
                EventKind::Exited {
                    state: JobState::Killed,
                    exit_code: None,
                    signal: Some("SIGTERM".into()),
                    duration_ms: 2000,
                    peak_rss_bytes: Some(1 << 20),
                    output_bytes: 5,
                    last_seq: 2,
                    output_truncated: false,
                    result: None,
                    error: None,
                    ended_by: Some("bob".into()),
                    tree: TreeReport {
                        mode: TreeMode::Cgroup,
                        leftover: 0,
                        survivors: 0,
                    },
                },
            ),
        ]
    }

    fn fold(order: &[usize]) -> executions::Model {
        let evs = events();
        let mut it = order.iter().map(|i| row_of(&evs[*i]));
        let mut m = it.next().unwrap();
        for later in it {
            merge(&mut m, later);
        }
        m
    }

    #[test]
    fn any_order_gives_the_same_row() {
        let want = fold(&[0, 1, 2]);
        assert_eq!(want.state, "killed");
        assert_eq!(want.command.as_deref(), Some("report"));
        assert_eq!(want.pid, Some(9));
        assert_eq!(want.ended_by.as_deref(), Some("bob"));
        assert_eq!(want.channel.as_deref(), Some("default"));
        assert_eq!(want.via.as_deref(), Some("nats"));
        for order in [[2, 1, 0], [1, 2, 0], [2, 0, 1], [0, 2, 1], [1, 0, 2]] {
            assert_eq!(fold(&order), want, "order {order:?}");
        }
        // A redelivered event changes nothing.
        let mut again = want.clone();
        merge(&mut again, row_of(&events()[1]));
        assert_eq!(again.state, "killed");
    }
}
