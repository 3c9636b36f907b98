//! Writes: sites and their change-log events, in one transaction.

use std::collections::BTreeMap;

use hubdir_core::{Origin, Site, SiteName, SiteRecord};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QuerySelect,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::entity::{change_log, origin_sequences, site_services, sites};
use crate::reads::record_from_row;
use crate::{Store, StoreError, to_micros};

/// One change asked of the store.
#[derive(Debug, Clone)]
pub enum Change {
    /// Create the site, or replace it entirely.
    Upsert(Box<Site>),
    /// Delete the site, leaving a tombstone in the change log.
    Delete(SiteName),
}

/// What must be true of the stored site for a write to proceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// Anything: create or replace; deleting a missing site is a no-op.
    None,
    /// The site must not exist (create).
    Absent,
    /// The site must exist (update, delete).
    Exists,
    /// The site must exist with this etag (AIP-154).
    Etag(String),
}

/// A change with its precondition.
#[derive(Debug, Clone)]
pub struct Write {
    pub change: Change,
    pub precondition: Precondition,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Created(SiteRecord),
    Updated(SiteRecord),
    /// The stored site was identical: nothing written, nothing logged.
    Unchanged(SiteRecord),
    Deleted {
        name: SiteName,
        seq: u64,
    },
    /// A delete of a site that did not exist, with no precondition: nothing logged.
    AlreadyAbsent(SiteName),
}

impl Change {
    fn name(&self) -> &SiteName {
        match self {
            Change::Upsert(site) => &site.name,
            Change::Delete(name) => name,
        }
    }
}

impl Store {
    /// Applies every write in one transaction: all of them, or (on the first error) none.
    pub async fn write(&self, writes: Vec<Write>) -> Result<Vec<Applied>, StoreError> {
        let _sqlite_turn = match &self.sqlite_writer {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let txn = self
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await?;

        // Lock each origin's sequence row, in a fixed order so writers never deadlock.
        let mut seqs: BTreeMap<Origin, OriginSeq> = BTreeMap::new();
        for write in &writes {
            seqs.entry(write.change.name().origin().clone()).or_default();
        }
        for (origin, seq) in &mut seqs {
            let last = lock_origin(&txn, origin).await?;
            *seq = OriginSeq { last, next: last };
        }
        // Read the clock only once the origins are ours: a writer that waited for the lock
        // gets a later update_time as well as a later seq.
        let now_us = to_micros(chrono::Utc::now());

        let mut applied = Vec::with_capacity(writes.len());
        for write in writes {
            let origin_seq = seqs.entry(write.change.name().origin().clone()).or_default();
            applied.push(apply(&txn, write, origin_seq, now_us).await?);
        }

        for (origin, seq) in seqs {
            if seq.next != seq.last {
                origin_sequences::Entity::update_many()
                    .col_expr(origin_sequences::Column::LastSeq, (seq.next as i64).into())
                    .filter(origin_sequences::Column::Origin.eq(origin.as_str()))
                    .exec(&txn)
                    .await?;
            }
        }
        txn.commit().await?;
        Ok(applied)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct OriginSeq {
    /// The origin's last sequence number when the transaction began.
    last: u64,
    /// The last number handed out in this transaction.
    next: u64,
}

/// Creates the origin's sequence row if needed and locks it; returns its last seq.
async fn lock_origin(txn: &DatabaseTransaction, origin: &Origin) -> Result<u64, StoreError> {
    let row = origin_sequences::ActiveModel {
        origin: Set(origin.to_string()),
        last_seq: Set(0),
        // A fresh epoch per incarnation of the origin's log: a recreated database gets a new one.
        epoch: Set(format!("{:x}", to_micros(chrono::Utc::now()))),
    };
    let inserted = origin_sequences::Entity::insert(row)
        .on_conflict(OnConflict::column(origin_sequences::Column::Origin).do_nothing().to_owned())
        .exec(txn)
        .await;
    match inserted {
        Ok(_) | Err(DbErr::RecordNotInserted) => {}
        Err(e) => return Err(e.into()),
    }
    let locked = origin_sequences::Entity::find_by_id(origin.to_string())
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("sequence row of origin {origin} vanished")))?;
    u64::try_from(locked.last_seq).map_err(|_| StoreError::Corrupt(format!("negative seq for origin {origin}")))
}

async fn apply(
    txn: &DatabaseTransaction,
    write: Write,
    seq: &mut OriginSeq,
    now_us: i64,
) -> Result<Applied, StoreError> {
    let Write { change, precondition } = write;
    let name = change.name().to_string();
    let existing = sites::Entity::find_by_id(name.clone()).one(txn).await?;
    match (&precondition, &existing) {
        (Precondition::Absent, Some(_)) => return Err(StoreError::AlreadyExists(name)),
        (Precondition::Exists | Precondition::Etag(_), None) => {
            return Err(StoreError::NotFound(name));
        }
        (Precondition::Etag(expected), Some(row)) if &row.etag != expected => {
            return Err(StoreError::EtagMismatch { name, expected: expected.clone() });
        }
        _ => {}
    }

    match change {
        Change::Upsert(site) => {
            let etag = site.content_etag();
            if let Some(row) = existing.as_ref().filter(|row| row.etag == etag) {
                return Ok(Applied::Unchanged(record_from_row(row.clone())?));
            }
            seq.next += 1;
            let record = SiteRecord {
                h3_cell: hubdir_geo::site_cell(site.location)
                    .ok_or_else(|| StoreError::Corrupt(format!("site {name} has a non-finite location")))?,
                etag,
                update_time: crate::from_micros(now_us),
                origin_seq: seq.next,
                site: *site,
            };
            let body = serde_json::to_string(&record.site).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let row = site_row(&record, body.clone());
            if existing.is_some() {
                sites::Entity::update(row).exec(txn).await?;
                site_services::Entity::delete_many()
                    .filter(site_services::Column::SiteName.eq(name.as_str()))
                    .exec(txn)
                    .await?;
            } else {
                sites::Entity::insert(row).exec_without_returning(txn).await?;
            }
            if !record.site.services.is_empty() {
                let services = record.site.services.iter().map(|s| site_services::ActiveModel {
                    site_name: Set(name.clone()),
                    service: Set(s.code().to_owned()),
                });
                site_services::Entity::insert_many(services).exec_without_returning(txn).await?;
            }
            append_event(txn, &record.site.name, seq.next, "UPSERT", Some(body.into_bytes()), now_us).await?;
            Ok(if existing.is_some() { Applied::Updated(record) } else { Applied::Created(record) })
        }
        Change::Delete(site_name) => {
            if existing.is_none() {
                return Ok(Applied::AlreadyAbsent(site_name));
            }
            seq.next += 1;
            site_services::Entity::delete_many()
                .filter(site_services::Column::SiteName.eq(name.as_str()))
                .exec(txn)
                .await?;
            sites::Entity::delete_by_id(name).exec(txn).await?;
            append_event(txn, &site_name, seq.next, "DELETE", None, now_us).await?;
            Ok(Applied::Deleted { name: site_name, seq: seq.next })
        }
    }
}

fn site_row(record: &SiteRecord, body: String) -> sites::ActiveModel {
    let site = &record.site;
    sites::ActiveModel {
        name: Set(site.name.to_string()),
        origin: Set(site.name.origin().to_string()),
        site_id: Set(site.name.site_id().to_string()),
        display_name: Set(site.display_name.clone()),
        kind: Set(site.kind.code().to_owned()),
        operator: Set(site.operator.clone()),
        country_code: Set(site.country.to_string()),
        latitude: Set(site.location.latitude()),
        longitude: Set(site.location.longitude()),
        // H3 indexes leave the top bit clear, so they fit in an i64.
        h3_cell: Set(record.h3_cell as i64),
        status: Set(site.status.code().to_owned()),
        body: Set(body),
        etag: Set(record.etag.clone()),
        update_time_us: Set(to_micros(record.update_time)),
        origin_seq: Set(record.origin_seq as i64),
    }
}

async fn append_event(
    txn: &DatabaseTransaction,
    name: &SiteName,
    seq: u64,
    op: &str,
    payload: Option<Vec<u8>>,
    now_us: i64,
) -> Result<(), StoreError> {
    let event = change_log::ActiveModel {
        origin: Set(name.origin().to_string()),
        seq: Set(seq as i64),
        site_name: Set(name.to_string()),
        op: Set(op.to_owned()),
        payload: Set(payload),
        event_time_us: Set(now_us),
        key_id: Set(None),
        signature: Set(None),
    };
    change_log::Entity::insert(event).exec_without_returning(txn).await?;
    Ok(())
}
