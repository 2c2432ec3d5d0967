//! The instance registry, kept in memory from a watch on `tw_instances`, so a submit does not
//! read the whole bucket. Entries expire in the bucket without a notice, so an entry not
//! refreshed within the registry's TTL is dropped here too. Until the watch has caught up (or
//! after it failed) readers fall back to reading the bucket.

use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use taskwire_core::wire::InstanceInfo;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The cached registry.
#[derive(Debug)]
pub struct Registry {
    entries: RwLock<BTreeMap<Uuid, (InstanceInfo, Instant)>>,
    live: AtomicBool,
    ttl: Duration,
}

impl Registry {
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: RwLock::new(BTreeMap::new()),
            live: AtomicBool::new(false),
            ttl,
        }
    }

    /// The live instances by GUID order, or `None` while the cache is not current.
    pub fn snapshot(&self) -> Option<Vec<InstanceInfo>> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let m = self.entries.read().ok()?;
        Some(
            m.values()
                .filter(|(_, seen)| seen.elapsed() <= self.ttl)
                .map(|(i, _)| i.clone())
                .collect(),
        )
    }

    /// Follows the bucket until `stop`, re-opening the watch if it fails.
    pub async fn follow(&self, kv: async_nats::jetstream::kv::Store, stop: CancellationToken) {
        loop {
            if let Err(e) = self.watch_once(&kv, &stop).await {
                tracing::warn!(error = %e, "instance registry watch failed; reading the bucket meanwhile");
            }
            self.live.store(false, Ordering::Release);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn watch_once(
        &self,
        kv: &async_nats::jetstream::kv::Store,
        stop: &CancellationToken,
    ) -> Result<(), String> {
        let mut watch = kv
            .watch_with_history(">")
            .await
            .map_err(|e| e.to_string())?;
        if let Ok(mut m) = self.entries.write() {
            m.clear();
        }
        // An empty bucket delivers nothing: the cache is current at once.
        let pending = kv
            .stream
            .clone()
            .info()
            .await
            .map(|i| i.state.messages)
            .unwrap_or(1);
        if pending == 0 {
            self.live.store(true, Ordering::Release);
        }
        loop {
            let next = tokio::select! {
                n = watch.next() => n,
                _ = stop.cancelled() => return Ok(()),
            };
            let Some(entry) = next else {
                return Err("the watch ended".into());
            };
            let e = entry.map_err(|e| e.to_string())?;
            if let Ok(guid) = Uuid::parse_str(&e.key)
                && let Ok(mut m) = self.entries.write()
            {
                match e.operation {
                    async_nats::jetstream::kv::Operation::Put => {
                        if let Ok(info) = serde_json::from_slice::<InstanceInfo>(&e.value) {
                            m.insert(guid, (info, Instant::now()));
                        }
                    }
                    _ => {
                        m.remove(&guid);
                    }
                }
            }
            if e.delta == 0 {
                self.live.store(true, Ordering::Release);
            }
        }
    }
}
