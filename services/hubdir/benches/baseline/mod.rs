//! What the benchmarks share: for the baselines, a plain SQLite connection configured as
//! hubdir's (WAL, `synchronous=FULL`) and a fresh PostgreSQL schema, each holding a table made
//! by `ddl`; and the grid of sites of origin `zw` the write benchmarks write.

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

/// Site `i` of the grid over Zimbabwe, about 100 m apart.
pub fn zw_location(i: usize) -> (f64, f64) {
    (-22.0 + (i / 5_000) as f64 * 0.001, 25.5 + (i % 5_000) as f64 * 0.001)
}

/// Site `sites/zw/s{i}` at [`zw_location`], written with `precondition`.
pub fn zw_site(i: usize, precondition: hubdir_store::Precondition) -> hubdir_store::Write {
    let site = hubdir_core::SiteInput {
        name: format!("sites/zw/s{i}"),
        display_name: format!("Help point {i}"),
        kind: Some(hubdir_core::Kind::PostOffice),
        operator: "ZimPost".into(),
        country_code: "ZW".into(),
        location: Some(zw_location(i)),
        time_zone: "Africa/Harare".into(),
        ..hubdir_core::SiteInput::default()
    }
    .validate()
    .expect("valid site");
    hubdir_store::Write { change: hubdir_store::Change::Upsert(Box::new(site)), precondition }
}
