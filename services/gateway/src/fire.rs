//! Schedule fires: a scheduler asks on `tw.sched.fire` (queue group of the gateways) and the
//! gateway runs the fire through the same path as `POST /api/v1/jobs`, as the schedule's
//! owner: the owner's permission to run the command is checked again at every fire, the
//! decision is audited (via `schedule`), and the job id derives from the schedule and the fire
//! time, so a fire retried by another scheduler replica names the same job.

use crate::auth::Principal;
use crate::error::ErrorCode;
use crate::routes::jobs::{SubmitRequest, submit_for};
use crate::routes::schedules::fire_key;
use crate::state::{AppState, Caller};
use futures::StreamExt;
use serde_json::Value;
use taskwire_core::wire::{FireReply, FireRequest, FireState, Via};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The queue group gateways answer fires in.
const QUEUE_GROUP: &str = "taskwire-gateway";

pub async fn serve(st: AppState, stop: CancellationToken) {
    let subject = st.ns.schedule_fire();
    let mut sub = match st
        .client
        .queue_subscribe(subject.clone(), QUEUE_GROUP.into())
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(%subject, error = %e, "cannot serve schedule fires");
            return;
        }
    };
    loop {
        let msg = tokio::select! {
            m = sub.next() => match m { Some(m) => m, None => break },
            _ = stop.cancelled() => break,
        };
        let st = st.clone();
        tokio::spawn(async move {
            let Some(reply_to) = msg.reply.clone() else {
                return;
            };
            let answer = match serde_json::from_slice::<FireRequest>(&msg.payload) {
                Ok(req) => fire(&st, req).await,
                Err(e) => FireReply {
                    state: FireState::Failed,
                    job_id: None,
                    reason: Some(format!("the fire request is not readable: {e}")),
                },
            };
            let body = serde_json::to_vec(&answer).unwrap_or_default();
            if let Err(e) = st.client.publish(reply_to, body.into()).await {
                tracing::warn!(error = %e, "cannot answer a schedule fire");
            }
        });
    }
    let _ = sub.unsubscribe().await;
}

/// Runs one fire as the schedule's owner.
pub async fn fire(st: &AppState, req: FireRequest) -> FireReply {
    let s = &req.schedule;
    // The owner's roles as configured now (a revoked role takes effect at the next fire);
    // users the configuration does not list keep the roles they had when they made it.
    let roles = st
        .tokens
        .roles_of(&s.owner)
        .unwrap_or_else(|| s.owner_roles.clone());
    let who = Principal {
        user: s.owner.clone(),
        roles,
    };
    let caller = Caller {
        source: format!("schedule {}", s.id),
        ip: None,
        via: Via::Schedule,
    };
    let submit = SubmitRequest {
        command: s.command.clone(),
        params: s.params.clone(),
        channel: s.target.channel.clone(),
        instance: s.target.instance,
        all_instances: s.target.all_instances,
        labels: s.target.labels.clone(),
        not_before: None,
    };
    match submit_for(
        st,
        &who,
        &caller,
        submit,
        Some(fire_key(&s.id, req.fire_at)),
    )
    .await
    {
        Ok(v) => FireReply {
            state: FireState::Submitted,
            job_id: first_job(&v),
            reason: None,
        },
        Err(e) => FireReply {
            state: match e.code {
                ErrorCode::Forbidden => FireState::Denied,
                // Not final: the scheduler tries the fire again.
                ErrorCode::Unavailable | ErrorCode::Internal => FireState::Claimed,
                _ => FireState::Failed,
            },
            job_id: None,
            reason: Some(e.message),
        },
    }
}

fn first_job(v: &Value) -> Option<Uuid> {
    let id = v
        .get("job_id")
        .or_else(|| v.get("jobs")?.get(0)?.get("job_id"))?;
    Uuid::parse_str(id.as_str()?).ok()
}
