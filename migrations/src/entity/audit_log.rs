//! Every API decision (allowed, denied, malformed) and every job deletion.

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
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
