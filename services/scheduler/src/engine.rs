//! The tick: for every enabled schedule, take the fires that are due (compare-and-set on the
//! schedule's progress, so exactly one replica takes each), apply the misfire policy to fires
//! that were due while no scheduler ran, and finish fires whose replica died.

use crate::fire::{self, Taken};
use crate::{Result, Shared};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use taskwire_core::schedule::Plan;
use taskwire_core::schedule::store::JOB_INDEX;
use taskwire_core::wire::{FireState, Misfire, Schedule, ScheduleProgress, Timing};
use tokio_util::sync::CancellationToken;

/// The most fires one schedule may have counted as missed in one pass.
const MAX_MISSED_SCAN: usize = 1_000_000;

/// Keeps the replica's copy of every schedule current until `stop`: a watch on
/// `tw_schedules` (the delayed-job index entries left out), started again with backoff
/// whenever it fails. While the copy is not current a tick reads the bucket instead.
pub async fn follow_schedules(sh: Arc<Shared>, stop: CancellationToken) {
    let keep = |key: &str, v: &[u8]| {
        if key.starts_with(JOB_INDEX) {
            return None;
        }
        match serde_json::from_slice::<Schedule>(v) {
            Ok(s) => Some(s),
            Err(err) => {
                tracing::warn!(schedule = %key, error = %err, "unreadable schedule ignored");
                None
            }
        }
    };
    sh.schedules
        .follow(&sh.store.schedules, ">", keep, stop)
        .await;
}

/// Every schedule: the copy, or the bucket while the copy is not current.
async fn schedules(sh: &Shared) -> Result<Vec<Schedule>> {
    match sh.schedules.snapshot() {
        Some(all) => {
            let mut list: Vec<Schedule> = all.into_iter().map(|(_, s, _)| s).collect();
            list.sort_by_key(|s| s.id);
            Ok(list)
        }
        None => Ok(sh.store.list().await?),
    }
}

/// Ticks until `stop`.
pub async fn run(sh: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(sh.cfg.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let all = match schedules(&sh).await {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the schedules; next tick tries again");
                continue;
            }
        };
        for s in all {
            if let Err(e) = pass(&sh, &s, Utc::now()).await {
                tracing::warn!(schedule = %s.id, error = %e, "schedule pass failed; next tick tries again");
            }
        }
    }
}

/// A fire's jitter: the same for every replica (derived from the schedule and the time).
pub fn jitter(s: &Schedule, at: DateTime<Utc>) -> chrono::Duration {
    let Some(j) = s.jitter else {
        return chrono::Duration::zero();
    };
    let ms = j.as_millis().max(1) as u64;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in
        s.id.as_bytes()
            .iter()
            .chain(at.timestamp_millis().to_le_bytes().iter())
    {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    chrono::Duration::milliseconds((h % ms) as i64)
}

/// What a pass decided about the fires it took.
#[derive(Debug, Default, PartialEq)]
pub struct Taking {
    /// Fires to run.
    pub run: Vec<DateTime<Utc>>,
    /// Fires not run by the misfire policy: (count, first, last).
    pub missed: Option<(usize, DateTime<Utc>, DateTime<Utc>)>,
    /// The new `through`.
    pub through: Option<DateTime<Utc>>,
}

/// The due fires of `s` after `from`, as of `now`, split by the misfire policy.
pub fn decide(
    s: &Schedule,
    plan: &Plan,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    grace: Duration,
) -> Taking {
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::seconds(5));
    let mut out = Taking::default();
    let mut late: Vec<DateTime<Utc>> = Vec::new();
    let mut late_count = 0usize;
    let mut first_late = None;
    let mut t = from;
    let mut scanned = 0;
    while let Some(next) = plan.next_after(t) {
        let due_at = next + jitter(s, next);
        if due_at > now || scanned >= MAX_MISSED_SCAN {
            break;
        }
        scanned += 1;
        out.through = Some(next);
        if now - due_at > grace {
            late_count += 1;
            first_late.get_or_insert(next);
            // Keep only the last two: the one that may run, and the one before it.
            late.push(next);
            if late.len() > 2 {
                late.remove(0);
            }
        } else {
            out.run.push(next);
        }
        t = next;
    }
    if late_count > 0 {
        let first = first_late.unwrap_or(from);
        match s.misfire {
            Misfire::Skip => {
                out.missed = Some((late_count, first, *late.last().unwrap_or(&first)));
            }
            Misfire::RunOnce => {
                let last = *late.last().unwrap_or(&first);
                if late_count > 1 {
                    let before = late.first().copied().unwrap_or(first);
                    out.missed = Some((late_count - 1, first, before));
                }
                out.run.insert(0, last);
            }
        }
    }
    out
}

/// Keeping a schedule's progress alive in a bucket that forgets keys.
#[derive(Debug, PartialEq, Eq)]
pub enum Upkeep {
    None,
    /// Write the progress again before the bucket forgets it (a schedule without progress
    /// would take its past fires again).
    Rewrite,
    /// A one-shot schedule that fired, whose fire history has expired too: remove it.
    Retire,
}

/// What a schedule's stored progress needs, as of `now`, with keys kept `max_age`.
pub fn upkeep(s: &Schedule, p: &ScheduleProgress, now: DateTime<Utc>, max_age: Duration) -> Upkeep {
    if max_age.is_zero() {
        return Upkeep::None; // a bucket without an age limit forgets nothing
    }
    let max_age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
    if let Timing::Once { at } = s.timing
        && p.through.is_some_and(|t| t >= at)
        && p.inflight.is_empty()
        && p.waiting.is_none()
        && now - at > max_age
    {
        return Upkeep::Retire;
    }
    match p.written_at {
        Some(w) if now - w < max_age / 3 => Upkeep::None,
        _ => Upkeep::Rewrite,
    }
}

/// One schedule's pass: take what is due, then finish abandoned and waiting fires.
async fn pass(sh: &Arc<Shared>, s: &Schedule, now: DateTime<Utc>) -> Result<()> {
    let plan = match Plan::of(s) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(schedule = %s.id, error = %e, "schedule cannot fire");
            return Ok(());
        }
    };
    let (mut progress, mut rev) = crate::progress::of(sh, &s.id).await?;
    if rev > 0 {
        match upkeep(s, &progress, now, sh.fires_max_age) {
            Upkeep::None => {}
            Upkeep::Rewrite => {
                // unchanged but for its stamp; another replica may have written first
                match crate::progress::write(sh, &s.id, &progress, rev).await? {
                    Some(written) => (progress, rev) = written,
                    None => return Ok(()), // read anew next tick
                }
            }
            Upkeep::Retire => {
                // only as this replica knows it: a schedule changed meanwhile is left alone
                if let Some((now_stored, revision)) = sh.store.get(&s.id).await?
                    && now_stored == *s
                {
                    sh.store.remove(s, Some(revision)).await?;
                    crate::progress::forget(sh, &s.id);
                    tracing::info!(schedule = %s.id, "one-shot schedule done and its history expired: removed");
                }
                return Ok(());
            }
        }
    }
    if !s.enabled {
        // Paused: nothing new is due, but fires taken before the pause are still finished.
        if !progress.inflight.is_empty() || progress.waiting.is_some() {
            finish_abandoned(sh, s, &progress, now).await;
        }
        return Ok(());
    }
    let from = progress
        .through
        .map_or(s.active_since, |t| t.max(s.active_since));
    let d = decide(s, &plan, from, now, sh.cfg.misfire_grace);
    if let Some(through) = d.through {
        let mut next = progress.clone();
        next.through = Some(through);
        for t in &d.run {
            next.inflight.insert(t.timestamp_millis(), now);
        }
        if rev == 0 && sh.store.get(&s.id).await?.is_none() {
            // A schedule removed meanwhile (a one-shot retired by another replica, whose
            // progress is gone too) is not to be taken from its start again.
            crate::progress::forget(sh, &s.id);
            return Ok(());
        }
        if crate::progress::write(sh, &s.id, &next, rev)
            .await?
            .is_none()
        {
            // Another replica took these fires (or this copy was behind): read it anew.
            return Ok(());
        }
        if let Some((count, first, last)) = d.missed {
            fire::record_missed(sh, s, count, first, last, d.run.first().copied()).await?;
        }
        for t in d.run {
            fire::spawn(sh.clone(), s.clone(), t, Taken::New);
        }
        return Ok(());
    }
    finish_abandoned(sh, s, &progress, now).await;
    Ok(())
}

/// Fires taken by a replica that did not finish them in time, and a fire that waits for the
/// previous job: carried out here (each at most once at a time, by compare-and-set on the fire).
async fn finish_abandoned(
    sh: &Arc<Shared>,
    s: &Schedule,
    p: &ScheduleProgress,
    now: DateTime<Utc>,
) {
    let timeout =
        chrono::Duration::from_std(sh.cfg.claim_timeout).unwrap_or(chrono::Duration::seconds(10));
    for (ms, taken) in &p.inflight {
        let mine = sh
            .active
            .lock()
            .map(|a| a.contains(&(s.id, *ms)))
            .unwrap_or(true);
        if mine || now - *taken < timeout || Some(*ms) == p.waiting {
            continue;
        }
        let Some(at) = DateTime::<Utc>::from_timestamp_millis(*ms) else {
            continue;
        };
        match sh.store.fire(&s.id, at).await {
            Ok(Some((rec, _))) if rec.state.is_final() => {
                fire::forget(sh, s, at, &rec).await;
            }
            Ok(Some((rec, rev)))
                if rec.state == FireState::Claimed && now - rec.updated_at >= timeout =>
            {
                fire::spawn(sh.clone(), s.clone(), at, Taken::Over(rec, rev));
            }
            Ok(None) => fire::spawn(sh.clone(), s.clone(), at, Taken::New),
            _ => {}
        }
    }
    if let Some(ms) = p.waiting
        && let Some(at) = DateTime::<Utc>::from_timestamp_millis(ms)
        && !sh
            .active
            .lock()
            .map(|a| a.contains(&(s.id, ms)))
            .unwrap_or(true)
        && fire::previous_done(sh, p).await
        && let Ok(Some((rec, rev))) = sh.store.fire(&s.id, at).await
        && rec.state == FireState::Waiting
    {
        fire::spawn(sh.clone(), s.clone(), at, Taken::Waited(rec, rev));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskwire_core::wire::{Overlap, ScheduleTarget, Timing};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn every_10s(misfire: Misfire) -> Schedule {
        Schedule {
            id: uuid::Uuid::nil(),
            name: String::new(),
            command: "x".into(),
            params: Default::default(),
            target: ScheduleTarget::default(),
            timing: Timing::Interval {
                every: Duration::from_secs(10),
                start: None,
            },
            owner: "a".into(),
            owner_roles: vec![],
            enabled: true,
            overlap: Overlap::Allow,
            misfire,
            jitter: None,
            active_since: t("2026-01-01T00:00:00Z"),
            job_id: None,
            created_at: t("2026-01-01T00:00:00Z"),
            updated_at: t("2026-01-01T00:00:00Z"),
        }
    }

    #[test]
    fn progress_is_rewritten_before_the_bucket_forgets_it_and_done_one_shots_retire() {
        let day = Duration::from_secs(86_400);
        let keep = 30 * day;
        let s = every_10s(Misfire::RunOnce);
        let now = t("2026-03-01T00:00:00Z");
        let written = |at: &str| ScheduleProgress {
            through: Some(t("2026-02-28T23:59:50Z")),
            written_at: Some(t(at)),
            ..ScheduleProgress::default()
        };
        assert_eq!(
            upkeep(&s, &written("2026-02-28T00:00:00Z"), now, keep),
            Upkeep::None
        );
        assert_eq!(
            upkeep(&s, &written("2026-02-01T00:00:00Z"), now, keep),
            Upkeep::Rewrite
        );
        // Written before the stamp existed.
        let unstamped = ScheduleProgress::default();
        assert_eq!(upkeep(&s, &unstamped, now, keep), Upkeep::Rewrite);
        // No age limit (0): nothing is forgotten, nothing to do.
        assert_eq!(upkeep(&s, &unstamped, now, Duration::ZERO), Upkeep::None);

        let mut once = every_10s(Misfire::RunOnce);
        once.timing = Timing::Once {
            at: t("2026-01-15T00:00:00Z"),
        };
        let fired = ScheduleProgress {
            through: Some(t("2026-01-15T00:00:00Z")),
            written_at: Some(t("2026-02-28T00:00:00Z")),
            ..ScheduleProgress::default()
        };
        // Fired, and its history (kept 30 days) is gone: removed.
        assert_eq!(upkeep(&once, &fired, now, keep), Upkeep::Retire);
        // Fired recently: kept, so its history can be read.
        assert_eq!(upkeep(&once, &fired, now, 60 * day), Upkeep::None);
        // Still being carried out, or not fired yet: kept.
        let mut busy = fired.clone();
        busy.inflight.insert(0, now);
        assert_eq!(upkeep(&once, &busy, now, keep), Upkeep::None);
        let mut waiting = fired.clone();
        waiting.through = None;
        assert_eq!(upkeep(&once, &waiting, now, keep), Upkeep::None);
    }

    #[test]
    fn on_time_fires_run_and_late_ones_follow_the_misfire_policy() {
        let grace = Duration::from_secs(5);
        let s = every_10s(Misfire::Skip);
        let plan = Plan::of(&s).unwrap();
        // On time: the fire at :10 seen at :11.
        let d = decide(
            &s,
            &plan,
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T00:00:11Z"),
            grace,
        );
        assert_eq!(d.run, vec![t("2026-01-01T00:00:10Z")]);
        assert_eq!(d.missed, None);
        // Down from :00 to 01:00: 359 fires missed, the one at 01:00:00 is on time.
        let d = decide(
            &s,
            &plan,
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T01:00:02Z"),
            grace,
        );
        assert_eq!(d.run, vec![t("2026-01-01T01:00:00Z")]);
        assert_eq!(
            d.missed,
            Some((359, t("2026-01-01T00:00:10Z"), t("2026-01-01T00:59:50Z")))
        );
        assert_eq!(d.through, Some(t("2026-01-01T01:00:00Z")));
        // run_once: the latest missed fire runs, the others are recorded missed.
        let s = every_10s(Misfire::RunOnce);
        let d = decide(
            &s,
            &plan,
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T00:00:58Z"),
            grace,
        );
        assert_eq!(d.run, vec![t("2026-01-01T00:00:50Z")]);
        assert_eq!(
            d.missed,
            Some((4, t("2026-01-01T00:00:10Z"), t("2026-01-01T00:00:40Z")))
        );
        // Nothing due yet.
        let d = decide(
            &s,
            &plan,
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T00:00:09Z"),
            grace,
        );
        assert_eq!(d, Taking::default());
    }

    #[test]
    fn a_cron_in_berlin_fires_at_the_right_instants_across_both_changes() {
        // The clock is injected: a replica's passes every 10 s through the nights of the
        // spring-forward (29 March) and fall-back (25 October) changes of 2026.
        let mut s = every_10s(Misfire::Skip);
        s.timing = Timing::Cron {
            cron: "0 30 2 * * *".into(),
            time_zone: "Europe/Berlin".into(),
        };
        let plan = Plan::of(&s).unwrap();
        let grace = Duration::from_secs(5);
        let mut fired = Vec::new();
        for (start, end) in [
            ("2026-03-27T12:00:00Z", "2026-03-30T12:00:00Z"),
            ("2026-10-23T12:00:00Z", "2026-10-27T12:00:00Z"),
        ] {
            let mut through = t(start);
            let mut now = t(start);
            while now < t(end) {
                let d = decide(&s, &plan, through, now, grace);
                assert_eq!(d.missed, None, "a replica that runs misses nothing");
                fired.extend(d.run);
                if let Some(th) = d.through {
                    through = th;
                }
                now += chrono::Duration::seconds(10);
            }
        }
        let want: Vec<DateTime<Utc>> = [
            "2026-03-28T01:30:00Z", // 02:30 CET
            "2026-03-29T01:00:00Z", // 02:30 does not exist: when the clocks jump to 03:00
            "2026-03-30T00:30:00Z", // 02:30 CEST
            "2026-10-24T00:30:00Z", // 02:30 CEST
            "2026-10-25T00:30:00Z", // 02:30 happens twice: once, the first time
            "2026-10-26T01:30:00Z", // 02:30 CET
            "2026-10-27T01:30:00Z",
        ]
        .iter()
        .map(|x| t(x))
        .collect();
        assert_eq!(fired, want);
    }

    #[test]
    fn jitter_is_the_same_everywhere_and_within_bounds() {
        let mut s = every_10s(Misfire::Skip);
        s.jitter = Some(Duration::from_secs(3));
        let at = t("2026-01-01T00:00:10Z");
        assert_eq!(jitter(&s, at), jitter(&s, at));
        for i in 0..100 {
            let j = jitter(&s, at + chrono::Duration::seconds(i));
            assert!(j >= chrono::Duration::zero() && j < chrono::Duration::seconds(3));
        }
    }
}
