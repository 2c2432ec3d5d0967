//! The audit log's hash chains: every entry a writer stores is chained to that writer's
//! previous one (`chain_id`, `chain_seq`, `prev_hash`, `hash`; see the audit writer's `chain`
//! module for the hash), and retention leaves a checkpoint per chain: the seq and hash of the
//! last entry it deleted, so that a chain cut by retention still verifies.
//!
//! Rows stored before this migration keep `NULL` chain columns: they are "legacy", counted by
//! `taskwire audit verify` and not covered by it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    ChainId,
    ChainSeq,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum AuditChainCheckpoints {
    Table,
    ChainId,
    Seq,
    Hash,
    AtUs,
}

const CHAIN_INDEX: &str = "ux_audit_log_chain";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time. Each is skipped
        // when present, so a writer that raced another through this migration can run it again.
        for col in [
            uuid_null(AuditLog::ChainId),
            big_integer_null(AuditLog::ChainSeq),
            text_null(AuditLog::PrevHash),
            text_null(AuditLog::Hash),
        ] {
            let mut col = col;
            let name = col.get_column_name();
            if m.has_column("audit_log", &name).await? {
                continue;
            }
            m.alter_table(
                Table::alter()
                    .table(AuditLog::Table)
                    .add_column(&mut col)
                    .to_owned(),
            )
            .await?;
        }
        // A chain has one row per seq; rows of no chain (NULL) are not constrained.
        m.create_index(
            Index::create()
                .name(CHAIN_INDEX)
                .table(AuditLog::Table)
                .col(AuditLog::ChainId)
                .col(AuditLog::ChainSeq)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AuditChainCheckpoints::Table)
                .if_not_exists()
                .col(uuid(AuditChainCheckpoints::ChainId).primary_key())
                .col(big_integer(AuditChainCheckpoints::Seq))
                .col(text(AuditChainCheckpoints::Hash))
                .col(big_integer(AuditChainCheckpoints::AtUs))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table(AuditChainCheckpoints::Table)
                .if_exists()
                .to_owned(),
        )
        .await?;
        m.drop_index(
            Index::drop()
                .name(CHAIN_INDEX)
                .table(AuditLog::Table)
                .if_exists()
                .to_owned(),
        )
        .await?;
        for col in [
            AuditLog::Hash,
            AuditLog::PrevHash,
            AuditLog::ChainSeq,
            AuditLog::ChainId,
        ] {
            m.alter_table(
                Table::alter()
                    .table(AuditLog::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
