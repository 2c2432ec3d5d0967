//! `job_output.encoding`: a chunk is stored as it came from `TW_OUTPUT`, compressed when the
//! executor compressed it (`lz4`), else (`NULL`, and every row stored before) the bytes as
//! written. Readers decompress; nothing is rewritten.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JobOutput {
    Table,
    Encoding,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Skipped when present, so a writer that raced another through it can run it again.
        if m.has_column("job_output", "encoding").await? {
            return Ok(());
        }
        m.alter_table(
            Table::alter()
                .table(JobOutput::Table)
                .add_column(text_null(JobOutput::Encoding))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(JobOutput::Table)
                .drop_column(JobOutput::Encoding)
                .to_owned(),
        )
        .await
    }
}
