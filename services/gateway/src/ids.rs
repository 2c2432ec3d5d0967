//! Job ids: random (time-ordered) for a plain submit; derived from the user and an
//! `Idempotency-Key` (or a schedule's fire) otherwise, so a retried request names the same
//! jobs and finds them.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A client's `Idempotency-Key`: 1 to 128 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Reads a key as the client sent it; the error says what a key must be.
    pub fn parse(text: &[u8]) -> Result<Self, String> {
        let k = std::str::from_utf8(text)
            .ok()
            .filter(|k| k.bytes().all(|b| (0x20..0x7f).contains(&b)))
            .ok_or("Idempotency-Key must be printable ASCII")?;
        if k.is_empty() || k.len() > 128 {
            return Err("Idempotency-Key must be 1 to 128 characters".into());
        }
        Ok(Self(k.to_string()))
    }

    /// The key of one fire of a schedule: the same fire always names the same job.
    pub fn of_fire(schedule: &Uuid, at: DateTime<Utc>) -> Self {
        Self(format!("schedule:{schedule}:{}", at.timestamp_millis()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A job id: random (time-ordered v7) without an idempotency key; derived from the user and
/// the key with one, so a retried request names the same jobs. `part` tells apart the jobs
/// (and the group) of one request.
pub fn derive_id(user: &str, key: Option<&IdempotencyKey>, part: &str) -> Uuid {
    match key {
        None => Uuid::now_v7(),
        Some(k) => {
            let h = Sha256::new()
                .chain_update(user.as_bytes())
                .chain_update([0])
                .chain_update(k.as_str().as_bytes())
                .chain_update([0])
                .chain_update(part.as_bytes())
                .finalize();
            let mut b = [0u8; 16];
            b.copy_from_slice(&h[..16]);
            uuid::Builder::from_custom_bytes(b).into_uuid()
        }
    }
}

/// The id of the (first) job of one fire of `schedule`, owned by `owner`.
pub fn fire_job_id(owner: &str, schedule: &Uuid, at: DateTime<Utc>) -> Uuid {
    derive_id(owner, Some(&IdempotencyKey::of_fire(schedule, at)), "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_and_ids_derive_from_user_and_key() {
        assert!(IdempotencyKey::parse(b"").is_err());
        assert!(IdempotencyKey::parse(&[b'a'; 129]).is_err());
        assert!(IdempotencyKey::parse("é".as_bytes()).is_err());
        assert!(IdempotencyKey::parse(b"tab\there").is_err());
        let k = IdempotencyKey::parse(b"order-42").unwrap();
        assert_eq!(
            derive_id("alice", Some(&k), "0"),
            derive_id("alice", Some(&k), "0")
        );
        assert_ne!(
            derive_id("alice", Some(&k), "0"),
            derive_id("bob", Some(&k), "0")
        );
        assert_ne!(
            derive_id("alice", Some(&k), "0"),
            derive_id("alice", Some(&k), "1")
        );
        assert_ne!(derive_id("alice", None, "0"), derive_id("alice", None, "0"));
        let s = Uuid::from_u128(5);
        let at: DateTime<Utc> = "2026-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(
            fire_job_id("alice", &s, at),
            derive_id("alice", Some(&IdempotencyKey::of_fire(&s, at)), "0")
        );
        assert_eq!(
            IdempotencyKey::of_fire(&s, at).as_str(),
            "schedule:00000000-0000-0000-0000-000000000005:1767323045000"
        );
    }
}
