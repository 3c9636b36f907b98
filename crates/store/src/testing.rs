//! Test databases for the crates above the store (feature `test-util`): a SQLite file in a
//! temporary directory, or a schema of its own on the PostgreSQL of
//! `HUBDIR_TEST_POSTGRES_URL`, dropped when the value is. Without that variable the
//! PostgreSQL variant is skipped with a line on stderr, except under `CI=true`, where a test
//! must not pass for want of PostgreSQL.

use std::io::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};

use sea_orm::ConnectionTrait;

use crate::Store;

/// The variable naming the PostgreSQL server tests use.
pub const POSTGRES_ENV: &str = "HUBDIR_TEST_POSTGRES_URL";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database for one test: its URL, and what to remove afterwards.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    /// (server URL, schema) to drop.
    schema: Option<(String, String)>,
}

impl TestDb {
    /// A fresh database on `backend`; `None` when PostgreSQL is not configured (outside CI).
    pub async fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                Some(TestDb { url, _dir: Some(dir), schema: None })
            }
            Backend::Postgres => {
                let Ok(base) = std::env::var(POSTGRES_ENV) else {
                    assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "CI=true, but {POSTGRES_ENV} is unset");
                    let _ = writeln!(std::io::stderr(), "SKIPPED PostgreSQL variant: {POSTGRES_ENV} is unset");
                    return None;
                };
                static NEXT: AtomicU32 = AtomicU32::new(0);
                let schema = format!(
                    "hubdir_test_{}_{}_{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed),
                    chrono::Utc::now().timestamp_micros()
                );
                let admin = sea_orm::Database::connect(&base).await.expect("the test PostgreSQL answers");
                admin.execute_unprepared(&format!("CREATE SCHEMA {schema}")).await.expect("create the schema");
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                Some(TestDb { url, _dir: None, schema: Some((base, schema)) })
            }
        }
    }

    /// A store on this database.
    pub async fn store(&self) -> Store {
        Store::connect(&self.url).await.expect("the test store opens")
    }
}

impl Drop for TestDb {
    /// Drops the PostgreSQL schema, on a thread of its own (a drop cannot await).
    fn drop(&mut self) {
        let Some((base, schema)) = self.schema.take() else { return };
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let admin = sea_orm::Database::connect(&base).await.ok()?;
                admin.execute_unprepared(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.ok()
            })
        });
        let _ = dropped.join();
    }
}

/// Runs each named `async fn name(backend: Backend)` of the calling test file as a test on
/// SQLite (`sqlite::name`) and one on PostgreSQL (`postgres::name`).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// Ends the PostgreSQL session holding the lease `name` in `store`'s schema, as the server
/// does when its holder's process dies.
pub async fn end_lease_session(store: &Store, name: &str) {
    let sql = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = (('x' || substr(md5(\
         current_database() || '/' || current_schema() || '/{name}'), 1, 16))::bit(64)::bigint)"
    );
    store.connection().execute_unprepared(&sql).await.expect("end the lease's session");
}
