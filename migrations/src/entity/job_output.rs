//! A job's output chunks, bytes as written, keyed by the job's own sequence number.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "job_output")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub job_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    /// `stdout`, `stderr` or `system`.
    pub stream: String,
    #[sea_orm(column_type = "Blob")]
    pub data: Vec<u8>,
    /// When the chunk reached the output stream.
    pub at_us: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
