use sea_orm::DbErr;

/// What can go wrong in the store. Database text never reaches a client: the service layer
/// maps `Unavailable` and `Database` to opaque messages and logs the chain.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("site {0} does not exist")]
    NotFound(String),
    #[error("site {0} already exists")]
    AlreadyExists(String),
    #[error("site {name} has changed since etag {expected} was read")]
    EtagMismatch { name: String, expected: String },
    #[error("the database cannot be reached")]
    Unavailable(#[source] DbErr),
    #[error("database error")]
    Database(#[source] DbErr),
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
            // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with extended codes; PostgreSQL
            // serialization_failure, deadlock_detected, admin_shutdown.
            Sqlx::Database(db) => db.code().is_some_and(|code| {
                let code = code.as_ref();
                matches!(code, "40001" | "40P01" | "57P01")
                    || code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
            }),
            _ => false,
        },
        _ => false,
    }
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
}
