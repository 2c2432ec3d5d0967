//! This replica's copy of every schedule's progress (`c.<schedule>` in `tw_schedule_fires`)
//! with its revision, kept current by a watch. A tick decides from the copy and writes by
//! compare-and-set on the copy's revision: a copy that is behind only makes that write fail,
//! and the entry is then read again. Without the watch (it failed or ended, and is being
//! started again) every read goes to NATS, as correct and only slower.

use crate::Shared;
use async_nats::jetstream::kv;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use taskwire_core::wire::ScheduleProgress;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Progress and revision by schedule.
#[derive(Debug, Default)]
pub struct Cache {
    entries: Mutex<HashMap<Uuid, (ScheduleProgress, u64)>>,
    /// True while the watch runs (the copy can be trusted to catch up).
    live: AtomicBool,
}

impl Cache {
    /// The copy, when the watch runs and has one.
    fn get(&self, id: &Uuid) -> Option<(ScheduleProgress, u64)> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        self.entries.lock().ok()?.get(id).cloned()
    }

    /// Keeps `p` at `revision` unless a newer revision is known already (revision 0: the
    /// schedule has no progress yet; the watch reports its first write).
    pub fn remember(&self, id: Uuid, p: ScheduleProgress, revision: u64) {
        if let Ok(mut m) = self.entries.lock() {
            match m.get(&id) {
                Some((_, known)) if *known >= revision => {}
                _ => {
                    m.insert(id, (p, revision));
                }
            }
        }
    }

    /// Drops the copy: the next read goes to NATS.
    pub fn forget(&self, id: &Uuid) {
        if let Ok(mut m) = self.entries.lock() {
            m.remove(id);
        }
    }

    fn stop(&self) {
        self.live.store(false, Ordering::Release);
        if let Ok(mut m) = self.entries.lock() {
            m.clear();
        }
    }
}

/// A schedule's progress and revision: the copy, else read (and kept).
pub async fn of(sh: &Shared, id: &Uuid) -> crate::Result<(ScheduleProgress, u64)> {
    if let Some(v) = sh.progress.get(id) {
        return Ok(v);
    }
    let (p, rev) = sh.store.progress(id).await?;
    sh.progress.remember(*id, p.clone(), rev);
    Ok((p, rev))
}

/// Starts the watch (every current value first, then changes); `None` if it cannot start.
pub async fn watch(sh: &Shared) -> Option<kv::Watch> {
    match sh.store.fires.watch_with_history("c.>").await {
        Ok(w) => {
            sh.progress.live.store(true, Ordering::Release);
            Some(w)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch schedule progress; reading it every tick meanwhile");
            None
        }
    }
}

/// Applies every change of a progress key to the copy, until `stop`. A watch that fails is
/// started again (the copy is dropped and rebuilt; ticks read NATS meanwhile).
pub async fn follow(
    sh: std::sync::Arc<Shared>,
    mut watch: Option<kv::Watch>,
    stop: CancellationToken,
) {
    let mut backoff = std::time::Duration::from_secs(1);
    loop {
        if let Some(w) = watch.take() {
            if !apply(&sh, w, &stop).await {
                return;
            }
            sh.progress.stop();
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
        watch = self::watch(&sh).await;
        if watch.is_some() {
            backoff = std::time::Duration::from_secs(1);
        }
    }
}

/// Follows one watch; `false` when stopped, `true` when the watch failed or ended.
async fn apply(sh: &Shared, mut watch: kv::Watch, stop: &CancellationToken) -> bool {
    loop {
        let entry = tokio::select! {
            e = watch.next() => e,
            _ = stop.cancelled() => return false,
        };
        let e = match entry {
            Some(Ok(e)) => e,
            Some(Err(err)) => {
                tracing::warn!(error = %err, "schedule progress watch failed; starting it again");
                return true;
            }
            None => {
                tracing::warn!("schedule progress watch ended; starting it again");
                return true;
            }
        };
        let Some(id) = e
            .key
            .strip_prefix("c.")
            .and_then(|k| Uuid::parse_str(k).ok())
        else {
            continue;
        };
        match e.operation {
            kv::Operation::Put => match serde_json::from_slice::<ScheduleProgress>(&e.value) {
                Ok(p) => sh.progress.remember(id, p, e.revision),
                Err(_) => sh.progress.forget(&id),
            },
            _ => sh.progress.forget(&id),
        }
    }
}
