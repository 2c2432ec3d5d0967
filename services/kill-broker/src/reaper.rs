//! No job stuck "running": a running job whose instance has been missing from the registry for
//! `lost_after` is marked `lost` (compare-and-set, so a job that ends meanwhile keeps its real
//! end), and a `lost` event tells every viewer. It is never re-run. So is one that started
//! before its instance's current run (the executor restarted with the same GUID) and that the
//! instance does not list in two sweeps in a row: a restarted executor never adopts the
//! processes of its previous run, and so reads no job records at its start. And, whatever the
//! clocks say, one its live instance has not listed for `lost_after` and three heartbeats. Nor stuck "queued": a job
//! no instance claimed within `unclaimed_after`, while no live instance serves its channel (or
//! its instance is gone), is marked `lost` the same way (an executor claims by compare-and-set
//! from `queued`, so it can no longer start it). A job only waiting for a free slot stays.

use crate::Broker;
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::time::Instant;
use taskwire_core::jobs::Decision;
use taskwire_core::wire::{EventKind, InstanceStatus, JobEvent, JobRecord, JobState, Target};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub async fn run(b: std::sync::Arc<Broker>, stop: CancellationToken) {
    let mut seen = Seen::default();
    let mut tick = tokio::time::interval(b.cfg.reap_interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = sweep(&b, &mut seen).await {
            // An absence counts only while sweeps see it (after an outage, an executor's
            // final write may still be on its way).
            seen.unlisted_since.clear();
            tracing::warn!(error = %e, "reaper sweep failed; retrying next round");
        }
    }
}

/// What one sweep leaves to the next.
#[derive(Default)]
struct Seen {
    /// When each missing instance was first seen missing.
    missing_since: HashMap<Uuid, Instant>,
    /// Running jobs that started before their instance's current run and that it does not
    /// list: lost once the next sweep finds the same (a job the instance has only just
    /// claimed is listed by its next heartbeat).
    left_by_restart: HashSet<Uuid>,
    /// Running jobs their live instance does not list: since when, and in how many of its
    /// heartbeats. Lost after `lost_after` and [`UNLISTED_BEATS`] heartbeats of that, whatever
    /// the clocks say (a clock behind after a reboot makes a new run look older than the job).
    unlisted_since: HashMap<Uuid, Unlisted>,
}

/// Heartbeats of its instance without a running job before the job counts as not run there:
/// one may have been taken before the claim, the others after it.
const UNLISTED_BEATS: u32 = 3;

#[derive(Clone, Copy)]
struct Unlisted {
    since: Instant,
    last_beat: chrono::DateTime<chrono::Utc>,
    beats: u32,
}

async fn sweep(b: &Broker, seen: &mut Seen) -> Result<(), String> {
    // The live instances (from the watched copy of the registry, or the bucket while the
    // copy is not current), and the channels some live, serving instance takes jobs from: a
    // job queued there is only waiting for a slot, not unclaimed for good.
    let instances = b.instances.list(&b.topology.instances).await?;
    let live: HashSet<Uuid> = instances.iter().map(|i| i.guid).collect();
    // Each live instance's current run: since when, its last heartbeat, and the jobs it runs.
    type Run = (
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
        HashSet<Uuid>,
    );
    let runs: HashMap<Uuid, Run> = instances
        .iter()
        .map(|i| {
            (
                i.guid,
                (
                    i.started_at,
                    i.heartbeat_at,
                    i.jobs.iter().map(|j| j.job_id).collect(),
                ),
            )
        })
        .collect();
    let serving: HashSet<String> = instances
        .into_iter()
        .filter(|i| i.status == InstanceStatus::Serving)
        .flat_map(|i| i.channels)
        .collect();
    let now = Instant::now();
    let missing_since = &mut seen.missing_since;
    missing_since.retain(|g, _| !live.contains(g));
    let suspects = std::mem::take(&mut seen.left_by_restart);
    let unlisted = std::mem::take(&mut seen.unlisted_since);
    for (r, rev) in unfinished(b).await? {
        let id = r.spec.job_id;
        if r.state == JobState::Queued {
            let served = match &r.spec.target {
                Target::Channel(c) => serving.contains(c),
                Target::Instance(g) => live.contains(g),
            };
            if !served {
                unclaimed(b, r, rev).await;
            }
            continue;
        }
        let Some(inst) = r.instance else { continue };
        if r.state != JobState::Running {
            continue;
        }
        if let Some((run_began, beat, listed)) = runs.get(&inst) {
            if listed.contains(&id) {
                continue;
            }
            let mut u = unlisted.get(&id).copied().unwrap_or(Unlisted {
                since: now,
                last_beat: *beat,
                beats: 1,
            });
            if u.last_beat != *beat {
                u.last_beat = *beat;
                u.beats += 1;
            }
            seen.unlisted_since.insert(id, u);
            // The instance is back with a new run (same GUID) and does not run this job (in two
            // sweeps: a job just claimed is listed by the next heartbeat): its processes ended
            // with the previous run, as an executor never adopts them. Or, however its clock
            // stands, it has not listed the job for a while.
            let older_run = r.started_at.is_some_and(|t| t < *run_began);
            let long_unlisted =
                now.duration_since(u.since) >= b.cfg.lost_after && u.beats >= UNLISTED_BEATS;
            if older_run && !suspects.contains(&id) && !long_unlisted {
                seen.left_by_restart.insert(id);
                continue;
            }
            if !older_run && !long_unlisted {
                continue;
            }
            let reason = if older_run {
                format!(
                    "instance {inst} restarted; the job's processes ended with the previous run"
                )
            } else {
                format!(
                    "instance {inst} is up but has not run the job for {} (it restarted, or the job's end was never written); the job's end is unknown",
                    taskwire_core::units::format_duration(b.cfg.lost_after)
                )
            };
            let still =
                move |cur: &JobRecord| cur.state == JobState::Running && cur.instance == Some(inst);
            if mark_lost(b, (r, rev), still, Some(inst), reason).await {
                tracing::warn!(job = %id, instance = %inst, "job its instance no longer runs marked lost");
            }
            continue;
        }
        let since = *missing_since.entry(inst).or_insert(now);
        if now.duration_since(since) < b.cfg.lost_after {
            continue;
        }
        let reason = format!(
            "instance {inst} ({}) stopped heartbeating; the job's end is unknown",
            r.hostname.clone().unwrap_or_default()
        );
        let still =
            move |cur: &JobRecord| cur.state == JobState::Running && cur.instance == Some(inst);
        if mark_lost(b, (r, rev), still, Some(inst), reason).await {
            tracing::warn!(job = %id, instance = %inst, "job marked lost");
        }
    }
    Ok(())
}

/// Every queued or running job with its revision: from the watched copy, or (while the watch
/// is down) by reading every record.
async fn unfinished(b: &Broker) -> Result<Vec<(JobRecord, u64)>, String> {
    if let Some(jobs) = b.active.snapshot() {
        // The bucket forgets a record `jobs_max_age` after its last write without a notice:
        // such an entry is gone from NATS, so from the copy too.
        let max_age = chrono::Duration::from_std(b.jobs_max_age).unwrap_or(chrono::Duration::MAX);
        let now = chrono::Utc::now();
        let mut out = Vec::new();
        for (key, r, rev) in jobs {
            if !b.jobs_max_age.is_zero() && now - r.updated_at > max_age {
                b.active.forget(&key);
            } else {
                out.push((r, rev));
            }
        }
        return Ok(out);
    }
    let mut keys = b.topology.jobs.keys().await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(k) = keys.next().await {
        if let Ok(k) = k
            && let Ok(id) = Uuid::parse_str(&k)
            && let Ok(Some((r, rev))) = b.store.get(&id).await
            && !r.state.is_terminal()
        {
            out.push((r, rev));
        }
    }
    Ok(out)
}

/// Keeps the copy of every unfinished job current until `stop`.
pub async fn follow_jobs(b: std::sync::Arc<Broker>, stop: CancellationToken) {
    let keep = |_: &str, v: &[u8]| {
        serde_json::from_slice::<JobRecord>(v)
            .ok()
            .filter(|r| !r.state.is_terminal())
    };
    b.active.follow(&b.topology.jobs, ">", keep, stop).await;
}

/// Keeps the copy of the instance registry current until `stop`.
pub async fn follow_instances(b: std::sync::Arc<Broker>, stop: CancellationToken) {
    b.instances.follow(b.topology.instances.clone(), stop).await;
}

/// Marks `r` lost if it has waited for an instance longer than `unclaimed_after`.
async fn unclaimed(b: &Broker, r: JobRecord, rev: u64) {
    if b.cfg.unclaimed_after.is_zero() {
        return; // switched off
    }
    let waited = chrono::Utc::now() - r.spec.queued_at;
    let limit = chrono::Duration::from_std(b.cfg.unclaimed_after).unwrap_or(chrono::Duration::MAX);
    if waited <= limit {
        return;
    }
    let id = r.spec.job_id;
    let target = match &r.spec.target {
        Target::Channel(c) => format!("channel '{c}'"),
        Target::Instance(g) => format!("instance {g}"),
    };
    let reason = format!(
        "no instance claimed it within {} ({target}); it never ran. Submit it again (with a new Idempotency-Key) once an instance serves it",
        taskwire_core::units::format_duration(b.cfg.unclaimed_after)
    );
    let still = |cur: &JobRecord| cur.state == JobState::Queued;
    if mark_lost(b, (r, rev), still, None, reason).await {
        tracing::warn!(job = %id, "queued job never claimed: marked lost");
    }
}

/// Moves a job to `lost` by compare-and-set while `still` holds for its record, and tells
/// every viewer why; `false` when the job moved on meanwhile (it keeps its real end).
async fn mark_lost(
    b: &Broker,
    read: (JobRecord, u64),
    still: impl Fn(&JobRecord) -> bool,
    instance: Option<Uuid>,
    reason: String,
) -> bool {
    let id = read.0.spec.job_id;
    let marked = b
        .store
        .transition_from(&id, Some(read), |cur| {
            if !still(cur) {
                return Ok(Decision::Keep(false));
            }
            let mut next = cur.clone();
            next.state = JobState::Lost;
            next.finished_at = Some(chrono::Utc::now());
            next.error = Some(reason.clone());
            Ok(Decision::Write(Box::new(next), true))
        })
        .await;
    if !matches!(marked, Ok((true, _))) {
        return false;
    }
    let _ = b
        .store
        .publish_event(&JobEvent {
            job_id: id,
            at: chrono::Utc::now(),
            instance,
            kind: EventKind::Lost { reason },
        })
        .await;
    true
}
