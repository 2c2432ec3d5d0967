//! Following a job's output over NATS (`tw.api.jobs.follow`): the same check as the output
//! WebSocket (`read_own`, or `read_any` for another user's job), audited as `jobs.follow`,
//! then the job's shared feed. The NATS door (`nats_follow`) sends what the feed holds.

use super::jobs;
use crate::error::ApiError;
use crate::feed::Feed;
use crate::gateway::Gateway;
use crate::identity::{Action, Caller, Principal};
use std::sync::Arc;
use uuid::Uuid;

/// The output feed of job `job_id`, for a caller who may read it.
pub async fn open(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    job_id: Uuid,
) -> Result<Arc<Feed>, ApiError> {
    let record = jobs::readable(gw, who, caller, Action::JobsFollow, job_id).await?;
    Ok(gw.feeds.get(&record))
}
