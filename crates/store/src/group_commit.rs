//! Group commit: concurrent [`Store::write`](crate::Store::write) calls share one transaction
//! and so one durable commit, instead of paying a disk flush each; their statements are
//! batched too.
//!
//! A call queues its writes and waits. One task at a time (spawned by the call that found
//! nobody draining) takes everything queued once it holds the write transaction, writes the
//! group (`writes::write_group`: origins locked once, sites read once, each call planned in
//! memory, then multi-row statements), commits once and only then answers every call. One
//! call's refusal (a precondition, an origin not owned) is found in memory and refuses that
//! call alone, with its seqs given back, so the log stays gapless. If the group fails for
//! any reason but an unreachable database (a statement the database refused, a stored row
//! that cannot be read), it wrote nothing, and each of its calls is run again alone, so that
//! the call at fault fails by itself.
//!
//! The group runs in its own task, so a caller that goes away (a cancelled RPC) cannot
//! abandon the other calls' writes half-way. A call whose caller went away before its group
//! began is dropped, as a cancelled transaction would be; once its group has begun, it is
//! written, as a write whose answer was lost in the network would be.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex as SyncMutex};

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use tokio::sync::{Mutex, MutexGuard, oneshot, watch};
use tracing::Instrument;

use crate::StoreError;
use crate::sequencer::Owned;
use crate::signing::EventSigner;
use crate::writes::{Answer, Applied, Write, write_group};

/// A group takes queued calls until it holds this many writes (a call larger than that runs
/// alone), so one transaction stays bounded.
pub(crate) const MAX_GROUP_WRITES: usize = 2_000;

/// One call's writes, with what its store writes as and how to answer it.
struct Call {
    writes: Vec<Write>,
    owned: Arc<Owned>,
    signer: Option<Arc<dyn EventSigner>>,
    answer: oneshot::Sender<Answer>,
    /// The caller's span: the group's work is traced under its first call's.
    span: tracing::Span,
}

#[derive(Default)]
struct Queue {
    calls: VecDeque<Call>,
    /// Whether a task is draining the queue (it clears this, under the lock, when it finds
    /// the queue empty).
    draining: bool,
}

/// Everything a store's write transactions share: the database, SQLite's one writer at a
/// time, the change counter readers wake on, and the queue of calls waiting to be grouped.
#[derive(Debug)]
pub(crate) struct Writer {
    db: DatabaseConnection,
    /// SQLite allows one writer at a time: writers of this process queue here instead of
    /// polling the file lock.
    sqlite_turn: Option<Mutex<()>>,
    /// Counts commits that appended to the change log, so this process's readers of the log
    /// (the discovery index, peers' feeds) wake at once instead of at their next poll.
    changes: watch::Sender<u64>,
    queue: SyncMutex<Queue>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("calls", &self.calls.len()).field("draining", &self.draining).finish()
    }
}

impl Writer {
    pub(crate) fn new(db: DatabaseConnection, sqlite: bool) -> Writer {
        Writer {
            db,
            sqlite_turn: sqlite.then(|| Mutex::new(())),
            changes: watch::Sender::new(0),
            queue: SyncMutex::default(),
        }
    }

    /// A write transaction: on SQLite, this process's writers take turns (the guard) and the
    /// transaction takes the database's write lock at once (`BEGIN IMMEDIATE`), so it never
    /// fails half-way for a lock it could have waited for.
    pub(crate) async fn begin(&self) -> Result<(Option<MutexGuard<'_, ()>>, DatabaseTransaction), StoreError> {
        let turn = match &self.sqlite_turn {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let txn = self
            .db
            .begin_with_options(sea_orm::TransactionOptions {
                sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                ..sea_orm::TransactionOptions::default()
            })
            .await?;
        Ok((turn, txn))
    }

    pub(crate) fn watch_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(crate) fn notify_change(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Queues `writes` for the next group and waits until the group has committed.
    pub(crate) async fn submit(
        self: &Arc<Self>,
        writes: Vec<Write>,
        owned: Arc<Owned>,
        signer: Option<Arc<dyn EventSigner>>,
    ) -> Answer {
        let (answer, answered) = oneshot::channel();
        let start_draining = {
            let mut queue = self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            queue.calls.push_back(Call { writes, owned, signer, answer, span: tracing::Span::current() });
            !std::mem::replace(&mut queue.draining, true)
        };
        if start_draining {
            // The guard is made here, so that even a task dropped before it first runs (its
            // runtime stopping) clears `draining`.
            tokio::spawn(drain(Draining { writer: Arc::clone(self), finished: false }));
        }
        answered.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(DbErr::Custom(
                "the store's writer stopped (the process is stopping) before answering; read the site to see \
                 whether the write was committed"
                    .into(),
            )))
        })
    }

    /// True, with draining cleared under the same lock, if nothing is queued: a call queued
    /// after that starts a new drain.
    fn lock_queue_if_empty(&self) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if queue.calls.is_empty() {
            queue.draining = false;
            true
        } else {
            false
        }
    }

    /// Takes the calls queued by the time the transaction began, up to the group's bound,
    /// as long as they write as the same store (its origins and signer).
    fn take_group(&self) -> Vec<Call> {
        let mut queue = self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut group: Vec<Call> = Vec::new();
        let mut writes = 0;
        while let Some(call) = queue.calls.front() {
            if call.answer.is_closed() {
                // Its caller went away before its write was attempted: as a cancelled
                // transaction, it writes nothing.
                queue.calls.pop_front();
                continue;
            }
            if let Some(first) = group.first()
                && (writes + call.writes.len() > MAX_GROUP_WRITES || !first.writes_as(call))
            {
                break;
            }
            writes += call.writes.len();
            group.extend(queue.calls.pop_front());
        }
        group
    }

    /// One transaction for the whole group, one commit, then every answer.
    async fn run_group(&self) {
        let begun = self.begin().await;
        let group = self.take_group();
        let Some(first) = group.first() else { return };
        let (owned, signer) = (first.owned.clone(), first.signer.clone());
        let span = tracing::debug_span!(parent: &first.span, "store.group_commit", calls = group.len());
        let (calls, replies): (Vec<_>, Vec<_>) = group.into_iter().map(|call| (call.writes, call.answer)).unzip();
        let outcome = match begun {
            Ok((turn, txn)) => commit(turn, txn, &calls, &owned, signer.as_deref()).instrument(span).await,
            Err(err) => Err(err),
        };
        match outcome {
            Ok(answers) => self.answer(replies.into_iter().zip(answers)),
            // One call's data, or one stored row it reads, may be what failed: each call
            // again, alone. A database that cannot be reached fails them all.
            Err(err) if calls.len() > 1 && !matches!(err, StoreError::Unavailable(_)) => {
                for (call, reply) in calls.into_iter().zip(replies) {
                    let alone = std::slice::from_ref(&call);
                    let answer = match self.begin().await {
                        Ok((turn, txn)) => commit(turn, txn, alone, &owned, signer.as_deref()).await,
                        Err(err) => Err(err),
                    };
                    let answer = answer.and_then(|mut answers| answers.remove(0));
                    self.answer([(reply, answer)]);
                }
            }
            Err(err) => {
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }

    /// Answers committed calls, after waking the change log's readers if any call wrote.
    fn answer(&self, answers: impl IntoIterator<Item = (oneshot::Sender<Answer>, Answer)>) {
        let answers: Vec<_> = answers.into_iter().collect();
        if answers.iter().any(|(_, answer)| answer.as_ref().is_ok_and(|applied| applied.iter().any(appended))) {
            self.notify_change();
        }
        for (reply, answer) in answers {
            let _ = reply.send(answer);
        }
    }
}

impl Call {
    /// Whether both calls write as the same store (a group shares its origins and signer).
    fn writes_as(&self, other: &Call) -> bool {
        let same_signer = match (&self.signer, &other.signer) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        Arc::ptr_eq(&self.owned, &other.owned) && same_signer
    }
}

/// Writes `calls` in the transaction and commits it: each call's answer, or the group's error.
async fn commit(
    turn: Option<MutexGuard<'_, ()>>,
    txn: DatabaseTransaction,
    calls: &[Vec<Write>],
    owned: &Owned,
    signer: Option<&dyn EventSigner>,
) -> Result<Vec<Answer>, StoreError> {
    let answers = write_group(&txn, calls, owned, signer).await?;
    txn.commit().await?;
    drop(turn);
    Ok(answers)
}

/// Whether a write appended to the change log.
fn appended(applied: &Applied) -> bool {
    matches!(applied, Applied::Created(_) | Applied::Updated(_) | Applied::Deleted { .. })
}

/// Runs groups until the queue is empty.
async fn drain(mut guard: Draining) {
    loop {
        if guard.writer.lock_queue_if_empty() {
            guard.finished = true;
            return;
        }
        guard.writer.run_group().await;
    }
}

/// The draining task's hold on the queue. Clears `draining` if the task is dropped before it
/// finished (its runtime shut down, before or after it first ran), so that a later call
/// starts a new drain instead of waiting forever; the calls still queued are dropped, and
/// their callers told the write was abandoned.
struct Draining {
    writer: Arc<Writer>,
    finished: bool,
}

impl Drop for Draining {
    fn drop(&mut self) {
        if !self.finished {
            let mut queue = self.writer.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            queue.calls.clear();
            queue.draining = false;
        }
    }
}
