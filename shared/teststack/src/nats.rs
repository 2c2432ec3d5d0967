//! The stack on NATS, as the services see it: queue a job as a gateway would, read its record,
//! its lifecycle events and its output chunks, the registry, and the audit decisions.

use crate::stack::Stack;
use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::time::Duration;
use taskwire_core::jobs::JobStore;
use taskwire_core::wire::output::WireChunk;
use taskwire_core::wire::{
    AuditEvent, EventKind, InstanceInfo, JobEvent, JobRecord, JobSpec, JobState, OutputStream,
    Target, Via, audit,
};
use uuid::Uuid;

/// One output chunk: sequence, stream, bytes.
pub type Chunk = (u64, OutputStream, Vec<u8>);

impl Stack {
    /// A job of `command` with `params` (a JSON object) for `target`, asked by `tester`.
    pub fn spec(&self, command: &str, params: serde_json::Value, target: Target) -> JobSpec {
        let params: BTreeMap<String, serde_json::Value> = serde_json::from_value(params)
            .unwrap_or_else(|e| panic!("job parameters are a JSON object: {e}"));
        JobSpec::new(command, target, "tester", Via::Nats).with_params(params)
    }

    /// Queues a job on the default channel as the gateway would (record, event, dispatch
    /// signed with the stack's key).
    pub async fn enqueue(&self, command: &str, params: serde_json::Value) -> Uuid {
        self.enqueue_to(command, params, Target::Channel("default".into()))
            .await
    }

    /// Queues a job for `target` as the gateway would.
    pub async fn enqueue_to(
        &self,
        command: &str,
        params: serde_json::Value,
        target: Target,
    ) -> Uuid {
        let spec = self.spec(command, params, target);
        let id = spec.job_id;
        self.jobs
            .submit(spec)
            .await
            .unwrap_or_else(|e| panic!("the job was not queued: {e}"));
        id
    }

    /// A connection of its own named `name` and a job store on it, to write records as a
    /// service would (its dispatch messages signed with the stack's key, as the gateway's).
    pub async fn job_store(&self, name: &str) -> (async_nats::Client, JobStore) {
        let client = taskwire_core::nats::connect_to(
            &self.endpoint(&taskwire_core::auth::roles::Role::Admin),
            name,
        )
        .await
        .unwrap_or_else(|e| panic!("no connection to the test's nats-server: {e}"));
        let store = JobStore::new(
            taskwire_core::nats::jetstream(client.clone()),
            self.topo.jobs.clone(),
            self.ns.clone(),
        )
        .with_signer(self.signer.clone());
        (client, store)
    }

    /// The job's live record.
    pub async fn record(&self, job: &Uuid) -> JobRecord {
        self.jobs
            .get(job)
            .await
            .unwrap_or_else(|e| panic!("reading job {job}: {e}"))
            .unwrap_or_else(|| panic!("job {job} has no record"))
            .0
    }

    /// Waits until the job's record satisfies `pred` (`what` names it); the record.
    pub async fn wait_record(
        &self,
        job: &Uuid,
        what: &str,
        within: Duration,
        pred: impl Fn(&JobRecord) -> bool,
    ) -> JobRecord {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let r = self.record(job).await;
            if pred(&r) {
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {job} never {what} within {within:?}; it is {}",
                r.state
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the job reaches a terminal state; its record.
    pub async fn wait_terminal(&self, job: &Uuid, within: Duration) -> JobRecord {
        self.wait_record(job, "ended", within, |r| r.state.is_terminal())
            .await
    }

    /// Waits until the job's record is in `state`.
    pub async fn wait_state(&self, job: &Uuid, state: JobState) -> JobRecord {
        self.wait_record(
            job,
            &format!("became {state}"),
            Duration::from_secs(20),
            |r| r.state == state,
        )
        .await
    }

    /// Every lifecycle event of the job stored so far, in stream order.
    pub async fn events(&self, job: &Uuid) -> Vec<JobEvent> {
        stored(&self.topo.events_stream, self.ns.event_any(job))
            .await
            .iter()
            .map(|m| {
                serde_json::from_slice(&m.payload)
                    .unwrap_or_else(|e| panic!("an event of job {job} is not a JobEvent: {e}"))
            })
            .collect()
    }

    /// The job's `exited` event, waiting for it.
    pub async fn exited(&self, job: &Uuid) -> JobEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(e) = self
                .events(job)
                .await
                .into_iter()
                .find(|e| matches!(e.kind, EventKind::Exited { .. }))
            {
                return e;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no exited event for {job}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The job's output chunks as stored in `TW_OUTPUT` (payloads as published), in `Tw-Seq`
    /// order, once its `exited` event is stored; asserts there is no gap and no duplicate up
    /// to that event's `last_seq`.
    pub async fn wire_chunks(&self, job: &Uuid) -> Vec<WireChunk> {
        let last = match self.exited(job).await.kind {
            EventKind::Exited { last_seq, .. } => last_seq,
            _ => 0,
        };
        let msgs = stored_at_least(&self.topo.output_stream, self.ns.output_any(job), last).await;
        let mut chunks: Vec<WireChunk> = msgs
            .iter()
            .map(|m| {
                WireChunk::from_message(m.headers.as_ref(), m.payload.clone())
                    .expect("a chunk has valid headers")
            })
            .collect();
        chunks.sort_by_key(|c| c.seq);
        let seqs: Vec<u64> = chunks.iter().map(|c| c.seq).collect();
        assert_eq!(
            seqs,
            (1..=last).collect::<Vec<_>>(),
            "gapless, duplicate-free chunk sequence"
        );
        chunks
    }

    /// The job's output chunks in `Tw-Seq` order, their bytes as the process wrote them.
    pub async fn chunks(&self, job: &Uuid) -> Vec<Chunk> {
        self.wire_chunks(job)
            .await
            .into_iter()
            .map(|c| {
                let data = c.data().expect("a chunk's payload can be read");
                (c.seq, c.stream, data.to_vec())
            })
            .collect()
    }

    /// The bytes of one stream of the job, in order.
    pub async fn stream_bytes(&self, job: &Uuid, which: OutputStream) -> Vec<u8> {
        self.chunks(job)
            .await
            .into_iter()
            .filter(|c| c.1 == which)
            .flat_map(|c| c.2)
            .collect()
    }

    /// The instance's registry entry, while it has one.
    pub async fn instance(&self, guid: &Uuid) -> Option<InstanceInfo> {
        let e = self.topo.instances.entry(guid.to_string()).await.ok()??;
        if e.operation != async_nats::jetstream::kv::Operation::Put {
            return None;
        }
        serde_json::from_slice(&e.value).ok()
    }

    /// Every audit decision stored so far (deletion notices share the subjects; left out).
    pub async fn audit(&self) -> Vec<AuditEvent> {
        let deleted = self.ns.audit(audit::KIND_JOB_DELETED);
        stored(&self.topo.events_stream, self.ns.audit_all())
            .await
            .iter()
            .filter(|m| m.subject.as_str() != deleted)
            .map(|m| {
                serde_json::from_slice(&m.payload)
                    .unwrap_or_else(|e| panic!("an audit message is not an AuditEvent: {e}"))
            })
            .collect()
    }
}

/// Every message the stream holds under `subject` now (the count at the start, each read).
pub async fn stored(
    stream: &jetstream::stream::Stream,
    subject: String,
) -> Vec<async_nats::Message> {
    let mut c = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: subject.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("no consumer on {subject}: {e}"));
    let held = c
        .info()
        .await
        .unwrap_or_else(|e| panic!("no consumer info on {subject}: {e}"))
        .num_pending;
    read(c, &subject, held).await
}

/// The first `n` messages under `subject`, waiting for them.
pub async fn stored_at_least(
    stream: &jetstream::stream::Stream,
    subject: String,
    n: u64,
) -> Vec<async_nats::Message> {
    let c = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: subject.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("no consumer on {subject}: {e}"));
    read(c, &subject, n).await
}

async fn read(
    c: consumer::Consumer<consumer::pull::OrderedConfig>,
    subject: &str,
    n: u64,
) -> Vec<async_nats::Message> {
    let mut out = Vec::new();
    if n == 0 {
        return out;
    }
    let mut msgs = c
        .messages()
        .await
        .unwrap_or_else(|e| panic!("cannot read {subject}: {e}"));
    while (out.len() as u64) < n {
        match tokio::time::timeout(Duration::from_secs(10), msgs.next()).await {
            Ok(Some(Ok(m))) => out.push(m.message),
            Ok(Some(Err(e))) => panic!("reading {subject}: {e}"),
            Ok(None) => panic!("the consumer of {subject} ended after {} of {n}", out.len()),
            Err(_) => panic!(
                "{subject}: only {} of {n} messages arrived within 10s",
                out.len()
            ),
        }
    }
    out
}
