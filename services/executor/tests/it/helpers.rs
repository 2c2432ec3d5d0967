//! The test stack: a private nats-server, the shared topology, executors started the way
//! `taskwire up` starts them, and helpers that read jobs back as a client would.

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use taskwire_core::Namespace;
use taskwire_core::jobs::JobStore;
use taskwire_core::names::{HDR_SEQ, HDR_STREAM};
use taskwire_core::topology::{self, Topology, TopologyConfig};
use taskwire_core::wire::{
    EventKind, InstanceInfo, JobEvent, JobRecord, JobSpec, OutputStream, Target, Via,
};
use taskwire_executor::{Executor, ExecutorConfig, ExecutorOptions};
use taskwire_testkit::NatsServer;
use uuid::Uuid;

pub struct Stack {
    pub nats: NatsServer,
    pub ns: Namespace,
    pub store: JobStore,
    pub topo: Topology,
    pub dir: tempfile::TempDir,
}

pub struct TestExecutor {
    pub exec: Option<Executor>,
    pub guid: Uuid,
    pub state_dir: PathBuf,
}

impl TestExecutor {
    pub async fn drain(&mut self) {
        if let Some(e) = self.exec.take() {
            e.drain().await.expect("drain");
        }
    }
}

impl Drop for TestExecutor {
    fn drop(&mut self) {
        // Dropping a started executor without drain leaves its tasks to the runtime, which
        // ends with the test.
        let _ = self.exec.take();
    }
}

impl Stack {
    pub async fn new() -> Self {
        taskwire_core::telemetry::init_for_tests();
        let nats = NatsServer::start();
        let client = taskwire_core::nats::connect(&nats.url(), "test-client")
            .await
            .expect("connect");
        let js = taskwire_core::nats::jetstream(client);
        let ns = Namespace::root();
        let topo = topology::ensure(&js, &ns, &TopologyConfig::default())
            .await
            .expect("topology");
        let store = JobStore::new(js.clone(), topo.jobs.clone(), ns.clone());
        Self {
            nats,
            ns,
            store,
            topo,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Writes `catalog` to a file and starts an executor with its own state dir.
    pub async fn executor(
        &self,
        name: &str,
        catalog: &str,
        tweak: impl FnOnce(&mut ExecutorConfig),
    ) -> TestExecutor {
        let state_dir = self.dir.path().join(name);
        std::fs::create_dir_all(&state_dir).unwrap();
        let catalog_path = state_dir.join("catalog.toml");
        std::fs::write(&catalog_path, catalog).unwrap();
        self.executor_in(&state_dir, &catalog_path, tweak).await
    }

    pub async fn executor_in(
        &self,
        state_dir: &Path,
        catalog_path: &Path,
        tweak: impl FnOnce(&mut ExecutorConfig),
    ) -> TestExecutor {
        let mut config = ExecutorConfig {
            catalog: catalog_path.to_path_buf(),
            heartbeat_interval: Duration::from_millis(300),
            drain_timeout: Duration::from_secs(30),
            ..ExecutorConfig::default()
        };
        tweak(&mut config);
        let exec = Executor::start(ExecutorOptions {
            nats_url: self.nats.url(),
            namespace: self.ns.clone(),
            state_dir: state_dir.to_path_buf(),
            topology: TopologyConfig::default(),
            config,
        })
        .await
        .expect("executor starts");
        TestExecutor {
            guid: exec.guid(),
            exec: Some(exec),
            state_dir: state_dir.to_path_buf(),
        }
    }

    pub fn spec(&self, command: &str, params: serde_json::Value, target: Target) -> JobSpec {
        let params: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(params).expect("params object");
        JobSpec {
            job_id: Uuid::now_v7(),
            command: command.into(),
            params,
            target,
            requested_by: "tester".into(),
            via: Via::Nats,
            queued_at: chrono::Utc::now(),
            attempt: 1,
            group_id: None,
            retry_of: None,
        }
    }

    pub async fn submit(&self, command: &str, params: serde_json::Value) -> Uuid {
        self.submit_to(command, params, Target::Channel("default".into()))
            .await
    }

    pub async fn submit_to(
        &self,
        command: &str,
        params: serde_json::Value,
        target: Target,
    ) -> Uuid {
        let spec = self.spec(command, params, target);
        let id = spec.job_id;
        self.store.submit(spec).await.expect("submit");
        id
    }

    pub async fn record(&self, job: &Uuid) -> JobRecord {
        self.store.get(job).await.expect("read").expect("record").0
    }

    /// Waits until the job reaches a terminal state.
    pub async fn wait_final(&self, job: &Uuid, within: Duration) -> JobRecord {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let r = self.record(job).await;
            if r.state.is_terminal() {
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {job} still {} after {within:?}",
                r.state
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the job's record is in `state`.
    pub async fn wait_state(&self, job: &Uuid, state: taskwire_core::wire::JobState) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.record(job).await;
            if r.state == state {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {job} never {state}, is {}",
                r.state
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every lifecycle event of the job so far, in stream order.
    pub async fn events(&self, job: &Uuid) -> Vec<JobEvent> {
        let msgs = read_subject(&self.topo.events_stream, self.ns.event(job), None).await;
        msgs.iter()
            .map(|m| serde_json::from_slice(&m.payload).expect("event json"))
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

    /// The job's stored output chunks, ordered by `Tw-Seq`, asserting there is no gap and no
    /// duplicate up to the `last_seq` of its `exited` event.
    pub async fn output(&self, job: &Uuid) -> Vec<(u64, OutputStream, Vec<u8>)> {
        let last = match self.exited(job).await.kind {
            EventKind::Exited { last_seq, .. } => last_seq,
            _ => unreachable!(),
        };
        let msgs = read_subject(&self.topo.output_stream, self.ns.output(job), Some(last)).await;
        let mut chunks: Vec<(u64, OutputStream, Vec<u8>)> = msgs
            .iter()
            .map(|m| {
                let h = m.headers.as_ref().expect("chunk headers");
                let seq: u64 = h
                    .get(HDR_SEQ)
                    .expect("seq")
                    .as_str()
                    .parse()
                    .expect("seq number");
                let stream = OutputStream::parse(h.get(HDR_STREAM).expect("stream").as_str())
                    .expect("stream name");
                (seq, stream, m.payload.to_vec())
            })
            .collect();
        chunks.sort_by_key(|c| c.0);
        let seqs: Vec<u64> = chunks.iter().map(|c| c.0).collect();
        assert_eq!(
            seqs,
            (1..=last).collect::<Vec<_>>(),
            "gapless, duplicate-free chunk sequence"
        );
        chunks
    }

    /// The bytes of one stream, concatenated in order.
    pub async fn stream_bytes(&self, job: &Uuid, which: OutputStream) -> Vec<u8> {
        self.output(job)
            .await
            .into_iter()
            .filter(|c| c.1 == which)
            .flat_map(|c| c.2)
            .collect()
    }

    pub async fn instance(&self, guid: &Uuid) -> Option<InstanceInfo> {
        let e = self.topo.instances.entry(guid.to_string()).await.ok()??;
        if e.operation != async_nats::jetstream::kv::Operation::Put {
            return None;
        }
        serde_json::from_slice(&e.value).ok()
    }
}

/// Reads every message stored under `subject`: with `expect` set, until that many arrived;
/// otherwise until the consumer has nothing pending.
async fn read_subject(
    stream: &jetstream::stream::Stream,
    subject: String,
    expect: Option<u64>,
) -> Vec<async_nats::Message> {
    let c = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: subject,
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let mut out = Vec::new();
    let mut msgs = c.messages().await.expect("messages");
    loop {
        if let Some(n) = expect
            && out.len() as u64 >= n
        {
            break;
        }
        match tokio::time::timeout(
            Duration::from_millis(if expect.is_some() { 10_000 } else { 300 }),
            msgs.next(),
        )
        .await
        {
            Ok(Some(Ok(m))) => out.push(m.message),
            Ok(Some(Err(e))) => panic!("reading {e}"),
            Ok(None) | Err(_) => break,
        }
    }
    out
}

/// A catalog used by most tests. `{dir}` is replaced by a scratch directory.
pub fn catalog(dir: &Path) -> String {
    r#"
[commands.echo]
program = "/bin/echo"
args = ["{text}"]
[[commands.echo.params]]
name = "text"
type = "string"
required = true

[commands.true]
program = "/bin/true"

[commands.fail3]
shell = true
script = 'echo "to stderr" >&2; exit 3'

[commands.wait_file]
shell = true
script = 'while [ ! -e "$1" ]; do sleep 0.02; done; echo done'
args = ["{path}"]
[[commands.wait_file.params]]
name = "path"
type = "string"
required = true

[commands.record]
shell = true
script = 'echo "$TASKWIRE_JOB_ID" >> "{dir}/ran.log"'

[commands.sleep]
program = "/bin/sleep"
args = ["{secs}"]
[[commands.sleep.params]]
name = "secs"
type = "integer"
min = 0
max = 600
required = true
"#
    .replace("{dir}", &dir.display().to_string())
}

pub use taskwire_testkit::eventually;
