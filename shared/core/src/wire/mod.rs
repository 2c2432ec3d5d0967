//! The JSON payloads that travel over NATS, and ([`api`]) the documents of the public API.
//! `docs/protocol.md` documents each one; every type here has a test that pins its JSON so
//! that a change to the wire is always deliberate.

pub mod api;
pub mod audit;
mod b64;
pub mod consumer;
pub mod event;
pub mod history;
pub mod instance;
pub mod job;
pub mod kill;
pub mod output;
pub mod schedule;

pub use audit::{AuditEvent, JobDeleted};
pub use consumer::{ConsumerOutcome, ConsumerReply, ConsumerRequest};
pub use event::{EventKind, JobEvent, TreeMode, TreeReport};
pub use history::{
    AuditPage, AuditQuery, JobPage, JobQuery, JobRef, OutputPage, OutputQuery, StoreError,
    StoreErrorCode, StoreReply, StoredChunk, StoredJob,
};
pub use instance::{InstanceInfo, InstanceStatus, RunningJob, Slots};
pub use job::{JobRecord, JobSpec, JobState, Target, Via};
pub use kill::{KillMode, KillOutcome, KillReply, KillRequest};
pub use output::OutputStream;
pub use schedule::{
    FireRecord, FireReply, FireRequest, FireState, Misfire, Overlap, Schedule, ScheduleProgress,
    ScheduleTarget, Timing,
};
