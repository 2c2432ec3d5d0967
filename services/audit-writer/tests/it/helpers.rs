//! The audit writer's test stack: a private nats-server and the shared topology (from
//! `taskwire_teststack`), an audit database (a SQLite file or a fresh PostgreSQL database),
//! audit writers in-process or as real processes, and publishers of the events the other
//! services would send.

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use taskwire_audit_writer::AuditWriter;
use taskwire_core::jobs::JobStore;
use taskwire_core::names::{HDR_MSG_ID, HDR_SEQ, HDR_STREAM};
use taskwire_core::wire::{
    AuditEvent, EventKind, JobEvent, JobSpec, JobState, OutputStream, StoreReply, Target, TreeMode,
    TreeReport, Via,
};
use taskwire_testkit::PgDatabase;
use uuid::Uuid;

pub use taskwire_teststack::{TestExecutor, eventually};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Stack {
    stack: taskwire_teststack::Stack,
    pub pg: Option<PgDatabase>,
    pub db_url: String,
    /// The instance each job's events came from, so its output comes from there too.
    runs_on: std::sync::Mutex<std::collections::HashMap<Uuid, Uuid>>,
}

impl Deref for Stack {
    type Target = taskwire_teststack::Stack;
    fn deref(&self) -> &Self::Target {
        &self.stack
    }
}

impl DerefMut for Stack {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.stack
    }
}

impl Stack {
    /// NATS and an empty database on `backend`; each test starts its writers.
    pub async fn new(backend: Backend) -> Self {
        let stack = taskwire_teststack::Stack::builder().start().await;
        let (pg, db_url) = match backend {
            Backend::Sqlite => (
                None,
                format!("sqlite://{}", stack.dir.path().join("audit.db").display()),
            ),
            Backend::Postgres => {
                let pg = PgDatabase::create().await;
                let url = pg.url();
                (Some(pg), url)
            }
        };
        Self {
            stack,
            pg,
            db_url,
            runs_on: Default::default(),
        }
    }

    /// An audit writer in this process, on the stack's database.
    pub async fn writer(&self) -> AuditWriter {
        self.writer_at(&self.db_url).await
    }

    pub async fn writer_at(&self, url: &str) -> AuditWriter {
        self.stack.audit_writer_on(url).await
    }

    /// The real `taskwire-audit-writer` binary, configured through the environment.
    pub fn writer_process(&self) -> std::process::Child {
        std::process::Command::new(env!("CARGO_BIN_EXE_taskwire-audit-writer"))
            .env("TASKWIRE_NATS_URL", self.nats.url())
            .env(
                "TASKWIRE_NATS_CREDENTIALS",
                self.auth
                    .keys
                    .path(&taskwire_core::auth::roles::Role::AuditWriter),
            )
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

    /// Publishes `e` as its publisher would: an instance's own events under its GUID (a test
    /// event of an executor's kind that names none is the test instance's), the others as
    /// the control services.
    pub async fn event(&self, e: &JobEvent) {
        let executor_kind = !matches!(
            e.kind,
            EventKind::Queued { .. } | EventKind::Cancelled { .. } | EventKind::Lost { .. }
        );
        let mut e = e.clone();
        if executor_kind && e.instance.is_none() {
            e.instance = Some(TEST_INSTANCE);
        }
        if executor_kind && let Some(g) = e.instance {
            self.runs_on.lock().unwrap().insert(e.job_id, g);
        }
        match e.instance {
            Some(g) if executor_kind || matches!(e.kind, EventKind::Lost { .. }) => {
                JobStore::new(self.js.clone(), self.topo.jobs.clone(), self.ns.clone())
                    .as_instance(g)
                    .publish_event(&e)
                    .await
                    .unwrap()
            }
            _ => self.jobs.publish_event(&e).await.unwrap(),
        }
    }

    /// Publishes an audit decision of `kind`, as the gateway does.
    pub async fn publish_audit(&self, kind: &str, a: &AuditEvent) {
        self.jobs.publish_audit(kind, a).await.unwrap();
    }

    /// Publishes an output chunk the way the job's executor does (the instance its events
    /// came from, else the test instance).
    pub async fn chunk(&self, job: Uuid, seq: u64, stream: OutputStream, data: &[u8]) {
        let from = self
            .runs_on
            .lock()
            .unwrap()
            .get(&job)
            .copied()
            .unwrap_or(TEST_INSTANCE);
        self.chunk_from(from, job, seq, stream, data).await
    }

    /// Publishes an output chunk of `job` as instance `from`.
    pub async fn chunk_from(
        &self,
        from: Uuid,
        job: Uuid,
        seq: u64,
        stream: OutputStream,
        data: &[u8],
    ) {
        self.chunk_encoded(from, job, seq, stream, None, data).await
    }

    /// Publishes an output chunk whose payload is `payload` in `encoding` (a `Tw-Encoding`).
    pub async fn chunk_encoded(
        &self,
        from: Uuid,
        job: Uuid,
        seq: u64,
        stream: OutputStream,
        encoding: Option<&str>,
        payload: &[u8],
    ) {
        let data = payload;
        let mut h = async_nats::HeaderMap::new();
        h.insert(HDR_SEQ, seq.to_string().as_str());
        h.insert(HDR_STREAM, stream.as_str());
        if let Some(e) = encoding {
            h.insert(taskwire_core::names::HDR_ENCODING, e);
        }
        h.insert(
            HDR_MSG_ID,
            taskwire_core::wire::output::chunk_msg_id(&from, &job, seq).as_str(),
        );
        self.js
            .publish_with_headers(self.ns.output(&from, &job), h, data.to_vec().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// An executor in this process with `catalog`.
    pub async fn start_executor(&self, catalog: &str) -> TestExecutor {
        self.stack
            .executor(&format!("exec-{}", Uuid::new_v4()), catalog, |_| {})
            .await
    }
}

/// The instance test events and output come from when a test names none.
pub const TEST_INSTANCE: Uuid = Uuid::from_u128(0x7e57_0000_0000_4000_8000_0000_0000_0001);

pub fn spec(
    job_id: Uuid,
    command: &str,
    user: &str,
    at: chrono::DateTime<chrono::Utc>,
    params: BTreeMap<String, serde_json::Value>,
) -> JobSpec {
    JobSpec::new(command, Target::Channel("default".into()), user, Via::Http)
        .with_id(job_id)
        .with_params(params)
        .queued_at(at)
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
