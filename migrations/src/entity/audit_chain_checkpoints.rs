//! Where retention cut each audit chain: the seq and hash of the last entry it deleted, so
//! that the chain's oldest remaining entry still links to something verify can check.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_chain_checkpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub chain_id: Uuid,
    /// The `chain_seq` of the last deleted entry: the chain goes on at `seq + 1`.
    pub seq: i64,
    /// The `hash` of that entry: the `prev_hash` of the entry at `seq + 1`.
    pub hash: String,
    /// When retention deleted it (microseconds since the epoch).
    pub at_us: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
