//! The registry heartbeat: every few seconds the instance writes what it is, what it serves and
//! what it runs to its key in `tw_instances`. The bucket's entries expire, so an instance that
//! stops beating disappears; a clean shutdown deletes its key at once.

use crate::shared::Shared;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use taskwire_core::wire::{InstanceInfo, InstanceStatus, RunningJob};
use tokio_util::sync::CancellationToken;

/// Beats until `stop`, beating at once when `draining` starts, then removes the entry.
pub async fn heartbeat_loop(
    shared: Arc<Shared>,
    draining: CancellationToken,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(shared.cfg.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut announced_drain = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = draining.cancelled(), if !announced_drain => { announced_drain = true; }
            _ = stop.cancelled() => break,
        }
        beat(&shared).await;
    }
    if let Err(e) = shared
        .topology
        .instances
        .delete(shared.guid.to_string())
        .await
    {
        tracing::warn!(error = %e, "could not remove the registry entry; it expires by itself");
    }
}

/// Writes one heartbeat.
pub async fn beat(shared: &Shared) {
    let info = snapshot(shared);
    let body = match serde_json::to_vec(&info) {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode heartbeat");
            return;
        }
    };
    if let Err(e) = shared
        .topology
        .instances
        .put(shared.guid.to_string(), body)
        .await
    {
        tracing::warn!(error = %e, "heartbeat not written");
    }
}

/// What this instance is right now.
pub fn snapshot(shared: &Shared) -> InstanceInfo {
    let (slots, channel_slots) = shared.slots.usage();
    let jobs = shared
        .running
        .lock()
        .map(|m| {
            m.iter()
                .map(|(id, r)| RunningJob {
                    job_id: *id,
                    command: r.command.clone(),
                    pid: r.pid.as_raw() as u32,
                    rss_bytes: crate::tree::rss_bytes(&r.pids()),
                    started_at: r.started_at,
                })
                .collect()
        })
        .unwrap_or_default();
    InstanceInfo {
        guid: shared.guid,
        hostname: shared.hostname.clone(),
        labels: shared.cfg.labels.clone(),
        channels: shared.cfg.channels.clone(),
        slots,
        channel_slots,
        jobs,
        executor_rss_bytes: crate::tree::rss_bytes(&[nix::unistd::getpid()]),
        version: taskwire_core::VERSION.to_string(),
        status: if shared.draining.load(Ordering::SeqCst) {
            InstanceStatus::Draining
        } else {
            InstanceStatus::Serving
        },
        tree: shared.tree_mode(),
        catalog: shared.catalog.infos(),
        started_at: shared.started_at,
        heartbeat_at: chrono::Utc::now(),
    }
}
