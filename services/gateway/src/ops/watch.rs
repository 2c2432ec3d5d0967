//! Watching jobs: every later change of a job the caller may read (all jobs with `read_any`,
//! one's own with `read_own`), as it lands in `tw_jobs`, as the live part of the record
//! `GET /api/v1/jobs` lists. A deleted job is announced as removed (to `read_any` watchers,
//! and to `read_own` watchers for the jobs of theirs this watch has shown).

use super::jobs;
use crate::error::{ApiError, ErrorCode};
use crate::gateway::Gateway;
use crate::identity::{Action, Caller, Principal};
use futures::StreamExt;
use std::collections::HashSet;
use taskwire_core::wire::api::Frame;
use taskwire_core::wire::{JobRecord, StoredJob};
use uuid::Uuid;

/// A running watch: [`JobChanges::next`] gives each change as the frame to send.
pub struct JobChanges {
    changes: async_nats::jetstream::kv::Watch,
    /// With `read_own`: the watcher (only its jobs are shown).
    only: Option<String>,
    /// With `read_own`: the caller's jobs this watch has shown (a removal names no owner).
    own: HashSet<String>,
    /// The watch broke and said so: nothing more comes.
    ended: bool,
}

impl std::fmt::Debug for JobChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobChanges")
            .field("only", &self.only)
            .finish()
    }
}

/// Checks the caller's read permission (audited as `jobs.watch`), then follows `tw_jobs`
/// from now on. Once this returns, no change is missed: a client loads its list after it.
pub async fn start(gw: &Gateway, who: &Principal, caller: &Caller) -> Result<JobChanges, ApiError> {
    let any = jobs::read_scope(gw, who, caller, Action::JobsWatch).await?;
    let changes = gw
        .topology
        .jobs
        .watch_all()
        .await
        .map_err(|e| ApiError::internal("watching jobs", e))?;
    Ok(JobChanges {
        changes,
        only: (!any).then(|| who.user.clone()),
        own: HashSet::new(),
        ended: false,
    })
}

impl JobChanges {
    /// The next change the watcher may see: a `job` or `job_removed` frame, or a last
    /// `error` frame when the watch broke (the client sends `watch_jobs` again and reloads).
    /// `None` after that error.
    pub async fn next(&mut self) -> Option<Frame> {
        while !self.ended {
            let entry = match self.changes.next().await {
                Some(Ok(e)) => e,
                Some(Err(_)) => {
                    self.ended = true;
                    let err = ApiError::new(
                        ErrorCode::Unavailable,
                        "the job watch was interrupted; send watch_jobs again and reload the list",
                    );
                    return Some(Frame::error_for_op("watch_jobs", err.detail()));
                }
                None => return None,
            };
            let Ok(job_id) = Uuid::parse_str(&entry.key) else {
                continue;
            };
            if entry.operation == async_nats::jetstream::kv::Operation::Put {
                let Ok(record) = serde_json::from_slice::<JobRecord>(&entry.value) else {
                    continue;
                };
                if let Some(user) = &self.only {
                    if *user != record.spec.requested_by {
                        continue;
                    }
                    self.own.insert(entry.key.clone());
                }
                return Some(Frame::Job {
                    job: Box::new(StoredJob::live(record)),
                });
            }
            if self.only.is_some() && !self.own.remove(&entry.key) {
                continue;
            }
            return Some(Frame::JobRemoved { job_id });
        }
        None
    }
}
