//! The JetStream streams, KV buckets and durable consumers. Only the admin identity creates
//! or changes them ([`ensure`], [`ensure_consumers`]: `taskwire up`, `taskwire nats setup`);
//! services [`open`] what exists, waiting for it when they start before the setup ran.

use crate::error::{Error, Result};
use crate::names::Namespace;
use async_nats::jetstream::consumer::{self, pull};
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

/// Consumers a stream may have (each executor has its own on `TW_JOBS`, each viewer an
/// ordered one on `TW_OUTPUT`). nats-server 2.15 caps a stream that sets no limit of its own
/// at `jetstream.limits.default_max_consumers`, which stopped the fleet benchmark at about
/// 1,000 executors.
pub const MAX_CONSUMERS: i32 = 100_000;

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
    for mut s in streams {
        let name = s.name.clone();
        // nats-server before 2.12 refuses to change a stream's consumer limit: one made
        // before the limit was set keeps its own (see MAX_CONSUMERS).
        s.max_consumers = match js.get_stream(&name).await {
            Ok(existing) => existing.cached_info().config.max_consumers,
            Err(_) => MAX_CONSUMERS,
        };
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

/// Opens every stream and bucket the admin made. Waits (saying so in the log) while one does
/// not exist yet, so services and the setup may start in any order.
pub async fn open(js: &jetstream::Context, ns: &Namespace) -> Result<Topology> {
    let mut backoff =
        crate::retry::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        match try_open(js, ns).await {
            Ok(t) => return Ok(t),
            Err(e) => {
                if backoff.failures().is_multiple_of(20) {
                    tracing::warn!(error = %e, "waiting for the streams and buckets: they are made by the admin identity (`taskwire up`, or `taskwire nats setup` in production)");
                }
                backoff.wait().await;
            }
        }
    }
}

async fn try_open(js: &jetstream::Context, ns: &Namespace) -> Result<Topology> {
    let stream = |name: String| async move {
        js.get_stream(&name)
            .await
            .map_err(|e| topo_err("stream", &name, e))
    };
    let kv = |name: String| async move {
        js.get_key_value(&name)
            .await
            .map_err(|e| topo_err("bucket", &name, e))
    };
    Ok(Topology {
        jobs_stream: stream(ns.stream_jobs()).await?,
        output_stream: stream(ns.stream_output()).await?,
        events_stream: stream(ns.stream_events()).await?,
        jobs: kv(ns.bucket_jobs()).await?,
        instances: kv(ns.bucket_instances()).await?,
        schedules: kv(ns.bucket_schedules()).await?,
        fires: kv(ns.bucket_fires()).await?,
    })
}

/// How long an executor has to acknowledge a dispatched job before it is redelivered.
pub const DISPATCH_ACK_WAIT: Duration = Duration::from_secs(30);
/// How long an audit writer has to acknowledge a batch before it is redelivered.
pub const AUDIT_ACK_WAIT: Duration = Duration::from_secs(60);

/// The durable consumer of `TW_JOBS` named `name`, reading `subject` (one channel's or one
/// instance's dispatch subject).
pub fn dispatch_consumer(name: &str, subject: String) -> pull::Config {
    pull::Config {
        durable_name: Some(name.to_string()),
        filter_subject: subject,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: DISPATCH_ACK_WAIT,
        max_deliver: -1,
        ..Default::default()
    }
}

/// The durable consumer every audit writer shares on one stream.
pub fn audit_consumer(name: &str) -> pull::Config {
    pull::Config {
        durable_name: Some(name.to_string()),
        description: Some("taskwire audit writers".into()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: AUDIT_ACK_WAIT,
        max_ack_pending: 50_000,
        deliver_policy: consumer::DeliverPolicy::All,
        ..Default::default()
    }
}

/// One executor as the setup knows it: its GUID and the channels it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorEntry {
    pub guid: uuid::Uuid,
    pub channels: Vec<String>,
}

/// Creates (or updates) the durable consumers: both of the audit writers, and for every
/// executor its instance consumer and one per channel it serves.
pub async fn ensure_consumers(
    topo: &Topology,
    ns: &Namespace,
    executors: &[ExecutorEntry],
) -> Result<()> {
    for (stream, name) in [
        (&topo.events_stream, ns.consumer_audit_events()),
        (&topo.output_stream, ns.consumer_audit_output()),
    ] {
        stream
            .get_or_create_consumer(&name, audit_consumer(&name))
            .await
            .map_err(|e| topo_err("consumer", &name, e))?;
    }
    let mut made = std::collections::BTreeSet::new();
    for ex in executors {
        let mut wanted = vec![(
            ns.consumer_instance(&ex.guid),
            ns.dispatch_instance(&ex.guid),
        )];
        for ch in &ex.channels {
            wanted.push((ns.consumer_channel(ch), ns.dispatch_channel(ch)));
        }
        for (name, subject) in wanted {
            if made.insert(name.clone()) {
                topo.jobs_stream
                    .get_or_create_consumer(&name, dispatch_consumer(&name, subject))
                    .await
                    .map_err(|e| topo_err("consumer", &name, e))?;
            }
        }
    }
    Ok(())
}
