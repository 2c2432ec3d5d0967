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
    /// How long a job waits in `TW_JOBS` (or `TW_INST`) for an executor before it is dropped.
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
    /// `TW_JOBS`: jobs dispatched to channels.
    pub jobs_stream: stream::Stream,
    /// `TW_INST`: jobs dispatched to one instance each.
    pub instance_jobs_stream: stream::Stream,
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
        // Listed before TW_INST: a stream made by an older release captured every dispatch
        // subject, and two streams may not share one.
        stream::Config {
            name: ns.stream_jobs(),
            description: Some("taskwire jobs dispatched to channels (work queue)".into()),
            subjects: vec![ns.dispatch_channel_all()],
            retention: stream::RetentionPolicy::WorkQueue,
            discard: stream::DiscardPolicy::New,
            max_age: cfg.dispatch_max_age,
            max_message_size: MAX_MESSAGE,
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: cfg.replicas,
            ..Default::default()
        },
        // Limits retention (a work queue's consumers must have the stream's replicas): each
        // instance's consumer is one replica in memory, and a taken job's message stays until
        // it ages out.
        stream::Config {
            name: ns.stream_instance_jobs(),
            description: Some("taskwire jobs dispatched to one instance each".into()),
            subjects: vec![ns.dispatch_instance_all()],
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
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
        instance_jobs_stream: get(ns.stream_instance_jobs()).await?,
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
        instance_jobs_stream: stream(ns.stream_instance_jobs()).await?,
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

/// How many pull requests one dispatch consumer holds at once. Every executor of a channel keeps
/// a long pull open on the channel's consumer (at most one per free slot), so the server's
/// default of 512 would refuse pulls beyond a few hundred executors. A consumer made by an
/// older release keeps 512 (nats-server cannot change it): delete the channel's consumer while
/// its channel is idle and run the admin step again.
pub const DISPATCH_MAX_WAITING: i64 = 100_000;

/// The durable consumer of `TW_JOBS` named `name`, reading `subject` (one channel's or one
/// instance's dispatch subject).
pub fn dispatch_consumer(name: &str, subject: String) -> pull::Config {
    pull::Config {
        durable_name: Some(name.to_string()),
        filter_subject: subject,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: DISPATCH_ACK_WAIT,
        max_deliver: -1,
        max_waiting: DISPATCH_MAX_WAITING,
        ..Default::default()
    }
}

/// How long an instance's own consumer outlives its executor: one that has not pulled for this
/// long is removed by the server (a decommissioned instance leaves nothing behind). Jobs sent to
/// the instance meanwhile stay in `TW_INST`; the consumer is made again when its executor comes
/// back, which then takes them.
pub const INSTANCE_CONSUMER_INACTIVE: Duration = Duration::from_secs(3600);

/// The consumer of one instance's own dispatch subject on `TW_INST`, made by a kill broker on
/// that executor's request: one replica, in memory, so a fleet costs the cluster no Raft group per instance. It
/// starts after stream sequence `after` (0: from the first message kept). Its state is not the
/// truth (the job's record in `tw_jobs` is: a claim is a compare-and-set), so losing it with
/// its node costs only redeliveries, which the claim refuses.
pub fn instance_consumer(ns: &Namespace, guid: &uuid::Uuid, after: u64) -> pull::Config {
    pull::Config {
        num_replicas: 1,
        memory_storage: true,
        inactive_threshold: INSTANCE_CONSUMER_INACTIVE,
        description: Some(format!("taskwire instance {guid}")),
        deliver_policy: match after {
            0 => consumer::DeliverPolicy::All,
            n => consumer::DeliverPolicy::ByStartSequence {
                start_sequence: n + 1,
            },
        },
        ..dispatch_consumer(&ns.consumer_instance(guid), ns.dispatch_instance(guid))
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

/// Creates the durable consumers: both of the audit writers', and one per channel an executor
/// serves. An instance's own consumer is made by its executor ([`instance_consumer`]).
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
    retire_legacy_instance_consumers(topo).await?;
    let mut made = std::collections::BTreeSet::new();
    for ex in executors {
        for ch in &ex.channels {
            let (name, subject) = (ns.consumer_channel(ch), ns.dispatch_channel(ch));
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

/// An older release gave each instance a durable consumer on `TW_JOBS`. Since `TW_JOBS` holds
/// channel jobs only, one with nothing left to deliver is removed; one that still holds jobs
/// stays for its executor to take them (it binds it while it exists) and goes at a later run.
async fn retire_legacy_instance_consumers(topo: &Topology) -> Result<()> {
    use futures::StreamExt;
    let stream = &topo.jobs_stream;
    let name = &stream.cached_info().config.name;
    let mut names = stream.consumer_names();
    let mut legacy = Vec::new();
    while let Some(n) = names.next().await {
        let n = n.map_err(|e| topo_err("stream", name, e))?;
        if n.starts_with("inst-") {
            legacy.push(n);
        }
    }
    for n in legacy {
        let Ok(info) = stream.consumer_info(&n).await else {
            continue;
        };
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            stream
                .delete_consumer(&n)
                .await
                .map_err(|e| topo_err("consumer", &n, e))?;
            tracing::info!(consumer = %n, "removed an instance consumer of an older release from {name}");
        } else {
            tracing::info!(consumer = %n, pending = info.num_pending + info.num_ack_pending as u64, "an instance consumer of an older release still holds jobs; its executor takes them, and the next setup removes it");
        }
    }
    Ok(())
}
