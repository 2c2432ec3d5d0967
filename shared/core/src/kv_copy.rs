//! A service's in-memory copy of some keys of a KV bucket, with their revisions, kept current
//! by a watch (every current value first, then each change). Readers decide from the copy and
//! write by compare-and-set on its revision, so a copy that is behind only makes a write fail;
//! they then drop the entry and read it anew. While the watch is down (it failed, and is being
//! started again with backoff), or has not yet delivered what the bucket held when it started,
//! the copy answers nothing and readers go to NATS: as correct, only slower.
//!
//! Used for the kill broker's unfinished jobs, the scheduler's schedules and their progress,
//! and the gateway's instance registry.

use crate::retry::Backoff;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::kv;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Values by key, with the revision each was written at.
#[derive(Debug)]
pub struct KvCopy<V> {
    entries: Mutex<HashMap<String, (V, u64)>>,
    /// True while the watch runs (the copy catches up with every change).
    live: AtomicBool,
}

impl<V> Default for KvCopy<V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            live: AtomicBool::new(false),
        }
    }
}

impl<V: Clone> KvCopy<V> {
    /// The copy of `key`, while the watch runs and has one.
    pub fn get(&self, key: &str) -> Option<(V, u64)> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        self.entries.lock().ok()?.get(key).cloned()
    }

    /// Every entry, while the watch runs; `None` when the copy cannot be trusted.
    pub fn snapshot(&self) -> Option<Vec<(String, V, u64)>> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let m = self.entries.lock().ok()?;
        Some(
            m.iter()
                .map(|(k, (v, r))| (k.clone(), v.clone(), *r))
                .collect(),
        )
    }

    /// Keeps `v` at `revision` unless a newer revision is known already (revision 0: the key
    /// has no value yet; the watch reports its first write).
    pub fn remember(&self, key: String, v: V, revision: u64) {
        if let Ok(mut m) = self.entries.lock() {
            match m.get(&key) {
                Some((_, known)) if *known >= revision => {}
                _ => {
                    m.insert(key, (v, revision));
                }
            }
        }
    }

    /// Drops the copy of `key`: the next read goes to NATS.
    pub fn forget(&self, key: &str) {
        if let Ok(mut m) = self.entries.lock() {
            m.remove(key);
        }
    }

    fn down(&self) {
        self.live.store(false, Ordering::Release);
        if let Ok(mut m) = self.entries.lock() {
            m.clear();
        }
    }

    /// True while the copy is current: the watch runs and has delivered every value that
    /// existed when it started.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Follows the keys of `store` matching `pattern` until `stop`, starting the watch again
    /// with backoff whenever it fails. The copy answers only once the watch has caught up
    /// with every value that existed when it started, so a reader never takes a copy that is
    /// still filling for the whole. `keep` turns a value into what the copy holds, or `None`
    /// to hold nothing for that key (a deleted key holds nothing either).
    pub async fn follow(
        &self,
        store: &kv::Store,
        pattern: &str,
        keep: impl Fn(&str, &[u8]) -> Option<V>,
        stop: CancellationToken,
    ) {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        loop {
            match watch(store, pattern).await {
                Ok((pending, messages)) => {
                    if pending == 0 {
                        self.live.store(true, Ordering::Release);
                    }
                    match self.apply(store, messages, pending, &keep, &stop).await {
                        Applied::Stopped => return,
                        // A watch that worked for a while starts again at once; one that
                        // fails as it starts backs off.
                        Applied::Failed { delivered } => {
                            if delivered {
                                backoff.reset();
                            }
                        }
                    }
                    self.down();
                }
                Err(e) => {
                    tracing::warn!(bucket = %store.name, error = %e, "cannot watch the bucket; reading it directly meanwhile");
                }
            }
            if !backoff.wait_or_stop(&stop).await {
                return;
            }
        }
    }

    /// Applies one watch until it fails or `stop`. `initial`: how many values it delivers
    /// before it is current (each key's latest when it started); the copy answers from then.
    async fn apply(
        &self,
        store: &kv::Store,
        mut messages: pull::Ordered,
        mut initial: u64,
        keep: &impl Fn(&str, &[u8]) -> Option<V>,
        stop: &CancellationToken,
    ) -> Applied {
        let mut delivered = false;
        loop {
            let next = tokio::select! {
                m = messages.next() => m,
                _ = stop.cancelled() => return Applied::Stopped,
            };
            let m = match next {
                Some(Ok(m)) => m,
                Some(Err(err)) => {
                    tracing::warn!(bucket = %store.name, error = %err, "bucket watch failed; starting it again");
                    return Applied::Failed { delivered };
                }
                None => {
                    tracing::warn!(bucket = %store.name, "bucket watch ended; starting it again");
                    return Applied::Failed { delivered };
                }
            };
            delivered = true;
            initial = initial.saturating_sub(1);
            let Ok(info) = m.info() else { continue };
            let (revision, pending) = (info.stream_sequence, info.pending);
            let Some(key) = m.subject.as_str().strip_prefix(&store.prefix) else {
                continue;
            };
            let held = if removed(&m.message) {
                None
            } else {
                keep(key, &m.payload)
            };
            match held {
                Some(v) => self.remember(key.to_string(), v, revision),
                None => self.forget(key),
            }
            // Current once every value it started with is in (new writes may follow).
            if (initial == 0 || pending == 0) && !self.is_live() {
                self.live.store(true, Ordering::Release);
            }
        }
    }
}

/// How one watch ended.
enum Applied {
    /// Asked to stop.
    Stopped,
    /// It failed or ended; `delivered`: after it had delivered something.
    Failed { delivered: bool },
}

/// Starts a watch of the keys matching `pattern`: the latest value of each, then every
/// change. Returns how many values it will deliver before it is current, and the messages.
/// (A consumer of our own rather than `kv::Store::watch_with_history`, because that one does
/// not say when the bucket held nothing to deliver.)
async fn watch(store: &kv::Store, pattern: &str) -> Result<(u64, pull::Ordered), String> {
    let consumer = store
        .stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: format!("{}{pattern}", store.prefix),
            deliver_policy: DeliverPolicy::LastPerSubject,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let pending = consumer.cached_info().num_pending;
    let messages = consumer.messages().await.map_err(|e| e.to_string())?;
    Ok((pending, messages))
}

/// Whether a bucket message removes its key (a delete, a purge, or a marker the server left
/// when the key expired) rather than putting a value.
fn removed(m: &async_nats::Message) -> bool {
    let Some(h) = m.headers.as_ref() else {
        return false;
    };
    match h.get("KV-Operation").map(|v| v.as_str()) {
        Some("DEL") | Some("PURGE") => true,
        Some(_) => false,
        None => h.get("Nats-Marker-Reason").is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_keeps_the_newest_revision_and_answers_only_while_live() {
        let c: KvCopy<&str> = KvCopy::default();
        c.remember("a".into(), "one", 3);
        assert_eq!(c.get("a"), None, "not live yet");
        c.live.store(true, Ordering::Release);
        assert_eq!(c.get("a"), Some(("one", 3)));
        c.remember("a".into(), "older", 2);
        assert_eq!(c.get("a"), Some(("one", 3)));
        c.remember("a".into(), "two", 5);
        assert_eq!(c.get("a"), Some(("two", 5)));
        c.remember("b".into(), "none yet", 0);
        c.remember("b".into(), "first", 7);
        assert_eq!(c.get("b"), Some(("first", 7)));
        c.forget("a");
        assert_eq!(c.get("a"), None);
        assert_eq!(c.snapshot().map(|s| s.len()), Some(1));
        c.down();
        assert_eq!(c.snapshot(), None);
        assert_eq!(c.get("b"), None);
    }
}
