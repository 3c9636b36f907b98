//! What the benchmarks' baselines share: a plain SQLite connection configured as hubdir's
//! (WAL, `synchronous=FULL`) and a fresh PostgreSQL schema, each holding a table made by `ddl`.

use sea_orm::sqlx::{self, Connection as _};

/// A SQLite file with the same durability settings as hubdir's store, and the table.
pub async fn sqlite(path: &std::path::Path, ddl: &'static str) -> sqlx::SqliteConnection {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await.expect("sqlite");
    sqlx::query(ddl).execute(&mut conn).await.expect("table");
    conn
}

/// A fresh schema on the PostgreSQL server, and a URL that uses it. `name` is a constant.
pub async fn fresh_schema(base: &str, name: &str) -> String {
    let mut conn = sqlx::PgConnection::connect(base).await.expect("postgres");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {name} CASCADE")))
        .execute(&mut conn)
        .await
        .expect("drop");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}"))).execute(&mut conn).await.expect("create");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{name}")
}

/// A PostgreSQL connection to `url` with the table.
pub async fn postgres(url: &str, ddl: &'static str) -> sqlx::PgConnection {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("postgres");
    sqlx::query(ddl).execute(&mut conn).await.expect("table");
    conn
}
