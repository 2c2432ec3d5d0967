//! Every API decision (allowed, denied, malformed) and every job deletion, each chained by
//! hash to the previous entry its writer stored (NULL chain columns: stored before chaining).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub at_us: i64,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub allowed: bool,
    pub reason: String,
    pub source: String,
    pub via: String,
    /// The writer's chain this entry belongs to (a UUID each audit writer makes at start).
    pub chain_id: Option<Uuid>,
    /// 1, 2, 3... within the chain, in the order the writer stored its entries.
    pub chain_seq: Option<i64>,
    /// The `hash` of the chain's entry at `chain_seq - 1` (64 zeros for seq 1).
    pub prev_hash: Option<String>,
    /// SHA-256 (hex) of the chain fields and every field above.
    pub hash: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
