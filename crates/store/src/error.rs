use sea_orm::DbErr;

/// What can go wrong in the store. Database text never reaches a client: the service layer
/// maps `Unavailable` and `Database` to opaque messages and logs the chain.
/// Clone: one failed group commit answers every call of the group with the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("site {0} does not exist")]
    NotFound(String),
    #[error("site {0} already exists")]
    AlreadyExists(String),
    #[error("site {name} has changed since etag {expected} was read")]
    EtagMismatch { name: String, expected: String },
    #[error("origin {origin} cannot be written here: {why}")]
    NotOwned { origin: String, why: crate::NotOwned },
    #[error("the database cannot be reached")]
    Unavailable(#[source] DbErr),
    /// Opening the store failed: `target` names the server (host, port, database, user,
    /// never the password) and `cause` says why in one line.
    #[error("cannot connect to {target}: {cause}")]
    Connect { target: String, cause: String },
    #[error("database error")]
    Database(#[source] DbErr),
    /// The database's schema is not this binary's (`Schema::Require`), or could not be read.
    #[error("{0}")]
    Schema(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> StoreError {
        StoreError::from_connect(err)
    }
}

impl StoreError {
    pub(crate) fn from_connect(err: DbErr) -> StoreError {
        if is_transient(&err) { StoreError::Unavailable(err) } else { StoreError::Database(err) }
    }

    /// An error of a connection used directly through sqlx (leases, the migration lock).
    pub(crate) fn from_sqlx(err: sea_orm::sqlx::Error) -> StoreError {
        StoreError::from_connect(DbErr::Conn(sea_orm::RuntimeErr::SqlxError(std::sync::Arc::new(err))))
    }
}

/// Errors a client may retry: the database was unreachable, busy, or chose this transaction
/// as a deadlock or serialisation victim, or is shutting down.
fn is_transient(err: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::Error as Sqlx;
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => match e.as_ref() {
            Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed => true,
            // Each database's own codes: read as SQLite's, PostgreSQL's SQLSTATE 22021 (a NUL
            // in text, which can never succeed) looked like SQLITE_BUSY (22021 & 0xff = 5).
            Sqlx::Database(db) => match db.code() {
                None => false,
                Some(code) if db.try_downcast_ref::<sea_orm::sqlx::postgres::PgDatabaseError>().is_some() => {
                    is_transient_sqlstate(&code)
                }
                // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
                Some(code) => code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6)),
            },
            _ => false,
        },
        _ => false,
    }
}

/// PostgreSQL errors worth a retry: serialization_failure, deadlock_detected, the server
/// shutting down or not yet accepting (class 57P), too many connections, and lost
/// connections (class 08).
fn is_transient_sqlstate(code: &str) -> bool {
    matches!(code, "40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03") || code.starts_with("08")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_databases_are_unavailable_and_bugs_are_not() {
        let closed =
            DbErr::Query(sea_orm::RuntimeErr::SqlxError(std::sync::Arc::new(sea_orm::sqlx::Error::PoolClosed)));
        assert!(matches!(StoreError::from(closed), StoreError::Unavailable(_)));
        let bug = DbErr::Custom("no such column".into());
        assert!(matches!(StoreError::from(bug), StoreError::Database(_)));
    }

    #[test]
    fn postgres_codes_are_read_as_sqlstates() {
        // 22021 (NUL in text) ends in 0x05 like SQLITE_BUSY: never worth a retry.
        assert!(!is_transient_sqlstate("22021"));
        assert!(!is_transient_sqlstate("23505"));
        assert!(is_transient_sqlstate("40001") && is_transient_sqlstate("40P01") && is_transient_sqlstate("08006"));
    }
}
