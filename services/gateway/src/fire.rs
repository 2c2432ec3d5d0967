//! Schedule fires: a scheduler asks on `tw.sched.fire` (queue group of the gateways) and the
//! gateway runs the fire through the same operation as `POST /api/v1/jobs`, as the
//! schedule's owner: the owner's permission to run the command is checked again at every
//! fire, the decision is audited (via `schedule`), and the job id derives from the schedule
//! and the fire time, so a fire retried by another scheduler replica names the same job.

use crate::error::ErrorCode;
use crate::gateway::Gateway;
use crate::identity::{Caller, Principal};
use crate::ids::IdempotencyKey;
use crate::ops;
use std::sync::Arc;
use taskwire_core::serve::Responder;
use taskwire_core::wire::api::SubmitRequest;
use taskwire_core::wire::{FireReply, FireRequest, FireState};
use tokio_util::sync::CancellationToken;

/// The queue group gateways answer fires in.
const QUEUE_GROUP: &str = "taskwire-gateway";

/// Serves `tw.sched.fire` until `stop`.
pub async fn serve(gw: Arc<Gateway>, stop: CancellationToken) -> taskwire_core::Result<Responder> {
    let client = gw.client.clone();
    taskwire_core::serve::respond(
        &client,
        gw.ns.schedule_fire(),
        QUEUE_GROUP,
        stop,
        move |msg| {
            let gw = gw.clone();
            async move {
                let answer = match serde_json::from_slice::<FireRequest>(&msg.payload) {
                    Ok(req) => fire(&gw, req).await,
                    Err(e) => FireReply {
                        state: FireState::Failed,
                        job_id: None,
                        reason: Some(format!("the fire request is not readable: {e}")),
                    },
                };
                Some(serde_json::to_vec(&answer).unwrap_or_default().into())
            }
        },
    )
    .await
}

/// Runs one fire as the schedule's owner.
pub async fn fire(gw: &Gateway, req: FireRequest) -> FireReply {
    let s = &req.schedule;
    // The owner's roles as configured now (a revoked role takes effect at the next fire);
    // users the configuration does not list (JWT and proxy identities, `jwt:<name>` and
    // `proxy:<name>`, never match a token user) keep the roles they had when they made it.
    let roles = gw
        .auth
        .roles_of(&s.owner)
        .unwrap_or_else(|| s.owner_roles.clone());
    let who = Principal::recorded(&s.owner, roles);
    let submit = SubmitRequest {
        command: s.command.clone(),
        params: s.params.clone(),
        channel: s.target.channel.clone(),
        instance: s.target.instance,
        all_instances: s.target.all_instances,
        labels: s.target.labels.clone(),
        not_before: None,
    };
    let key = IdempotencyKey::of_fire(&s.id, req.fire_at);
    let caller = Caller::schedule(&s.id);
    let submitted = ops::jobs::submit_now(gw, &who, &caller, submit, Some(key));
    match crate::gateway::within_outage_wait(gw, submitted).await {
        Ok(submitted) => FireReply {
            state: FireState::Submitted,
            job_id: submitted.job_ids().first().copied(),
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
