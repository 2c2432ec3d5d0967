//! This replica's copy of every schedule's progress (`c.<schedule>` in `tw_schedule_fires`)
//! with its revision, kept current by a watch (see [`KvCopy`]). A tick decides from the copy
//! and writes by compare-and-set on its revision; a write that fails drops the entry, which
//! is then read anew.

use crate::Shared;
use taskwire_core::kv_copy::KvCopy;
use taskwire_core::wire::ScheduleProgress;
use taskwire_core::wire::schedule::progress_key;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Progress and revision by progress key.
pub type Cache = KvCopy<ScheduleProgress>;

/// A schedule's progress and revision: the copy, else read (and kept).
pub async fn of(sh: &Shared, id: &Uuid) -> crate::Result<(ScheduleProgress, u64)> {
    let key = progress_key(id);
    if let Some(v) = sh.progress.get(&key) {
        return Ok(v);
    }
    let (p, rev) = sh.store.progress(id).await?;
    sh.progress.remember(key, p.clone(), rev);
    Ok((p, rev))
}

/// Writes a schedule's progress by compare-and-set on `revision` and keeps the copy in step:
/// the value as written and its revision, or `None` (the copy dropped, to be read anew) when
/// another replica wrote first or the copy was behind.
pub async fn write(
    sh: &Shared,
    id: &Uuid,
    p: &ScheduleProgress,
    revision: u64,
) -> crate::Result<Option<(ScheduleProgress, u64)>> {
    let written = sh.store.write_progress(id, p, revision).await?;
    match &written {
        Some((p, r)) => sh.progress.remember(progress_key(id), p.clone(), *r),
        None => forget(sh, id),
    }
    Ok(written)
}

/// Drops the copy of a schedule's progress: the next tick reads it anew.
pub fn forget(sh: &Shared, id: &Uuid) {
    sh.progress.forget(&progress_key(id));
}

/// Keeps the copy current until `stop`.
pub async fn follow(sh: std::sync::Arc<Shared>, stop: CancellationToken) {
    let keep = |_: &str, v: &[u8]| serde_json::from_slice::<ScheduleProgress>(v).ok();
    sh.progress.follow(&sh.store.fires, "c.>", keep, stop).await;
}
