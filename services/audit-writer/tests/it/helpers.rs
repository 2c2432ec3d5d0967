//! The test stack: a private nats-server, the shared topology, an audit database (SQLite file
//! or a fresh PostgreSQL database), audit writers in-process or as real processes, and
//! publishers of the events the other services would send.

use async_nats::jetstream;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use std::collections::BTreeMap;
use std::time::Duration;
use taskwire_audit_writer::{AuditConfig, AuditWriter, AuditWriterOptions};
use taskwire_core::Namespace;
use taskwire_core::jobs::JobStore;
use taskwire_core::names::{HDR_MSG_ID, HDR_SEQ, HDR_STREAM};
use taskwire_core::topology::{self, TopologyConfig};
use taskwire_core::wire::{
    AuditEvent, EventKind, JobEvent, JobSpec, JobState, OutputStream, StoreReply, Target, TreeMode,
    TreeReport, Via,
};
use taskwire_executor::{Executor, ExecutorConfig, ExecutorOptions};
use taskwire_testkit::{NatsServer, PgDatabase};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use taskwire_testkit::eventually;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Stack {
    pub nats: NatsServer,
    pub ns: Namespace,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub store: JobStore,
    pub dir: tempfile::TempDir,
    pub pg: Option<PgDatabase>,
    pub db_url: String,
}

impl Stack {
    pub async fn new(backend: Backend) -> Self {
        taskwire_core::telemetry::init_for_tests();
        let nats = NatsServer::start();
        let client = taskwire_core::nats::connect(&nats.url(), "test-client")
            .await
            .unwrap();
        let js = taskwire_core::nats::jetstream(client.clone());
        let ns = Namespace::root();
        let topo = topology::ensure(&js, &ns, &TopologyConfig::default())
            .await
            .unwrap();
        let store = JobStore::new(js.clone(), topo.jobs.clone(), ns.clone());
        let dir = tempfile::tempdir().unwrap();
        let (pg, db_url) = match backend {
            Backend::Sqlite => (
                None,
                format!("sqlite://{}", dir.path().join("audit.db").display()),
            ),
            Backend::Postgres => {
                let pg = PgDatabase::create().await;
                let url = pg.url();
                (Some(pg), url)
            }
        };
        Self {
            nats,
            ns,
            client,
            js,
            store,
            dir,
            pg,
            db_url,
        }
    }

    pub fn options(&self, url: &str) -> AuditWriterOptions {
        AuditWriterOptions {
            nats_url: self.nats.url(),
            namespace: self.ns.clone(),
            topology: TopologyConfig::default(),
            state_dir: self.dir.path().to_path_buf(),
            config: AuditConfig {
                database_url: Some(url.to_string()),
                retry_max: Duration::from_millis(500),
                ..AuditConfig::default()
            },
        }
    }

    /// An audit writer in this process, on the stack's database.
    pub async fn writer(&self) -> AuditWriter {
        self.writer_at(&self.db_url).await
    }

    pub async fn writer_at(&self, url: &str) -> AuditWriter {
        AuditWriter::start(self.options(url), CancellationToken::new())
            .await
            .unwrap()
            .unwrap()
    }

    /// The real `taskwire-audit-writer` binary, configured through the environment.
    pub fn writer_process(&self) -> std::process::Child {
        std::process::Command::new(env!("CARGO_BIN_EXE_taskwire-audit-writer"))
            .env("TASKWIRE_NATS_URL", self.nats.url())
            .env("TASKWIRE_STATE_DIR", self.dir.path())
            .env("TASKWIRE_AUDIT__DATABASE_URL", &self.db_url)
            .env("TASKWIRE_AUDIT__RETRY_MAX", "500ms")
            .env("TASKWIRE_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    /// A connection of the test's own, to read tables directly.
    pub async fn db(&self) -> DatabaseConnection {
        let conn = taskwire_audit_writer::db::connect(&self.db_url, 2)
            .await
            .unwrap();
        taskwire_audit_writer::db::migrate(&conn).await.unwrap();
        conn
    }

    /// Asks the audit store over NATS, as a gateway does.
    pub async fn ask<T: serde::de::DeserializeOwned>(
        &self,
        verb: &str,
        body: serde_json::Value,
    ) -> StoreReply<T> {
        let msg = self
            .client
            .request(
                self.ns.store(verb),
                serde_json::to_vec(&body).unwrap().into(),
            )
            .await
            .unwrap();
        serde_json::from_slice(&msg.payload).unwrap()
    }

    pub async fn event(&self, e: &JobEvent) {
        self.store.publish_event(e).await.unwrap();
    }

    pub async fn audit(&self, kind: &str, a: &AuditEvent) {
        self.store.publish_audit(kind, a).await.unwrap();
    }

    /// Publishes an output chunk the way an executor does.
    pub async fn chunk(&self, job: Uuid, seq: u64, stream: OutputStream, data: &[u8]) {
        let mut h = async_nats::HeaderMap::new();
        h.insert(HDR_SEQ, seq.to_string().as_str());
        h.insert(HDR_STREAM, stream.as_str());
        h.insert(HDR_MSG_ID, format!("{job}:{seq}").as_str());
        self.js
            .publish_with_headers(self.ns.output(&job), h, data.to_vec().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// An executor in this process with `catalog`.
    pub async fn executor(&self, catalog: &str) -> Executor {
        let state_dir = self.dir.path().join(format!("exec-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&state_dir).unwrap();
        let catalog_path = state_dir.join("catalog.toml");
        std::fs::write(&catalog_path, catalog).unwrap();
        Executor::start(ExecutorOptions {
            nats_url: self.nats.url(),
            namespace: self.ns.clone(),
            state_dir,
            topology: TopologyConfig::default(),
            config: ExecutorConfig {
                catalog: catalog_path,
                heartbeat_interval: Duration::from_millis(300),
                ..ExecutorConfig::default()
            },
        })
        .await
        .unwrap()
    }

    /// Submits a job to the default channel, as the gateway would.
    pub async fn submit(&self, command: &str, params: serde_json::Value) -> Uuid {
        let s = spec(
            Uuid::now_v7(),
            command,
            "tester",
            chrono::Utc::now(),
            serde_json::from_value(params).unwrap(),
        );
        let id = s.job_id;
        self.store.submit(s).await.unwrap();
        id
    }
}

pub fn spec(
    job_id: Uuid,
    command: &str,
    user: &str,
    at: chrono::DateTime<chrono::Utc>,
    params: BTreeMap<String, serde_json::Value>,
) -> JobSpec {
    JobSpec {
        job_id,
        command: command.into(),
        params,
        target: Target::Channel("default".into()),
        requested_by: user.into(),
        via: Via::Http,
        queued_at: at,
        attempt: 1,
        group_id: None,
        retry_of: None,
    }
}

pub fn ev(job: Uuid, at: chrono::DateTime<chrono::Utc>, kind: EventKind) -> JobEvent {
    JobEvent {
        job_id: job,
        at,
        instance: None,
        kind,
    }
}

pub fn exited(state: JobState, code: Option<i32>, last_seq: u64) -> EventKind {
    EventKind::Exited {
        state,
        exit_code: code,
        signal: None,
        duration_ms: 5,
        peak_rss_bytes: Some(2 << 20),
        output_bytes: 0,
        last_seq,
        output_truncated: false,
        result: None,
        error: None,
        ended_by: None,
        tree: TreeReport {
            mode: TreeMode::Cgroup,
            leftover: 0,
            survivors: 0,
        },
    }
}

/// The one BIGINT column `n` of the one row `sql` selects.
pub async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            sql.to_string(),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// The sum of every job's last output sequence number: how many chunks the store must hold.
pub async fn sum_last_seq(db: &DatabaseConnection) -> i64 {
    scalar(
        db,
        "SELECT CAST(COALESCE(SUM(last_seq), 0) AS BIGINT) AS n FROM executions",
    )
    .await
}

/// `SELECT COUNT(*)` with an optional WHERE clause.
pub async fn count(db: &DatabaseConnection, table: &str, filter: &str) -> i64 {
    let sql = if filter.is_empty() {
        format!("SELECT COUNT(*) AS n FROM {table}")
    } else {
        format!("SELECT COUNT(*) AS n FROM {table} WHERE {filter}")
    };
    scalar(db, &sql).await
}

pub fn unwrap_reply<T: std::fmt::Debug>(r: StoreReply<T>) -> T {
    match r {
        StoreReply::Ok(v) => v,
        StoreReply::Error(e) => panic!("store answered an error: {e:?}"),
    }
}
