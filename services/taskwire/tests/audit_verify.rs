//! `taskwire audit verify` on SQLite and PostgreSQL: exit 0 and the counts when the audit
//! log is intact, exit 3 naming the edited entry when it is not, `--json` for machines, the
//! database found through the configuration, and a mistyped SQLite path refused (not created).

#![allow(clippy::unwrap_used)]

use sea_orm::{ConnectionTrait, DatabaseConnection};
use std::process::{Command, Output};
use taskwire_audit_writer::batch::Item;
use taskwire_audit_writer::chain::AuditChain;
use taskwire_audit_writer::{apply, db};
use taskwire_core::wire::{AuditEvent, Via};
use taskwire_testkit::PgDatabase;
use uuid::Uuid;

fn taskwire(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_taskwire"))
        .args(args)
        .env("TASKWIRE_LOG", "warn")
        .env_remove("TASKWIRE_CONFIG")
        .env_remove("TASKWIRE_AUDIT__DATABASE_URL")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stores `n` audit entries the way a writer does (one batch, one chain); their ids in order.
async fn stored(url: &str, n: usize) -> (DatabaseConnection, Vec<Uuid>) {
    let conn = db::connect(url, 1).await.unwrap();
    db::migrate(&conn).await.unwrap();
    let items: Vec<Item> = (0..n)
        .map(|i| {
            Item::Audit(AuditEvent {
                id: Uuid::now_v7(),
                at: chrono::Utc::now(),
                actor: Some("alice".into()),
                action: "jobs.submit".into(),
                target: Some("report".into()),
                allowed: true,
                reason: format!("rule {i}"),
                source: "127.0.0.1:1".into(),
                via: Via::Http,
            })
        })
        .collect();
    apply::write(&conn, &AuditChain::new(), &items)
        .await
        .unwrap();
    let ids = items
        .iter()
        .map(|i| match i {
            Item::Audit(a) => a.id,
            _ => unreachable!(),
        })
        .collect();
    (conn, ids)
}

async fn intact_then_edited(url: &str) {
    let (conn, ids) = stored(url, 4).await;
    let ok = taskwire(&["audit", "verify", "--database-url", url]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    assert!(
        stdout(&ok).contains("audit log intact: 1 chain(s), 4 entries checked"),
        "{}",
        stdout(&ok)
    );

    conn.execute_unprepared("UPDATE audit_log SET actor = 'mallory' WHERE chain_seq = 2")
        .await
        .unwrap();
    let broken = taskwire(&["audit", "verify", "--database", url]);
    assert_eq!(broken.status.code(), Some(3), "{}", stdout(&broken));
    let out = stdout(&broken);
    assert!(out.contains("BROKEN"), "{out}");
    assert!(out.contains(&ids[1].to_string()), "names the entry: {out}");
    assert!(out.contains("seq 2"), "{out}");
    assert!(out.contains("hash mismatch"), "{out}");

    let json = taskwire(&["audit", "verify", "--database-url", url, "--json"]);
    assert_eq!(json.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["rows_checked"], 1);
    assert_eq!(v["broken"]["row_id"], ids[1].to_string());
    assert_eq!(v["broken"]["seq"], 2);
    assert_eq!(v["broken"]["problem"]["kind"], "hash_mismatch");
    let _ = conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_passes_an_intact_log_and_names_an_edited_entry_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    intact_then_edited(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_passes_an_intact_log_and_names_an_edited_entry_on_postgres() {
    let pg = PgDatabase::create().await;
    intact_then_edited(&pg.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_finds_the_database_in_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("elsewhere.db").display());
    let (conn, _) = stored(&url, 2).await;
    let _ = conn.close().await;
    let config = dir.path().join("taskwire.toml");
    std::fs::write(&config, format!("[audit]\ndatabase_url = \"{url}\"\n")).unwrap();
    let out = taskwire(&["--config", config.to_str().unwrap(), "audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("2 entries checked"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn audit_verify_refuses_a_missing_sqlite_file_without_creating_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.db");
    let out = taskwire(&[
        "audit",
        "verify",
        "--database-url",
        &format!("sqlite://{}", path.display()),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no such file"), "{err}");
    assert!(!path.exists());
}

/// A store made before chaining: its entries are counted as legacy, not failed, once
/// `taskwire migrate` has added the chain columns (before that, verify says to migrate).
async fn upgraded(url: &str) {
    use sea_orm::sea_query::{Alias, Query};
    use taskwire_migrations::{Migrator, MigratorTrait};
    let conn = db::connect(url, 1).await.unwrap();
    Migrator::up(&conn, Some(1)).await.unwrap();
    let insert = Query::insert()
        .into_table(Alias::new("audit_log"))
        .columns(
            [
                "id", "at_us", "actor", "action", "target", "allowed", "reason", "source", "via",
            ]
            .map(Alias::new),
        )
        .values_panic([
            Uuid::now_v7().into(),
            1_700_000_000_000_000i64.into(),
            "alice".into(),
            "jobs.submit".into(),
            "report".into(),
            true.into(),
            "ok".into(),
            "127.0.0.1:1".into(),
            "http".into(),
        ])
        .to_owned();
    conn.execute(&insert).await.unwrap();
    let _ = conn.close().await;

    let behind = taskwire(&["audit", "verify", "--database-url", url]);
    assert_eq!(behind.status.code(), Some(1));
    let err = String::from_utf8_lossy(&behind.stderr);
    assert!(err.contains("run `taskwire migrate`"), "{err}");

    assert!(
        taskwire(&["migrate", "--database-url", url])
            .status
            .success()
    );
    let out = taskwire(&["audit", "verify", "--database-url", url]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("intact: 0 chain(s), 0 entries checked"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("1 entries stored before chaining are not covered"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_counts_entries_from_before_chaining_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    upgraded(&format!(
        "sqlite://{}",
        dir.path().join("audit.db").display()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_counts_entries_from_before_chaining_on_postgres() {
    let pg = PgDatabase::create().await;
    upgraded(&pg.url()).await;
}
