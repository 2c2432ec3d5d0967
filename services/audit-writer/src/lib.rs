//! taskwire-audit-writer: the durable SQL record of who ran what.
//!
//! - [`consume`]: durable consumers on `TW_EVENTS` and `TW_OUTPUT`, batched transactions,
//!   acknowledged only after commit; [`apply`] makes every write idempotent, [`fold`] builds
//!   the executions row from events in any order.
//! - [`batch`]: reads a batch of stream messages into rows to write; [`tables`] inserts the
//!   hot tables' rows through [`rows`] (values bound directly, one statement per table).
//! - [`chain`]: the audit log's hash chains (one per writer start) and their verification.
//! - [`api`]: answers `tw.store.*` queries from gateways ([`query`]), through core's
//!   request/reply responder.
//! - [`retention`]: prunes old rows.
//! - [`db`]: connecting (SQLite or PostgreSQL) and migrating, [`wal`]: SQLite's WAL
//!   checkpoints beside the writes; [`config`]: the `[audit]`
//!   section; [`error`]: the crate's error.
//!
//! SQLite (a file in the state dir) is the embedded default, PostgreSQL the production store;
//! the schema comes from `taskwire-migrations`, applied at every start.

pub mod api;
pub mod apply;
pub mod batch;
pub mod chain;
pub mod config;
pub mod consume;
pub mod db;
pub mod error;
pub mod fold;
pub mod query;
pub mod retention;
pub mod rows;
pub mod tables;
pub mod wal;

pub use config::{AuditConfig, RetentionConfig};
pub use error::{AuditError, Result};

use sea_orm::DatabaseConnection;
use std::path::PathBuf;
use std::time::Duration;
use taskwire_core::Namespace;
use taskwire_core::config::Settings;
use taskwire_core::retry::Backoff;
use taskwire_core::topology::{self, TopologyConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct AuditWriterOptions {
    pub nats_url: String,
    /// This service's NATS key file (`None`: connect without one).
    pub nats_credentials: Option<std::path::PathBuf>,
    pub namespace: Namespace,
    pub topology: TopologyConfig,
    pub state_dir: PathBuf,
    pub config: AuditConfig,
}

impl AuditWriterOptions {
    pub fn from_settings(settings: &Settings) -> Result<Self> {
        let config: AuditConfig = settings.section("audit")?;
        db::Backend::of(&config.url(&settings.state_dir))?;
        Ok(Self {
            nats_url: settings.nats_url.clone(),
            nats_credentials: settings.nats_credentials.clone(),
            namespace: settings.namespace()?,
            topology: settings.topology.clone(),
            state_dir: settings.state_dir.clone(),
            config,
        })
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.config.url(&self.state_dir)
    }
}

/// Connects and migrates, retrying with backoff while the database is unreachable (a writer
/// started before its database waits for it). `None` when stopped first.
pub async fn open_database(
    url: &str,
    cfg: &AuditConfig,
    stop: &CancellationToken,
) -> Result<Option<DatabaseConnection>> {
    db::Backend::of(url)?;
    let mut backoff = Backoff::new(Duration::from_millis(200), cfg.retry_max);
    loop {
        let result = async {
            let conn = db::connect(url, cfg.max_connections).await?;
            db::migrate(&conn).await?;
            Ok::<_, AuditError>(conn)
        }
        .await;
        match result {
            Ok(conn) => return Ok(Some(conn)),
            Err(e) => {
                let attempt = backoff.failures() + 1;
                if attempt == 1 || attempt.is_power_of_two() {
                    tracing::warn!(error = %e, attempt, "audit database not ready; retrying");
                }
                if !backoff.wait_or_stop(stop).await {
                    return Ok(None);
                }
            }
        }
    }
}

/// A started audit writer.
#[derive(Debug)]
pub struct AuditWriter {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    db: DatabaseConnection,
}

impl AuditWriter {
    /// Opens the database (waiting for it), then starts consuming and answering. `None` when
    /// `stop` fired while waiting for the database.
    pub async fn start(opts: AuditWriterOptions, stop: CancellationToken) -> Result<Option<Self>> {
        let url = opts.database_url();
        let Some(db) = open_database(&url, &opts.config, &stop).await? else {
            return Ok(None);
        };
        let client = taskwire_core::nats::connect_to(
            &taskwire_core::nats::Endpoint::new(
                opts.nats_url.clone(),
                opts.nats_credentials.clone(),
            )
            .with_inbox(taskwire_core::auth::roles::Role::AuditWriter.inbox_prefix()),
            "taskwire-audit-writer",
        )
        .await?;
        let js = taskwire_core::nats::jetstream(client.clone());
        let topo = topology::open(&js, &opts.namespace).await?;
        let subjects = batch::Subjects::new(&opts.namespace);
        let sqlite = db::Backend::of(&url)? == db::Backend::Sqlite;
        let write_lock = sqlite.then(|| std::sync::Arc::new(tokio::sync::Mutex::new(())));
        let checkpoints = sqlite.then(wal::Checkpoints::default);
        let parallel = if sqlite {
            1
        } else {
            opts.config.parallel_batches.max(1)
        };
        let queries = api::serve(&client, &opts.namespace, db.clone(), stop.clone()).await?;
        let chain = chain::AuditChain::new();
        let feed = |stream, durable| consume::Feed {
            stream,
            durable,
            db: db.clone(),
            subjects: subjects.clone(),
            batch_max: opts.config.batch_max,
            retry_max: opts.config.retry_max,
            write_lock: write_lock.clone(),
            parallel,
            chain: chain.clone(),
            wal: checkpoints.clone(),
        };
        let mut tasks = vec![
            tokio::spawn(consume::run(
                feed(
                    topo.events_stream.clone(),
                    opts.namespace.consumer_audit_events(),
                ),
                stop.clone(),
            )),
            tokio::spawn(consume::run(
                feed(
                    topo.output_stream.clone(),
                    opts.namespace.consumer_audit_output(),
                ),
                stop.clone(),
            )),
            tokio::spawn(queries.stopped()),
            tokio::spawn(retention::run(
                db.clone(),
                opts.config.retention.clone(),
                stop.clone(),
            )),
        ];
        if let Some(c) = checkpoints {
            tasks.push(tokio::spawn(c.run(db.clone(), stop.clone())));
        }
        tracing::info!(database = %db::redact(&url), chain = %chain.id(), "audit writer serving");
        Ok(Some(Self { stop, tasks, db }))
    }

    /// The database connection (for tests and `taskwire` tools).
    pub fn database(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Stops consuming (an unfinished batch stays unacknowledged and is delivered again).
    pub async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        let _ = self.db.close().await;
    }
}

/// Runs an audit writer until `shutdown`.
pub async fn run(opts: AuditWriterOptions, shutdown: CancellationToken) -> Result<()> {
    let Some(w) = AuditWriter::start(opts, shutdown.child_token()).await? else {
        return Ok(());
    };
    shutdown.cancelled().await;
    w.stop().await;
    Ok(())
}
