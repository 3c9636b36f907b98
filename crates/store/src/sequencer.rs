//! The one place where an origin's change-log position is taken: every writer of the change
//! log (site writes, connectivity reports, peers' events) locks the origins it appends to
//! here, and this module holds the ownership rule that keeps the two kinds apart.
//!
//! An origin's log is either **written here** (this node's own origin: seqs are handed out
//! by [`Local`]) or **applied from peers** (another node's origin: seqs are the origin's own,
//! taken from its verified events by [`Remote`]). The first writer of an origin records which
//! (`origin_sequences.remote`), and that never changes: a local write into an origin applied
//! from peers is refused, and so is a peer's event of an origin written here. A local write
//! can therefore never take a seq that a peer's event of the same origin will carry. On top of
//! that, a store told which origins it owns ([`Store::owning`](crate::Store::owning), as every
//! node is) writes locally into those only.
//!
//! A local write locks its origins in origin order (a sorted set), so local writers never
//! deadlock: `BEGIN IMMEDIATE` on SQLite, `SELECT ... FOR UPDATE` on PostgreSQL. A peer's
//! batch locks origins in the order its events arrive; on PostgreSQL two such batches may
//! deadlock, and the loser is retried (40P01 is UNAVAILABLE). A rolled-back transaction gives
//! its numbers back, so each log stays gapless.

use std::collections::{BTreeMap, BTreeSet};

use hubdir_core::Origin;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect};

use crate::entity::origin_sequences;
use crate::{StoreError, to_micros};

/// Which origins a store may write locally.
#[derive(Debug, Clone, Default)]
pub(crate) enum Owned {
    /// Any origin that is not applied from peers (tools and tests that were given no node id).
    #[default]
    AnyNotRemote,
    /// These only (a node: its own id).
    Only(BTreeSet<Origin>),
}

impl Owned {
    fn allows(&self, origin: &Origin) -> bool {
        match self {
            Owned::AnyNotRemote => true,
            Owned::Only(origins) => origins.contains(origin),
        }
    }

    /// Whether `origin` is named as this node's own.
    fn names(&self, origin: &Origin) -> bool {
        matches!(self, Owned::Only(origins) if origins.contains(origin))
    }
}

/// Why a local write may not append to an origin's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotOwned {
    /// The store was told it owns other origins.
    OtherNode,
    /// The origin's log is applied from peers' verified events.
    AppliedFromPeers,
}

impl std::fmt::Display for NotOwned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotOwned::OtherNode => "it is not this node's origin",
            NotOwned::AppliedFromPeers => "this node applies it from its peers' signed events",
        })
    }
}

/// One origin's log position, locked for the transaction.
#[derive(Debug, Clone)]
pub(crate) struct Position {
    /// The incarnation of the log the seqs belong to.
    pub epoch: String,
    /// The last seq held when the lock was taken.
    pub locked_at: u64,
    /// The last seq held now (handed out, or applied).
    pub last: u64,
    pub compacted_through: u64,
    /// Whether this transaction created the origin's row.
    pub created: bool,
}

/// Creates the origin's row if needed (recording which side writes it), locks it, and returns
/// it with the side it was created for, and whether this call created it.
async fn lock_row(
    txn: &DatabaseTransaction,
    origin: &Origin,
    remote: bool,
    epoch: String,
) -> Result<(origin_sequences::Model, bool), StoreError> {
    let row = origin_sequences::ActiveModel {
        origin: Set(origin.to_string()),
        last_seq: Set(0),
        epoch: Set(epoch),
        compacted_through: Set(0),
        remote: Set(remote),
    };
    let created = origin_sequences::Entity::insert(row)
        .on_conflict(OnConflict::column(origin_sequences::Column::Origin).do_nothing().to_owned())
        .exec_without_returning(txn)
        .await?
        == 1;
    let row = origin_sequences::Entity::find_by_id(origin.to_string())
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("sequence row of origin {origin} vanished")))?;
    Ok((row, created))
}

fn position(row: &origin_sequences::Model, created: bool) -> Result<Position, StoreError> {
    let seq = |v: i64| u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative seq of {}", row.origin)));
    let last = seq(row.last_seq)?;
    Ok(Position {
        epoch: row.epoch.clone(),
        locked_at: last,
        last,
        compacted_through: seq(row.compacted_through)?,
        created,
    })
}

/// The logs of this node's own origins that one transaction appends to.
#[derive(Debug, Default)]
pub(crate) struct Local {
    held: BTreeMap<Origin, Position>,
    refused: BTreeMap<Origin, NotOwned>,
}

impl Local {
    /// Locks each origin this store may write (in order); the others are refused, with why.
    pub(crate) async fn lock(
        txn: &DatabaseTransaction,
        owned: &Owned,
        origins: BTreeSet<Origin>,
    ) -> Result<Local, StoreError> {
        let mut local = Local::default();
        for origin in origins {
            if !owned.allows(&origin) {
                local.refused.insert(origin, NotOwned::OtherNode);
                continue;
            }
            // A fresh epoch per incarnation of the origin's log: a recreated database gets a
            // new one.
            let (row, created) = lock_row(txn, &origin, false, format!("{:x}", to_micros(chrono::Utc::now()))).await?;
            if row.remote && owned.names(&origin) {
                // Named this node's own, it is written here: a row marked otherwise (m0006
                // guessed from a cursor a node once kept for its own origin) is corrected.
                origin_sequences::Entity::update_many()
                    .col_expr(origin_sequences::Column::Remote, false.into())
                    .filter(origin_sequences::Column::Origin.eq(origin.as_str()))
                    .exec(txn)
                    .await?;
                local.held.insert(origin, position(&row, created)?);
            } else if row.remote {
                local.refused.insert(origin, NotOwned::AppliedFromPeers);
            } else {
                local.held.insert(origin, position(&row, created)?);
            }
        }
        Ok(local)
    }

    /// Why `origin` may not be written, if it may not.
    pub(crate) fn refusal(&self, origin: &Origin) -> Option<&NotOwned> {
        self.refused.get(origin)
    }

    /// The first of `origins` that is refused, as the error a call writing them fails with.
    pub(crate) fn require_all<'a>(&self, origins: impl IntoIterator<Item = &'a Origin>) -> Result<(), StoreError> {
        let origins: BTreeSet<&Origin> = origins.into_iter().collect();
        match origins.into_iter().find_map(|origin| Some((origin, self.refused.get(origin)?))) {
            Some((origin, why)) => Err(StoreError::NotOwned { origin: origin.to_string(), why: why.clone() }),
            None => Ok(()),
        }
    }

    /// Where each log stands now, to [`rewind`](Local::rewind) to if a call is refused.
    pub(crate) fn mark(&self) -> Vec<u64> {
        self.held.values().map(|position| position.last).collect()
    }

    /// Gives back the seqs handed out since `mark`.
    pub(crate) fn rewind(&mut self, mark: &[u64]) {
        for (position, last) in self.held.values_mut().zip(mark) {
            position.last = *last;
        }
    }

    /// Hands out the origin's next seq; returns it with the log's epoch.
    pub(crate) fn next(&mut self, origin: &Origin) -> Result<(u64, &str), StoreError> {
        let position =
            self.held.get_mut(origin).ok_or_else(|| StoreError::Corrupt(format!("origin {origin} not locked")))?;
        position.last += 1;
        Ok((position.last, &position.epoch))
    }

    /// Records the seqs handed out. A row this transaction created and never used is removed,
    /// so an origin nothing was written to stays unclaimed (a peer's events of it may come).
    pub(crate) async fn finish(self, txn: &DatabaseTransaction) -> Result<(), StoreError> {
        for (origin, position) in self.held {
            if position.created && position.last == 0 {
                origin_sequences::Entity::delete_by_id(origin.to_string()).exec(txn).await?;
            } else if position.last != position.locked_at {
                origin_sequences::Entity::update_many()
                    .col_expr(origin_sequences::Column::LastSeq, (position.last as i64).into())
                    .filter(origin_sequences::Column::Origin.eq(origin.as_str()))
                    .exec(txn)
                    .await?;
            }
        }
        Ok(())
    }
}

/// The logs of other nodes' origins that one transaction applies peers' events to.
#[derive(Debug, Default)]
pub(crate) struct Remote {
    held: BTreeMap<Origin, Option<Position>>,
}

impl Remote {
    /// The origin's position here (locked, created with `epoch` if new); `None` if the origin
    /// is this node's own or written here, so no peer's event may enter its log.
    pub(crate) async fn lock(
        &mut self,
        txn: &DatabaseTransaction,
        owned: &Owned,
        origin: &Origin,
        epoch: &str,
    ) -> Result<Option<&mut Position>, StoreError> {
        if !self.held.contains_key(origin) {
            let held = if owned.names(origin) {
                None
            } else {
                let (row, created) = lock_row(txn, origin, true, epoch.to_owned()).await?;
                if row.remote { Some(position(&row, created)?) } else { None }
            };
            self.held.insert(origin.clone(), held);
        }
        Ok(self.held.get_mut(origin).and_then(Option::as_mut))
    }

    /// Records each origin's position, epoch and horizon.
    pub(crate) async fn finish(self, txn: &DatabaseTransaction) -> Result<(), StoreError> {
        for (origin, position) in self.held {
            let Some(position) = position else { continue };
            origin_sequences::Entity::update_many()
                .col_expr(origin_sequences::Column::LastSeq, (position.last as i64).into())
                .col_expr(origin_sequences::Column::Epoch, position.epoch.clone().into())
                .col_expr(origin_sequences::Column::CompactedThrough, (position.compacted_through as i64).into())
                .filter(origin_sequences::Column::Origin.eq(origin.as_str()))
                .exec(txn)
                .await?;
        }
        Ok(())
    }
}
