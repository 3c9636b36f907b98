//! Applying a peer's verified event: the site change, the event itself (with its origin's seq
//! and signed bytes, unchanged, so this node can relay it and digests compare) and the
//! follower's cursor, all in one transaction. Replays are no-ops; a gap is refused; a newer
//! epoch of the origin's log replaces what was held of it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hubdir_core::connectivity::StatusSummary;
use hubdir_core::{Origin, Site, SiteRecord};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect, QueryTrait};

use crate::chunked::insert_all;
use crate::entity::{change_log, connectivity_latest, federation_quarantine, peer_cursors, site_services, sites};
use crate::sequencer::{Position, Remote};
use crate::signing::SignedBytes;
use crate::writes::{insert_sites, remove_sites};
use crate::{Store, StoreError, to_micros};

/// What a verified event from a peer says.
#[derive(Debug, Clone)]
pub enum RemoteChange {
    Upsert(Box<Site>),
    Delete,
    Status(StatusSummary),
    /// Signed by its origin, but its content fails this node's checks (an older or laxer
    /// origin): it enters the change log as received (so the log has no gap and relays carry
    /// it on), its site is left as it was, and it is quarantined for the operator.
    Unappliable {
        op: crate::ChangeOp,
        reason: String,
    },
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

/// How an event reached this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// In the log's order: it must be the next seq held (or a replay).
    Stream,
    /// Part of a snapshot: the latest events of each site in seq order, with holes between.
    Snapshot,
}

/// What applying a remote event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteApplied {
    Applied,
    /// Already held (a replay): nothing changed but the cursor.
    Duplicate,
    /// Of an older incarnation of the origin's log than the one held: ignored.
    StaleEpoch,
    /// Streamed, but not the next seq held: not applied (the stream must be resumed from the
    /// held cursor).
    Gap {
        held: u64,
    },
    /// Verified but not appliable here: logged as received, its site untouched, quarantined.
    Quarantined,
    /// Of an origin this node writes itself: a peer never supplies it (its own events coming
    /// back through a relay, or a forgery).
    OwnOrigin,
}

/// Whether epoch `a` is of a later incarnation than `b`. Epochs are the hex microsecond time
/// their log was created, so a replayed stream of an older incarnation never replaces a newer.
fn epoch_is_newer(a: &str, b: &str) -> bool {
    match (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
        (Ok(a), Ok(b)) => a > b,
        _ => a > b,
    }
}

impl Store {
    /// Applies verified events from `peer` in one transaction, with that peer's cursor for
    /// each origin moved to the last event it delivered. Replays are no-ops; an event of a
    /// newer epoch than held replaces everything held of its origin (the origin's database was
    /// recreated: a resync); one of an older epoch, or a streamed event that skips a seq, is
    /// not applied. Returns each event's outcome, in order.
    #[tracing::instrument(level = "debug", name = "store.apply_remote", skip_all)]
    pub async fn apply_remote(
        &self,
        peer: &str,
        events: Vec<(RemoteEvent, Delivery)>,
    ) -> Result<Vec<RemoteApplied>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (_sqlite_turn, txn) = self.begin_write().await?;
        let mut held = Remote::default();
        let mut cursors: HashMap<Origin, (u64, String)> = HashMap::new();
        let mut outcomes = Vec::with_capacity(events.len());
        let mut applied = Vec::new();
        for (event, delivery) in events {
            let origin = event.origin.clone();
            let Some(position) = held.lock(&txn, &self.owned, &origin, &event.epoch).await? else {
                outcomes.push(RemoteApplied::OwnOrigin);
                continue;
            };
            if event.epoch != position.epoch {
                if !epoch_is_newer(&event.epoch, &position.epoch) {
                    outcomes.push(RemoteApplied::StaleEpoch);
                    continue;
                }
                tracing::info!(%origin, from = %position.epoch, to = %event.epoch, "origin's log has a new epoch: resyncing");
                write_applied(&txn, peer, std::mem::take(&mut applied)).await?;
                forget_origin(&txn, &origin).await?;
                let created = position.created;
                *position =
                    Position { epoch: event.epoch.clone(), locked_at: 0, last: 0, compacted_through: 0, created };
                cursors.remove(&origin);
            }
            let outcome = if event.seq <= position.last {
                RemoteApplied::Duplicate
            } else if delivery == Delivery::Stream && event.seq != position.last + 1 {
                RemoteApplied::Gap { held: position.last }
            } else {
                position.last = event.seq;
                if delivery == Delivery::Snapshot {
                    position.compacted_through = event.seq;
                }
                RemoteApplied::Applied
            };
            if !matches!(outcome, RemoteApplied::Gap { .. }) {
                // Everything up to the held seq is here, whoever delivered it.
                let cursor = cursors.entry(origin).or_insert((0, event.epoch.clone()));
                cursor.0 = cursor.0.max(position.last);
            }
            let outcome = match (outcome, &event.change) {
                (RemoteApplied::Applied, RemoteChange::Unappliable { .. }) => RemoteApplied::Quarantined,
                (outcome, _) => outcome,
            };
            if matches!(outcome, RemoteApplied::Applied | RemoteApplied::Quarantined) {
                applied.push(event);
            }
            outcomes.push(outcome);
        }
        write_applied(&txn, peer, applied).await?;
        held.finish(&txn).await?;
        for (origin, (seq, epoch)) in cursors {
            move_cursor(&txn, peer, &origin, seq, &epoch).await?;
        }
        txn.commit().await?;
        self.notify_change();
        Ok(outcomes)
    }

    /// Peers' events this node could not apply, newest first.
    pub async fn list_federation_quarantine(
        &self,
        limit: u64,
    ) -> Result<Vec<federation_quarantine::Model>, StoreError> {
        use sea_orm::QueryOrder;
        Ok(federation_quarantine::Entity::find()
            .order_by_desc(federation_quarantine::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
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

/// Moves `peer`'s cursor for `origin` forward to `seq` (never back, within an epoch).
async fn move_cursor(
    txn: &DatabaseTransaction,
    peer: &str,
    origin: &Origin,
    seq: u64,
    epoch: &str,
) -> Result<(), StoreError> {
    let current = peer_cursors::Entity::find_by_id((peer.to_owned(), origin.to_string())).one(txn).await?;
    let seq = match current {
        Some(row) if row.epoch == epoch => seq.max(row.seq as u64),
        _ => seq,
    };
    let cursor = peer_cursors::ActiveModel {
        peer_id: Set(peer.to_owned()),
        origin: Set(origin.to_string()),
        seq: Set(seq as i64),
        epoch: Set(epoch.to_owned()),
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
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Drops everything held of an origin whose log was recreated: its sites, its events and every
/// peer's cursor into the old log.
async fn forget_origin(txn: &DatabaseTransaction, origin: &Origin) -> Result<(), StoreError> {
    let names = sites::Entity::find()
        .select_only()
        .column(sites::Column::Name)
        .filter(sites::Column::Origin.eq(origin.as_str()))
        .into_query();
    site_services::Entity::delete_many()
        .filter(site_services::Column::SiteName.in_subquery(names.clone()))
        .exec(txn)
        .await?;
    connectivity_latest::Entity::delete_many()
        .filter(connectivity_latest::Column::SiteName.in_subquery(names))
        .exec(txn)
        .await?;
    sites::Entity::delete_many().filter(sites::Column::Origin.eq(origin.as_str())).exec(txn).await?;
    change_log::Entity::delete_many().filter(change_log::Column::Origin.eq(origin.as_str())).exec(txn).await?;
    peer_cursors::Entity::delete_many().filter(peer_cursors::Column::Origin.eq(origin.as_str())).exec(txn).await?;
    Ok(())
}

/// Writes applied events, in order, with few statements: each touched site's old rows go,
/// each site's last UPSERT in the batch is inserted (a DELETE leaves it gone), and every event
/// enters the change log.
async fn write_applied(txn: &DatabaseTransaction, peer: &str, events: Vec<RemoteEvent>) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut log = Vec::with_capacity(events.len());
    let mut quarantined = Vec::new();
    // Per site, its state after the batch: the last record event's row (None: deleted).
    let mut last: HashMap<String, Option<(SiteRecord, String)>> = HashMap::new();
    // Per site, the last status announced in the batch: kept as its latest status, so the
    // discovery index has it again after a restart (it loads statuses from there).
    let mut statuses: HashMap<String, (String, StatusSummary)> = HashMap::new();
    for event in events {
        let name = event.site_name.clone();
        let (op, payload) = match event.change {
            RemoteChange::Upsert(site) => {
                let (body, etag) = site.json_and_etag();
                let record = crate::stored_record(*site, etag, event.time, event.seq)?;
                last.insert(name.clone(), Some((record, body.clone())));
                ("UPSERT", Some(body.into_bytes()))
            }
            RemoteChange::Delete => {
                last.insert(name.clone(), None);
                ("DELETE", None)
            }
            RemoteChange::Status(summary) => {
                let body = serde_json::to_string(&summary).unwrap_or_default();
                statuses.insert(name.clone(), (event.origin.to_string(), summary));
                ("STATUS", Some(body.into_bytes()))
            }
            RemoteChange::Unappliable { op, reason } => {
                tracing::warn!(%peer, origin = %event.origin, seq = event.seq, site = %crate::connectivity::cut(name.clone(), 256), "a peer's event could not be applied here: quarantined");
                quarantined.push(federation_quarantine::ActiveModel {
                    peer: Set(peer.to_owned()),
                    origin: Set(event.origin.to_string()),
                    seq: Set(event.seq as i64),
                    site_name: Set(crate::connectivity::cut(name.clone(), crate::QUARANTINE_FIELD_BYTES)),
                    reason: Set(crate::connectivity::cut(reason, crate::QUARANTINE_BODY_BYTES)),
                    received_at_us: Set(to_micros(Utc::now())),
                    ..Default::default()
                });
                (op.code(), None)
            }
        };
        log.push(change_log::ActiveModel {
            origin: Set(event.origin.to_string()),
            seq: Set(event.seq as i64),
            site_name: Set(name),
            op: Set(op.to_owned()),
            payload: Set(payload),
            event_time_us: Set(to_micros(event.time)),
            key_id: Set(Some(event.signed.key_id)),
            signature: Set(Some(event.signed.signature)),
            event_bytes: Set(Some(event.signed.bytes)),
        });
    }
    // A site the batch leaves deleted loses its status too: a later site of that name starts
    // without one.
    let deleted: Vec<String> = last.iter().filter(|(_, state)| state.is_none()).map(|(name, _)| name.clone()).collect();
    statuses.retain(|name, _| !deleted.contains(name));
    for chunk in crate::chunked::chunks(1, deleted) {
        connectivity_latest::Entity::delete_many()
            .filter(connectivity_latest::Column::SiteName.is_in(chunk))
            .exec(txn)
            .await?;
    }
    remove_sites(txn, last.keys().cloned().collect::<Vec<_>>()).await?;
    insert_sites(txn, last.into_values().flatten()).await?;
    insert_all(txn, log).await?;
    insert_all(txn, quarantined).await?;
    keep_latest_statuses(txn, statuses).await
}

/// A peer's announced statuses as the sites' latest: the state and class it gave, without a
/// measurement (measurements stay with the origin that received them).
async fn keep_latest_statuses(
    txn: &DatabaseTransaction,
    statuses: HashMap<String, (String, StatusSummary)>,
) -> Result<(), StoreError> {
    let now = to_micros(Utc::now());
    let rows: Vec<connectivity_latest::ActiveModel> = statuses
        .into_iter()
        .map(|(site_name, (origin, summary))| {
            let json = serde_json::to_string(&summary).unwrap_or_default();
            connectivity_latest::ActiveModel {
                site_name: Set(site_name),
                online: Set(summary.state == hubdir_core::connectivity::State::Online),
                download_mbps: Set(summary.download_mbps),
                upload_mbps: Set(None),
                latency_ms: Set(None),
                technology: Set(String::new()),
                public_wifi_access_points: Set(None),
                public_computers: Set(None),
                power_backup: Set(None),
                source: Set(format!("peer:{origin}")),
                observed_at_us: Set(to_micros(summary.observed_at)),
                received_at_us: Set(now),
                measurement: Set(None),
                summary: Set(Some(json.clone())),
                logged_summary: Set(Some(json)),
            }
        })
        .collect();
    crate::connectivity::upsert_latest(txn, rows).await
}
