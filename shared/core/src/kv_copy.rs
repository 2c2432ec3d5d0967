//! A service's in-memory copy of some keys of a KV bucket, with their revisions, kept current
//! by a watch (every current value first, then each change). Readers decide from the copy and
//! write by compare-and-set on its revision, so a copy that is behind only makes a write fail;
//! they then drop the entry and read it anew. While the watch is down (it failed, and is being
//! started again with backoff) the copy answers nothing and readers go to NATS: as correct,
//! only slower.

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

    /// Follows the keys of `store` matching `pattern` until `stop`. `keep` turns a value into
    /// what the copy holds, or `None` to hold nothing for that key (a deleted key holds
    /// nothing either).
    pub async fn follow(
        &self,
        store: &kv::Store,
        pattern: &str,
        keep: impl Fn(&str, &[u8]) -> Option<V>,
        stop: CancellationToken,
    ) {
        let mut backoff = Duration::from_secs(1);
        loop {
            match store.watch_with_history(pattern).await {
                Ok(watch) => {
                    backoff = Duration::from_secs(1);
                    self.live.store(true, Ordering::Release);
                    if !self.apply(watch, &keep, &stop).await {
                        return;
                    }
                    self.down();
                }
                Err(e) => {
                    tracing::warn!(bucket = %store.name, error = %e, "cannot watch the bucket; reading it directly meanwhile");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.cancelled() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// Applies one watch; `false` when stopped, `true` when the watch failed or ended.
    async fn apply(
        &self,
        mut watch: kv::Watch,
        keep: &impl Fn(&str, &[u8]) -> Option<V>,
        stop: &CancellationToken,
    ) -> bool {
        loop {
            let entry = tokio::select! {
                e = watch.next() => e,
                _ = stop.cancelled() => return false,
            };
            let e = match entry {
                Some(Ok(e)) => e,
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "bucket watch failed; starting it again");
                    return true;
                }
                None => {
                    tracing::warn!("bucket watch ended; starting it again");
                    return true;
                }
            };
            let held = match e.operation {
                kv::Operation::Put => keep(&e.key, &e.value),
                _ => None,
            };
            match held {
                Some(v) => self.remember(e.key, v, e.revision),
                None => self.forget(&e.key),
            }
        }
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
