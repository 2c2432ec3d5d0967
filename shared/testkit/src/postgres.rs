//! A fresh, empty PostgreSQL database per test on the machine's PostgreSQL server (never a
//! mock): created on start, dropped (connections forced off) when the handle is dropped.
//!
//! The server is found at `TASKWIRE_TEST_POSTGRES` (an admin URL), by default
//! `postgres://postgres@127.0.0.1:5432/test`.

use sea_orm::{ConnectionTrait, Database};

/// Where the admin connection goes unless `TASKWIRE_TEST_POSTGRES` says otherwise.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database of its own for one test.
#[derive(Debug)]
pub struct PgDatabase {
    admin: String,
    name: String,
    url: String,
}

fn admin_url() -> String {
    std::env::var("TASKWIRE_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string())
}

/// `base` with its database name replaced by `db`.
fn with_database(base: &str, db: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (base, None),
    };
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let host_end = head[scheme_end..]
        .find('/')
        .map_or(head.len(), |i| scheme_end + i);
    let mut url = format!("{}/{db}", &head[..host_end]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

impl PgDatabase {
    /// Creates `tw_test_<random>`. Panics with what to do when PostgreSQL is not reachable.
    pub async fn create() -> Self {
        let admin = admin_url();
        let name = format!("tw_test_{}", uuid::Uuid::new_v4().simple());
        let conn = Database::connect(admin.as_str()).await.unwrap_or_else(|e| {
            panic!(
                "cannot reach PostgreSQL at {admin}: {e}. Start PostgreSQL on 127.0.0.1:5432 (trust auth) or set TASKWIRE_TEST_POSTGRES to an admin URL"
            )
        });
        conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        let _ = conn.close().await;
        let url = with_database(&admin, &name);
        Self { admin, name, url }
    }

    /// The URL of this test's database.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The URL with host and port replaced (to reach it through a [`crate::TcpProxy`]).
    pub fn url_via(&self, addr: std::net::SocketAddr) -> String {
        let scheme_end = self.url.find("://").map_or(0, |i| i + 3);
        let rest = &self.url[scheme_end..];
        let at = rest.find('@').map_or(0, |i| i + 1);
        let host_end = rest.find('/').unwrap_or(rest.len());
        format!(
            "{}{}{addr}{}",
            &self.url[..scheme_end],
            &rest[..at],
            &rest[host_end..]
        )
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(conn) = Database::connect(admin.as_str()).await {
                    let _ = conn
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_rewritten() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/test?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        let db = PgDatabase {
            admin: String::new(),
            name: "never_created".into(),
            url: "postgres://postgres@127.0.0.1:5432/x".into(),
        };
        assert_eq!(
            db.url_via("127.0.0.1:6000".parse().unwrap()),
            "postgres://postgres@127.0.0.1:6000/x"
        );
        std::mem::forget(db);
    }
}
