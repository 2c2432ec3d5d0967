//! The instance registry, kept in memory from a watch on `tw_instances` (a [`KvCopy`]), so a
//! gateway's submit and a kill broker's reaper round do not read the whole bucket. Entries expire in the bucket without a notice, so an
//! entry not refreshed within the registry's TTL is left out here too. While the copy is not
//! current (the watch is starting, catching up, or starting again after a failure) readers
//! read the bucket instead.

use crate::kv_copy::KvCopy;
use crate::wire::InstanceInfo;
use futures::StreamExt;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The cached registry.
#[derive(Debug)]
pub struct Registry {
    /// Each instance's latest heartbeat, and when this gateway saw it.
    copy: KvCopy<(InstanceInfo, Instant)>,
    ttl: Duration,
}

impl Registry {
    pub fn new(ttl: Duration) -> Self {
        Self {
            copy: KvCopy::default(),
            ttl,
        }
    }

    /// The live instances by GUID order, or `None` while the copy is not current.
    pub fn snapshot(&self) -> Option<Vec<InstanceInfo>> {
        let mut list: Vec<InstanceInfo> = self
            .copy
            .snapshot()?
            .into_iter()
            .filter(|(_, (_, seen), _)| seen.elapsed() <= self.ttl)
            .map(|(_, (info, _), _)| info)
            .collect();
        list.sort_by_key(|i| i.guid);
        Some(list)
    }

    /// How long the copy has not been current (its watch lost and starting again), if it is
    /// not; `None` while it is current, and before its first watch caught up.
    pub fn stale_for(&self) -> Option<Duration> {
        self.copy.lost_for()
    }

    /// Every live instance: from the copy, or the bucket while the copy is not current.
    pub async fn list(
        &self,
        kv: &async_nats::jetstream::kv::Store,
    ) -> Result<Vec<InstanceInfo>, String> {
        if let Some(list) = self.snapshot() {
            return Ok(list);
        }
        let mut keys = kv.keys().await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        // A read that fails is an error, never a shorter list: a submit then waits out the
        // outage instead of being told no instance serves its command.
        while let Some(k) = keys.next().await {
            let k = k.map_err(|e| e.to_string())?;
            if let Some(v) = kv.get(&k).await.map_err(|e| e.to_string())?
                && let Ok(info) = serde_json::from_slice::<InstanceInfo>(&v)
            {
                out.push(info);
            }
        }
        out.sort_by_key(|i| i.guid);
        Ok(out)
    }

    /// Follows the bucket until `stop`, starting the watch again whenever it fails.
    pub async fn follow(&self, kv: async_nats::jetstream::kv::Store, stop: CancellationToken) {
        let keep = |_: &str, v: &[u8]| {
            serde_json::from_slice::<InstanceInfo>(v)
                .ok()
                .map(|i| (i, Instant::now()))
        };
        self.copy.follow(&kv, ">", keep, stop).await;
    }
}
