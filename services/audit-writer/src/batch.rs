//! Turns JetStream messages from `TW_EVENTS` and `TW_OUTPUT` into the rows they stand for.

use async_nats::jetstream::Message;
use taskwire_core::Namespace;
use taskwire_core::wire::audit::KIND_JOB_DELETED;
use taskwire_core::wire::output::{ChunkEncoding, WireChunk};
use taskwire_core::wire::{AuditEvent, JobDeleted, JobEvent, OutputStream};
use uuid::Uuid;

/// One output chunk as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub job_id: Uuid,
    /// The instance that published it (its subject's GUID token).
    pub instance: Uuid,
    pub seq: i64,
    pub stream: OutputStream,
    /// How `data` holds the bytes (stored as it came: a compressed chunk stays compressed).
    pub encoding: ChunkEncoding,
    pub data: Vec<u8>,
    /// When the chunk reached the stream (microseconds since the epoch).
    pub at_us: i64,
}

/// What one message asks the store to record.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A lifecycle event and its JSON as published.
    Event(JobEvent, String),
    Audit(AuditEvent),
    Deleted(JobDeleted),
    Chunk(Chunk),
    /// A message no version of taskwire writes: logged and acknowledged so that it cannot
    /// block the stream, never stored.
    Unreadable(String),
}

/// Whether the subject's last token is `job` (no allocation: this runs for every event).
fn names_job(subject: &str, job: &Uuid) -> bool {
    let mut buf = Uuid::encode_buffer();
    let id = job.hyphenated().encode_lower(&mut buf);
    subject
        .strip_suffix(&*id)
        .is_some_and(|rest| rest.ends_with('.'))
}

/// The subject prefixes of one name space.
#[derive(Debug, Clone)]
pub struct Subjects {
    ns: Namespace,
    event: String,
    audit: String,
    output: String,
    deleted: String,
}

fn prefix(wildcard: String) -> String {
    wildcard.trim_end_matches('>').to_string()
}

impl Subjects {
    pub fn new(ns: &Namespace) -> Self {
        Self {
            ns: ns.clone(),
            event: prefix(ns.event_all()),
            audit: prefix(ns.audit_all()),
            output: prefix(ns.output_all()),
            deleted: ns.audit(KIND_JOB_DELETED),
        }
    }

    /// Reads one message; `published_us` is its stream timestamp.
    pub fn parse(&self, subject: &str, msg: &Message, published_us: i64) -> Item {
        let bad = |why: String| Item::Unreadable(format!("{subject}: {why}"));
        if subject == self.deleted {
            return match serde_json::from_slice(&msg.payload) {
                Ok(d) => Item::Deleted(d),
                Err(e) => bad(e.to_string()),
            };
        }
        if subject.starts_with(&self.event) {
            return match serde_json::from_slice::<JobEvent>(&msg.payload) {
                Ok(e) => match self.ns.origin_of(subject) {
                    // The subject names the job too: a payload about another job is forged.
                    Some(o)
                        if taskwire_core::jobs::genuine(o, &e)
                            && names_job(subject, &e.job_id) =>
                    {
                        Item::Event(e, String::from_utf8_lossy(&msg.payload).into_owned())
                    }
                    _ => bad("an event its publisher may not publish (an instance speaks only of its own runs)".into()),
                },
                Err(e) => bad(e.to_string()),
            };
        }
        if subject.starts_with(&self.audit) {
            return match serde_json::from_slice(&msg.payload) {
                Ok(a) => Item::Audit(a),
                Err(e) => bad(e.to_string()),
            };
        }
        if let Some(rest) = subject.strip_prefix(&self.output) {
            let mut parts = rest.splitn(2, '.');
            let (Some(Ok(instance)), Some(Ok(job_id))) = (
                parts.next().map(Uuid::parse_str),
                parts.next().map(Uuid::parse_str),
            ) else {
                return bad("not <instance>.<job id>".into());
            };
            let c = match WireChunk::from_message(msg.headers.as_ref(), msg.payload.clone()) {
                Ok(c) => c,
                Err(e) => return bad(e.to_string()),
            };
            let Ok(seq) = i64::try_from(c.seq) else {
                return bad(format!("Tw-Seq {} is too large", c.seq));
            };
            return Item::Chunk(Chunk {
                job_id,
                instance,
                seq,
                stream: c.stream,
                encoding: c.encoding,
                data: c.payload.to_vec(),
                at_us: published_us,
            });
        }
        bad("not a subject the audit store records".into())
    }
}
