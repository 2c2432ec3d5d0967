//! The audit store's schema, shared by the audit writer and `taskwire migrate`: the migrations
//! (run at every writer start, idempotent) and the sea-orm entities of the tables they create.
//!
//! Times are stored as microseconds since the Unix epoch (UTC) in `BIGINT` columns named
//! `*_us`, so that SQLite and PostgreSQL compare and sort them the same way.

pub mod entity;
mod m20261122_000001_audit_store;
mod m20261201_000002_audit_chain;
mod m20261203_000003_output_encoding;

pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::{MigrationTrait, async_trait};

/// Every migration of the audit store, oldest first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_audit_store::Migration),
            Box::new(m20261201_000002_audit_chain::Migration),
            Box::new(m20261203_000003_output_encoding::Migration),
        ]
    }

    fn migration_table_name() -> sea_orm_migration::sea_orm::DynIden {
        use sea_orm_migration::sea_query::IntoIden;
        "taskwire_migrations".into_iden()
    }
}
