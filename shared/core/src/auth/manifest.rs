//! `executors.toml` beside the keys: the executors a deployment's NATS knows (GUID and the
//! channels each may serve). Public information only; `taskwire nats init` keeps it, and
//! `taskwire nats setup` makes the durable consumers it names.

use crate::error::{Error, Result};
use crate::topology::ExecutorEntry;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The file name in the key directory.
pub const FILE: &str = "executors.toml";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default)]
    executor: Vec<ExecutorEntry>,
}

fn err(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Keys {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// The executors listed in `dir` (none when the file does not exist yet).
pub fn load(dir: &Path) -> Result<Vec<ExecutorEntry>> {
    let path = dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str::<Manifest>(&text)
            .map(|m| m.executor)
            .map_err(|e| err(&path, format!("is not a valid executor list: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(err(&path, e)),
    }
}

/// Writes `executors` to `dir`, sorted by GUID.
pub fn save(dir: &Path, executors: &[ExecutorEntry]) -> Result<()> {
    let path = dir.join(FILE);
    let mut list = executors.to_vec();
    list.sort_by_key(|e| e.guid);
    let text = toml::to_string(&Manifest { executor: list }).map_err(|e| err(&path, e))?;
    let header = "# The executors this NATS knows: each one's GUID (its key is executor-<guid>.nk)\n# and the channels it may serve. Made by `taskwire nats init`.\n\n";
    std::fs::write(&path, format!("{header}{text}")).map_err(|e| err(&path, e))
}

/// `known` with each of `added` put in (an executor named again gets its new channels).
pub fn merge(known: Vec<ExecutorEntry>, added: Vec<ExecutorEntry>) -> Vec<ExecutorEntry> {
    let mut out: Vec<ExecutorEntry> = known
        .into_iter()
        .filter(|k| !added.iter().any(|a| a.guid == k.guid))
        .collect();
    out.extend(added);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_reads_back_and_an_executor_named_again_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(load(tmp.path()).unwrap().is_empty());
        let a = ExecutorEntry {
            guid: uuid::Uuid::from_bytes([1; 16]),
            channels: vec!["default".into()],
        };
        let b = ExecutorEntry {
            guid: uuid::Uuid::from_bytes([2; 16]),
            channels: vec!["gpu".into()],
        };
        save(tmp.path(), &[b.clone(), a.clone()]).unwrap();
        assert_eq!(load(tmp.path()).unwrap(), vec![a.clone(), b.clone()]);
        let a2 = ExecutorEntry {
            channels: vec!["default".into(), "slow".into()],
            ..a
        };
        let merged = merge(load(tmp.path()).unwrap(), vec![a2.clone()]);
        assert_eq!(merged, vec![b, a2]);
    }
}
