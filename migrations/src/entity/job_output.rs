//! A job's output chunks, keyed by the job's own sequence number: the bytes as written, or
//! their LZ4 block when `encoding` is `lz4` (as the chunk came from `TW_OUTPUT`).

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
    /// `NULL`: `data` is the bytes as written; `lz4`: an LZ4 block with the bytes' length
    /// (`u32`, little endian) in front.
    pub encoding: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
