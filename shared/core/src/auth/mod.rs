//! NATS as a security boundary: who may connect, and what each identity may do on the bus.
//!
//! - [`roles`]: the roles (admin, gateway, audit writer, kill broker, scheduler, executor) and
//!   the exact publish/subscribe allow-lists of each: the one source of the server config and
//!   of the permission table in `docs/protocol.md`.
//! - [`keys`]: nkey generation and the private files (mode 0600) that hold them.
//! - [`server_conf`]: the nats-server `accounts`/`authorization` block for a key set.
//! - [`direct`]: the short-lived users the gateway's auth callout gives direct NATS clients.

pub mod direct;
pub mod keys;
pub mod manifest;
pub mod roles;
pub mod server_conf;

/// The one NATS account every taskwire identity lives in (services, executors and the users
/// the auth callout makes for direct clients).
pub const ACCOUNT: &str = "TASKWIRE";

use crate::error::{Error, Result};
use keys::KeyDir;
use roles::Role;
use std::path::{Path, PathBuf};

/// The config file name `taskwire nats init` and `taskwire up` write beside the keys.
pub const CONFIG_FILE: &str = "auth.conf";

/// Makes (or keeps) the keys of the services and `executors` in `dir` and writes the server
/// config that lists them (`dir/auth.conf`, with the auth callout when `callout`). Returns
/// the config's path. A second run keeps every existing key.
pub fn provision(
    dir: &Path,
    ns: &crate::Namespace,
    executors: &[crate::topology::ExecutorEntry],
    callout: bool,
) -> Result<PathBuf> {
    let kd = KeyDir::open(dir)?;
    let mut roles = vec![
        Role::Admin,
        Role::Gateway,
        Role::AuditWriter,
        Role::KillBroker,
        Role::Scheduler,
    ];
    roles.extend(executors.iter().map(|e| Role::Executor {
        guid: e.guid,
        channels: e.channels.clone(),
    }));
    kd.ensure(&roles)?;
    let text = server_conf::render(&kd, &roles, ns, callout)?;
    let path = dir.join(CONFIG_FILE);
    std::fs::write(&path, text).map_err(|e| Error::Keys {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(path)
}

/// The admin step, as `admin`: every stream and bucket (with the limits of `topology`) and the
/// durable consumers of the audit writers and of `executors`. Idempotent: streams and buckets
/// are updated to the current definition, consumers that exist are kept as they are.
pub async fn setup(
    admin: &crate::nats::Endpoint,
    ns: &crate::Namespace,
    topology: &crate::topology::TopologyConfig,
    executors: &[crate::topology::ExecutorEntry],
) -> Result<()> {
    let client = crate::nats::connect_once_to(admin, "taskwire-setup").await?;
    let js = crate::nats::jetstream(client.clone());
    let topo = crate::topology::ensure(&js, ns, topology).await?;
    crate::topology::ensure_consumers(&topo, ns, executors).await?;
    let _ = client.drain().await;
    Ok(())
}
