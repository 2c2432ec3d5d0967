//! The JetStream streams and KV buckets, created or updated idempotently by every service at
//! startup so that any service can start first.

use crate::error::{Error, Result};
use crate::names::Namespace;
use async_nats::jetstream::{self, kv, stream};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Limits of the shared streams and buckets. Defaults suit one machine; production raises
/// `replicas` to 3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopologyConfig {
    /// JetStream replicas of every stream and bucket (1 for a single server, 3 in a cluster).
    pub replicas: usize,
    /// How long output chunks are kept in `TW_OUTPUT` (the audit store keeps them longer).
    #[serde(with = "crate::units::duration_str")]
    pub output_max_age: Duration,
    /// Size cap of `TW_OUTPUT`; the oldest chunks go first.
    #[serde(with = "crate::units::size_str")]
    pub output_max_bytes: u64,
    /// How long lifecycle and audit events are kept in `TW_EVENTS`.
    #[serde(with = "crate::units::duration_str")]
    pub events_max_age: Duration,
    /// How long a job waits in `TW_JOBS` for an executor before it is dropped.
    #[serde(with = "crate::units::duration_str")]
    pub dispatch_max_age: Duration,
    /// How long a job's live record stays in `tw_jobs` after its last change.
    #[serde(with = "crate::units::duration_str")]
    pub jobs_max_age: Duration,
    /// How long an instance stays in the registry after its last heartbeat.
    #[serde(with = "crate::units::duration_str")]
    pub instance_ttl: Duration,
    /// How long a schedule's fire history is kept in `tw_schedule_fires`.
    #[serde(with = "crate::units::duration_str")]
    pub fires_max_age: Duration,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        Self {
            replicas: 1,
            output_max_age: Duration::from_secs(7 * 86400),
            output_max_bytes: 10 << 30,
            events_max_age: Duration::from_secs(30 * 86400),
            dispatch_max_age: Duration::from_secs(7 * 86400),
            jobs_max_age: Duration::from_secs(7 * 86400),
            instance_ttl: Duration::from_secs(10),
            fires_max_age: Duration::from_secs(30 * 86400),
        }
    }
}

/// De-duplication window of every stream: a publish retried within it is stored once.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The largest message a stream accepts (output chunks are at most 64 KiB).
pub const MAX_MESSAGE: i32 = 1 << 20;

/// Handles on the shared streams and buckets.
#[derive(Debug, Clone)]
pub struct Topology {
    pub jobs_stream: stream::Stream,
    pub output_stream: stream::Stream,
    pub events_stream: stream::Stream,
    pub jobs: kv::Store,
    pub instances: kv::Store,
    pub schedules: kv::Store,
    pub fires: kv::Store,
}

fn topo_err(what: &'static str, name: &str, e: impl std::fmt::Display) -> Error {
    Error::Topology {
        what,
        name: name.to_string(),
        message: e.to_string(),
    }
}

/// Creates (or updates to the current definition) every stream and bucket.
pub async fn ensure(
    js: &jetstream::Context,
    ns: &Namespace,
    cfg: &TopologyConfig,
) -> Result<Topology> {
    let streams = [
        stream::Config {
            name: ns.stream_jobs(),
            description: Some("taskwire dispatched jobs (work queue)".into()),
            subjects: vec![ns.dispatch_all()],
            retention: stream::RetentionPolicy::WorkQueue,
            discard: stream::DiscardPolicy::New,
            max_age: cfg.dispatch_max_age,
            max_message_size: MAX_MESSAGE,
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: cfg.replicas,
            ..Default::default()
        },
        stream::Config {
            name: ns.stream_output(),
            description: Some("taskwire job output chunks".into()),
            subjects: vec![ns.output_all()],
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            max_age: cfg.output_max_age,
            max_bytes: i64::try_from(cfg.output_max_bytes).unwrap_or(i64::MAX),
            max_message_size: MAX_MESSAGE,
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: cfg.replicas,
            ..Default::default()
        },
        stream::Config {
            name: ns.stream_events(),
            description: Some("taskwire job lifecycle and audit events".into()),
            subjects: vec![ns.event_all(), ns.audit_all()],
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            max_age: cfg.events_max_age,
            max_message_size: MAX_MESSAGE,
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: cfg.replicas,
            ..Default::default()
        },
    ];
    for s in streams {
        let name = s.name.clone();
        js.create_or_update_stream(s)
            .await
            .map_err(|e| topo_err("stream", &name, e))?;
    }
    let jobs = bucket(
        js,
        kv::Config {
            bucket: ns.bucket_jobs(),
            description: "taskwire live job state".into(),
            history: 5,
            max_age: cfg.jobs_max_age,
            num_replicas: cfg.replicas,
            ..Default::default()
        },
    )
    .await?;
    let instances = bucket(
        js,
        kv::Config {
            bucket: ns.bucket_instances(),
            description: "taskwire instance registry (heartbeats)".into(),
            history: 1,
            max_age: cfg.instance_ttl,
            num_replicas: cfg.replicas,
            ..Default::default()
        },
    )
    .await?;
    let schedules = bucket(
        js,
        kv::Config {
            bucket: ns.bucket_schedules(),
            description: "taskwire schedules".into(),
            history: 5,
            num_replicas: cfg.replicas,
            ..Default::default()
        },
    )
    .await?;
    let fires = bucket(
        js,
        kv::Config {
            bucket: ns.bucket_fires(),
            description: "taskwire schedule fires: claims, history and progress".into(),
            history: 1,
            max_age: cfg.fires_max_age,
            num_replicas: cfg.replicas,
            ..Default::default()
        },
    )
    .await?;
    let get = |name: String| async move {
        js.get_stream(&name)
            .await
            .map_err(|e| topo_err("stream", &name, e))
    };
    Ok(Topology {
        jobs_stream: get(ns.stream_jobs()).await?,
        output_stream: get(ns.stream_output()).await?,
        events_stream: get(ns.stream_events()).await?,
        jobs,
        instances,
        schedules,
        fires,
    })
}

async fn bucket(js: &jetstream::Context, cfg: kv::Config) -> Result<kv::Store> {
    let name = cfg.bucket.clone();
    js.create_or_update_key_value(cfg)
        .await
        .map_err(|e| topo_err("bucket", &name, e))
}
