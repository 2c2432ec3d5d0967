//! Stop and kill requests for this instance's jobs, on `tw.exec.<guid>.kill`: only this
//! instance listens to its GUID's subject, so a kill reaches exactly the machine that runs the
//! job. The reply comes once the job's whole tree is gone (or says who survived).

use crate::shared::{EndReason, Shared, Termination};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use taskwire_core::wire::{KillMode, KillOutcome, KillReply, KillRequest};
use tokio_util::sync::CancellationToken;

/// Serves kill requests until `stop`.
pub async fn serve(shared: Arc<Shared>, mut sub: async_nats::Subscriber, stop: CancellationToken) {
    loop {
        let msg = tokio::select! {
            m = sub.next() => match m { Some(m) => m, None => break },
            _ = stop.cancelled() => break,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            // Answers go to inboxes only (what the permissions allow anyway).
            let Some(reply_to) = msg
                .reply
                .clone()
                .filter(|r| taskwire_core::serve::is_inbox(r))
            else {
                return;
            };
            let reply = match serde_json::from_slice::<KillRequest>(&msg.payload) {
                Ok(req) => handle(&shared, req).await,
                Err(e) => {
                    tracing::warn!(error = %e, "malformed kill request");
                    return;
                }
            };
            let body = serde_json::to_vec(&reply).unwrap_or_default();
            if let Err(e) = shared.js.client().publish(reply_to, body.into()).await {
                tracing::warn!(error = %e, "cannot answer a kill request");
            }
        });
    }
}

/// How long a kill waits for a job that is being claimed or spawned here.
const STARTING_WAIT: Duration = Duration::from_secs(10);

async fn handle(shared: &Shared, req: KillRequest) -> KillReply {
    // A job claimed a moment ago may not be registered yet: wait for it rather than answer
    // "not running here" about a job that is about to run.
    let deadline = tokio::time::Instant::now() + STARTING_WAIT;
    while tokio::time::Instant::now() < deadline {
        let registered = shared
            .running
            .lock()
            .map(|m| m.contains_key(&req.job_id))
            .unwrap_or(true);
        let starting = shared
            .starting
            .lock()
            .map(|s| s.contains(&req.job_id))
            .unwrap_or(false);
        if registered || !starting {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let entry = shared.running.lock().ok().and_then(|m| {
        m.get(&req.job_id).map(|r| {
            (
                r.terminate.clone(),
                match req.mode {
                    KillMode::Stop => r.stop_ladder.clone(),
                    KillMode::Kill => r.kill_ladder.clone(),
                },
            )
        })
    });
    let Some((tx, ladder)) = entry else {
        return KillReply {
            job_id: req.job_id,
            outcome: KillOutcome::NotRunningHere,
            state: None,
            signals: Vec::new(),
            survivors: None,
            message: format!(
                "job {} is not running on instance {}",
                req.job_id, shared.guid
            ),
        };
    };
    // The ladder's waits, plus time to collect the tree and report.
    let budget: Duration =
        ladder.iter().map(|s| s.wait).sum::<Duration>() + Duration::from_secs(10);
    let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
    let reason = match req.mode {
        KillMode::Stop => EndReason::Stop {
            by: req.requested_by.clone(),
        },
        KillMode::Kill => EndReason::Kill {
            by: req.requested_by.clone(),
        },
    };
    let sent = tx
        .send(Termination {
            reason,
            ladder,
            reply: Some(reply_tx),
        })
        .await;
    if sent.is_err() {
        return KillReply {
            job_id: req.job_id,
            outcome: KillOutcome::AlreadyFinished,
            state: None,
            signals: Vec::new(),
            survivors: None,
            message: "the job ended as the request arrived".into(),
        };
    }
    match tokio::time::timeout(budget, reply_rx).await {
        Ok(Ok(report)) => KillReply {
            job_id: req.job_id,
            outcome: KillOutcome::Signalled,
            state: Some(report.state),
            message: format!(
                "{} by {}; {}",
                report.state,
                req.requested_by,
                if report.survivors == 0 {
                    "the process tree is gone".to_string()
                } else {
                    format!("{} process(es) survived", report.survivors)
                }
            ),
            signals: report.signals,
            survivors: Some(report.survivors),
        },
        _ => KillReply {
            job_id: req.job_id,
            outcome: KillOutcome::Signalled,
            state: None,
            signals: Vec::new(),
            survivors: None,
            message: "signalled; the job had not ended when the reply was due".into(),
        },
    }
}
