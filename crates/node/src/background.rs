//! Tasks a service runs beside its RPCs (the discovery index's follower, the connectivity
//! roll-up, the federation followers and feeds). They start through [`Background::spawn`], so
//! that a shutdown stops every one of them within the drain deadline instead of leaving them
//! to be killed with the process half-way through a write.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The background tasks of one serving process.
#[derive(Debug, Clone, Default)]
pub struct Background {
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Background {
    /// Runs `task` until it ends or the process stops. Stopping drops the task at its next
    /// await: a transaction it holds rolls back, nothing is half-written.
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => tracing::debug!(task = name, "background task stopped"),
                () = task => tracing::debug!(task = name, "background task ended"),
            }
        });
    }

    /// How many tasks are running.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Tells every task to stop, and waits at most `deadline` for them; returns whether
    /// they all stopped. Tasks spawned afterwards stop at once.
    pub async fn stop(&self, deadline: Duration) -> bool {
        self.cancel.cancel();
        self.tracker.close();
        tokio::time::timeout(deadline, self.tracker.wait()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_ends_every_task_and_later_ones_at_once() {
        let background = Background::default();
        let (dropped_tx, mut dropped_rx) = tokio::sync::mpsc::channel::<()>(2);
        for _ in 0..2 {
            let guard = dropped_tx.clone();
            background.spawn("forever", async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            });
        }
        drop(dropped_tx);
        assert_eq!(background.running(), 2);
        assert!(background.stop(Duration::from_secs(5)).await);
        assert_eq!(background.running(), 0);
        // Both tasks were dropped (their senders with them): the channel is closed.
        assert_eq!(dropped_rx.recv().await, None);
        background.spawn("late", std::future::pending());
        assert!(background.stop(Duration::from_secs(5)).await);
    }
}
