//! Applying a peer's verified event: the site change, the event itself (with its origin's seq
//! and signed bytes, unchanged, so this node can relay it and digests compare) and the
//! follower's cursor, all in one transaction. Replays are no-ops; a gap is refused.

use chrono::{DateTime, Utc};
use hubdir_core::connectivity::StatusSummary;
use hubdir_core::{Origin, Site, SiteRecord};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect};

use crate::entity::{change_log, origin_sequences, peer_cursors, site_services, sites};
use crate::signing::SignedBytes;
use crate::writes::site_row;
use crate::{Store, StoreError, to_micros};

/// What a verified event from a peer says.
#[derive(Debug, Clone)]
pub enum RemoteChange {
    Upsert(Box<Site>),
    Delete,
    Status(StatusSummary),
}

/// A verified event of another origin, as received.
#[derive(Debug, Clone)]
pub struct RemoteEvent {
    pub origin: Origin,
    pub seq: u64,
    pub epoch: String,
    pub site_name: String,
    pub change: RemoteChange,
    pub time: DateTime<Utc>,
    pub signed: SignedBytes,
}

/// What applying a remote event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteApplied {
    Applied,
    /// Already held (a replay): nothing changed but the cursor.
    Duplicate,
}

/// The origin's log position here, creating it with the origin's epoch if new; locked.
async fn lock_remote_origin(
    txn: &DatabaseTransaction,
    origin: &Origin,
    epoch: &str,
) -> Result<(u64, String), StoreError> {
    let row = origin_sequences::ActiveModel {
        origin: Set(origin.to_string()),
        last_seq: Set(0),
        epoch: Set(epoch.to_owned()),
    };
    let _ = origin_sequences::Entity::insert(row)
        .on_conflict(OnConflict::column(origin_sequences::Column::Origin).do_nothing().to_owned())
        .exec_without_returning(txn)
        .await?;
    let locked = origin_sequences::Entity::find_by_id(origin.to_string())
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("sequence row of origin {origin} vanished")))?;
    Ok((locked.last_seq as u64, locked.epoch))
}

impl Store {
    /// Applies one verified event from `peer` and moves that peer's cursor, in one
    /// transaction. An event at or below the held seq is a replay (no-op); one that skips a
    /// seq, or belongs to another epoch than the one held, is refused (`StoreError::Gap`).
    pub async fn apply_remote(&self, peer: &str, event: RemoteEvent) -> Result<RemoteApplied, StoreError> {
        let (_sqlite_turn, txn) = self.begin_write().await?;
        let (last, epoch) = lock_remote_origin(&txn, &event.origin, &event.epoch).await?;
        if epoch != event.epoch {
            return Err(StoreError::Gap(format!(
                "origin {} is held at epoch {epoch}, the event is of epoch {}",
                event.origin, event.epoch
            )));
        }
        let outcome = if event.seq <= last {
            RemoteApplied::Duplicate
        } else if event.seq != last + 1 {
            return Err(StoreError::Gap(format!(
                "origin {} is held up to seq {last}, got {}",
                event.origin, event.seq
            )));
        } else {
            apply(&txn, &event).await?;
            origin_sequences::Entity::update_many()
                .col_expr(origin_sequences::Column::LastSeq, (event.seq as i64).into())
                .filter(origin_sequences::Column::Origin.eq(event.origin.as_str()))
                .exec(&txn)
                .await?;
            RemoteApplied::Applied
        };
        let cursor = peer_cursors::ActiveModel {
            peer_id: Set(peer.to_owned()),
            origin: Set(event.origin.to_string()),
            seq: Set(event.seq.max(last) as i64),
            epoch: Set(event.epoch.clone()),
            updated_at_us: Set(to_micros(Utc::now())),
        };
        peer_cursors::Entity::insert(cursor)
            .on_conflict(
                OnConflict::columns([peer_cursors::Column::PeerId, peer_cursors::Column::Origin])
                    .update_columns([
                        peer_cursors::Column::Seq,
                        peer_cursors::Column::Epoch,
                        peer_cursors::Column::UpdatedAtUs,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        txn.commit().await?;
        Ok(outcome)
    }

    /// This node's cursors for `peer`: (origin, seq, epoch).
    pub async fn peer_cursors(&self, peer: &str) -> Result<Vec<(String, u64, String)>, StoreError> {
        Ok(peer_cursors::Entity::find()
            .filter(peer_cursors::Column::PeerId.eq(peer))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| (row.origin, row.seq as u64, row.epoch))
            .collect())
    }
}

async fn apply(txn: &DatabaseTransaction, event: &RemoteEvent) -> Result<(), StoreError> {
    let name = event.site_name.clone();
    let (op, payload) = match &event.change {
        RemoteChange::Upsert(site) => {
            remove_site(txn, &name).await?;
            let (body, etag) = site.json_and_etag();
            let record = SiteRecord {
                h3_cell: hubdir_geo::site_cell(site.location)
                    .ok_or_else(|| StoreError::Corrupt(format!("site {name} has a non-finite location")))?,
                etag,
                update_time: event.time,
                origin_seq: event.seq,
                site: (**site).clone(),
            };
            let services: Vec<_> = record
                .site
                .services
                .iter()
                .map(|s| site_services::ActiveModel { site_name: Set(name.clone()), service: Set(s.code().to_owned()) })
                .collect();
            sites::Entity::insert(site_row(record, body.clone())).exec_without_returning(txn).await?;
            if !services.is_empty() {
                site_services::Entity::insert_many(services).exec_without_returning(txn).await?;
            }
            ("UPSERT", Some(body.into_bytes()))
        }
        RemoteChange::Delete => {
            remove_site(txn, &name).await?;
            ("DELETE", None)
        }
        RemoteChange::Status(summary) => {
            ("STATUS", Some(serde_json::to_string(summary).unwrap_or_default().into_bytes()))
        }
    };
    change_log::Entity::insert(change_log::ActiveModel {
        origin: Set(event.origin.to_string()),
        seq: Set(event.seq as i64),
        site_name: Set(name),
        op: Set(op.to_owned()),
        payload: Set(payload),
        event_time_us: Set(to_micros(event.time)),
        key_id: Set(Some(event.signed.key_id.clone())),
        signature: Set(Some(event.signed.signature.clone())),
        event_bytes: Set(Some(event.signed.bytes.clone())),
    })
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

async fn remove_site(txn: &DatabaseTransaction, name: &str) -> Result<(), StoreError> {
    site_services::Entity::delete_many().filter(site_services::Column::SiteName.eq(name)).exec(txn).await?;
    sites::Entity::delete_many().filter(sites::Column::Name.eq(name)).exec(txn).await?;
    Ok(())
}
