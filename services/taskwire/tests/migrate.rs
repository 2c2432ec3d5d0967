//! `taskwire migrate` prepares the audit database on SQLite and on PostgreSQL, is safe to run
//! again, and refuses a database it does not know.

#![allow(clippy::unwrap_used)]

use sea_orm::{ConnectionTrait, Database, Statement};
use std::process::{Command, Output};
use taskwire_testkit::PgDatabase;

fn migrate(url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_taskwire"))
        .args(["migrate", "--database-url", url])
        .env("TASKWIRE_LOG", "warn")
        .output()
        .unwrap()
}

async fn tables(url: &str) -> Vec<String> {
    let db = Database::connect(url).await.unwrap();
    let sql = match db.get_database_backend() {
        sea_orm::DbBackend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        }
        _ => {
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name"
        }
    };
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .filter(|n| !n.starts_with("sqlite_"))
        .collect()
}

const TABLES: [&str; 7] = [
    "audit_chain_checkpoints",
    "audit_log",
    "deleted_jobs",
    "executions",
    "job_events",
    "job_output",
    "taskwire_migrations",
];

async fn twice(url: &str) {
    let first = migrate(url);
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(out.contains("applied 3 migration"), "{out}");
    assert_eq!(tables(url).await, TABLES);
    let second = migrate(url);
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stdout).contains("schema is up to date"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_creates_the_tables_on_sqlite_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sub/audit.db").display());
    twice(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_creates_the_tables_on_postgres_and_is_idempotent() {
    let pg = PgDatabase::create().await;
    twice(&pg.url()).await;
}

#[test]
fn an_unknown_database_is_refused_with_what_to_do() {
    let out = migrate("mysql://root@127.0.0.1/test");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sqlite://PATH or postgres://USER@HOST/DB"),
        "{err}"
    );
}
