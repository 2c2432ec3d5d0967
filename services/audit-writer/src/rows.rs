//! Multi-row INSERTs bound straight from the batch's values, without the query builder: no
//! `ActiveModel` per row, no expression tree per value. A batch's rows of one table go in one
//! statement (up to 1,024 rows, or fewer for a wide table): each statement is a round trip
//! to the database's thread, and under load each wake-up of that thread costs more than
//! the statement. A full statement's text is built once per process; the driver's statement
//! cache prepares a text once per connection, so a burst of full batches reuses its
//! statements. Look-ups by key ([`Lookup`]) are padded to a power of two for the same reuse.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement, Value};
use std::sync::OnceLock;
use uuid::Uuid;

/// Rows per statement at most (a whole batch of the writer's default size in one).
pub const MAX_ROWS: usize = 1024;
/// Bound values per statement at most: under SQLite's limit (32,766) and PostgreSQL's (65,535).
const MAX_VALUES: usize = 32_000;
/// Look-up sizes: `MAX_ROWS` and every power of two below it.
const SIZES: usize = MAX_ROWS.trailing_zeros() as usize + 1;

/// One table's INSERT: its columns in bind order and what follows the `VALUES` list.
#[derive(Debug)]
pub struct Insert {
    table: &'static str,
    columns: &'static [&'static str],
    tail: fn() -> String,
    /// The full statement's text per backend (SQLite, PostgreSQL).
    full: [OnceLock<String>; 2],
}

impl Insert {
    /// `tail`: what follows the `VALUES` list (`ON CONFLICT ...`), the same for both databases.
    pub const fn new(
        table: &'static str,
        columns: &'static [&'static str],
        tail: fn() -> String,
    ) -> Self {
        Self {
            table,
            columns,
            tail,
            full: [OnceLock::new(), OnceLock::new()],
        }
    }

    /// The columns, in bind order.
    pub fn columns(&self) -> &'static [&'static str] {
        self.columns
    }

    /// Values per row.
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// Rows per statement at most, within the bound-value limit.
    fn max_rows(&self) -> usize {
        MAX_ROWS.min(MAX_VALUES / self.width().max(1)).max(1)
    }

    fn text(&self, backend: DbBackend, rows: usize) -> String {
        let max = self.max_rows();
        let render = || render(backend, self.table, self.columns, rows, &(self.tail)());
        if rows != max {
            return render();
        }
        let slot = match backend {
            DbBackend::Postgres => 1,
            _ => 0,
        };
        self.full[slot].get_or_init(render).clone()
    }

    /// Inserts `values` (row after row, `width()` values each); the rows affected (those not
    /// skipped by the conflict clause).
    pub async fn run<C: ConnectionTrait>(&self, db: &C, values: Vec<Value>) -> Result<u64, DbErr> {
        let width = self.width();
        debug_assert_eq!(values.len() % width, 0);
        let backend = db.get_database_backend();
        let mut left = values.len() / width;
        let mut values = values.into_iter();
        let mut affected = 0;
        let max = self.max_rows();
        while left > 0 {
            let rows = left.min(max);
            let part: Vec<Value> = values.by_ref().take(rows * width).collect();
            let stmt = Statement::from_sql_and_values(backend, self.text(backend, rows), part);
            affected += db.execute_raw(stmt).await?.rows_affected();
            left -= rows;
        }
        Ok(affected)
    }
}

/// A `SELECT ... WHERE <key> IN (...)` over a batch's keys: the list is padded (repeating its
/// last key, which changes no answer) to a power of two, so a few texts serve every count.
#[derive(Debug)]
pub struct Lookup {
    /// Up to `IN`, e.g. `SELECT "job_id" FROM "deleted_jobs" WHERE "job_id"`.
    head: &'static str,
    sql: [[OnceLock<String>; SIZES]; 2],
}

impl Lookup {
    pub const fn new(head: &'static str) -> Self {
        Self {
            head,
            sql: [const { [const { OnceLock::new() }; SIZES] }; 2],
        }
    }

    fn text(&self, backend: DbBackend, keys: usize) -> &str {
        debug_assert!(keys.is_power_of_two());
        let slot = match backend {
            DbBackend::Postgres => 1,
            _ => 0,
        };
        self.sql[slot][keys.trailing_zeros() as usize].get_or_init(|| {
            let mut sql = format!("{} IN (", self.head);
            for i in 1..=keys {
                if i > 1 {
                    sql.push_str(", ");
                }
                placeholder(&mut sql, backend, i);
            }
            sql.push(')');
            sql
        })
    }

    /// The rows found for `keys`.
    pub async fn run<C: ConnectionTrait>(
        &self,
        db: &C,
        keys: &[Uuid],
    ) -> Result<Vec<QueryResult>, DbErr> {
        let backend = db.get_database_backend();
        let mut out = Vec::new();
        for part in keys.chunks(MAX_ROWS) {
            let Some(last) = part.last() else { continue };
            let n = part.len().next_power_of_two();
            let values = part
                .iter()
                .chain(std::iter::repeat_n(last, n - part.len()))
                .map(|k| Value::from(*k));
            let stmt = Statement::from_sql_and_values(backend, self.text(backend, n), values);
            out.extend(db.query_all_raw(stmt).await?);
        }
        Ok(out)
    }
}

fn placeholder(sql: &mut String, backend: DbBackend, n: usize) {
    use std::fmt::Write;
    match backend {
        DbBackend::Postgres => {
            let _ = write!(sql, "${n}");
        }
        _ => sql.push('?'),
    }
}

/// `INSERT INTO "t" ("a", "b") VALUES (?, ?), (?, ?) <tail>` with the backend's placeholders.
fn render(backend: DbBackend, table: &str, columns: &[&str], rows: usize, tail: &str) -> String {
    use std::fmt::Write;
    let mut sql = format!("INSERT INTO \"{table}\" (");
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        let _ = write!(sql, "\"{c}\"");
    }
    sql.push_str(") VALUES ");
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for i in 0..columns.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            n += 1;
            placeholder(&mut sql, backend, n);
        }
        sql.push(')');
    }
    if !tail.is_empty() {
        sql.push(' ');
        sql.push_str(tail);
    }
    sql
}

/// `ON CONFLICT DO NOTHING`.
pub fn do_nothing() -> String {
    "ON CONFLICT DO NOTHING".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_cut_into_a_few_sizes() {
        assert_eq!(
            render(
                DbBackend::Sqlite,
                "t",
                &["a", "b"],
                2,
                "ON CONFLICT DO NOTHING"
            ),
            r#"INSERT INTO "t" ("a", "b") VALUES (?, ?), (?, ?) ON CONFLICT DO NOTHING"#
        );
        assert_eq!(
            render(DbBackend::Postgres, "t", &["a", "b"], 2, ""),
            r#"INSERT INTO "t" ("a", "b") VALUES ($1, $2), ($3, $4)"#
        );
        static T: Insert = Insert::new("t", &["a"], do_nothing);
        for rows in [1, 3, 1000, 1024] {
            let sql = T.text(DbBackend::Sqlite, rows);
            assert_eq!(sql.matches('?').count(), rows, "{sql}");
        }
        assert_eq!(T.max_rows(), 1024);
        // 35 columns: 914 rows (31,990 values), not 1,024 (35,840).
        static WIDE: Insert = Insert::new("w", &["c"; 35], do_nothing);
        assert_eq!(WIDE.max_rows(), 914);
        static L: Lookup = Lookup::new(r#"SELECT "a" FROM "t" WHERE "a""#);
        assert_eq!(
            L.text(DbBackend::Postgres, 4),
            r#"SELECT "a" FROM "t" WHERE "a" IN ($1, $2, $3, $4)"#
        );
    }
}
