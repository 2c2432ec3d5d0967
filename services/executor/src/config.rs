//! The `[executor]` section of the configuration.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use taskwire_core::sign::DispatchVerifier;

/// How job process trees are contained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupMode {
    /// Use a cgroup v2 per job when the executor can create one, else process groups.
    #[default]
    Auto,
    /// Always process groups.
    Off,
}

/// Whether output chunks are published compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputCompression {
    #[default]
    Lz4,
    Off,
}

/// Settings of one executor instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// The local command catalog (TOML). Relative paths are relative to the working directory.
    pub catalog: PathBuf,
    /// The instance GUID to take on first start (the one `taskwire nats init` bound this
    /// executor's NATS key to). Unset: a new one is drawn. Never replaces a GUID the state
    /// dir already holds.
    pub guid: Option<uuid::Uuid>,
    /// Channels this instance pulls jobs from.
    pub channels: Vec<String>,
    /// Free-form labels advertised in the registry (used for label targeting).
    pub labels: BTreeMap<String, String>,
    /// Jobs running at once on this instance.
    pub slots: u32,
    /// Optional lower limits for single channels.
    pub channel_slots: BTreeMap<String, u32>,
    /// How long a drain waits for running jobs before stopping them.
    #[serde(with = "taskwire_core::units::duration_str")]
    pub drain_timeout: Duration,
    /// Registry heartbeat period (the registry entry expires after `topology.instance_ttl`).
    #[serde(with = "taskwire_core::units::duration_str")]
    pub heartbeat_interval: Duration,
    /// Write the executor's pid here while it runs.
    pub pidfile: Option<PathBuf>,
    pub cgroup: CgroupMode,
    /// Hostname to advertise instead of the system's.
    pub hostname: Option<String>,
    /// How long small writes are collected into one chunk.
    #[serde(with = "taskwire_core::units::duration_str")]
    pub coalesce: Duration,
    /// Output chunks published but not yet acknowledged, per job. When full, the job's pipe
    /// is no longer read and the process waits on its writes.
    pub ack_window: usize,
    /// `lz4` (default): a chunk that LZ4 makes at least an eighth smaller is published
    /// compressed (`Tw-Encoding: lz4`); `off`: every chunk as written.
    pub output_compression: OutputCompression,
    /// Public nkeys (`U...`) of the gateways whose signed dispatch messages run here (the
    /// public half of each gateway's `dispatch_signing_key`). A message that is unsigned, or
    /// signed by another key, or whose signature does not match it, never runs.
    pub dispatch_trusted_keys: Vec<String>,
    /// A file of more such public keys, one per line (`#` starts a comment): the
    /// `dispatch-signing.pub` that `taskwire nats init` writes.
    pub dispatch_trusted_keys_file: Option<PathBuf>,
    /// Development only: also run dispatch messages without a trusted signature (a signature
    /// of a trusted key that does not match is still refused). Any NATS identity that may
    /// publish on a dispatch subject can then run any catalog command here.
    pub allow_unsigned_dispatch: bool,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            catalog: PathBuf::from("catalog.toml"),
            guid: None,
            channels: vec!["default".into()],
            labels: BTreeMap::new(),
            slots: 5,
            channel_slots: BTreeMap::new(),
            drain_timeout: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(2),
            pidfile: None,
            cgroup: CgroupMode::Auto,
            hostname: None,
            coalesce: Duration::from_millis(5),
            ack_window: 64,
            output_compression: OutputCompression::Lz4,
            dispatch_trusted_keys_file: None,
            dispatch_trusted_keys: Vec::new(),
            allow_unsigned_dispatch: false,
        }
    }
}

impl ExecutorConfig {
    /// Checks what serde cannot: names are subject tokens, limits are positive.
    pub fn validate(&self) -> Result<(), String> {
        if self.slots == 0 {
            return Err("slots must be at least 1".into());
        }
        if self.channels.is_empty() {
            return Err("channels must name at least one channel (e.g. [\"default\"])".into());
        }
        for c in &self.channels {
            taskwire_core::names::check_token("channel", c).map_err(|e| e.to_string())?;
        }
        for (c, n) in &self.channel_slots {
            if !self.channels.contains(c) {
                return Err(format!(
                    "channel_slots names channel '{c}', which is not in channels"
                ));
            }
            if *n == 0 {
                return Err(format!("channel_slots.{c} must be at least 1"));
            }
        }
        for k in self.labels.keys() {
            taskwire_core::names::check_token("label key", k).map_err(|e| e.to_string())?;
        }
        if self.ack_window == 0 {
            return Err("ack_window must be at least 1".into());
        }
        self.dispatch_verifier()?;
        Ok(())
    }

    /// The keys dispatch messages must be signed with. Deny by default: no trusted key is an
    /// error unless unsigned dispatch is allowed explicitly.
    pub fn dispatch_verifier(&self) -> Result<DispatchVerifier, String> {
        let mut keys = self.dispatch_trusted_keys.clone();
        if let Some(path) = &self.dispatch_trusted_keys_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "cannot read dispatch_trusted_keys_file {}: {e}",
                    path.display()
                )
            })?;
            keys.extend(
                text.lines()
                    .map(|l| l.split('#').next().unwrap_or("").trim())
                    .filter(|l| !l.is_empty())
                    .map(str::to_string),
            );
        }
        let v = DispatchVerifier::new(&keys).map_err(|e| e.to_string())?;
        if v.is_empty() && !self.allow_unsigned_dispatch {
            return Err("no gateway is trusted to dispatch jobs here: set [executor] dispatch_trusted_keys (TASKWIRE_EXECUTOR__DISPATCH_TRUSTED_KEYS='[\"U...\"]') to the public key of each gateway's dispatch_signing_key, or (development only) allow_unsigned_dispatch = true".into());
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_keys_come_from_the_list_and_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        use taskwire_core::sign::DispatchSigner;
        let a = DispatchSigner::generate();
        let b = DispatchSigner::generate();
        let file = tmp.path().join("dispatch-signing.pub");
        std::fs::write(&file, format!("# comment\n{}\n\n", b.public_key())).unwrap();
        let cfg = ExecutorConfig {
            dispatch_trusted_keys: vec![a.public_key()],
            dispatch_trusted_keys_file: Some(file),
            ..ExecutorConfig::default()
        };
        let v = cfg.dispatch_verifier().unwrap();
        for signer in [&a, &b] {
            let mut h = async_nats::HeaderMap::new();
            signer.sign_into(&mut h, b"spec").unwrap();
            assert_eq!(v.verify(Some(&h), b"spec").unwrap(), signer.public_key());
        }
        let missing = ExecutorConfig {
            dispatch_trusted_keys_file: Some(tmp.path().join("nope")),
            ..ExecutorConfig::default()
        };
        let e = missing.dispatch_verifier().unwrap_err();
        assert!(
            e.contains("dispatch_trusted_keys_file") && e.contains("nope"),
            "{e}"
        );
    }
}
