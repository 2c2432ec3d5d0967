//! SQLite's WAL checkpoints, beside the writes instead of inside them. By default the
//! connection whose commit makes the WAL pass 1,000 pages copies the WAL into the database
//! file and syncs both before its COMMIT returns: a batch then waits for two fsyncs and the
//! copy. Here a task checkpoints (PASSIVE: it never blocks a writer or a reader) after
//! commits, on its own connection, while the next batch is written, so the WAL rarely reaches
//! that mark; the automatic checkpoint stays, unchanged, for when this task falls behind
//! (raising the mark instead also changes the plain-insert baseline of `audit-bench`, which
//! shares these connection settings, and in two runs made it slower).
//! Durability is the same: a commit is in the WAL when it returns (`synchronous=NORMAL`), a
//! checkpoint moves it into the database file later.

use sea_orm::{ConnectionTrait, DatabaseConnection};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Least time between two background checkpoints (each syncs the WAL and the database).
const EVERY: Duration = Duration::from_millis(10);

/// Wakes the checkpoint task after a commit.
#[derive(Debug, Clone, Default)]
pub struct Checkpoints {
    wake: Arc<Notify>,
}

impl Checkpoints {
    /// A batch committed: its pages are in the WAL.
    pub fn committed(&self) {
        self.wake.notify_one();
    }

    /// Checkpoints after commits until `stop` (then once more, so a stopped writer leaves a
    /// short WAL behind).
    pub async fn run(self, db: DatabaseConnection, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = stop.cancelled() => break,
            }
            checkpoint(&db).await;
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = stop.cancelled() => break,
            }
        }
        checkpoint(&db).await;
    }
}

async fn checkpoint(db: &DatabaseConnection) {
    if let Err(e) = db
        .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
        .await
    {
        // The automatic checkpoint still bounds the WAL.
        tracing::debug!(error = %e, "background checkpoint failed");
    }
}
