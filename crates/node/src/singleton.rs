//! Work that runs in one process of a node at a time, however many replicas it has: the
//! federation followers and the connectivity roll-up. Each runs under a lease
//! (`hubdir_store::Lease`, a PostgreSQL advisory lock); the other replicas stand by and one
//! of them takes over within `store.lease_retry_secs` of the holder's death.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hubdir_store::Store;

use crate::server::NodeContext;

/// Starts `task` as the node's background task `what`, under the lease `lease` ([`run`]),
/// trying to take it every `store.lease_retry_secs`.
pub fn spawn<F, Fut>(ctx: &NodeContext, what: &'static str, lease: String, task: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let retry = ctx.config.store.lease_retry();
    ctx.background.spawn(what, run(ctx.store.clone(), lease, retry, task));
}

/// Runs `task()` while this process holds the lease `name`. While another process holds it,
/// tries again every `retry`. A lost lease (its database session broke) stops the task,
/// which starts afresh once the lease is taken again; the tasks run under leases resume from
/// what the database holds (a follower from its cursors), so a restart loses nothing.
async fn run<F, Fut>(store: Arc<Store>, name: String, retry: Duration, task: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut standing_by = false;
    loop {
        match store.try_lease(&name).await {
            Ok(Some(mut lease)) => {
                tracing::info!(lease = %name, "lease taken: this process runs the task");
                standing_by = false;
                tokio::select! {
                    () = task() => {
                        lease.release().await;
                        return;
                    }
                    err = lease.lost(retry) => {
                        tracing::warn!(lease = %name, error = %err, "lease lost: the task stops until it is taken again");
                    }
                }
            }
            Ok(None) if !standing_by => {
                tracing::info!(lease = %name, "another process holds the lease: standing by");
                standing_by = true;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(lease = %name, error = %err, "cannot take the lease; trying again"),
        }
        tokio::time::sleep(retry).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubdir_store::testing::{Backend, TestDb, end_lease_session};
    use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

    /// Tells when the task it lives in is dropped.
    struct Dropped(UnboundedSender<()>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }

    async fn within<T>(what: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(30), what).await.expect("within 30 s")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_lease_stops_the_task_which_runs_again_once_the_lease_is_retaken() {
        let Some(db) = TestDb::new(Backend::Postgres).await else { return };
        let store = Arc::new(db.store().await);
        let (started_tx, mut started) = unbounded_channel();
        let (dropped_tx, mut dropped) = unbounded_channel();
        let task = move || {
            let (started, dropped) = (started_tx.clone(), Dropped(dropped_tx.clone()));
            async move {
                let _dropped = dropped;
                let _ = started.send(());
                std::future::pending::<()>().await;
            }
        };
        let runner = tokio::spawn(run(store.clone(), "test.singleton".into(), Duration::from_millis(50), task));
        within(started.recv()).await.expect("the task starts under the lease");

        end_lease_session(&store, "test.singleton").await;
        within(dropped.recv()).await.expect("the task stops when the lease is lost");
        within(started.recv()).await.expect("and starts again once the lease is retaken");
        runner.abort();
    }
}
