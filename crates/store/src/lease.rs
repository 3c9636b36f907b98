//! Leases: work that must run in exactly one process of a node, however many replicas share
//! its database (the federation followers, the connectivity roll-up).
//!
//! On PostgreSQL a lease is a session-level advisory lock held on a connection of its own,
//! taken out of the pool. PostgreSQL releases it when that session ends: when the holder
//! releases it, exits, or dies (`kill -9`: the server sees the socket close). Another
//! replica's next `try_lease` then takes it. The lock's key is derived from the database,
//! the schema and the lease's name, so nodes sharing one server in separate schemas never
//! contend.
//!
//! On SQLite a lease is always granted: a SQLite node is one process on one host.
//!
//! A lease needs a real session: behind PgBouncer in transaction mode, advisory locks are
//! not leases. When the server ends a holder's session (a failover, `pg_terminate_backend`),
//! the holder learns it at its next check, so two processes may both run for up to
//! `lease_retry_secs` plus 10 s; the work under leases is idempotent.

use std::time::Duration;

use sea_orm::DbBackend;
use sea_orm::sqlx::{Connection, Executor, PgConnection};

use crate::{Store, StoreError};

/// How long the holder waits for its lease's connection to answer before it counts the
/// lease as lost.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Takes the advisory lock keyed by the database, the schema and the lease's name.
const TRY_LOCK: &str = "SELECT pg_try_advisory_lock(('x' || substr(md5(current_database() || '/' || \
                        current_schema() || '/' || $1), 1, 16))::bit(64)::bigint)";

/// Releases that lock: at once, where closing the session releases it only when the server's
/// backend process has gone, a moment later.
const UNLOCK: &str = "SELECT pg_advisory_unlock(('x' || substr(md5(current_database() || '/' || \
                      current_schema() || '/' || $1), 1, 16))::bit(64)::bigint)";

/// Server-side TCP keepalive for a lease's session: a holder whose host vanishes (power, a
/// partition) is noticed after 10 s of silence and 3 unanswered probes 5 s apart, and its
/// lock released, instead of after the operating system's default of two hours.
const KEEPALIVE: &str = "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3";

/// A held lease; dropping it releases it.
#[derive(Debug)]
pub struct Lease {
    name: String,
    /// The session holding the advisory lock; `None` on SQLite.
    session: Option<PgConnection>,
}

impl Store {
    /// Takes the lease `name` if no other process holds it; `None` if one does.
    pub async fn try_lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return Ok(Some(Lease { name: name.to_owned(), session: None }));
        }
        let mut pooled = self.db.get_postgres_connection_pool().acquire().await.map_err(StoreError::from_sqlx)?;
        let taken: bool = sea_orm::sqlx::query_scalar(TRY_LOCK)
            .bind(name)
            .fetch_one(&mut *pooled)
            .await
            .map_err(StoreError::from_sqlx)?;
        if !taken {
            // Back to the pool: it holds no lock.
            return Ok(None);
        }
        // The session leaves the pool with the lock, and tells the server to notice within
        // about 25 s if this host goes silent, so another replica can take over.
        let mut session = pooled.detach();
        session.execute(KEEPALIVE).await.map_err(StoreError::from_sqlx)?;
        Ok(Some(Lease { name: name.to_owned(), session: Some(session) }))
    }
}

impl Lease {
    /// Checks, every `every`, that the lease is still held; returns why once it is not (its
    /// session broke or stopped answering, so PostgreSQL has released the lock or soon will).
    /// Never returns on SQLite.
    pub async fn lost(&mut self, every: Duration) -> StoreError {
        let Some(session) = self.session.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(every).await;
            match tokio::time::timeout(CHECK_TIMEOUT, session.ping()).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => return StoreError::from_sqlx(err),
                Err(_) => {
                    let why = format!("the session holding lease {} stopped answering", self.name);
                    return StoreError::Unavailable(sea_orm::DbErr::Custom(why));
                }
            }
        }
    }

    /// Releases the lease now, rather than when the session closes.
    pub async fn release(mut self) {
        if let Some(mut session) = self.session.take() {
            // Unlock first, so the next holder can take the lease as soon as this returns;
            // a session that fails here still releases the lock as it closes.
            let _ = sea_orm::sqlx::query_scalar::<_, bool>(UNLOCK).bind(&self.name).fetch_one(&mut session).await;
            let _ = session.close().await;
        }
    }
}
