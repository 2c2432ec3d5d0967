//! One job from dispatch message to final state: the claim here, then [`launch`],
//! [`supervise`], [`reap`], and [`report`] (with the pure [`crate::outcome`] deciding how it
//! ended).
//!
//! Exactly one start: the record moves `queued -> running` by compare-and-set in `tw_jobs`
//! before anything is spawned, and only then is the dispatch message acked. A message whose
//! job is no longer queued (claimed elsewhere, cancelled) is acked and skipped. Every job that
//! is claimed here ends with one terminal event and a terminal record.
//!
//! Only what a trusted gateway signed runs: a message that is unsigned, signed by a key not in
//! `dispatch_trusted_keys`, badly signed, published on another target's subject, or whose
//! live record holds another spec, never spawns anything. The job ends `failed` with a
//! `rejected` event saying why (the path of a command the catalog refuses), and the message is
//! terminated so it is not delivered again. The spec that runs is the signed one, never the
//! record's.

use crate::catalog::{Command, Invocation};
use crate::shared::Shared;
use crate::slots::SlotPermit;
use crate::{launch, reap, report, supervise};
use async_nats::jetstream::{AckKind, Message};
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use taskwire_core::jobs::Decision;
use taskwire_core::sign::Unverified;
use taskwire_core::wire::{EventKind, JobRecord, JobSpec, JobState, Target};
use uuid::Uuid;

/// What became of a dispatch message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Run here, skipped or refused: it is not delivered again.
    Decided,
    /// Handed back to be delivered again (its record could not be read or claimed).
    HandedBack,
}

/// Handles one dispatch message; `permit` is the slot the job runs in.
pub async fn handle(shared: Arc<Shared>, msg: Message, permit: SlotPermit) -> Handled {
    let spec: JobSpec = match serde_json::from_slice(&msg.payload) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(subject = %msg.subject, error = %e, "malformed dispatch message dropped");
            let _ = msg.ack_with(AckKind::Term).await;
            return Handled::Decided;
        }
    };
    let job_id = spec.job_id;
    // The signature and the catalog are checked while the record is being read (neither
    // needs it); their verdicts are applied below in the same order as ever.
    let (found, (signed, prepared)) = futures::join!(shared.store.get(&job_id), async {
        (authentic(&shared, &msg, &spec), prepare(&shared, &spec))
    });
    let (record, revision) = match found {
        Ok(Some(found)) => found,
        Ok(None) => {
            tracing::warn!(job = %job_id, "dispatched job has no record; dropped");
            let _ = msg.ack_with(AckKind::Term).await;
            return Handled::Decided;
        }
        Err(e) => {
            tracing::warn!(job = %job_id, error = %e, "cannot read job record; handing the job back");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            return Handled::HandedBack;
        }
    };
    if record.state != JobState::Queued {
        tracing::debug!(job = %job_id, state = %record.state, "job is not queued; skipped");
        let _ = msg.ack().await;
        return Handled::Decided;
    }
    // What runs is the spec a trusted gateway signed, and only if the live record claims
    // the same: a record forged in the bucket cannot change the program or its parameters.
    let checked = signed.and_then(|()| {
        if record.spec == spec {
            Ok(())
        } else {
            Err(MISMATCH.to_string())
        }
    });
    let (command, invocation) = match checked.and(prepared) {
        Ok(p) => p,
        Err(reason) => {
            reject(&shared, &job_id, reason).await;
            // Terminated, not acked: a refused message is never delivered again.
            let _ = msg.ack_with(AckKind::Term).await;
            return Handled::Decided;
        }
    };
    let starting = crate::shared::Starting::new(&shared, job_id);
    let claimed = shared
        .store
        .transition_from(&job_id, Some((record, revision)), |r| {
            if r.state != JobState::Queued {
                return Ok(Decision::Keep(Claim::Skip));
            }
            if r.spec != spec {
                return Ok(Decision::Keep(Claim::Mismatch));
            }
            let mut next = r.clone();
            next.state = JobState::Running;
            next.instance = Some(shared.guid);
            next.hostname = Some(shared.hostname.clone());
            next.started_at = Some(Utc::now());
            Ok(Decision::Write(
                Box::new(next.clone()),
                Claim::Won(Box::new(next)),
            ))
        })
        .await;
    let running = match claimed {
        Ok((Claim::Won(running), rev)) => (*running, rev),
        Ok((Claim::Skip, _)) => {
            let _ = msg.ack().await;
            return Handled::Decided;
        }
        Ok((Claim::Mismatch, _)) => {
            drop(starting);
            reject(&shared, &job_id, MISMATCH.to_string()).await;
            let _ = msg.ack_with(AckKind::Term).await;
            return Handled::Decided;
        }
        Err(e) => {
            tracing::warn!(job = %job_id, error = %e, "claim failed; handing the job back");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            return Handled::HandedBack;
        }
    };
    // Claimed: from here on the job is ours; a lost ack only causes a redelivery that the
    // claim check above skips.
    if let Err(e) = msg.ack().await {
        tracing::debug!(job = %job_id, error = %e, "dispatch ack failed (redelivery will be skipped)");
    }
    execute(&shared, running, spec, command, invocation, starting).await;
    drop(permit);
    Handled::Decided
}

/// The reason of a job whose live record does not hold the spec that was signed.
const MISMATCH: &str = "the job record in tw_jobs does not hold the signed job spec (command, parameters or target differ); nothing was run";

/// What the claim's compare-and-set found.
enum Claim {
    /// The record is not queued any more (claimed elsewhere, cancelled): skip the job.
    Skip,
    /// The record's spec is not the signed one.
    Mismatch,
    /// Claimed: the running record.
    Won(Box<JobRecord>),
}

/// Checks that a trusted gateway signed the message, and that it came on the subject of the
/// target it signed (the subject is not part of the signature: a signed message published on
/// another instance's subject must not run there).
fn authentic(shared: &Shared, msg: &Message, spec: &JobSpec) -> Result<(), String> {
    match shared.verifier.verify(msg.headers.as_ref(), &msg.payload) {
        Ok(_) => {}
        Err(Unverified::BadSignature(k)) => return Err(Unverified::BadSignature(k).to_string()),
        Err(why) if shared.cfg.allow_unsigned_dispatch => {
            tracing::debug!(job = %spec.job_id, %why, "running an unverified dispatch (allow_unsigned_dispatch)");
        }
        Err(why) => return Err(why.to_string()),
    }
    let expected = match &spec.target {
        Target::Channel(c) => shared.ns.dispatch_channel(c),
        Target::Instance(g) => shared.ns.dispatch_instance(g),
    };
    if msg.subject.as_str() != expected {
        return Err(format!(
            "the dispatch message came on {} but its signed target is {expected}; nothing was run",
            msg.subject
        ));
    }
    Ok(())
}

/// Checks that the command exists here, may run from the job's channel, and that the
/// parameters pass the catalog's rules.
fn prepare(shared: &Shared, spec: &JobSpec) -> Result<(Command, Invocation), String> {
    let command = shared.catalog.get(&spec.command).ok_or_else(|| {
        format!(
            "command '{}' is not in the catalog of instance {}",
            spec.command, shared.guid
        )
    })?;
    if let Target::Channel(c) = &spec.target
        && !command.channels.contains(c)
    {
        return Err(format!(
            "command '{}' does not run on channel '{c}' here",
            spec.command
        ));
    }
    let invocation = command.invocation(&spec.params)?;
    Ok((command.clone(), invocation))
}

async fn reject(shared: &Shared, job_id: &Uuid, reason: String) {
    tracing::info!(job = %job_id, %reason, "job rejected");
    let guid = shared.guid;
    let host = shared.hostname.clone();
    let reason2 = reason.clone();
    let wrote = shared
        .store
        .transition(job_id, move |r| {
            if r.state != JobState::Queued {
                return Ok(Decision::Keep(false));
            }
            let mut next = r.clone();
            next.state = JobState::Failed;
            next.instance = Some(guid);
            next.hostname = Some(host.clone());
            next.finished_at = Some(Utc::now());
            next.error = Some(reason2.clone());
            Ok(Decision::Write(Box::new(next), true))
        })
        .await;
    if matches!(wrote, Ok((true, _))) {
        report::publish_event(shared, *job_id, EventKind::Rejected { reason }).await;
    }
}

/// Runs `spec` (the signed one) as a job this instance has claimed (`running`: the claimed
/// record and its revision): launch, supervise, reap, report.
async fn execute(
    shared: &Shared,
    running: (JobRecord, u64),
    spec: JobSpec,
    command: Command,
    inv: Invocation,
    starting: crate::shared::Starting<'_>,
) {
    let job_id = spec.job_id;
    let (job, mut terminations) = match launch::launch(shared, &spec, &command, &inv) {
        Ok(j) => j,
        Err(reason) => {
            report::spawn_failed(shared, &job_id, Some(running), inv.argv, reason).await;
            return;
        }
    };
    // Registered among the running jobs: a stop or kill now reaches it.
    drop(starting);
    report::publish_event(
        shared,
        job_id,
        EventKind::Started {
            pid: job.pid.as_raw() as u32,
            argv: inv.argv.clone(),
            hostname: shared.hostname.clone(),
            tree: job.tree.mode(),
        },
    )
    .await;
    let supervised = supervise::supervise(&job, &command, &mut terminations).await;
    let reaped = reap::reap(shared, &job_id, job).await;
    report::finished(
        shared,
        job_id,
        Some(running),
        command.timeout,
        supervised,
        terminations,
        reaped,
    )
    .await;
}
