//! The change log read back: events after a position, snapshots (the latest events of every
//! site, for followers behind a compacted log or from another epoch), and compaction.
//!
//! An event is *superseded* by a later event of the same site when the later one is an
//! UPSERT or DELETE, or when both are STATUS events: a site's last record event and the last
//! status after it say everything the earlier ones did. A peer's event that this node could
//! not apply (kept without its payload) supersedes nothing.

use hubdir_core::connectivity::StatusSummary;
use hubdir_core::{Origin, Site, SiteName, SiteRecord};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query, SelectStatement};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entity::{change_log, origin_sequences};
use crate::{Store, StoreError, from_micros};

/// What an event did to its site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    Upsert,
    Delete,
    /// A site's connectivity state or class changed (payload: `StatusSummary` JSON).
    Status,
}

/// One event of an origin's change log.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub origin: String,
    pub seq: u64,
    pub site_name: String,
    pub op: ChangeOp,
    /// The site after the change (JSON of `hubdir_core::Site`); `None` for a tombstone.
    pub payload: Option<Vec<u8>>,
    pub time: chrono::DateTime<chrono::Utc>,
    /// The event as its origin signed it; `None` if written without a signer.
    pub signed: Option<crate::SignedBytes>,
}

/// What an event says, decoded as the store wrote it: what a reader of the log (the
/// discovery index) applies, with the site's cell and etag as the store computes them.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeBody {
    /// The site as it is after the change.
    Upsert(Box<SiteRecord>),
    Delete(SiteName),
    Status(SiteName, StatusSummary),
    /// A peer's event this node verified but could not apply: logged without its content
    /// (it is in the federation quarantine); a reader skips it.
    Withheld,
}

impl ChangeEvent {
    /// The event's content. An event this version cannot read is `Corrupt`, naming its
    /// origin and seq.
    pub fn body(&self) -> Result<ChangeBody, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("event {} of {}: {what}", self.seq, self.origin));
        let name: SiteName = self.site_name.parse().map_err(|_| corrupt("the site name is invalid"))?;
        let Some(payload) = &self.payload else {
            return Ok(match self.op {
                ChangeOp::Delete => ChangeBody::Delete(name),
                ChangeOp::Upsert | ChangeOp::Status => ChangeBody::Withheld,
            });
        };
        match self.op {
            ChangeOp::Upsert => {
                let site: Site = serde_json::from_slice(payload).map_err(|e| corrupt(&format!("the site: {e}")))?;
                let etag = Site::etag_of(payload);
                Ok(ChangeBody::Upsert(Box::new(crate::stored_record(site, etag, self.time, self.seq)?)))
            }
            ChangeOp::Status => {
                let status = serde_json::from_slice(payload).map_err(|e| corrupt(&format!("the status: {e}")))?;
                Ok(ChangeBody::Status(name, status))
            }
            ChangeOp::Delete => Ok(ChangeBody::Delete(name)),
        }
    }
}

/// One origin's log as held here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginLog {
    pub origin: Origin,
    /// The last seq held.
    pub last_seq: u64,
    /// The incarnation of the origin's log the seqs belong to.
    pub epoch: String,
    /// Up to this seq the log may have holes: a reader behind it needs a snapshot.
    pub compacted_through: u64,
}

impl ChangeOp {
    /// How the change log stores it.
    pub fn code(self) -> &'static str {
        match self {
            ChangeOp::Upsert => "UPSERT",
            ChangeOp::Delete => "DELETE",
            ChangeOp::Status => "STATUS",
        }
    }
}

fn event_from_row(row: change_log::Model) -> Result<ChangeEvent, StoreError> {
    let op = match row.op.as_str() {
        "UPSERT" => ChangeOp::Upsert,
        "DELETE" => ChangeOp::Delete,
        "STATUS" => ChangeOp::Status,
        other => return Err(StoreError::Corrupt(format!("change log op {other:?}"))),
    };
    Ok(ChangeEvent {
        origin: row.origin,
        seq: row.seq as u64,
        site_name: row.site_name,
        op,
        payload: row.payload,
        time: from_micros(row.event_time_us),
        signed: match (row.event_bytes, row.key_id, row.signature) {
            (Some(bytes), Some(key_id), Some(signature)) => Some(crate::SignedBytes { bytes, key_id, signature }),
            _ => None,
        },
    })
}

/// The events that supersede the outer query's `change_log` row, among those up to `through`
/// (all of them if `None`).
fn superseding(through: Option<u64>) -> SelectStatement {
    let later = Alias::new("later");
    let outer = |c: change_log::Column| Expr::col((change_log::Entity, c));
    let inner = |c: change_log::Column| Expr::col((later.clone(), c));
    let mut query = Query::select();
    query
        .expr(Expr::val(1))
        .from_as(change_log::Entity, later.clone())
        .and_where(inner(change_log::Column::SiteName).equals((change_log::Entity, change_log::Column::SiteName)))
        .and_where(inner(change_log::Column::Seq).gt(outer(change_log::Column::Seq)))
        .cond_where(
            Condition::any()
                .add(inner(change_log::Column::Op).ne("STATUS"))
                .add(outer(change_log::Column::Op).eq("STATUS")),
        )
        // A peer's event this node could not apply (logged without its payload; a tombstone
        // has none either) supersedes nothing: the site still holds what came before it.
        .cond_where(
            Condition::any()
                .add(inner(change_log::Column::Op).eq("DELETE"))
                .add(inner(change_log::Column::Payload).is_not_null()),
        );
    if let Some(through) = through {
        query.and_where(inner(change_log::Column::Seq).lte(through as i64));
    }
    query
}

impl Store {
    /// Up to `limit` events of `origin` after `after_seq`, in sequence order.
    #[tracing::instrument(level = "debug", name = "store.changes_after", skip_all)]
    pub async fn changes_after(
        &self,
        origin: &Origin,
        after_seq: u64,
        limit: u64,
    ) -> Result<Vec<ChangeEvent>, StoreError> {
        change_log::Entity::find()
            .filter(change_log::Column::Origin.eq(origin.as_str()))
            .filter(change_log::Column::Seq.gt(after_seq as i64))
            .order_by_asc(change_log::Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(event_from_row)
            .collect()
    }

    /// A page of the snapshot of `origin` at `through`: the events after `after_seq` and up to
    /// `through` that no event up to `through` supersedes (tombstones included), in sequence
    /// order. Applied in that order they bring a reader at `after_seq` to the origin's state
    /// at `through`.
    #[tracing::instrument(level = "debug", name = "store.snapshot_after", skip_all)]
    pub async fn snapshot_after(
        &self,
        origin: &Origin,
        after_seq: u64,
        through: u64,
        limit: u64,
    ) -> Result<Vec<ChangeEvent>, StoreError> {
        change_log::Entity::find()
            .filter(change_log::Column::Origin.eq(origin.as_str()))
            .filter(change_log::Column::Seq.gt(after_seq as i64))
            .filter(change_log::Column::Seq.lte(through as i64))
            .filter(Expr::exists(superseding(Some(through))).not())
            .order_by_asc(change_log::Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(event_from_row)
            .collect()
    }

    /// Removes the superseded events of `origin` up to its current last seq, and records that
    /// its log has holes up to there (readers behind it get a snapshot). Returns how many
    /// events were removed.
    pub async fn compact(&self, origin: &Origin) -> Result<u64, StoreError> {
        let (_sqlite_turn, txn) = self.begin_write().await?;
        let Some(log) = origin_sequences::Entity::find_by_id(origin.to_string()).lock_exclusive().one(&txn).await?
        else {
            return Ok(0);
        };
        let removed = change_log::Entity::delete_many()
            .filter(change_log::Column::Origin.eq(origin.as_str()))
            .filter(change_log::Column::Seq.lte(log.last_seq))
            .filter(Expr::exists(superseding(None)))
            .exec(&txn)
            .await?
            .rows_affected;
        origin_sequences::Entity::update_many()
            .col_expr(origin_sequences::Column::CompactedThrough, log.last_seq.into())
            .filter(origin_sequences::Column::Origin.eq(origin.as_str()))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(removed)
    }

    /// Every origin's log held here, in origin order.
    pub async fn origin_logs(&self) -> Result<Vec<OriginLog>, StoreError> {
        origin_sequences::Entity::find()
            .order_by_asc(origin_sequences::Column::Origin)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| {
                let origin = row.origin.parse().map_err(|_| StoreError::Corrupt(format!("origin {:?}", row.origin)))?;
                Ok(OriginLog {
                    origin,
                    last_seq: row.last_seq as u64,
                    epoch: row.epoch,
                    compacted_through: row.compacted_through as u64,
                })
            })
            .collect()
    }

    /// Every origin this store holds events of, with its last sequence number.
    pub async fn origin_seqs(&self) -> Result<Vec<(Origin, u64)>, StoreError> {
        Ok(self.origin_logs().await?.into_iter().map(|log| (log.origin, log.last_seq)).collect())
    }

    /// The last sequence number handed out for `origin`; 0 if it never wrote.
    pub async fn last_seq(&self, origin: &Origin) -> Result<u64, StoreError> {
        Ok(origin_sequences::Entity::find_by_id(origin.to_string())
            .one(&self.db)
            .await?
            .map_or(0, |row| row.last_seq as u64))
    }
}
