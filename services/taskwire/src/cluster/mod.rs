//! `taskwire up --cluster`: the production shape of docker-compose.yml, natively on loopback.
//! Three nats-server nodes in one JetStream cluster (streams and buckets at R3), and two of
//! each service as processes of their own (`taskwire serve ...`): gateways, audit writers on
//! one PostgreSQL database, kill brokers, schedulers, and executors with their own state dirs
//! and GUIDs. A process that dies is started again (as `restart: unless-stopped` does); the
//! addresses, pids and logs are in `<state dir>/cluster.json`, which the cluster tests read.
//! Ctrl-C stops everything, the door first and NATS last.

mod child;
mod manifest;
mod plan;

use crate::error::CliError;
use crate::up::UpArgs;
use manifest::Manifest;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use taskwire_core::auth::keys::KeyDir;
use taskwire_core::auth::roles::Role;
use taskwire_core::config::Settings;
use taskwire_core::topology::ExecutorEntry;

/// How long a stop waits for a process before it kills it (an executor drains its jobs).
const STOP_GRACE: Duration = Duration::from_secs(30);
/// How long the nodes may take to accept connections and elect a JetStream leader.
const NATS_READY: Duration = Duration::from_secs(60);

pub async fn run(config: Option<PathBuf>, args: UpArgs) -> Result<(), CliError> {
    let mut settings = Settings::load(config.as_deref())?;
    if let Some(dir) = &args.state_dir {
        settings.state_dir = dir.clone();
    }
    let state_dir = crate::up::absolute(&settings.state_dir);
    let logs = state_dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|source| CliError::StateDir {
        path: logs.clone(),
        source,
    })?;
    settings.state_dir = state_dir.clone();
    let ns = settings.namespace()?;
    let database_url = match &args.database_url {
        Some(u) => u.clone(),
        None => taskwire_audit_writer::AuditWriterOptions::from_settings(&settings)?.database_url(),
    };
    if !database_url.starts_with("postgres") {
        return Err(CliError::Usage(format!(
            "a cluster's two audit writers share one PostgreSQL database, and {} is not one: pass --database-url postgres://USER@HOST/DB (or set [audit] database_url)",
            taskwire_audit_writer::db::redact(&database_url)
        )));
    }

    // Keys: a deployment's, kept in the state dir (two executors, made on the first start).
    // Every executor the key directory knows may connect; the first two run here as
    // processes (a fleet benchmark adds its own to the directory and runs them itself).
    let key_dir = state_dir.join("nats-auth");
    let keys = KeyDir::open(&key_dir)?;
    let executors = executors(&key_dir)?;
    taskwire_core::auth::provision(&key_dir, &ns, &executors, true)?;
    let admin_token = match settings.admin_token.clone() {
        Some(t) => t,
        None => taskwire_gateway::auth::generate_token().map_err(CliError::Usage)?,
    };
    let catalog = crate::up::catalog(&config, args.catalog.clone(), &state_dir)?;
    let nats_server = crate::up::find_nats_server()?;
    let taskwire = std::env::current_exe()
        .map_err(|e| CliError::Usage(format!("cannot tell where this taskwire is: {e}")))?;
    let ports = plan::Ports::new(args.base_port)?;
    let config_abs = config.as_deref().map(crate::up::absolute);
    let inputs = plan::Inputs {
        state_dir: &state_dir,
        keys: &keys,
        executors: &executors,
        ports: &ports,
        nats_server: &nats_server,
        taskwire: &taskwire,
        catalog: &catalog,
        database_url: &database_url,
        admin_token: &admin_token,
        config: config_abs.as_deref(),
        instance_ttl: settings.topology.instance_ttl.max(plan::INSTANCE_TTL),
    };
    let nodes = plan::nats_nodes(&inputs)?;
    let services = plan::services(&inputs)?;

    let base = Manifest {
        nats_urls: ports.nats_urls(),
        http: ports
            .http
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect(),
        admin_token: admin_token.clone(),
        key_dir: key_dir.clone(),
        database_url: database_url.clone(),
        executors: executors.iter().take(plan::PAIRS).map(|e| e.guid).collect(),
        ready: false,
        processes: Vec::new(),
    };
    let path = state_dir.join(manifest::FILE);
    // A manifest of an earlier run says nothing true about this one.
    let _ = std::fs::remove_file(&path);
    let supervisor = child::Supervisor::new(
        Duration::from_secs_f64(args.restart_after),
        STOP_GRACE,
        manifest::writer(path.clone(), base),
    );
    let stopping = taskwire_core::service::stop_on_signals(
        "taskwire",
        Some("stopping the cluster (running jobs finish first; press Ctrl-C again to exit now)"),
    );
    let started = tokio::select! {
        r = start(&supervisor, nodes, services, &settings, &ns, &keys, &executors, &ports, &database_url, inputs.instance_ttl) => r,
        _ = stopping.cancelled() => Err(CliError::Interrupted("stopped while the cluster was starting".into())),
    };
    if let Err(e) = started {
        tokio::task::spawn_blocking(move || supervisor.stop())
            .await
            .ok();
        return Err(e);
    }
    manifest::mark_ready(&path);
    print_ready(&ports, &state_dir, &admin_token, &database_url);
    stopping.cancelled().await;
    tokio::task::spawn_blocking(move || supervisor.stop())
        .await
        .map_err(|e| CliError::Service(e.to_string()))
}

/// The deployment's executors: those its key directory knows, and new ones up to two (the
/// first two are the cluster's own processes).
fn executors(key_dir: &Path) -> Result<Vec<ExecutorEntry>, CliError> {
    let known = taskwire_core::auth::manifest::load(key_dir)?;
    let added: Vec<ExecutorEntry> = (known.len()..plan::PAIRS)
        .map(|_| ExecutorEntry {
            guid: uuid::Uuid::new_v4(),
            channels: vec!["default".into()],
        })
        .collect();
    let all = taskwire_core::auth::manifest::merge(known, added);
    taskwire_core::auth::manifest::save(key_dir, &all)?;
    Ok(all)
}

#[allow(clippy::too_many_arguments)]
async fn start(
    supervisor: &child::Supervisor,
    nodes: Vec<child::Spec>,
    services: Vec<child::Spec>,
    settings: &Settings,
    ns: &taskwire_core::Namespace,
    keys: &KeyDir,
    executors: &[ExecutorEntry],
    ports: &plan::Ports,
    database_url: &str,
    instance_ttl: Duration,
) -> Result<(), CliError> {
    supervisor.start(nodes).map_err(CliError::Nats)?;
    let mut topology = settings.topology.clone();
    topology.replicas = plan::NODES;
    topology.instance_ttl = instance_ttl;
    let admin = taskwire_core::nats::Endpoint::new(
        ports.nats_urls().join(","),
        Some(keys.path(&Role::Admin)),
    )
    .with_inbox(Role::Admin.inbox_prefix());
    // The nodes take a moment to find each other and elect a meta leader: until then the
    // admin step cannot make streams.
    let deadline = Instant::now() + NATS_READY;
    let mut backoff =
        taskwire_core::retry::Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
    loop {
        match taskwire_core::auth::setup(&admin, ns, &topology, executors).await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "the cluster is not ready for the admin step yet");
                backoff.wait().await;
            }
            Err(e) => {
                return Err(CliError::Nats(format!(
                    "the 3 nodes did not form a JetStream cluster within {NATS_READY:?} (their logs are in the state dir's logs/): {e}"
                )));
            }
        }
    }
    // The schema once, before two writers start on it.
    let conn = taskwire_audit_writer::db::connect(database_url, 1).await?;
    taskwire_audit_writer::db::migrate(&conn).await?;
    let _ = conn.close().await;
    supervisor.start(services).map_err(CliError::Service)
}

fn print_ready(ports: &plan::Ports, state_dir: &Path, token: &str, db: &str) {
    let urls = ports.nats_urls().join(",");
    println!("taskwire cluster is up (3 NATS nodes, 2 of each service)");
    for (i, p) in ports.http.iter().enumerate() {
        println!("  gateway-{}:  http://127.0.0.1:{p}", i + 1);
    }
    println!("  NATS:       {urls}");
    println!("  audit db:   {}", taskwire_audit_writer::db::redact(db));
    println!(
        "  state dir:  {}  (logs/ has every process's log; cluster.json its pids)",
        state_dir.display()
    );
    println!("  admin token (super user 'admin'): {token}");
    println!();
    println!(
        "Try it: export TASKWIRE_URL=http://127.0.0.1:{} TASKWIRE_TOKEN={token}; taskwire run hello",
        ports.http[0]
    );
    println!("A process that dies is started again. Press Ctrl-C to stop everything.");
}
