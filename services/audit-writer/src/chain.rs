//! The audit log's hash chains: what makes an edited, deleted, inserted or reordered audit
//! entry visible.
//!
//! - **One chain per writer start.** Two writers share a store and race, so a chain per store
//!   would need a lock across processes; instead each [`AuditChain`] (one per started audit
//!   writer) has its own id (a UUID v7, so chains sort by start), and numbers its entries 1, 2,
//!   3... in the order it stores them. A restarted writer starts a new chain. Entry 1 has
//!   [`GENESIS`] (64 zeros) as `prev_hash`; entry n has entry n-1's `hash`.
//! - **The hash** ([`entry_hash`]) is SHA-256 over [`encode`]: a version tag, then the chain id,
//!   seq and previous hash, then every stored field a reader relies on (id, time, actor,
//!   action, target, allowed, reason, source, via), each length-prefixed so that no byte can
//!   move from one field to the next.
//! - **Retention** deletes a chain only from its start ([`crate::retention`]) and records a
//!   checkpoint (the seq and hash of the last entry deleted): [`verify`] checks that the
//!   oldest remaining entry links to it.
//! - **Anchoring**: the writer logs its chain's head (seq and hash) after a commit, at most
//!   every [`ANCHOR_EVERY`], so that logs kept elsewhere bound what someone with write access
//!   to the database could rewrite (a whole chain tail, hashes recomputed).
//!
//! This module never decides what is stored, only how it is linked; it never writes during
//! [`verify`].

use crate::error::{AuditError, Result};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use taskwire_migrations::entity::{audit_chain_checkpoints, audit_log};
use taskwire_migrations::{Migrator, MigratorTrait};
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

/// The `prev_hash` of a chain's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest time between two logged chain heads while entries are being stored.
pub const ANCHOR_EVERY: Duration = Duration::from_secs(10);

/// The version tag that starts every encoding: a new encoding gets a new tag.
const TAG: &[u8] = b"taskwire.audit.chain.v1";

/// Entries read per query by [`verify`].
const PAGE: u64 = 1000;

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_be_bytes());
    out.extend_from_slice(b);
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_bytes(out, s.as_bytes());
        }
    }
}

/// The bytes an entry's hash is taken over, in this order: the tag `taskwire.audit.chain.v1`,
/// chain id (16 bytes), seq (i64), prev_hash (its hex text), id (16 bytes), at_us (i64),
/// actor?, action, target?, allowed (1 byte: 0 or 1), reason, source, via. Integers are
/// big-endian; text is its UTF-8 length (u64 big-endian) then its bytes; an optional field
/// (?) is a 0 byte when absent, else a 1 byte then the text. No byte can move from one field
/// to the next. The row's own `hash` is not part of it; `None` when its chain fields are not
/// set.
pub fn encode(row: &audit_log::Model) -> Option<Vec<u8>> {
    let (chain, seq, prev) = (row.chain_id?, row.chain_seq?, row.prev_hash.as_deref()?);
    let mut out = Vec::with_capacity(256);
    put_bytes(&mut out, TAG);
    out.extend_from_slice(chain.as_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    put_bytes(&mut out, prev.as_bytes());
    out.extend_from_slice(row.id.as_bytes());
    out.extend_from_slice(&row.at_us.to_be_bytes());
    put_opt(&mut out, row.actor.as_deref());
    put_bytes(&mut out, row.action.as_bytes());
    put_opt(&mut out, row.target.as_deref());
    out.push(u8::from(row.allowed));
    put_bytes(&mut out, row.reason.as_bytes());
    put_bytes(&mut out, row.source.as_bytes());
    put_bytes(&mut out, row.via.as_bytes());
    Some(out)
}

/// The hash (lowercase hex SHA-256 of [`encode`]) an entry must carry; `None` when its chain
/// fields are not set.
pub fn entry_hash(row: &audit_log::Model) -> Option<String> {
    let digest = Sha256::digest(encode(row)?);
    Some(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// The last entry a chain holds: what the next one links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

impl Head {
    fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }

    /// Links `row` after this head (sets its chain fields and hash) and moves the head to it.
    pub fn link(&mut self, chain: Uuid, row: &mut audit_log::Model) {
        row.chain_id = Some(chain);
        row.chain_seq = Some(self.seq + 1);
        row.prev_hash = Some(self.hash.clone());
        row.hash = entry_hash(row);
        self.seq += 1;
        self.hash = row.hash.clone().unwrap_or_default();
    }
}

#[derive(Debug)]
struct State {
    head: Head,
    /// A write failed after the head was taken: its commit may have happened, so the head is
    /// read back from the database before the next entry is linked.
    uncertain: bool,
    last_anchor: Option<Instant>,
}

/// One writer's chain: its id and head, shared by the writer's consumers. Entries are linked
/// while [`AuditChain::lock`] is held, from before the transaction until after its commit,
/// so batches of one writer extend the chain one at a time.
#[derive(Debug, Clone)]
pub struct AuditChain {
    id: Uuid,
    state: Arc<Mutex<State>>,
}

impl Default for AuditChain {
    fn default() -> Self {
        Self::new()
    }
}

impl AuditChain {
    /// A new chain (no entries yet: it exists in the store once its first entry does).
    pub fn new() -> Self {
        Self {
            id: Uuid::now_v7(),
            state: Arc::new(Mutex::new(State {
                head: Head::genesis(),
                uncertain: false,
                last_anchor: None,
            })),
        }
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Takes the chain for one write.
    pub async fn lock(&self, db: &DatabaseConnection) -> Result<ChainWrite<'_>, DbErr> {
        let mut state = self.state.lock().await;
        if state.uncertain {
            if let Some(stored) = stored_head(db, self.id).await?
                && stored.seq > state.head.seq
            {
                state.head = stored;
            }
            state.uncertain = false;
        }
        let head = state.head.clone();
        Ok(ChainWrite {
            chain: self,
            state,
            head,
            committed: false,
        })
    }
}

/// The chain held for one transaction: link entries after [`ChainWrite::head`], then call
/// [`ChainWrite::committed`]; dropped without it, the chain stays where it was (and is read
/// back before the next write, in case the commit happened anyway).
#[derive(Debug)]
pub struct ChainWrite<'a> {
    chain: &'a AuditChain,
    state: MutexGuard<'a, State>,
    /// The head the entries of this write are linked after.
    pub head: Head,
    committed: bool,
}

impl ChainWrite<'_> {
    pub fn id(&self) -> Uuid {
        self.chain.id
    }

    /// Starts linking again from the committed head (after an attempt was rolled back).
    pub fn restart(&mut self) {
        self.head = self.state.head.clone();
    }

    /// The transaction committed: the chain moves on to [`ChainWrite::head`], and its head is
    /// logged if none was for [`ANCHOR_EVERY`].
    pub fn committed(mut self) {
        let before = self.state.head.seq;
        self.state.head = self.head.clone();
        self.committed = true;
        let now = Instant::now();
        let due = self
            .state
            .last_anchor
            .is_none_or(|t| now.duration_since(t) >= ANCHOR_EVERY);
        if self.head.seq > before && due {
            self.state.last_anchor = Some(now);
            tracing::info!(
                chain = %self.chain.id,
                seq = self.head.seq,
                head = %self.head.hash,
                "audit chain head"
            );
        }
    }
}

impl Drop for ChainWrite<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.state.uncertain = true;
        }
    }
}

async fn stored_head(db: &DatabaseConnection, chain: Uuid) -> Result<Option<Head>, DbErr> {
    let row = audit_log::Entity::find()
        .filter(audit_log::Column::ChainId.eq(chain))
        .order_by_desc(audit_log::Column::ChainSeq)
        .one(db)
        .await?;
    Ok(row.and_then(|r| {
        Some(Head {
            seq: r.chain_seq?,
            hash: r.hash?,
        })
    }))
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Chains holding at least one entry.
    pub chains: u64,
    /// Chained entries whose hash and link were checked.
    pub rows_checked: u64,
    /// Entries stored before chaining existed (NULL chain columns): not covered.
    pub legacy_rows: u64,
    /// The first broken link, in chain order (chains by id, entries by seq); `None`: intact.
    pub broken: Option<BrokenLink>,
}

impl Verification {
    pub fn intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// The first entry that does not link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    /// The entry at which the chain breaks (for a gap: the first entry after it).
    pub row_id: Uuid,
    pub chain_id: Uuid,
    /// Its `chain_seq` (`None` when it has none).
    pub seq: Option<i64>,
    pub problem: Problem,
}

/// How a link is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// The entry's fields do not hash to its stored hash: it was edited after it was stored.
    HashMismatch { stored: String, computed: String },
    /// Entries `expected..found` are missing: deleted (other than by retention, which
    /// deletes from a chain's start and leaves a checkpoint).
    SeqGap { expected: i64, found: i64 },
    /// The entry's seq is at or before what retention recorded as deleted.
    SeqRepeated { expected: i64, found: i64 },
    /// The entry's `prev_hash` is not the hash of the entry before it: entries were
    /// reordered or inserted, or the entry before was rewritten with its hash recomputed.
    PrevHashMismatch { expected: String, found: String },
    /// Some of the entry's chain columns are NULL.
    Incomplete,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::HashMismatch { stored, computed } => write!(
                f,
                "hash mismatch: the entry hashes to {computed} but carries {stored}; it was edited after it was stored"
            ),
            Problem::SeqGap { expected, found } if found - expected == 1 => write!(
                f,
                "seq gap: entry {expected} is missing before entry {found}; it was deleted"
            ),
            Problem::SeqGap { expected, found } => write!(
                f,
                "seq gap: entries {expected} to {} are missing before entry {found}; they were deleted",
                found - 1
            ),
            Problem::SeqRepeated { expected, found } => write!(
                f,
                "seq {found} where {expected} was due: retention recorded entries up to {} as deleted; the entry was re-inserted or renumbered",
                expected - 1
            ),
            Problem::PrevHashMismatch { expected, found } => write!(
                f,
                "prev_hash mismatch: the entry links to {found} but the entry before it hashes to {expected}; entries were reordered or inserted, or the one before was rewritten"
            ),
            Problem::Incomplete => f.write_str(
                "incomplete: some of the entry's chain columns are empty; they were cleared",
            ),
        }
    }
}

impl std::fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(seq) => write!(
                f,
                "entry {} (chain {}, seq {seq}): {}",
                self.row_id, self.chain_id, self.problem
            ),
            None => write!(
                f,
                "entry {} (chain {}): {}",
                self.row_id, self.chain_id, self.problem
            ),
        }
    }
}

/// Checks one entry against what precedes it in its chain (`prev`: the previous entry's seq
/// and hash, the checkpoint, or [`Head::genesis`]).
pub fn check(prev: &Head, row: &audit_log::Model) -> Result<Head, Problem> {
    let (Some(seq), Some(prev_hash), Some(stored)) =
        (row.chain_seq, row.prev_hash.as_deref(), row.hash.as_deref())
    else {
        return Err(Problem::Incomplete);
    };
    let expected = prev.seq + 1;
    if seq > expected {
        return Err(Problem::SeqGap {
            expected,
            found: seq,
        });
    }
    if seq < expected {
        return Err(Problem::SeqRepeated {
            expected,
            found: seq,
        });
    }
    let computed = entry_hash(row).ok_or(Problem::Incomplete)?;
    if computed != stored {
        return Err(Problem::HashMismatch {
            stored: stored.to_string(),
            computed,
        });
    }
    if prev_hash != prev.hash {
        return Err(Problem::PrevHashMismatch {
            expected: prev.hash.clone(),
            found: prev_hash.to_string(),
        });
    }
    Ok(Head {
        seq,
        hash: computed,
    })
}

/// Walks every chain in order and recomputes every hash; stops at the first broken link.
/// Reads only; the schema must be current (`taskwire migrate`).
pub async fn verify(db: &DatabaseConnection) -> Result<Verification> {
    let read = |what: &'static str| move |source: DbErr| AuditError::Read { what, source };
    let pending = Migrator::get_pending_migrations(db)
        .await
        .map_err(read("the schema version"))?;
    if !pending.is_empty() {
        return Err(AuditError::SchemaBehind {
            pending: pending.iter().map(|m| m.name().to_string()).collect(),
        });
    }
    let legacy_rows = audit_log::Entity::find()
        .filter(audit_log::Column::ChainId.is_null())
        .count(db)
        .await
        .map_err(read("the audit log"))?;
    let checkpoints: HashMap<Uuid, Head> = audit_chain_checkpoints::Entity::find()
        .all(db)
        .await
        .map_err(read("the audit chain checkpoints"))?
        .into_iter()
        .map(|c| {
            (
                c.chain_id,
                Head {
                    seq: c.seq,
                    hash: c.hash,
                },
            )
        })
        .collect();
    let mut report = Verification {
        chains: 0,
        rows_checked: 0,
        legacy_rows,
        broken: None,
    };
    let mut current: Option<(Uuid, Head)> = None;
    let mut after: Option<(Uuid, i64)> = None;
    loop {
        use audit_log::Column as C;
        let mut cond = Condition::all().add(C::ChainId.is_not_null());
        if let Some((chain, seq)) = after {
            // NULL seqs sort apart on SQLite and PostgreSQL: they are read by the next query.
            cond = cond.add(
                Condition::any().add(C::ChainId.gt(chain)).add(
                    Condition::all()
                        .add(C::ChainId.eq(chain))
                        .add(C::ChainSeq.gt(seq)),
                ),
            );
        }
        let rows = audit_log::Entity::find()
            .filter(cond)
            .order_by_asc(C::ChainId)
            .order_by_asc(C::ChainSeq)
            .limit(PAGE)
            .all(db)
            .await
            .map_err(read("the audit log"))?;
        let fetched = rows.len() as u64;
        for row in rows {
            let chain = row.chain_id.unwrap_or_default();
            let prev = match &current {
                Some((c, head)) if *c == chain => head.clone(),
                _ => {
                    report.chains += 1;
                    checkpoints
                        .get(&chain)
                        .cloned()
                        .unwrap_or_else(Head::genesis)
                }
            };
            match check(&prev, &row) {
                Ok(head) => {
                    report.rows_checked += 1;
                    after = Some((chain, head.seq));
                    current = Some((chain, head));
                }
                Err(problem) => {
                    report.broken = Some(BrokenLink {
                        row_id: row.id,
                        chain_id: chain,
                        seq: row.chain_seq,
                        problem,
                    });
                    return Ok(report);
                }
            }
        }
        if fetched < PAGE {
            break;
        }
    }
    // Entries with a chain but no seq sort outside the keyset walk above: find them.
    let unnumbered = audit_log::Entity::find()
        .filter(audit_log::Column::ChainId.is_not_null())
        .filter(audit_log::Column::ChainSeq.is_null())
        .one(db)
        .await
        .map_err(read("the audit log"))?;
    if let Some(row) = unnumbered {
        report.broken = Some(BrokenLink {
            row_id: row.id,
            chain_id: row.chain_id.unwrap_or_default(),
            seq: None,
            problem: Problem::Incomplete,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> audit_log::Model {
        audit_log::Model {
            id: Uuid::parse_str("0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d").unwrap(),
            at_us: 1_767_323_045_000_000,
            actor: Some("bob".into()),
            action: "jobs.kill".into(),
            target: Some("0190f5c2-0000-7000-8000-000000000000".into()),
            allowed: false,
            reason: "bob may not kill jobs of alice (needs kill_any)".into(),
            source: "127.0.0.1:50312".into(),
            via: "http".into(),
            chain_id: None,
            chain_seq: None,
            prev_hash: None,
            hash: None,
        }
    }

    fn linked(mut e: audit_log::Model) -> audit_log::Model {
        let chain = Uuid::parse_str("0190f5c2-1111-7000-8000-000000000001").unwrap();
        Head::genesis().link(chain, &mut e);
        e
    }

    #[test]
    fn the_hash_is_pinned() {
        // Computed by a separate implementation of the encoding documented on `encode` (a
        // few lines of Python's hashlib and struct). A change of this value is a change of
        // the encoding: stored chains would stop verifying; give a new encoding a new TAG.
        let e = linked(entry());
        assert_eq!(
            e.hash.as_deref(),
            Some("c797a933312257f9de4ae57c081ffaa4d259e69fb51a1a95d0ea586777fc7224")
        );
        assert_eq!(e.chain_seq, Some(1));
        assert_eq!(e.prev_hash.as_deref(), Some(GENESIS));
    }

    #[test]
    fn bytes_cannot_move_between_fields() {
        let base = linked(entry());
        let shifted = |f: fn(&mut audit_log::Model)| {
            let mut e = entry();
            f(&mut e);
            linked(e).hash
        };
        let variants = [
            // "bob" + "jobs.kill" vs "bobj" + "obs.kill"
            shifted(|e| {
                e.actor = Some("bobj".into());
                e.action = "obs.kill".into();
            }),
            // an absent actor vs an empty one
            shifted(|e| e.actor = None),
            shifted(|e| e.actor = Some(String::new())),
            // reason and source trading their boundary
            shifted(|e| {
                e.reason.push('1');
                e.source = e.source[1..].to_string();
            }),
            shifted(|e| e.allowed = true),
            shifted(|e| e.at_us += 1),
            shifted(|e| e.via = "nats".into()),
            shifted(|e| e.target = None),
        ];
        let mut all: Vec<_> = variants.into_iter().collect();
        all.push(base.hash.clone());
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len(), "{all:?}");
    }

    #[test]
    fn check_names_each_way_a_link_breaks() {
        let chain = Uuid::now_v7();
        let mut head = Head::genesis();
        let mut rows: Vec<_> = (0..3)
            .map(|i| {
                let mut e = entry();
                e.id = Uuid::from_u128(i);
                head.link(chain, &mut e);
                e
            })
            .collect();
        let walk = |rows: &[audit_log::Model]| {
            let mut prev = Head::genesis();
            for r in rows {
                prev = check(&prev, r)?;
            }
            Ok::<_, Problem>(prev)
        };
        assert_eq!(walk(&rows).unwrap().seq, 3);

        let mut edited = rows.clone();
        edited[1].reason = "allowed".into();
        assert!(matches!(walk(&edited), Err(Problem::HashMismatch { .. })));

        let mut gap = rows.clone();
        gap.remove(1);
        assert_eq!(
            walk(&gap),
            Err(Problem::SeqGap {
                expected: 2,
                found: 3
            })
        );

        // Rewritten with its hash recomputed: the next entry no longer links to it.
        let mut rewritten = rows.clone();
        rewritten[1].reason = "allowed".into();
        rewritten[1].hash = entry_hash(&rewritten[1]);
        assert!(matches!(
            walk(&rewritten),
            Err(Problem::PrevHashMismatch { .. })
        ));

        rows[2].hash = None;
        assert_eq!(walk(&rows), Err(Problem::Incomplete));
    }

    #[test]
    fn the_report_json_is_pinned() {
        let v = Verification {
            chains: 2,
            rows_checked: 7,
            legacy_rows: 1,
            broken: Some(BrokenLink {
                row_id: Uuid::from_u128(5),
                chain_id: Uuid::from_u128(9),
                seq: Some(4),
                problem: Problem::SeqGap {
                    expected: 3,
                    found: 4,
                },
            }),
        };
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            serde_json::json!({
                "chains": 2,
                "rows_checked": 7,
                "legacy_rows": 1,
                "broken": {
                    "row_id": "00000000-0000-0000-0000-000000000005",
                    "chain_id": "00000000-0000-0000-0000-000000000009",
                    "seq": 4,
                    "problem": {"kind": "seq_gap", "expected": 3, "found": 4}
                }
            })
        );
    }
}
