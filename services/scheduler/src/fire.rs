//! One fire: claim its key, apply the overlap policy, ask a gateway to run it, and record how
//! it ended in the schedule's history.

use crate::{Result, Shared};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use taskwire_core::wire::{
    FireRecord, FireReply, FireRequest, FireState, Overlap, Schedule, ScheduleProgress,
};

/// How this replica came to carry out a fire.
#[derive(Debug)]
pub enum Taken {
    /// It took the fire in a pass: the fire's key does not exist yet.
    New,
    /// The replica that took it did not finish it in time: the record at this revision.
    Over(FireRecord, u64),
    /// It waited for the previous job (overlap `queue`), which has ended.
    Waited(FireRecord, u64),
}

/// Carries out a fire in its own task, unless this replica is already doing so.
pub fn spawn(sh: Arc<Shared>, s: Schedule, at: DateTime<Utc>, taken: Taken) {
    let key = (s.id, at.timestamp_millis());
    let fresh = sh.active.lock().map(|mut a| a.insert(key)).unwrap_or(false);
    if !fresh {
        return;
    }
    tokio::spawn(async move {
        if let Err(e) = carry_out(&sh, &s, at, taken).await {
            tracing::warn!(schedule = %s.id, fire = %at, error = %e, "fire not finished; it will be taken over");
        }
        if let Ok(mut a) = sh.active.lock() {
            a.remove(&key);
        }
    });
}

fn record(sh: &Shared, s: &Schedule, at: DateTime<Utc>, state: FireState) -> FireRecord {
    FireRecord {
        schedule_id: s.id,
        fire_at: at,
        state,
        by: sh.replica.clone(),
        job_id: None,
        reason: None,
        updated_at: Utc::now(),
    }
}

async fn carry_out(sh: &Shared, s: &Schedule, at: DateTime<Utc>, taken: Taken) -> Result<()> {
    let claim = record(sh, s, at, FireState::Claimed);
    let waited = matches!(taken, Taken::Waited(..));
    let rev = match taken {
        Taken::New => match sh.store.claim(&claim).await? {
            Some(rev) => rev,
            None => {
                // Already recorded (a take-over raced us): clean up if it is over.
                if let Some((rec, _)) = sh.store.fire(&s.id, at).await?
                    && rec.state.is_final()
                {
                    forget(sh, s, at, &rec).await;
                }
                return Ok(());
            }
        },
        Taken::Over(_, rev) | Taken::Waited(_, rev) => {
            match sh.store.update_fire(&claim, rev).await? {
                Some(rev) => rev,
                None => return Ok(()),
            }
        }
    };
    if !waited && s.overlap != Overlap::Allow {
        let (p, _) = sh.store.progress(&s.id).await?;
        if !previous_done(sh, &p).await {
            let prev = p.last_job.map(|j| j.to_string()).unwrap_or_default();
            if s.overlap == Overlap::Queue && p.waiting.is_none() {
                let mut w = record(sh, s, at, FireState::Waiting);
                w.reason = Some(format!(
                    "waiting for the previous run {prev} to end (overlap: queue)"
                ));
                if sh.store.update_fire(&w, rev).await?.is_some() {
                    set_waiting(sh, s, at).await;
                }
                return Ok(());
            }
            let why = if s.overlap == Overlap::Queue {
                "a run is already waiting for the previous one (overlap: queue)".to_string()
            } else {
                format!("the previous run {prev} is still running (overlap: skip)")
            };
            return finish(sh, s, at, rev, FireState::Skipped, None, Some(why)).await;
        }
    }
    let request = FireRequest {
        schedule: s.clone(),
        fire_at: at,
    };
    let body = serde_json::to_vec(&request).unwrap_or_default();
    let asked = tokio::time::timeout(
        sh.cfg.fire_timeout,
        sh.client.request(sh.ns.schedule_fire(), body.into()),
    )
    .await;
    let reply: FireReply = match asked {
        Ok(Ok(m)) => match serde_json::from_slice(&m.payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(schedule = %s.id, error = %e, "unreadable answer to a fire; trying again later");
                return Ok(());
            }
        },
        Ok(Err(e)) => {
            tracing::warn!(schedule = %s.id, error = %e, "no gateway took the fire; trying again later");
            return Ok(());
        }
        Err(_) => {
            tracing::warn!(schedule = %s.id, "no gateway answered the fire in time; trying again later");
            return Ok(());
        }
    };
    if !reply.state.is_final() {
        tracing::warn!(schedule = %s.id, reason = ?reply.reason, "the gateway could not run the fire now; trying again later");
        return Ok(());
    }
    finish(sh, s, at, rev, reply.state, reply.job_id, reply.reason).await
}

async fn finish(
    sh: &Shared,
    s: &Schedule,
    at: DateTime<Utc>,
    rev: u64,
    state: FireState,
    job: Option<uuid::Uuid>,
    reason: Option<String>,
) -> Result<()> {
    let mut rec = record(sh, s, at, state);
    rec.job_id = job;
    rec.reason = reason;
    if sh.store.update_fire(&rec, rev).await?.is_some() {
        if state == FireState::Denied {
            tracing::info!(schedule = %s.id, fire = %at, reason = ?rec.reason, "fire denied");
        }
        forget(sh, s, at, &rec).await;
    }
    Ok(())
}

/// True when the schedule's previous job has ended (or there is none).
pub async fn previous_done(sh: &Shared, p: &ScheduleProgress) -> bool {
    let Some(job) = p.last_job else { return true };
    match sh.jobs.get(&job).await {
        Ok(Some((r, _))) => r.state.is_terminal(),
        Ok(None) => true,
        Err(_) => false,
    }
}

/// Updates the schedule's progress once a fire is final: no longer in flight or waiting, and
/// (when it made a job) the schedule's latest job.
pub async fn forget(sh: &Shared, s: &Schedule, at: DateTime<Utc>, rec: &FireRecord) {
    let ms = at.timestamp_millis();
    for _ in 0..20 {
        let Ok((mut p, rev)) = sh.store.progress(&s.id).await else {
            return;
        };
        let mut changed = p.inflight.remove(&ms).is_some();
        if p.waiting == Some(ms) {
            p.waiting = None;
            changed = true;
        }
        if rec.state == FireState::Submitted && rec.job_id.is_some() && p.last_job != rec.job_id {
            p.last_job = rec.job_id;
            changed = true;
        }
        if !changed {
            return;
        }
        match sh.store.set_progress(&s.id, &p, rev).await {
            Ok(true) => return,
            Ok(false) => continue,
            Err(_) => return,
        }
    }
}

async fn set_waiting(sh: &Shared, s: &Schedule, at: DateTime<Utc>) {
    let ms = at.timestamp_millis();
    for _ in 0..20 {
        let Ok((mut p, rev)) = sh.store.progress(&s.id).await else {
            return;
        };
        p.waiting = Some(ms);
        match sh.store.set_progress(&s.id, &p, rev).await {
            Ok(true) | Err(_) => return,
            Ok(false) => continue,
        }
    }
}

/// Records fires that were due while no scheduler ran and are not run.
pub async fn record_missed(
    sh: &Shared,
    s: &Schedule,
    count: usize,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    instead: Option<DateTime<Utc>>,
) -> Result<()> {
    let mut rec = record(sh, s, last, FireState::Missed);
    let span = if count == 1 {
        format!("the fire at {first} was due while no scheduler ran")
    } else {
        format!("{count} fires from {first} to {last} were due while no scheduler ran")
    };
    rec.reason = Some(match (s.misfire, instead) {
        (taskwire_core::wire::Misfire::RunOnce, Some(i)) => {
            format!("{span}; the fire at {i} runs once for them (misfire: run_once)")
        }
        _ => format!("{span}; not run (misfire: skip)"),
    });
    sh.store.claim(&rec).await?;
    Ok(())
}
