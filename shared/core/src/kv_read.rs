//! Reading a key's latest value so that what a quorum stored is never reported missing. Any
//! replica of a bucket answers a direct read, and one that is behind lacks what was stored a
//! moment ago (a job dispatched right after its submit, a client reading the job or schedule
//! it was just given): a direct read that finds nothing is asked again of the stream's leader,
//! which holds every acknowledged write. A found value may still be a little old; writers
//! decide by compare-and-set on its revision, so that only makes a write fail and read again.

use async_nats::jetstream::kv;
use async_nats::jetstream::stream::RawMessageErrorKind;
use bytes::Bytes;

/// The value of `key` and its revision; `None` when the key has none (never written, deleted
/// or purged) as the leader sees it.
pub async fn latest(kv: &kv::Store, key: &str) -> Result<Option<(Bytes, u64)>, String> {
    match kv.entry(key).await.map_err(|e| e.to_string())? {
        Some(e) if e.operation == kv::Operation::Put => return Ok(Some((e.value, e.revision))),
        Some(_) => return Ok(None),
        None => {}
    }
    let subject = format!("{}{key}", kv.prefix);
    match kv
        .stream
        .raw_message_builder()
        .last_by_subject(subject)
        .send()
        .await
    {
        Ok(m) => {
            let op = m.headers.get("KV-Operation").map(|v| v.as_str());
            if matches!(op, Some("DEL") | Some("PURGE")) {
                return Ok(None);
            }
            Ok(Some((m.payload, m.sequence)))
        }
        Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}
