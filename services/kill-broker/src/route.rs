//! Answering one stop/kill request: cancel a queued job (compare-and-set, so it can never also
//! be claimed), route a running one to `tw.exec.<guid>.kill` of its instance, or say it had
//! already ended.

use crate::Broker;
use chrono::Utc;
use std::time::Duration;
use taskwire_core::auth::roles;
use taskwire_core::jobs::Decision;
use taskwire_core::wire::{EventKind, JobEvent, JobState, KillOutcome, KillReply, KillRequest};

/// How long an instance that has no subscription to its kill subject is asked again: long
/// enough for its connection to come back after a NATS node restarts (the client waits up to
/// 4 s between attempts), short enough that a kill of a job on a dead instance is answered soon.
const UNSUBSCRIBED_WAIT: Duration = Duration::from_secs(10);

fn reply(
    req: &KillRequest,
    outcome: KillOutcome,
    state: Option<JobState>,
    message: String,
) -> KillReply {
    KillReply {
        job_id: req.job_id,
        outcome,
        state,
        signals: Vec::new(),
        survivors: None,
        message,
    }
}

pub async fn handle(b: &Broker, req: KillRequest) -> KillReply {
    // The gateway saw the job running on this instance: ask it at once.
    if let Some(instance) = req.instance {
        let r = ask_instance(b, &req, instance, JobState::Running).await;
        if r.outcome != KillOutcome::NotRunningHere {
            return r;
        }
    }
    // A queued job is cancelled; the claim and the cancel are both compare-and-set on the
    // record, so exactly one of them wins.
    let by = req.requested_by.clone();
    let cancelled = b
        .store
        .transition(&req.job_id, |r| {
            if r.state != JobState::Queued {
                return Ok(Decision::Keep(Some(r.clone())));
            }
            let mut next = r.clone();
            next.state = JobState::Cancelled;
            next.finished_at = Some(Utc::now());
            next.ended_by = Some(by.clone());
            next.error = Some(format!("cancelled by {by} before it started"));
            Ok(Decision::Write(Box::new(next), None))
        })
        .await;
    let record = match cancelled {
        Ok((None, _)) => {
            let _ = b
                .store
                .publish_event(&JobEvent {
                    job_id: req.job_id,
                    at: Utc::now(),
                    instance: None,
                    kind: EventKind::Cancelled { by: by.clone() },
                })
                .await;
            return reply(
                &req,
                KillOutcome::Cancelled,
                Some(JobState::Cancelled),
                format!("the job was queued and is cancelled by {by}; it will never start"),
            );
        }
        Ok((Some(r), _)) => r,
        Err(taskwire_core::Error::NoSuchJob(_)) => {
            return reply(
                &req,
                KillOutcome::NoSuchJob,
                None,
                format!("job {} does not exist", req.job_id),
            );
        }
        Err(e) => {
            return reply(
                &req,
                KillOutcome::InstanceUnreachable,
                None,
                format!("cannot read the job: {e}"),
            );
        }
    };
    if record.state.is_terminal() {
        return reply(
            &req,
            KillOutcome::AlreadyFinished,
            Some(record.state),
            format!(
                "the job already ended ({}); only running jobs can be stopped or killed",
                record.state
            ),
        );
    }
    let Some(instance) = record.instance else {
        return reply(
            &req,
            KillOutcome::InstanceUnreachable,
            Some(record.state),
            "the running job names no instance".into(),
        );
    };
    ask_instance(b, &req, instance, record.state).await
}

/// Sends the request to the one instance running the job and reports its answer.
async fn ask_instance(
    b: &Broker,
    req: &KillRequest,
    instance: uuid::Uuid,
    seen: JobState,
) -> KillReply {
    let body = serde_json::to_vec(req).unwrap_or_default();
    // An instance that is not subscribed right now (its connection coming back after an
    // outage) is asked again for up to UNSUBSCRIBED_WAIT; one that took the request is never
    // asked twice.
    let started = tokio::time::Instant::now();
    let deadline = started + b.cfg.exec_timeout;
    let retry_until = started + UNSUBSCRIBED_WAIT.min(b.cfg.exec_timeout);
    let mut backoff =
        taskwire_core::retry::Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
    let asked = loop {
        // Up to exec_timeout, not the client's default request timeout (10 s), which would
        // cut a stop whose grace is as long; answered in the part of the broker's inbox kept
        // for this instance's kill answers, the only part of it the instance may publish into.
        let request = async_nats::Request::new()
            .payload(body.clone().into())
            .inbox(roles::kill_reply(
                &b.client,
                &roles::Role::KillBroker,
                &instance,
            ))
            .timeout(Some(
                deadline.saturating_duration_since(tokio::time::Instant::now()),
            ));
        let asked = b
            .client
            .send_request(b.ns.exec_kill(&instance), request)
            .await;
        match asked {
            Err(e)
                if e.kind() == async_nats::RequestErrorKind::NoResponders
                    && tokio::time::Instant::now() + backoff.peek() < retry_until =>
            {
                backoff.wait().await;
            }
            other => break other,
        }
    };
    match asked {
        Ok(msg) => match serde_json::from_slice::<KillReply>(&msg.payload) {
            Ok(r) if r.outcome == KillOutcome::NotRunningHere => {
                // It may have just ended: say what the record says now.
                tokio::time::sleep(Duration::from_millis(200)).await;
                match b.store.get(&req.job_id).await {
                    Ok(Some((r, _))) if r.state.is_terminal() => reply(
                        req,
                        KillOutcome::AlreadyFinished,
                        Some(r.state),
                        format!("the job already ended ({})", r.state),
                    ),
                    _ => r,
                }
            }
            Ok(r) => r,
            Err(e) => reply(
                req,
                KillOutcome::InstanceUnreachable,
                Some(seen),
                format!("instance {instance} answered something unreadable: {e}"),
            ),
        },
        _ => reply(
            req,
            KillOutcome::InstanceUnreachable,
            Some(seen),
            format!(
                "instance {instance} did not answer within {}; if it stays silent the job will be marked lost",
                taskwire_core::units::format_duration(b.cfg.exec_timeout)
            ),
        ),
    }
}
