//! The schedule store: schedules in bucket `tw_schedules`, fires and progress in bucket
//! `tw_schedule_fires`. A fire key is created once (the claim that makes a fire happen once
//! across scheduler replicas) and then updated by compare-and-set until it is final.

use crate::error::{Error, Result};
use crate::wire::schedule::{
    FireRecord, Schedule, ScheduleProgress, fire_filter, fire_key, progress_key,
};
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::kv;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use uuid::Uuid;

fn err(step: &'static str, e: impl std::fmt::Display) -> Error {
    Error::ScheduleStore {
        step,
        message: e.to_string(),
    }
}

fn decode<T: serde::de::DeserializeOwned>(what: &'static str, b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|source| Error::Json { what, source })
}

fn encode<T: serde::Serialize>(what: &'static str, v: &T) -> Result<bytes::Bytes> {
    serde_json::to_vec(v)
        .map(Into::into)
        .map_err(|source| Error::Json { what, source })
}

/// Key prefix, in `tw_schedules`, of the index from a delayed job's id to its schedule.
pub const JOB_INDEX: &str = "job.";

/// Handles on the two schedule buckets.
#[derive(Debug, Clone)]
pub struct ScheduleStore {
    pub schedules: kv::Store,
    pub fires: kv::Store,
    client: async_nats::Client,
}

impl ScheduleStore {
    pub fn new(client: async_nats::Client, schedules: kv::Store, fires: kv::Store) -> Self {
        Self {
            schedules,
            fires,
            client,
        }
    }

    /// Every schedule.
    pub async fn list(&self) -> Result<Vec<Schedule>> {
        let mut keys = self
            .schedules
            .keys()
            .await
            .map_err(|e| err("listing schedules", e))?;
        let mut out = Vec::new();
        while let Some(k) = keys.next().await {
            let k = k.map_err(|e| err("listing schedules", e))?;
            if k.starts_with(JOB_INDEX) {
                continue;
            }
            if let Some((s, _)) = self.get_key(&k).await? {
                out.push(s);
            }
        }
        out.sort_by_key(|s| s.created_at);
        Ok(out)
    }

    async fn get_key(&self, key: &str) -> Result<Option<(Schedule, u64)>> {
        match crate::kv_read::latest(&self.schedules, key)
            .await
            .map_err(|e| err("reading a schedule", e))?
        {
            Some((value, revision)) => Ok(Some((decode("schedule", &value)?, revision))),
            None => Ok(None),
        }
    }

    /// One schedule and its revision.
    pub async fn get(&self, id: &Uuid) -> Result<Option<(Schedule, u64)>> {
        self.get_key(&id.to_string()).await
    }

    /// Stores a new schedule (fails if the id exists).
    pub async fn create(&self, s: &Schedule) -> Result<u64> {
        self.schedules
            .create(s.id.to_string(), encode("schedule", s)?)
            .await
            .map_err(|e| err("creating a schedule", e))
    }

    /// Replaces a schedule if it is still at `revision` ([`Error::Changed`] when it is not).
    pub async fn update(&self, s: &Schedule, revision: u64) -> Result<u64> {
        self.schedules
            .update(s.id.to_string(), encode("schedule", s)?, revision)
            .await
            .map_err(|e| match e.kind() {
                kv::UpdateErrorKind::WrongLastRevision => Error::Changed {
                    what: "schedule",
                    key: s.id.to_string(),
                },
                _ => err("updating a schedule", e),
            })
    }

    /// Removes a schedule for good: the schedule (only while still at `revision`, when one is
    /// given), then its delayed-job index, then its progress. Purged rather than marked
    /// deleted, so the buckets keep nothing of it; every step can be repeated.
    pub async fn remove(&self, s: &Schedule, revision: Option<u64>) -> Result<()> {
        self.schedules
            .purge_expect_revision(s.id.to_string(), revision)
            .await
            .map_err(|e| match e.kind() {
                kv::UpdateErrorKind::WrongLastRevision => Error::Changed {
                    what: "schedule",
                    key: s.id.to_string(),
                },
                _ => err("removing a schedule", e),
            })?;
        if let Some(job) = s.job_id {
            self.schedules
                .purge(format!("{JOB_INDEX}{job}"))
                .await
                .map_err(|e| err("removing a delayed-job index", e))?;
        }
        self.fires
            .purge(progress_key(&s.id))
            .await
            .map_err(|e| err("removing a schedule's progress", e))
    }

    /// Remembers which schedule will create job `job` (a delayed job).
    pub async fn index_job(&self, job: &Uuid, schedule: &Uuid) -> Result<()> {
        self.schedules
            .put(format!("{JOB_INDEX}{job}"), schedule.to_string().into())
            .await
            .map(|_| ())
            .map_err(|e| err("indexing a delayed job", e))
    }

    /// The schedule that will create job `job`, if any.
    pub async fn job_index(&self, job: &Uuid) -> Result<Option<Uuid>> {
        let v = self
            .schedules
            .get(format!("{JOB_INDEX}{job}"))
            .await
            .map_err(|e| err("reading the delayed-job index", e))?;
        Ok(v.and_then(|b| Uuid::parse_str(std::str::from_utf8(&b).ok()?).ok()))
    }

    /// A schedule's progress and its revision (0 when there is none yet).
    pub async fn progress(&self, id: &Uuid) -> Result<(ScheduleProgress, u64)> {
        match crate::kv_read::latest(&self.fires, &progress_key(id))
            .await
            .map_err(|e| err("reading a schedule's progress", e))?
        {
            Some((value, revision)) => Ok((decode("schedule progress", &value)?, revision)),
            None => Ok((ScheduleProgress::default(), 0)),
        }
    }

    /// Writes progress if it is still at `revision` (0: if there is none); false when another
    /// replica wrote first.
    pub async fn set_progress(
        &self,
        id: &Uuid,
        p: &ScheduleProgress,
        revision: u64,
    ) -> Result<bool> {
        Ok(self.write_progress(id, p, revision).await?.is_some())
    }

    /// [`ScheduleStore::set_progress`] that returns the value as written (stamped) and its new
    /// revision; `None` when another replica wrote first.
    pub async fn write_progress(
        &self,
        id: &Uuid,
        p: &ScheduleProgress,
        revision: u64,
    ) -> Result<Option<(ScheduleProgress, u64)>> {
        let mut p = p.clone();
        p.written_at = Some(Utc::now());
        let body = encode("schedule progress", &p)?;
        let r = if revision == 0 {
            self.fires
                .create(progress_key(id), body)
                .await
                .map_err(|e| e.kind() == kv::CreateErrorKind::AlreadyExists)
        } else {
            self.fires
                .update(progress_key(id), body, revision)
                .await
                .map_err(|e| e.kind() == kv::UpdateErrorKind::WrongLastRevision)
        };
        match r {
            Ok(rev) => Ok(Some((p, rev))),
            Err(true) => Ok(None),
            Err(false) => Err(err(
                "writing a schedule's progress",
                "the store refused the write",
            )),
        }
    }

    /// Claims a fire: creates its key. `None` when another replica has it already.
    pub async fn claim(&self, rec: &FireRecord) -> Result<Option<u64>> {
        match self
            .fires
            .create(
                fire_key(&rec.schedule_id, rec.fire_at),
                encode("fire", rec)?,
            )
            .await
        {
            Ok(rev) => Ok(Some(rev)),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(err("claiming a fire", e)),
        }
    }

    /// One fire and its revision.
    pub async fn fire(
        &self,
        schedule: &Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<(FireRecord, u64)>> {
        match crate::kv_read::latest(&self.fires, &fire_key(schedule, at))
            .await
            .map_err(|e| err("reading a fire", e))?
        {
            Some((value, revision)) => Ok(Some((decode("fire", &value)?, revision))),
            None => Ok(None),
        }
    }

    /// Updates a fire if it is still at `revision`; false when another replica changed it.
    pub async fn update_fire(&self, rec: &FireRecord, revision: u64) -> Result<Option<u64>> {
        match self
            .fires
            .update(
                fire_key(&rec.schedule_id, rec.fire_at),
                encode("fire", rec)?,
                revision,
            )
            .await
        {
            Ok(rev) => Ok(Some(rev)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(err("updating a fire", e)),
        }
    }

    /// A schedule's fires recorded at or after `since`, oldest first, at most `limit`.
    pub async fn history(
        &self,
        id: &Uuid,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<FireRecord>> {
        use async_nats::jetstream::consumer::push::OrderedConfig;
        let filter = format!("{}{}", self.fires.prefix, fire_filter(id));
        let consumer = self
            .fires
            .stream
            .create_consumer(OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                filter_subject: filter,
                deliver_policy: DeliverPolicy::ByStartTime {
                    start_time: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(
                        since.timestamp_nanos_opt().unwrap_or(0),
                    ))
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                },
                ..Default::default()
            })
            .await
            .map_err(|e| err("reading a schedule's history", e))?;
        let pending = consumer.cached_info().num_pending as usize;
        let mut out = Vec::new();
        if pending == 0 {
            return Ok(out);
        }
        let mut msgs = consumer
            .messages()
            .await
            .map_err(|e| err("reading a schedule's history", e))?;
        let mut seen = 0;
        let mut by_key = std::collections::BTreeMap::new();
        while seen < pending {
            let Ok(Some(m)) =
                tokio::time::timeout(std::time::Duration::from_secs(5), msgs.next()).await
            else {
                break;
            };
            let m = m.map_err(|e| err("reading a schedule's history", e))?;
            seen += 1;
            if m.payload.is_empty() {
                continue;
            }
            if let Ok(r) = decode::<FireRecord>("fire", &m.payload) {
                by_key.insert(r.fire_at, r);
            }
        }
        out.extend(
            by_key
                .into_values()
                .filter(|r| r.fire_at >= since)
                .take(limit),
        );
        Ok(out)
    }
}
