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
        match err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => StoreError::Unavailable(err),
            other => StoreError::Database(other),
        }
    }
}
