//! The shape of a local cluster, the same as docker-compose.yml's: three NATS nodes (JetStream,
//! `sync_interval: always`, routes on loopback), and two of each service, every one its own
//! process with its own NATS key, all on the three nodes' address list.

use super::child::Spec;
use crate::error::CliError;
use std::path::{Path, PathBuf};
use taskwire_core::auth::keys::KeyDir;
use taskwire_core::auth::roles::Role;
use taskwire_core::topology::ExecutorEntry;

/// NATS nodes of a cluster (R3 needs three).
pub const NODES: usize = 3;
/// Replicas of each service.
pub const PAIRS: usize = 2;
/// The registry's expiry in a cluster, at least: longer than the longest leader election
/// (9 s at NATS's defaults) plus a few heartbeats, so no instance leaves the registry because
/// its heartbeats could not be stored while `tw_instances` elected a leader.
pub const INSTANCE_TTL: std::time::Duration = std::time::Duration::from_secs(20);

/// Stop order (lower first): no new fires, the door, the workers, the rest, then NATS.
const STAGE_SCHEDULER: u8 = 0;
const STAGE_GATEWAY: u8 = 1;
const STAGE_EXECUTOR: u8 = 2;
const STAGE_BROKER: u8 = 3;
const STAGE_AUDIT: u8 = 4;
const STAGE_NATS: u8 = 5;

/// The ports of a cluster.
#[derive(Debug, Clone)]
pub struct Ports {
    pub client: [u16; NODES],
    pub route: [u16; NODES],
    pub http: [u16; PAIRS],
}

impl Ports {
    /// `base+1..=base+3` for clients, `base+11..` for routes, `base+21..` for HTTP; or, with
    /// no base, ports the system says are free now.
    pub fn new(base: Option<u16>) -> Result<Self, CliError> {
        let pick = |offset: u16| -> Result<u16, CliError> {
            match base {
                Some(b) => b.checked_add(offset).ok_or_else(|| {
                    CliError::Usage(format!("--base-port {b} leaves no room for 30 ports"))
                }),
                None => free_port(),
            }
        };
        Ok(Self {
            client: [pick(1)?, pick(2)?, pick(3)?],
            route: [pick(11)?, pick(12)?, pick(13)?],
            http: [pick(21)?, pick(22)?],
        })
    }

    /// The address list every service is given: `nats://127.0.0.1:<p>,...`.
    pub fn nats_urls(&self) -> Vec<String> {
        self.client
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect()
    }
}

fn free_port() -> Result<u16, CliError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| CliError::Usage(format!("no free loopback port: {e}")))
}

/// What the processes are made from.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub state_dir: &'a Path,
    pub keys: &'a KeyDir,
    pub executors: &'a [ExecutorEntry],
    pub ports: &'a Ports,
    pub nats_server: &'a Path,
    pub taskwire: &'a Path,
    pub catalog: &'a Path,
    pub database_url: &'a str,
    pub admin_token: &'a str,
    /// The configuration file given to `taskwire up`, passed on to every service.
    pub config: Option<&'a Path>,
    /// The registry's expiry every service is given (the admin step made the bucket so).
    pub instance_ttl: std::time::Duration,
}

/// Writes node `i`'s nats-server config (`state/nats-<i>/nats.conf`); its path.
fn node_config(inp: &Inputs, i: usize) -> Result<PathBuf, CliError> {
    let dir = inp.state_dir.join(format!("nats-{}", i + 1));
    std::fs::create_dir_all(&dir).map_err(|source| CliError::StateDir {
        path: dir.clone(),
        source,
    })?;
    let routes: Vec<String> = inp
        .ports
        .route
        .iter()
        .map(|p| format!("    nats-route://127.0.0.1:{p}"))
        .collect();
    // nats-server resolves an include relative to the including file, and only so.
    let auth = Path::new("..")
        .join(inp.keys.dir().file_name().unwrap_or_default())
        .join(taskwire_core::auth::CONFIG_FILE);
    let text = format!(
        "# nats-{n} of the local cluster (`taskwire up --cluster`), as ops/nats/nats-{n}.conf in\n\
         # docker-compose.yml, on loopback. Made at every start.\n\
         server_name: nats-{n}\n\
         listen: 127.0.0.1:{client}\n\
         jetstream {{\n  store_dir: \"{store}\"\n  sync_interval: always\n}}\n\
         cluster {{\n  name: taskwire\n  listen: 127.0.0.1:{route}\n  routes: [\n{routes}\n  ]\n}}\n\
         include \"{auth}\"\n",
        n = i + 1,
        client = inp.ports.client[i],
        route = inp.ports.route[i],
        store = dir.join("jetstream").display(),
        routes = routes.join("\n"),
        auth = auth.display(),
    );
    let path = dir.join("nats.conf");
    std::fs::write(&path, text).map_err(|source| CliError::StateDir {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// The three NATS nodes.
pub fn nats_nodes(inp: &Inputs) -> Result<Vec<Spec>, CliError> {
    (0..NODES)
        .map(|i| {
            let conf = node_config(inp, i)?;
            Ok(Spec {
                name: format!("nats-{}", i + 1),
                program: inp.nats_server.to_path_buf(),
                args: vec!["-c".into(), conf.display().to_string()],
                env: Vec::new(),
                log: logs(inp).join(format!("nats-{}.log", i + 1)),
                stage: STAGE_NATS,
                address: Some(format!("nats://127.0.0.1:{}", inp.ports.client[i])),
            })
        })
        .collect()
}

/// Where every process's log goes.
pub fn logs(inp: &Inputs) -> PathBuf {
    inp.state_dir.join("logs")
}

/// Two of each service, in the order they start.
pub fn services(inp: &Inputs) -> Result<Vec<Spec>, CliError> {
    let mut out = Vec::new();
    let common = |role: &Role| -> Vec<(String, String)> {
        let mut env = vec![
            ("TASKWIRE_NATS_URL".into(), inp.ports.nats_urls().join(",")),
            ("TASKWIRE_TOPOLOGY__REPLICAS".into(), NODES.to_string()),
            (
                "TASKWIRE_TOPOLOGY__INSTANCE_TTL".into(),
                taskwire_core::units::format_duration(inp.instance_ttl),
            ),
            (
                "TASKWIRE_NATS_CREDENTIALS".into(),
                inp.keys.path(role).display().to_string(),
            ),
        ];
        if let Some(c) = inp.config {
            env.push(("TASKWIRE_CONFIG".into(), c.display().to_string()));
        }
        env
    };
    let spec = |name: String, service: &str, stage, env, address| Spec {
        log: logs(inp).join(format!("{name}.log")),
        name,
        program: inp.taskwire.to_path_buf(),
        args: vec!["serve".into(), service.into()],
        env,
        stage,
        address,
    };
    for i in 1..=PAIRS {
        let mut env = common(&Role::AuditWriter);
        env.push((
            "TASKWIRE_AUDIT__DATABASE_URL".into(),
            inp.database_url.to_string(),
        ));
        out.push(spec(
            format!("audit-writer-{i}"),
            "audit-writer",
            STAGE_AUDIT,
            env,
            None,
        ));
    }
    for i in 1..=PAIRS {
        out.push(spec(
            format!("kill-broker-{i}"),
            "kill-broker",
            STAGE_BROKER,
            common(&Role::KillBroker),
            None,
        ));
    }
    for i in 1..=PAIRS {
        out.push(spec(
            format!("scheduler-{i}"),
            "scheduler",
            STAGE_SCHEDULER,
            common(&Role::Scheduler),
            None,
        ));
    }
    let trusted = format!("[\"{}\"]", inp.keys.signing_public()?);
    for (i, e) in inp.executors.iter().take(PAIRS).enumerate() {
        let role = Role::Executor {
            guid: e.guid,
            channels: e.channels.clone(),
        };
        let dir = inp.state_dir.join(format!("executor-{}", i + 1));
        let mut env = common(&role);
        env.extend([
            ("TASKWIRE_STATE_DIR".into(), dir.display().to_string()),
            ("TASKWIRE_EXECUTOR__GUID".into(), e.guid.to_string()),
            (
                "TASKWIRE_EXECUTOR__CATALOG".into(),
                inp.catalog.display().to_string(),
            ),
            (
                "TASKWIRE_EXECUTOR__DISPATCH_TRUSTED_KEYS".into(),
                trusted.clone(),
            ),
        ]);
        out.push(spec(
            format!("executor-{}", i + 1),
            "executor",
            STAGE_EXECUTOR,
            env,
            None,
        ));
    }
    for (i, port) in inp.ports.http.iter().enumerate() {
        let mut env = common(&Role::Gateway);
        env.extend([
            (
                "TASKWIRE_GATEWAY__LISTEN".into(),
                format!("127.0.0.1:{port}"),
            ),
            ("TASKWIRE_ADMIN_TOKEN".into(), inp.admin_token.to_string()),
            (
                "TASKWIRE_GATEWAY__DISPATCH_SIGNING_KEY".into(),
                inp.keys.signing_path().display().to_string(),
            ),
            (
                "TASKWIRE_GATEWAY__NATS_CALLOUT_ISSUER_SEED".into(),
                inp.keys.issuer_path().display().to_string(),
            ),
        ]);
        out.push(spec(
            format!("gateway-{}", i + 1),
            "gateway",
            STAGE_GATEWAY,
            env,
            Some(format!("http://127.0.0.1:{port}")),
        ));
    }
    Ok(out)
}
