//! The job store: live job records in the `tw_jobs` bucket, lifecycle events on `tw.evt.*`,
//! and the dispatch publish. Every state change is a compare-and-set on the record's revision,
//! which is what makes "never started twice" and "a cancelled job never starts" hold.

use crate::error::{Error, Result};
use crate::names::{HDR_MSG_ID, Namespace, Origin};
use crate::sign::DispatchSigner;
use crate::wire::{EventKind, JobEvent, JobRecord, JobSpec, JobState, Target};
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use std::sync::Arc;
use uuid::Uuid;

/// Largest encoded job request (command, parameters, target) accepted for dispatch.
pub const MAX_SPEC_BYTES: usize = 256 * 1024;

/// Handle on the live job state, shared by every service that changes a job.
#[derive(Debug, Clone)]
pub struct JobStore {
    js: jetstream::Context,
    kv: kv::Store,
    ns: Namespace,
    /// Signs every dispatch message (the gateway's key); without one, dispatch messages go out
    /// unsigned and executors that require signatures reject them.
    signer: Option<Arc<DispatchSigner>>,
    /// Who this store publishes lifecycle events as (`tw.evt.<origin>.<job>`).
    origin: Origin,
}

/// What a transition function decides.
#[derive(Debug)]
pub enum Decision<T> {
    /// Write this record (compare-and-set) and return `T`.
    Write(Box<JobRecord>, T),
    /// Leave the record as it is and return `T`.
    Keep(T),
}

impl JobStore {
    /// Wraps an open `tw_jobs` bucket.
    pub fn new(js: jetstream::Context, kv: kv::Store, ns: Namespace) -> Self {
        Self {
            js,
            kv,
            ns,
            signer: None,
            origin: Origin::Control,
        }
    }

    /// The same store, publishing lifecycle events as instance `guid` (an executor's).
    pub fn as_instance(mut self, guid: Uuid) -> Self {
        self.origin = Origin::Instance(guid);
        self
    }

    /// The same store, signing its dispatch messages with `signer`.
    pub fn with_signer(mut self, signer: Arc<DispatchSigner>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// The name space this store publishes in.
    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// The current record and its revision.
    pub async fn get(&self, job_id: &Uuid) -> Result<Option<(JobRecord, u64)>> {
        match crate::kv_read::latest(&self.kv, &job_id.to_string())
            .await
            .map_err(|e| store_err("read", job_id, e))?
        {
            Some((value, revision)) => Ok(Some((decode_record(&value)?, revision))),
            None => Ok(None),
        }
    }

    /// Applies `decide` to the current record and writes its result with compare-and-set,
    /// retrying from a fresh read when another writer got there first. Returns `decide`'s value
    /// and the record's revision afterwards.
    pub async fn transition<T>(
        &self,
        job_id: &Uuid,
        decide: impl FnMut(&JobRecord) -> Result<Decision<T>>,
    ) -> Result<(T, u64)> {
        self.transition_from(job_id, None, decide).await
    }

    /// Like [`Self::transition`], starting from a record and revision the caller already read
    /// (saving a read when nobody else wrote since).
    pub async fn transition_from<T>(
        &self,
        job_id: &Uuid,
        mut known: Option<(JobRecord, u64)>,
        mut decide: impl FnMut(&JobRecord) -> Result<Decision<T>>,
    ) -> Result<(T, u64)> {
        loop {
            let (current, revision) = match known.take() {
                Some(k) => k,
                None => self
                    .get(job_id)
                    .await?
                    .ok_or_else(|| Error::NoSuchJob(job_id.to_string()))?,
            };
            match decide(&current)? {
                Decision::Keep(out) => return Ok((out, revision)),
                Decision::Write(mut next, out) => {
                    next.updated_at = chrono::Utc::now();
                    let body = encode(&next)?;
                    match self.kv.update(job_id.to_string(), body, revision).await {
                        Ok(rev) => return Ok((out, rev)),
                        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                        Err(e) => return Err(store_err("compare-and-set", job_id, e)),
                    }
                }
            }
        }
    }

    /// Creates the queued record. Creating a record that already exists with the same spec
    /// succeeds (an idempotent retry); a different spec under the same id is an error.
    pub async fn create(&self, record: &JobRecord) -> Result<()> {
        let id = record.spec.job_id;
        match self.kv.create(id.to_string(), encode(record)?).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                match self.get(&id).await? {
                    Some((existing, _)) if existing.spec == record.spec => Ok(()),
                    _ => Err(Error::Taken {
                        what: "job",
                        key: id.to_string(),
                    }),
                }
            }
            Err(e) => Err(store_err("create", &id, e)),
        }
    }

    /// Creates `record` only if no record has its id yet; `false` when one has.
    pub async fn create_new(&self, record: &JobRecord) -> Result<bool> {
        let id = record.spec.job_id;
        match self.kv.create(id.to_string(), encode(record)?).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(store_err("create", &id, e)),
        }
    }

    /// Publishes a lifecycle event durably (waits for the stream's ack). The message id makes
    /// a retried publish of the same event a no-op.
    pub async fn publish_event(&self, event: &JobEvent) -> Result<()> {
        let subject = self.ns.event(&self.origin, &event.job_id);
        let body = serde_json::to_vec(event).map_err(|source| Error::Json {
            what: "job event",
            source,
        })?;
        // The publisher is part of the id: another identity's message under the same id would
        // otherwise be kept in place of this one (JetStream drops the later duplicate).
        let origin = match self.origin {
            Origin::Control => crate::names::CONTROL_ORIGIN.to_string(),
            Origin::Instance(g) => g.to_string(),
        };
        let id = format!("{origin}:{}:{}", event.job_id, event_name(&event.kind));
        self.publish(subject, id, body.into()).await
    }

    /// Publishes the dispatch message for `spec` (message id = job id, so a retried submit is
    /// dispatched once), signed over its exact payload bytes when the store has a signer.
    pub async fn dispatch(&self, spec: &JobSpec) -> Result<()> {
        let subject = match &spec.target {
            Target::Channel(c) => self.ns.dispatch_channel(c),
            Target::Instance(g) => self.ns.dispatch_instance(g),
        };
        let body = serde_json::to_vec(spec).map_err(|source| Error::Json {
            what: "job spec",
            source,
        })?;
        let mut headers = async_nats::HeaderMap::new();
        if let Some(signer) = &self.signer {
            signer.sign_into(&mut headers, &body)?;
        }
        self.publish_with(subject, spec.job_id.to_string(), headers, body.into())
            .await
    }

    /// Records, announces and dispatches a new job: the queued record first (so a claim
    /// always finds it), then the `queued` event and the dispatch message at once (see
    /// [`Self::release`]).
    pub async fn submit(&self, spec: JobSpec) -> Result<JobRecord> {
        let record = Self::queued_record(spec)?;
        self.create(&record).await?;
        self.release(&record).await?;
        Ok(record)
    }

    /// The queued record of `spec`, once its encoded request is within [`MAX_SPEC_BYTES`].
    pub fn queued_record(spec: JobSpec) -> Result<JobRecord> {
        let size = serde_json::to_vec(&spec)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_SPEC_BYTES {
            return Err(Error::TooLarge {
                what: "job request",
                size,
                max: MAX_SPEC_BYTES,
            });
        }
        Ok(JobRecord::queued(spec))
    }

    /// Publishes the `queued` event and the dispatch message of `record` (already stored) at
    /// once, and waits for both acks: neither depends on the other, and the audit store does
    /// not need the `queued` event first (a job enters history once its `queued` event is
    /// stored, whatever came before it). Both carry message ids, so calling this again after
    /// a failure (an idempotent retry) stores each once.
    pub async fn release(&self, record: &JobRecord) -> Result<()> {
        let event = JobEvent {
            job_id: record.spec.job_id,
            at: record.spec.queued_at,
            instance: None,
            kind: EventKind::Queued {
                spec: record.spec.clone(),
            },
        };
        let (announced, dispatched) =
            futures::join!(self.publish_event(&event), self.dispatch(&record.spec));
        announced.and(dispatched)
    }

    /// Publishes an audit event durably (waits for the stream's ack).
    pub async fn publish_audit(&self, kind: &str, event: &crate::wire::AuditEvent) -> Result<()> {
        let body = serde_json::to_vec(event).map_err(|source| Error::Json {
            what: "audit event",
            source,
        })?;
        self.publish(self.ns.audit(kind), event.id.to_string(), body.into())
            .await
    }

    /// Tells the audit store a job was deleted (stored durably before this returns).
    pub async fn publish_job_deleted(&self, notice: &crate::wire::JobDeleted) -> Result<()> {
        let body = serde_json::to_vec(notice).map_err(|source| Error::Json {
            what: "job deletion",
            source,
        })?;
        self.publish(
            self.ns.audit(crate::wire::audit::KIND_JOB_DELETED),
            format!("{}:deleted", notice.job_id),
            body.into(),
        )
        .await
    }

    async fn publish(&self, subject: String, msg_id: String, body: Bytes) -> Result<()> {
        self.publish_with(subject, msg_id, async_nats::HeaderMap::new(), body)
            .await
    }

    async fn publish_with(
        &self,
        subject: String,
        msg_id: String,
        mut headers: async_nats::HeaderMap,
        body: Bytes,
    ) -> Result<()> {
        headers.insert(HDR_MSG_ID, msg_id.as_str());
        let ack = self
            .js
            .publish_with_headers(subject.clone(), headers, body)
            .await
            .map_err(|e| Error::Publish {
                subject: subject.clone(),
                message: e.to_string(),
            })?;
        ack.await.map_err(|e| Error::Publish {
            subject,
            message: e.to_string(),
        })?;
        Ok(())
    }
}

/// Whether `event`, published by `origin` (as its subject says), is one that origin may
/// publish: an instance speaks only of its own runs (`started`, `exited`, `spawn_failed`,
/// `rejected`, `lost` at its restart) and names itself; the control services announce,
/// cancel and mark lost. Readers drop the rest.
pub fn genuine(origin: Origin, event: &JobEvent) -> bool {
    match origin {
        Origin::Control => matches!(
            event.kind,
            EventKind::Queued { .. } | EventKind::Cancelled { .. } | EventKind::Lost { .. }
        ),
        Origin::Instance(guid) => {
            event.instance == Some(guid)
                && matches!(
                    event.kind,
                    EventKind::Started { .. }
                        | EventKind::Exited { .. }
                        | EventKind::SpawnFailed { .. }
                        | EventKind::Rejected { .. }
                        | EventKind::Lost { .. }
                )
        }
    }
}

/// The short name of an event kind, as in its JSON `event` field.
pub fn event_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Queued { .. } => "queued",
        EventKind::Started { .. } => "started",
        EventKind::Exited { .. } => "exited",
        EventKind::SpawnFailed { .. } => "spawn_failed",
        EventKind::Rejected { .. } => "rejected",
        EventKind::Cancelled { .. } => "cancelled",
        EventKind::Lost { .. } => "lost",
    }
}

/// Fails with a clear error unless `record` is in `expected`.
pub fn expect_state(record: &JobRecord, expected: &[JobState]) -> Result<()> {
    if expected.contains(&record.state) {
        Ok(())
    } else {
        Err(Error::WrongState {
            job_id: record.spec.job_id.to_string(),
            actual: record.state.to_string(),
            expected: expected
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
        })
    }
}

fn encode(record: &JobRecord) -> Result<Bytes> {
    serde_json::to_vec(record)
        .map(Bytes::from)
        .map_err(|source| Error::Json {
            what: "job record",
            source,
        })
}

fn decode_record(bytes: &[u8]) -> Result<JobRecord> {
    serde_json::from_slice(bytes).map_err(|source| Error::Json {
        what: "job record",
        source,
    })
}

fn store_err(step: &'static str, job_id: &Uuid, e: impl std::fmt::Display) -> Error {
    Error::JobStore {
        step,
        job_id: job_id.to_string(),
        message: e.to_string(),
    }
}
