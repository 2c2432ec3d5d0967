//! `<state dir>/cluster.json`: what a local cluster runs, rewritten whenever a process starts
//! or exits: its addresses, the admin token, and each process's pid, start count and log.
//! Scripts and the cluster tests read it (a private file: it holds the admin token).

use super::child::Status;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The file's name in the state dir.
pub const FILE: &str = "cluster.json";

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// Every node's client URL (the list the services are given).
    pub nats_urls: Vec<String>,
    /// Every gateway's base URL.
    pub http: Vec<String>,
    pub admin_token: String,
    /// The deployment's NATS keys (`admin.nk` among them).
    pub key_dir: PathBuf,
    pub database_url: String,
    pub executors: Vec<uuid::Uuid>,
    /// True once every process was started after the admin step.
    pub ready: bool,
    pub processes: Vec<serde_json::Value>,
}

/// What the supervisor calls on every change: writes the manifest with `statuses`.
pub fn writer(path: PathBuf, base: Manifest) -> impl Fn(&[Status]) + Send + 'static {
    move |statuses| {
        let mut m = base.clone();
        m.ready = read(&path).is_some_and(|old| old.ready);
        m.processes = statuses
            .iter()
            .filter_map(|s| serde_json::to_value(s).ok())
            .collect();
        write(&path, &m);
    }
}

/// Marks the cluster ready.
pub fn mark_ready(path: &Path) {
    if let Some(mut m) = read(path) {
        m.ready = true;
        write(path, &m);
    }
}

fn read(path: &Path) -> Option<Manifest> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Replaces the file at once (a reader sees the old one or the new one, never half).
fn write(path: &Path, m: &Manifest) {
    let tmp = path.with_extension("json.tmp");
    let done = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            let body = serde_json::to_vec_pretty(m).map_err(std::io::Error::other)?;
            f.write_all(&body)
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = done {
        println!("cluster: cannot write {}: {e}", path.display());
    }
}
