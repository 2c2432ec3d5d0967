//! The store's answers: job history with filters and cursor paging (newest first), one job,
//! its output in pages, and the audit log.

use crate::fold::micros;
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use taskwire_core::wire::history::{MAX_OUTPUT_PAGE, MAX_PAGE};
use taskwire_core::wire::output::{ChunkEncoding, decode_chunk};
use taskwire_core::wire::{
    AuditEvent, AuditPage, AuditQuery, JobPage, JobQuery, JobRecord, JobSpec, JobState, OutputPage,
    OutputQuery, OutputStream, StoreError, StoreErrorCode, StoredChunk, StoredJob, TreeMode,
    TreeReport,
};
use taskwire_migrations::entity::{audit_log, executions, job_output};
use uuid::Uuid;

pub type Answer<T> = Result<T, StoreError>;

fn invalid(message: impl Into<String>) -> StoreError {
    StoreError {
        code: StoreErrorCode::InvalidQuery,
        message: message.into(),
    }
}

fn unavailable(e: DbErr) -> StoreError {
    StoreError {
        code: StoreErrorCode::Unavailable,
        message: format!("the audit database did not answer: {e}"),
    }
}

fn limit(l: Option<u32>) -> Answer<u64> {
    match l {
        None => Ok(50),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(u64::from(n)),
        Some(n) => Err(invalid(format!(
            "limit {n} is out of range; use 1 to {MAX_PAGE}"
        ))),
    }
}

/// A cursor is `<microseconds>.<uuid>` of the last row of the previous page.
fn cursor(text: &Option<String>) -> Answer<Option<(i64, Uuid)>> {
    let Some(t) = text else { return Ok(None) };
    let bad = || {
        invalid(format!(
            "cursor '{t}' is not one this store handed out; start again without it"
        ))
    };
    let (at, id) = t.split_once('.').ok_or_else(bad)?;
    Ok(Some((
        at.parse().map_err(|_| bad())?,
        Uuid::parse_str(id).map_err(|_| bad())?,
    )))
}

/// Adds the time range and the cursor to `cond`, for a listing ordered by (`at`, `id`)
/// descending.
fn window<C: ColumnTrait>(
    cond: Condition,
    at: C,
    id: C,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    after: &Option<String>,
) -> Answer<Condition> {
    let mut cond = cond;
    if let Some(t) = since {
        cond = cond.add(at.gte(micros(t)));
    }
    if let Some(t) = until {
        cond = cond.add(at.lt(micros(t)));
    }
    if let Some((a, i)) = cursor(after)? {
        cond = cond.add(
            Condition::any()
                .add(at.lt(a))
                .add(Condition::all().add(at.eq(a)).add(id.lt(i))),
        );
    }
    Ok(cond)
}

/// Cuts the `limit + 1` rows fetched to one page, and the cursor of the next page if any.
fn page<M>(rows: Vec<M>, limit: u64, key: impl Fn(&M) -> (i64, Uuid)) -> (Vec<M>, Option<String>) {
    let more = rows.len() as u64 > limit;
    let rows: Vec<M> = rows.into_iter().take(limit as usize).collect();
    let next = if more {
        rows.last().map(|r| {
            let (at, id) = key(r);
            format!("{at}.{id}")
        })
    } else {
        None
    };
    (rows, next)
}

fn time(us: Option<i64>) -> Option<DateTime<Utc>> {
    us.and_then(DateTime::from_timestamp_micros)
}

fn u64_of(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

/// The API view of a row (`None` until the job's `queued` event is stored).
pub fn stored_job(m: executions::Model) -> Option<StoredJob> {
    let mut spec = JobSpec::new(
        m.command?,
        serde_json::from_value(m.target?).ok()?,
        m.requested_by?,
        serde_json::from_value(serde_json::Value::String(m.via?)).ok()?,
    )
    .with_id(m.job_id)
    .with_params(
        m.params
            .and_then(|p| serde_json::from_value(p).ok())
            .unwrap_or_default(),
    )
    .in_group(m.group_id)
    .queued_at(time(m.queued_at_us)?);
    spec.attempt = m.attempt.and_then(|a| u32::try_from(a).ok()).unwrap_or(1);
    spec.retry_of = m.retry_of;
    let state: JobState = serde_json::from_value(serde_json::Value::String(m.state)).ok()?;
    let tree = match (m.tree_mode.as_deref(), m.leftover, m.survivors) {
        (Some(mode), Some(l), Some(s)) => Some(TreeReport {
            mode: if mode == "cgroup" {
                TreeMode::Cgroup
            } else {
                TreeMode::ProcessGroup
            },
            leftover: u32::try_from(l).unwrap_or(0),
            survivors: u32::try_from(s).unwrap_or(0),
        }),
        _ => None,
    };
    let record = JobRecord {
        spec,
        state,
        instance: m.instance,
        hostname: m.hostname,
        started_at: time(m.started_at_us),
        finished_at: time(m.finished_at_us),
        exit_code: m.exit_code,
        signal: m.signal,
        error: m.error,
        ended_by: m.ended_by,
        cancelled_before_queued: false,
        updated_at: time(Some(m.updated_at_us))?,
    };
    Some(StoredJob {
        record,
        argv: m.argv.and_then(|a| serde_json::from_value(a).ok()),
        pid: m.pid.and_then(|p| u32::try_from(p).ok()),
        duration_ms: u64_of(m.duration_ms),
        ended_at: time(m.ended_at_us),
        peak_rss_bytes: u64_of(m.peak_rss_bytes),
        output_bytes: u64_of(m.output_bytes),
        last_seq: u64_of(m.last_seq),
        output_truncated: m.output_truncated,
        result: m.result,
        tree,
    })
}

/// Job history, newest first.
pub async fn jobs(db: &DatabaseConnection, q: &JobQuery) -> Answer<JobPage> {
    use executions::Column as C;
    let limit = limit(q.limit)?;
    let mut cond = Condition::all().add(C::QueuedAtUs.is_not_null());
    if let Some(u) = &q.user {
        cond = cond.add(C::RequestedBy.eq(u.as_str()));
    }
    if let Some(c) = &q.command {
        cond = cond.add(C::Command.eq(c.as_str()));
    }
    if let Some(s) = q.state {
        cond = cond.add(C::State.eq(s.as_str()));
    }
    if let Some(i) = q.instance {
        cond = cond.add(C::Instance.eq(i));
    }
    cond = window(cond, C::QueuedAtUs, C::JobId, q.since, q.until, &q.cursor)?;
    let rows = executions::Entity::find()
        .filter(cond)
        .order_by_desc(C::QueuedAtUs)
        .order_by_desc(C::JobId)
        .limit(limit + 1)
        .all(db)
        .await
        .map_err(unavailable)?;
    let (rows, next) = page(rows, limit, |r| (r.queued_at_us.unwrap_or(0), r.job_id));
    Ok(JobPage {
        jobs: rows.into_iter().filter_map(stored_job).collect(),
        next,
    })
}

/// One job.
pub async fn job(db: &DatabaseConnection, id: Uuid) -> Answer<StoredJob> {
    let row = executions::Entity::find_by_id(id)
        .one(db)
        .await
        .map_err(unavailable)?;
    row.and_then(stored_job).ok_or_else(|| StoreError {
        code: StoreErrorCode::NotFound,
        message: format!("job {id} is not in the audit store"),
    })
}

/// A page of a job's output from `from_seq` on: whole chunks, up to `max_bytes` (at least one).
pub async fn output(db: &DatabaseConnection, q: &OutputQuery) -> Answer<OutputPage> {
    use job_output::Column as C;
    let max = u64::from(
        q.max_bytes
            .unwrap_or(MAX_OUTPUT_PAGE)
            .clamp(1, MAX_OUTPUT_PAGE),
    );
    let from = i64::try_from(q.from_seq.max(1)).map_err(|_| invalid("from_seq is too large"))?;
    const ROWS: u64 = 64;
    let rows = job_output::Entity::find()
        .filter(C::JobId.eq(q.job_id))
        .filter(C::Seq.gte(from))
        .order_by_asc(C::Seq)
        .limit(ROWS)
        .all(db)
        .await
        .map_err(unavailable)?;
    let fetched = rows.len() as u64;
    let mut chunks = Vec::new();
    let mut bytes = 0u64;
    let mut next_seq = None;
    for r in rows {
        let seq = u64::try_from(r.seq).unwrap_or(0);
        let (stream, data) = stored_bytes(q.job_id, seq, r.stream, r.encoding, r.data);
        if !chunks.is_empty() && bytes + data.len() as u64 > max {
            next_seq = Some(seq);
            break;
        }
        bytes += data.len() as u64;
        chunks.push(StoredChunk { seq, stream, data });
    }
    if next_seq.is_none() && fetched == ROWS {
        next_seq = chunks.last().map(|c| c.seq + 1);
    }
    Ok(OutputPage { chunks, next_seq })
}

/// A stored chunk's stream and the bytes the process wrote (decompressed). A chunk that cannot
/// be read keeps its place as a system line that says why.
fn stored_bytes(
    job: Uuid,
    seq: u64,
    stream: String,
    encoding: Option<String>,
    data: Vec<u8>,
) -> (OutputStream, Vec<u8>) {
    let stream = OutputStream::parse(&stream).unwrap_or(OutputStream::System);
    let read = ChunkEncoding::parse(encoding.as_deref()).and_then(|e| match e {
        ChunkEncoding::Raw => Ok(data),
        _ => decode_chunk(e, &bytes::Bytes::from(data)).map(Vec::from),
    });
    match read {
        Ok(b) => (stream, b),
        Err(e) => {
            tracing::warn!(%job, seq, error = %e, "stored output chunk cannot be read");
            (
                OutputStream::System,
                format!("[taskwire] chunk {seq} of this log cannot be read: {e}\n").into_bytes(),
            )
        }
    }
}

/// The audit log, newest first.
pub async fn audit(db: &DatabaseConnection, q: &AuditQuery) -> Answer<AuditPage> {
    use audit_log::Column as C;
    let limit = limit(q.limit)?;
    let mut cond = Condition::all();
    if let Some(a) = &q.actor {
        cond = cond.add(C::Actor.eq(a.as_str()));
    }
    if let Some(a) = &q.action {
        if a.ends_with('.') {
            cond = cond.add(C::Action.starts_with(a.as_str()));
        } else {
            cond = cond.add(C::Action.eq(a.as_str()));
        }
    }
    if let Some(t) = &q.target {
        cond = cond.add(C::Target.eq(t.as_str()));
    }
    if let Some(a) = q.allowed {
        cond = cond.add(C::Allowed.eq(a));
    }
    cond = window(cond, C::AtUs, C::Id, q.since, q.until, &q.cursor)?;
    let rows = audit_log::Entity::find()
        .filter(cond)
        .order_by_desc(C::AtUs)
        .order_by_desc(C::Id)
        .limit(limit + 1)
        .all(db)
        .await
        .map_err(unavailable)?;
    let (rows, next) = page(rows, limit, |r| (r.at_us, r.id));
    let entries = rows
        .into_iter()
        .filter_map(|r| {
            Some(AuditEvent {
                id: r.id,
                at: time(Some(r.at_us))?,
                actor: r.actor,
                action: r.action,
                target: r.target,
                allowed: r.allowed,
                reason: r.reason,
                source: r.source,
                via: serde_json::from_value(serde_json::Value::String(r.via)).ok()?,
            })
        })
        .collect();
    Ok(AuditPage { entries, next })
}
