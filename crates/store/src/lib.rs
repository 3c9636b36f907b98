//! hubdir's storage: sites, the change log, connectivity, peers and keys, on SQLite (the
//! embedded default) or PostgreSQL, through sea-orm.
//!
//! Every accepted write appends one event per changed site to the owning origin's change log
//! **in the same transaction**, with a sequence number that increases by one per origin,
//! without gaps, also under concurrent writers: the origin's row in `origin_sequences` is
//! locked first (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: `SELECT ... FOR UPDATE`), so writers
//! of one origin take turns and a rolled-back write gives its numbers back. Every writer takes
//! those positions through one module (`sequencer`), which also keeps this node's own origins
//! apart from the origins it applies from peers. Concurrent site writes share one transaction
//! and one durable commit, each call planned and refused on its own (`group_commit`).

mod chunked;
mod connectivity;
pub mod entity;
mod error;
mod group_commit;
mod keys;
mod lease;
mod log;
mod migration;
mod population;
mod reads;
mod remote;
mod sequencer;
mod signing;
#[cfg(feature = "test-util")]
pub mod testing;
mod writes;

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};
use sea_orm_migration::{MigrationStatus, MigratorTrait};

pub use connectivity::{
    Latest, QUARANTINE_BODY_BYTES, QUARANTINE_FIELD_BYTES, Quarantined, Recorded, RollUp, SAMPLES_PER_PAGE, Sample,
};
pub use error::StoreError;
pub use keys::PublishedKey;
pub use lease::Lease;
pub use log::{ChangeBody, ChangeEvent, ChangeOp, OriginLog};
pub use population::{Layer, PlaceScope};
pub use reads::{OperatorCount, SiteQuery, TextMatch};
pub use remote::{Delivery, RemoteApplied, RemoteChange, RemoteEvent};
pub use sequencer::NotOwned;
pub use signing::{EventBody, EventSigner, EventToSign, SignedBytes};
pub use writes::{Applied, Change, Precondition, Write};

/// The connection pool's size unless told otherwise (`store.max_connections`).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// How long a SQLite writer waits for another process's write lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection pool to the node's database, with the schema migrated.
#[derive(Debug)]
pub struct Store {
    db: DatabaseConnection,
    /// Write transactions, the change counter, and the calls waiting for a group commit.
    writer: std::sync::Arc<group_commit::Writer>,
    /// Signs every change-log event as it is written; without one, events stay unsigned.
    signer: Option<std::sync::Arc<dyn EventSigner>>,
    /// The origins written here; every other origin only through peers' verified events.
    owned: std::sync::Arc<sequencer::Owned>,
}

/// The PostgreSQL advisory lock that serialises migrations between processes.
const MIGRATION_LOCK: i64 = 0x6875_6264_6972; // "hubdir"

/// What opening a store does about its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Applies pending migrations: the embedded default, where one process owns the file.
    Migrate,
    /// Refuses a schema older than this binary's, naming the first missing migration, and
    /// runs on a newer one with a warning: a deployment migrates once, with `hubdir migrate`,
    /// before its services start.
    Require,
    /// Leaves the schema as it is: for `hubdir migrate`, which then calls [`Store::migrate`].
    AsIs,
}

/// Applies pending migrations and returns their names. On PostgreSQL several processes may
/// start against one fresh database at once (a registry and several discovery replicas): one
/// holds a session advisory lock, on a connection of its own, while the migrations run on
/// the pool, and the others wait for it, then find nothing left to do.
async fn migrate(db: &DatabaseConnection) -> Result<Vec<String>, StoreError> {
    let apply = async {
        let pending = migration::Migrator::get_pending_migrations(db).await.map_err(schema_error)?;
        let names: Vec<String> = pending.iter().map(|m| m.name().to_owned()).collect();
        migration::Migrator::up(db, None).await?;
        Ok::<_, StoreError>(names)
    };
    if db.get_database_backend() != DbBackend::Postgres {
        return apply.await;
    }
    use sea_orm::sqlx::Connection;
    let mut lock = db.get_postgres_connection_pool().acquire().await.map_err(StoreError::from_sqlx)?.detach();
    let take = sea_orm::sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK);
    take.execute(&mut lock).await.map_err(StoreError::from_sqlx)?;
    let result = apply.await;
    // Closing the session releases the lock; an error closing it cannot undo the migrations.
    let _ = lock.close().await;
    result
}

/// Refuses a schema older than this binary's, without changing anything. A newer one (the
/// next release migrated it, and this process is a replica of the release before, still
/// running during a rolling upgrade) is accepted with a warning: a migration keeps the
/// previous release working (CHANGELOG.md).
async fn require_schema(db: &DatabaseConnection) -> Result<(), StoreError> {
    let (pending, known) = match pending_migrations(db).await {
        Ok(status) => status,
        Err(StoreError::Schema(newer)) => {
            tracing::warn!(schema = %newer, "running on a schema newer than this binary's");
            return Ok(());
        }
        Err(other) => return Err(other),
    };
    match pending.first() {
        None => Ok(()),
        Some(_) if pending.len() == known => Err(StoreError::Schema(
            "the database has no hubdir schema yet: run `hubdir migrate` (store.auto_migrate is off)".into(),
        )),
        Some(first) => Err(StoreError::Schema(format!(
            "the database schema is older than this binary: {} of its {} migrations are not applied (the first \
             is {first}); run `hubdir migrate` of this version first (store.auto_migrate is off)",
            pending.len(),
            known
        ))),
    }
}

/// The names of this binary's migrations the database lacks, and how many this binary knows,
/// without changing anything; a newer schema is `StoreError::Schema`.
async fn pending_migrations(db: &DatabaseConnection) -> Result<(Vec<String>, usize), StoreError> {
    let all = migration::Migrator::get_migration_with_status_read_only(db).await.map_err(schema_error)?;
    let pending = all.iter().filter(|m| m.status() == MigrationStatus::Pending).map(|m| m.name().to_owned());
    Ok((pending.collect(), all.len()))
}

/// A migration recorded in the database but unknown here means a newer hubdir migrated it.
fn schema_error(err: sea_orm::DbErr) -> StoreError {
    match err {
        sea_orm::DbErr::Custom(text) if text.contains("is missing") => StoreError::Schema(format!(
            "the database schema is newer than this binary (a later hubdir migrated it): {}",
            text.lines().next().unwrap_or_default()
        )),
        other => other.into(),
    }
}

impl Store {
    /// Connects to `url` (`sqlite://path.db`, `sqlite::memory:` or `postgres://...`) and
    /// applies pending migrations. A SQLite file is created if missing and opened in WAL mode
    /// with `synchronous=FULL`: an acknowledged write survives a power cut.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::open(url, Schema::Migrate, DEFAULT_MAX_CONNECTIONS).await
    }

    /// Connects to `url`, as [`Store::connect`], doing what `schema` says about migrations,
    /// with a pool of at most `max_connections` (PostgreSQL; leases take one more each).
    pub async fn open(url: &str, schema: Schema, max_connections: u32) -> Result<Store, StoreError> {
        let mut options = ConnectOptions::new(url);
        // sqlx logs every statement with its bound values, and those include positions:
        // statement logging stays off.
        options
            .sqlx_logging(false)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(30))
            .max_connections(max_connections.max(2))
            .map_sqlx_sqlite_opts(|o| {
                o.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .foreign_keys(true)
            });
        if url.starts_with("sqlite::memory:") {
            // An in-memory database lives as long as its one connection: keep exactly one,
            // forever.
            options.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None);
        }
        if url.starts_with("postgres") {
            probe_postgres(url).await?;
        }
        let db = Database::connect(options).await.map_err(StoreError::from_connect)?;
        match schema {
            Schema::Migrate => {
                migrate(&db).await?;
            }
            Schema::Require => require_schema(&db).await?,
            Schema::AsIs => {}
        }
        let writer = group_commit::Writer::new(db.clone(), db.get_database_backend() == DbBackend::Sqlite);
        Ok(Store { db, writer: std::sync::Arc::new(writer), signer: None, owned: std::sync::Arc::default() })
    }

    /// Applies the migrations this binary knows and the database lacks, and returns their
    /// names (none when it was up to date). Safe to run again, and from several processes.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        migrate(&self.db).await
    }

    /// The names of this binary's migrations the database lacks; refuses a newer schema.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        Ok(pending_migrations(&self.db).await?.0)
    }

    /// Closes every connection: on SQLite the write-ahead log is folded into the file and
    /// removed, so what the file holds is all there is.
    pub async fn close(self) -> Result<(), StoreError> {
        Ok(self.db.close().await?)
    }

    /// A write transaction (see `group_commit::Writer::begin`).
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<(Option<tokio::sync::MutexGuard<'_, ()>>, sea_orm::DatabaseTransaction), StoreError> {
        self.writer.begin().await
    }

    /// The same store, signing every event it writes from now on.
    pub fn with_signer(self, signer: std::sync::Arc<dyn EventSigner>) -> Store {
        Store { signer: Some(signer), ..self }
    }

    /// The same store, writing locally into these origins only (a node: its own id). Without
    /// it, any origin that is not applied from peers may be written (tools, tests); either way
    /// an origin applied from peers is never written locally, nor an origin written here
    /// applied from peers.
    pub fn owning(self, origins: impl IntoIterator<Item = hubdir_core::Origin>) -> Store {
        Store { owned: std::sync::Arc::new(sequencer::Owned::Only(origins.into_iter().collect())), ..self }
    }

    /// Wakes when this process commits to the change log. Other processes writing the same
    /// database are not seen here: readers still poll, less often.
    pub fn watch_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.writer.watch_changes()
    }

    pub(crate) fn notify_change(&self) {
        self.writer.notify_change();
    }

    /// Which database this store talks to: `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.db.get_database_backend() {
            DbBackend::Sqlite => "sqlite",
            DbBackend::Postgres => "postgres",
            DbBackend::MySql => "mysql",
            _ => "unknown",
        }
    }

    /// Answers if the database does.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(StoreError::from_connect)
    }

    /// The underlying connection, for tests that inspect tables directly.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }
}

/// A site as the store keeps it: with the H3 cell of its position, computed here only.
pub(crate) fn stored_record(
    site: hubdir_core::Site,
    etag: String,
    update_time: chrono::DateTime<chrono::Utc>,
    origin_seq: u64,
) -> Result<hubdir_core::SiteRecord, StoreError> {
    let h3_cell = hubdir_geo::site_cell(site.location)
        .ok_or_else(|| StoreError::Corrupt(format!("site {} has a non-finite location", site.name)))?;
    Ok(hubdir_core::SiteRecord { site, h3_cell, etag, update_time, origin_seq })
}

/// Microseconds since the Unix epoch: how every time is stored.
pub(crate) fn to_micros(time: chrono::DateTime<chrono::Utc>) -> i64 {
    time.timestamp_micros()
}

pub(crate) fn from_micros(us: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// How long opening a PostgreSQL store waits for the server's first answer.
const CONNECT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection, once, before the pool: the pool retries a refused connection until its
/// acquire timeout and then says only "pool timed out", while this fails within seconds
/// naming the server and the cause (refused, no answer, an unknown role or database).
async fn probe_postgres(url: &str) -> Result<(), StoreError> {
    use sea_orm::sqlx::Connection as _;
    use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection};
    let options: PgConnectOptions = url.parse().map_err(|err: sea_orm::sqlx::Error| StoreError::Connect {
        target: "PostgreSQL".into(),
        cause: format!("the URL does not parse: {err}"),
    })?;
    let target = format!(
        "PostgreSQL at {}:{} (database {}, user {})",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or(options.get_username()),
        options.get_username()
    );
    let cause = match tokio::time::timeout(CONNECT_PROBE_TIMEOUT, PgConnection::connect_with(&options)).await {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            return Ok(());
        }
        Err(_) => format!("no answer within {} s", CONNECT_PROBE_TIMEOUT.as_secs()),
        Ok(Err(err)) => connect_cause(&err),
    };
    Err(StoreError::Connect { target, cause })
}

/// One line saying why a connection failed, without the driver's source locations.
fn connect_cause(err: &sea_orm::sqlx::Error) -> String {
    use sea_orm::sqlx::Error;
    match err {
        Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused: is PostgreSQL running and listening there?".into()
        }
        Error::Io(io) => io.to_string(),
        Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}
