//! Telling the rest of taskwire how a job went: lifecycle events and the final record, each
//! retried through NATS outages until stored, and the answer to whoever asked for the end.
//! The `exited` event and the final record are independent writes, made at once; the record
//! is written only while it still says `running` on this instance.

use crate::outcome::{self, Ending, Outcome};
use crate::reap::Reaped;
use crate::shared::{Shared, TerminationReport};
use crate::supervise::Supervised;
use chrono::Utc;
use std::time::Duration;
use taskwire_core::jobs::Decision;
use taskwire_core::retry::{self, Backoff};
use taskwire_core::wire::{EventKind, JobEvent, JobRecord, JobState};
use uuid::Uuid;

/// The pauses between attempts of a write that must land.
fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
}

/// Publishes a lifecycle event durably, retrying through NATS outages.
pub async fn publish_event(shared: &Shared, job_id: Uuid, kind: EventKind) {
    let event = JobEvent {
        job_id,
        at: Utc::now(),
        instance: Some(shared.guid),
        kind,
    };
    retry::until_ok("publishing a job event", backoff(), || {
        shared.store.publish_event(&event)
    })
    .await;
}

/// Writes the terminal record if the job is still running here, retrying through outages.
pub async fn finish_record(
    shared: &Shared,
    job_id: &Uuid,
    mut known: Option<(JobRecord, u64)>,
    apply: impl Fn(&mut JobRecord),
) {
    let guid = shared.guid;
    let mut backoff = backoff();
    loop {
        let r = shared
            .store
            .transition_from(job_id, known.take(), |r| {
                if r.state != JobState::Running || r.instance != Some(guid) {
                    return Ok(Decision::Keep(Some(r.state)));
                }
                let mut next = r.clone();
                apply(&mut next);
                next.finished_at = Some(Utc::now());
                Ok(Decision::Write(Box::new(next), None))
            })
            .await;
        match r {
            Ok((None, _)) => return,
            Ok((Some(other), _)) => {
                tracing::warn!(job = %job_id, state = %other, "job record was already changed by someone else; left as it is");
                return;
            }
            Err(e) => {
                tracing::warn!(job = %job_id, error = %e, "cannot write final job state; retrying");
                backoff.wait().await;
            }
        }
    }
}

/// A job that could not start: its `spawn_failed` event and its failed record.
pub async fn spawn_failed(
    shared: &Shared,
    job_id: &Uuid,
    known: Option<(JobRecord, u64)>,
    argv: Vec<String>,
    reason: String,
) {
    tracing::warn!(job = %job_id, %reason, "spawn failed");
    publish_event(
        shared,
        *job_id,
        EventKind::SpawnFailed {
            argv,
            reason: reason.clone(),
        },
    )
    .await;
    finish_record(shared, job_id, known, |next| {
        next.state = JobState::Failed;
        next.error = Some(format!("spawn failed: {reason}"));
    })
    .await;
}

/// How a job that ran ended: its outcome, its `exited` event and final record, then the
/// answer to whoever asked for its end (and anyone who asked again meanwhile).
pub async fn finished(
    shared: &Shared,
    job_id: Uuid,
    known: Option<(JobRecord, u64)>,
    timeout: Option<Duration>,
    mut supervised: Supervised,
    mut terminations: tokio::sync::mpsc::Receiver<crate::shared::Termination>,
    reaped: Reaped,
) {
    let (exit_code, signal, peak) = match &reaped.exit {
        Ok(e) => (e.code, e.signal, e.peak_rss_bytes),
        Err(_) => (None, None, None),
    };
    let Outcome {
        state,
        error,
        ended_by,
    } = outcome::decide(&Ending {
        ended_early: supervised.termination.as_ref().map(|t| &t.reason),
        exit: reaped
            .exit
            .as_ref()
            .map(|e| (e.code, e.signal))
            .map_err(|e| e.to_string()),
        timeout,
        result_error: reaped.result_error.clone(),
    });
    let signal_name = signal.map(|s| s.as_str().to_string());
    let survivors = reaped.tree.survivors;
    let event = publish_event(
        shared,
        job_id,
        EventKind::Exited {
            state,
            exit_code,
            signal: signal_name.clone(),
            duration_ms: reaped.duration.as_millis() as u64,
            peak_rss_bytes: peak,
            output_bytes: reaped.output.process_bytes,
            last_seq: reaped.output.last_seq,
            output_truncated: reaped.output.truncated,
            result: reaped.result,
            error: error.clone(),
            ended_by: ended_by.clone(),
            tree: reaped.tree,
        },
    );
    let record = finish_record(shared, &job_id, known, |next| {
        next.state = state;
        next.exit_code = exit_code;
        next.signal = signal_name.clone();
        next.error = error.clone();
        next.ended_by = ended_by.clone();
    });
    tokio::join!(event, record);
    let report = TerminationReport {
        state,
        signals: supervised.signals,
        survivors,
    };
    if let Some(reply) = supervised.termination.as_mut().and_then(|t| t.reply.take()) {
        let _ = reply.send(report.clone());
    }
    terminations.close();
    while let Ok(mut t) = terminations.try_recv() {
        if let Some(reply) = t.reply.take() {
            let _ = reply.send(report.clone());
        }
    }
}
