//! `taskwire up`: a private nats-server child (or the NATS at TASKWIRE_NATS_URL) and every
//! service of the product (audit writer on SQLite by default, kill broker, scheduler, executor,
//! gateway)
//! in this process, each with its own NATS connection, talking only
//! over NATS as they would on separate machines.

use crate::error::CliError;
use std::path::{Path, PathBuf};
use taskwire_core::auth::roles::Role;
use taskwire_core::config::Settings;
use taskwire_core::nats_server::{self, ChildServer};
use taskwire_executor::ExecutorOptions;
use tokio_util::sync::CancellationToken;

/// The demo catalog, written to the state dir when no catalog is given.
const DEMO_CATALOG: &str = include_str!("demo-catalog.toml");

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where to keep state (nats-server store, instance GUID, run dirs).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Executor catalog to use instead of the demo one.
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Address of the HTTP API (default 127.0.0.1:8080, or [gateway] listen).
    #[arg(long, value_name = "ADDR", conflicts_with = "cluster")]
    pub http: Option<std::net::SocketAddr>,
    /// The production shape instead, on loopback: 3 NATS nodes (R3) and two of each service,
    /// each its own process, the audit on PostgreSQL (see docs/architecture.md).
    #[arg(long)]
    pub cluster: bool,
    /// With --cluster: the audit database, PostgreSQL (default: [audit] database_url).
    #[arg(long, value_name = "URL", requires = "cluster")]
    pub database_url: Option<String>,
    /// With --cluster: seconds before a process that died is started again.
    #[arg(long, value_name = "SECS", default_value_t = 1.0, requires = "cluster")]
    pub restart_after: f64,
    /// With --cluster: NATS clients on BASE+1..3, routes on BASE+11..13, gateways on
    /// BASE+21..22 (default: free ports).
    #[arg(long, value_name = "BASE", requires = "cluster")]
    pub base_port: Option<u16>,
}

pub async fn run(config: Option<PathBuf>, args: UpArgs) -> Result<(), CliError> {
    if args.cluster {
        return crate::cluster::run(config, args).await;
    }
    let mut settings = Settings::load(config.as_deref())?;
    if let Some(dir) = args.state_dir {
        settings.state_dir = dir;
    }
    let state_dir = absolute(&settings.state_dir);
    std::fs::create_dir_all(&state_dir).map_err(|source| CliError::StateDir {
        path: state_dir.clone(),
        source,
    })?;
    settings.state_dir = state_dir.clone();

    let mut exec_opts = ExecutorOptions::from_settings(&settings)?;
    let ns = settings.namespace()?;
    // NATS: the configured one, or a private child on a free loopback port with every
    // service its own key and permissions (made in the state dir on first start).
    let nats_from_env = std::env::var("TASKWIRE_NATS_URL").is_ok();
    let mut child = None;
    // The keys live in the state dir (private files): every identity's NATS key for the
    // private server, and the dispatch signing key in any case.
    let entry = taskwire_core::topology::ExecutorEntry {
        guid: taskwire_executor::identity::load_or_create_as(
            &exec_opts.state_dir,
            exec_opts.config.guid,
        )?,
        channels: exec_opts.config.channels.clone(),
    };
    let key_dir = state_dir.join("nats-auth");
    let conf = taskwire_core::auth::provision(&key_dir, &ns, std::slice::from_ref(&entry), true)?;
    let keys = taskwire_core::auth::keys::KeyDir::open(&key_dir)?;
    if !nats_from_env {
        let bin = find_nats_server()?;
        // Started on this (the main) thread on purpose: the child's parent-death signal is tied
        // to the thread that spawned it, and the main thread lives as long as taskwire.
        let server = ChildServer::start_with(&bin, &state_dir.join("nats"), None, Some(&conf))
            .map_err(CliError::Nats)?;
        settings.nats_url = server.url();
        child = Some(server);
    }
    exec_opts.nats_url = settings.nats_url.clone();

    if args.catalog.is_some() || !settings_has_catalog(&config) {
        exec_opts.config.catalog = catalog(&config, args.catalog, &state_dir)?;
    }
    let catalog_path = exec_opts.config.catalog.clone();

    // The admin token: given, or generated for this run.
    let admin_token = match settings.admin_token.clone() {
        Some(t) => t,
        None => taskwire_gateway::auth::generate_token().map_err(CliError::Usage)?,
    };
    let mut gw_opts = taskwire_gateway::GatewayOptions::from_settings(&settings)?;
    gw_opts.admin_token = Some(admin_token.clone());
    if let Some(addr) = args.http {
        gw_opts.config.listen = addr;
    }

    let mut broker_opts = taskwire_kill_broker::KillBrokerOptions::from_settings(&settings)?;
    let mut sched_opts = taskwire_scheduler::SchedulerOptions::from_settings(&settings)?;
    let mut audit_opts = taskwire_audit_writer::AuditWriterOptions::from_settings(&settings)?;
    // The admin step: streams, buckets and durable consumers, before any service needs them.
    let admin_ep = taskwire_core::nats::Endpoint::new(
        settings.nats_url.clone(),
        match child {
            Some(_) => Some(keys.path(&Role::Admin)),
            None => settings.nats_credentials.clone(),
        },
    )
    .with_inbox(Role::Admin.inbox_prefix());
    taskwire_core::auth::setup(
        &admin_ep,
        &ns,
        &settings.topology,
        std::slice::from_ref(&entry),
    )
    .await?;
    // Signed dispatch with the state dir's key, unless the configuration names one (then its
    // executor must trust that one through its own configuration).
    if gw_opts.config.dispatch_signing_key.is_none() {
        gw_opts.config.dispatch_signing_key = Some(keys.signing_path());
        exec_opts
            .config
            .dispatch_trusted_keys
            .push(keys.signing_public()?);
    }
    if child.is_some() {
        let k = &keys;
        gw_opts.nats_credentials = Some(k.path(&Role::Gateway));
        gw_opts.config.nats_callout_issuer_seed = Some(k.issuer_path());
        broker_opts.nats_credentials = Some(k.path(&Role::KillBroker));
        sched_opts.nats_credentials = Some(k.path(&Role::Scheduler));
        audit_opts.nats_credentials = Some(k.path(&Role::AuditWriter));
        exec_opts.nats_credentials = Some(k.path(&Role::Executor {
            guid: entry.guid,
            channels: entry.channels.clone(),
        }));
    }
    let audit_db = taskwire_audit_writer::db::redact(&audit_opts.database_url());

    // The first Ctrl-C (or SIGTERM, SIGUSR2) stops everything cleanly; a second exits at once.
    let stopping = taskwire_core::service::stop_on_signals(
        "taskwire",
        Some("stopping (running jobs finish first; press Ctrl-C again to exit now)"),
    );
    taskwire_core::memory::trim_regularly();
    let shutdown = CancellationToken::new();
    // The audit writer waits for its database; `up` does not start without it. (Its own stop
    // token: it stops last, after the rest drained.)
    let audit = tokio::select! {
        a = taskwire_audit_writer::AuditWriter::start(audit_opts, CancellationToken::new()) => a?,
        _ = stopping.cancelled() => None,
    };
    let Some(audit) = audit else {
        return Err(CliError::Usage(
            "stopped while waiting for the audit database".into(),
        ));
    };
    let broker = taskwire_kill_broker::KillBroker::start(broker_opts).await?;
    let scheduler = taskwire_scheduler::Scheduler::start(sched_opts).await?;
    let executor = taskwire_executor::Executor::start(exec_opts).await?;
    let guid = executor.guid();
    let gateway = match taskwire_gateway::GatewayServer::start(gw_opts).await {
        Ok(g) => g,
        Err(e) => {
            let _ = executor.drain().await;
            scheduler.stop().await;
            broker.stop().await;
            audit.stop().await;
            return Err(e.into());
        }
    };
    let http = gateway.addr();
    let console = match gateway.console_dir() {
        Some(_) => format!("http://{http}/  (sign in with the admin token below)"),
        None => format!(
            "http://{http}/  (not built: run ops/up, or npm ci && npm run build in services/gateway/console)"
        ),
    };
    let services = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            // No new fires, then the door closes, then running jobs finish.
            scheduler.stop().await;
            gateway.stop().await;
            let drained = executor.drain().await;
            broker.stop().await;
            // Whatever it has not stored yet waits in its durable consumer for the next start.
            audit.stop().await;
            drained
        }
    });

    let private = if child.is_some() {
        " (private nats-server)"
    } else {
        ""
    };
    println!("taskwire is up");
    println!("  console:   {console}");
    println!("  API:       http://{http}/api/v1");
    println!("  NATS:      {}{private}", settings.nats_url);
    println!("  state dir: {}", state_dir.display());
    println!("  instance:  {guid}");
    println!("  catalog:   {}", catalog_path.display());
    println!("  audit db:  {audit_db}");
    println!("  admin token (super user 'admin'): {admin_token}");
    println!();
    println!("Try it (in another terminal):");
    println!("  export TASKWIRE_URL=http://{http} TASKWIRE_TOKEN={admin_token}");
    println!("  taskwire commands");
    println!("  taskwire run progress --param steps=5");
    println!("  taskwire ps --all");
    println!("or keep the login for later: taskwire login --url http://{http}  (paste the token)");
    println!(
        r#"The HTTP API:  curl -s -H "Authorization: Bearer $TASKWIRE_TOKEN" $TASKWIRE_URL/api/v1/commands"#
    );
    println!("Press Ctrl-C to stop.");

    stopping.cancelled().await;
    shutdown.cancel();
    let result = services.await;
    if let Some(mut c) = child {
        c.stop();
    }
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(CliError::Service(e.to_string())),
    }
}

/// A nats-server 2.11+: TASKWIRE_NATS_SERVER, the project's tools dir (from here or from
/// this binary's place), or PATH.
pub(crate) fn find_nats_server() -> Result<PathBuf, CliError> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let mut roots: Vec<PathBuf> = vec![cwd];
    if let Some(d) = exe_dir {
        roots.extend(d.ancestors().map(Path::to_path_buf));
    }
    let root_refs: Vec<&Path> = roots.iter().map(PathBuf::as_path).collect();
    nats_server::find(&root_refs).map_err(CliError::Nats)
}

/// The executors' catalog: `given`, else the configured one, else the demo catalog written
/// into the state dir.
pub(crate) fn catalog(
    config: &Option<PathBuf>,
    given: Option<PathBuf>,
    state_dir: &Path,
) -> Result<PathBuf, CliError> {
    if let Some(c) = given {
        return Ok(absolute(&c));
    }
    if settings_has_catalog(config) {
        let settings = Settings::load(config.as_deref())?;
        return Ok(ExecutorOptions::from_settings(&settings)?.config.catalog);
    }
    let path = state_dir.join("demo-catalog.toml");
    std::fs::write(&path, DEMO_CATALOG).map_err(|source| CliError::StateDir {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

fn settings_has_catalog(config: &Option<PathBuf>) -> bool {
    std::env::var_os("TASKWIRE_EXECUTOR__CATALOG").is_some()
        || config
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| t.parse::<toml::Table>().ok())
            .and_then(|t| t.get("executor")?.get("catalog").cloned())
            .is_some()
}

pub(crate) fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_catalog_is_valid() {
        let cat =
            taskwire_executor::catalog::Catalog::parse(DEMO_CATALOG, &["default".into()]).unwrap();
        let names: Vec<&str> = cat.commands().map(|c| c.name.as_str()).collect();
        for n in ["hello", "progress", "fail", "forever"] {
            assert!(names.contains(&n), "{n} in {names:?}");
        }
    }
}
