//! A service's in-memory copy of some keys of a KV bucket, with their revisions, kept current
//! by a watch (every current value first, then each change). Readers decide from the copy and
//! write by compare-and-set on its revision, so a copy that is behind only makes a write fail;
//! they then drop the entry and read it anew. While the watch is down (it failed, and is being
//! started again with backoff), or has not yet delivered what the bucket held when it started,
//! the copy answers nothing and readers go to NATS: as correct, only slower.
//!
//! A watch can also go quiet without failing: when the node holding its (in-memory, R1)
//! consumer dies, no message and no error comes for a long time. So a watch that has been
//! quiet for [`PROBE`] asks the stream whether a message matching its keys was stored after
//! the last one it delivered; behind at two such probes in a row with nothing delivered in
//! between, or with a stream that cannot answer at all, it is stalled, and it is started
//! again like a failed one (its copy answers nothing meanwhile). The log says when a watch is
//! lost and when it is current again.
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
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long a watch may be quiet before it asks the stream whether it is behind.
pub const PROBE: Duration = Duration::from_secs(2);
/// How long the stream has to answer that question.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest pause between two attempts to start a watch again (an election takes 4-9 s).
const RESTART_MAX: Duration = Duration::from_secs(2);

/// Values by key, with the revision each was written at.
#[derive(Debug)]
pub struct KvCopy<V> {
    entries: Mutex<HashMap<String, (V, u64)>>,
    /// True while the watch runs (the copy catches up with every change).
    live: AtomicBool,
    /// When the watch was lost, while it is being started again.
    lost_at: Mutex<Option<Instant>>,
}

impl<V> Default for KvCopy<V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            live: AtomicBool::new(false),
            lost_at: Mutex::new(None),
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
        if let Ok(mut lost) = self.lost_at.lock() {
            lost.get_or_insert_with(Instant::now);
        }
        self.live.store(false, Ordering::Release);
        if let Ok(mut m) = self.entries.lock() {
            m.clear();
        }
    }

    /// How long ago the watch was lost, while it is being started again (`None` while it runs,
    /// and before the first watch has caught up).
    pub fn lost_for(&self) -> Option<Duration> {
        self.lost_at.lock().ok()?.map(|at| at.elapsed())
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
        let mut backoff = Backoff::new(Duration::from_millis(250), RESTART_MAX);
        loop {
            match watch(store, pattern).await {
                Ok((pending, messages)) => {
                    if pending == 0 {
                        self.current(store);
                    }
                    match self
                        .apply(store, pattern, messages, pending, &keep, &stop)
                        .await
                    {
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

    /// Marks the copy current, saying so in the log when it follows a lost watch.
    fn current(&self, store: &kv::Store) {
        self.live.store(true, Ordering::Release);
        if let Some(at) = self.lost_at.lock().ok().and_then(|mut l| l.take()) {
            tracing::info!(bucket = %store.name, after = ?at.elapsed(), "bucket watch current again");
        }
    }

    /// Applies one watch until it fails or `stop`. `initial`: how many values it delivers
    /// before it is current (each key's latest when it started); the copy answers from then.
    async fn apply(
        &self,
        store: &kv::Store,
        pattern: &str,
        mut messages: pull::Ordered,
        mut initial: u64,
        keep: &impl Fn(&str, &[u8]) -> Option<V>,
        stop: &CancellationToken,
    ) -> Applied {
        let mut delivered = false;
        // The stream sequence of the last message delivered, and whether the previous probe
        // found the stream ahead of it.
        let mut last_seq = 0u64;
        let mut behind = false;
        loop {
            let next = tokio::select! {
                m = messages.next() => m,
                _ = stop.cancelled() => return Applied::Stopped,
                _ = tokio::time::sleep(PROBE) => {
                    match ahead_of(store, pattern, last_seq).await {
                        Some(true) if behind => {
                            tracing::warn!(bucket = %store.name, after = last_seq, "bucket watch stalled: the bucket changed and nothing was delivered; starting it again");
                            return Applied::Failed { delivered };
                        }
                        Some(ahead) => behind = ahead,
                        None => {
                            // The stream cannot answer (no leader, NATS away): what the copy
                            // holds may be going stale unseen.
                            tracing::warn!(bucket = %store.name, "bucket watch quiet and its stream does not answer; starting the watch again");
                            return Applied::Failed { delivered };
                        }
                    }
                    continue;
                }
            };
            behind = false;
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
            last_seq = last_seq.max(revision);
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
                self.current(store);
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

/// Whether `store` holds a message on a key matching `pattern` stored after sequence `after`;
/// `None` when it cannot say within [`PROBE_TIMEOUT`] (the stream has no leader, NATS is away).
async fn ahead_of(store: &kv::Store, pattern: &str, after: u64) -> Option<bool> {
    use async_nats::jetstream::stream::LastRawMessageErrorKind as Kind;
    let asked = store
        .stream
        .raw_message_builder()
        .sequence(after + 1)
        .next_by_subject(format!("{}{pattern}", store.prefix))
        .send();
    match tokio::time::timeout(PROBE_TIMEOUT, asked).await {
        Ok(Ok(_)) => Some(true),
        Ok(Err(e)) if e.kind() == Kind::NoMessageFound => Some(false),
        _ => None,
    }
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
