//! Writes: sites and their change-log events, in one transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hubdir_core::{Origin, Site, SiteName, SiteRecord};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QuerySelect};

use crate::entity::{change_log, origin_sequences, site_services, sites};
use crate::reads::sites_by_name;
use crate::signing::{EventBody, EventSigner, EventToSign, event_row};
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
        let (_sqlite_turn, txn) = self.begin_write().await?;

        // Lock each origin's sequence row, in a fixed order so writers never deadlock.
        let mut seqs: BTreeMap<Origin, OriginSeq> = BTreeMap::new();
        for write in &writes {
            seqs.entry(write.change.name().origin().clone()).or_default();
        }
        for (origin, seq) in &mut seqs {
            let (last, epoch) = lock_origin(&txn, origin).await?;
            *seq = OriginSeq { epoch, last, next: last };
        }
        // Read the clock only once the origins are ours: a writer that waited for the lock
        // gets a later update_time as well as a later seq.
        let now_us = to_micros(chrono::Utc::now());

        let initial = load_current(&txn, &writes).await?;
        let plan = plan(writes, &initial, &mut seqs, now_us, self.signer.as_deref())?;
        let applied = plan.execute(&txn).await?;

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
        self.notify_change();
        Ok(applied)
    }
}

#[derive(Debug, Default, Clone)]
struct OriginSeq {
    /// The origin log's epoch.
    epoch: String,
    /// The origin's last sequence number when the transaction began.
    last: u64,
    /// The last number handed out in this transaction.
    next: u64,
}

/// Creates the origin's sequence row if needed and locks it; returns its last seq and epoch.
pub(crate) async fn lock_origin(txn: &DatabaseTransaction, origin: &Origin) -> Result<(u64, String), StoreError> {
    let row = origin_sequences::ActiveModel {
        origin: Set(origin.to_string()),
        last_seq: Set(0),
        // A fresh epoch per incarnation of the origin's log: a recreated database gets a new one.
        epoch: Set(format!("{:x}", to_micros(chrono::Utc::now()))),
        compacted_through: Set(0),
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
    let last =
        u64::try_from(locked.last_seq).map_err(|_| StoreError::Corrupt(format!("negative seq for origin {origin}")))?;
    Ok((last, locked.epoch))
}

/// Rows per multi-row statement: under SQLite's 32,766 and PostgreSQL's 65,535 bound
/// parameters for the widest table (`sites`, 15 columns).
pub(crate) const ROWS_PER_STATEMENT: usize = 1000;

/// The stored rows of every site the writes name, before any of them applies.
async fn load_current(txn: &DatabaseTransaction, writes: &[Write]) -> Result<HashMap<String, SiteRecord>, StoreError> {
    sites_by_name(txn, writes.iter().map(|w| w.change.name().to_string()).collect()).await
}

/// What a batch of writes does, worked out in memory before any statement runs.
#[derive(Default)]
struct Plan {
    applied: Vec<Applied>,
    events: Vec<change_log::ActiveModel>,
    /// Stored rows to remove (sites updated or deleted by the batch).
    remove: BTreeSet<String>,
    /// Rows to insert: each changed site's final state, with its JSON body.
    insert: BTreeMap<String, (SiteRecord, String)>,
}

/// Checks every precondition and works out the outcome of each write, in order, as if each
/// saw the ones before it. Fails on the first unmet precondition, before anything is written.
fn plan(
    writes: Vec<Write>,
    initial: &HashMap<String, SiteRecord>,
    seqs: &mut BTreeMap<Origin, OriginSeq>,
    now_us: i64,
    signer: Option<&dyn EventSigner>,
) -> Result<Plan, StoreError> {
    let mut plan = Plan::default();
    // The state each name has reached so far in this batch.
    let mut current: HashMap<String, Option<SiteRecord>> = HashMap::new();
    for write in writes {
        let Write { change, precondition } = write;
        let name = change.name().to_string();
        let state = current.get(&name).cloned().unwrap_or_else(|| initial.get(&name).cloned());
        match (&precondition, &state) {
            (Precondition::Absent, Some(_)) => return Err(StoreError::AlreadyExists(name)),
            (Precondition::Exists | Precondition::Etag(_), None) => return Err(StoreError::NotFound(name)),
            (Precondition::Etag(expected), Some(record)) if &record.etag != expected => {
                return Err(StoreError::EtagMismatch { name, expected: expected.clone() });
            }
            _ => {}
        }
        let seq = seqs.entry(change.name().origin().clone()).or_default();
        match change {
            Change::Upsert(site) => {
                let (body, etag) = site.json_and_etag();
                if let Some(record) = state.as_ref().filter(|r| r.etag == etag) {
                    plan.applied.push(Applied::Unchanged(record.clone()));
                    continue;
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
                let event = EventToSign {
                    origin: record.site.name.origin().as_str(),
                    epoch: &seq.epoch,
                    seq: seq.next,
                    site_name: &name,
                    body: EventBody::Upsert(&record.site),
                    time: record.update_time,
                };
                plan.events.push(event_row(signer, event, Some(body.clone().into_bytes())));
                if initial.contains_key(&name) {
                    plan.remove.insert(name.clone());
                }
                plan.insert.insert(name.clone(), (record.clone(), body));
                current.insert(name, Some(record.clone()));
                plan.applied.push(if state.is_some() { Applied::Updated(record) } else { Applied::Created(record) });
            }
            Change::Delete(site_name) => {
                if state.is_none() {
                    plan.applied.push(Applied::AlreadyAbsent(site_name));
                    continue;
                }
                seq.next += 1;
                let event = EventToSign {
                    origin: site_name.origin().as_str(),
                    epoch: &seq.epoch,
                    seq: seq.next,
                    site_name: &name,
                    body: EventBody::Delete,
                    time: crate::from_micros(now_us),
                };
                plan.events.push(event_row(signer, event, None));
                if initial.contains_key(&name) {
                    plan.remove.insert(name.clone());
                }
                plan.insert.remove(&name);
                current.insert(name, None);
                plan.applied.push(Applied::Deleted { name: site_name, seq: seq.next });
            }
        }
    }
    Ok(plan)
}

impl Plan {
    /// Runs the plan as a few multi-row statements, building each statement's rows as it
    /// goes (no second copy of the whole batch); returns what each write did.
    async fn execute(self, txn: &DatabaseTransaction) -> Result<Vec<Applied>, StoreError> {
        let Plan { applied, events, remove, insert } = self;
        let remove: Vec<String> = remove.into_iter().collect();
        for chunk in remove.chunks(ROWS_PER_STATEMENT) {
            let names = chunk.iter().map(String::as_str);
            site_services::Entity::delete_many()
                .filter(site_services::Column::SiteName.is_in(names.clone()))
                .exec(txn)
                .await?;
            sites::Entity::delete_many().filter(sites::Column::Name.is_in(names)).exec(txn).await?;
        }
        let mut services = Vec::new();
        let mut rows = Vec::with_capacity(ROWS_PER_STATEMENT.min(insert.len()));
        let mut records = insert.into_values().peekable();
        while records.peek().is_some() {
            rows.clear();
            for (record, body) in records.by_ref().take(ROWS_PER_STATEMENT) {
                let name = record.site.name.to_string();
                services.extend(record.site.services.iter().map(|s| site_services::ActiveModel {
                    site_name: Set(name.clone()),
                    service: Set(s.code().to_owned()),
                }));
                rows.push(site_row(record, body));
            }
            sites::Entity::insert_many(rows.drain(..)).exec_without_returning(txn).await?;
        }
        let mut services = services.into_iter().peekable();
        while services.peek().is_some() {
            site_services::Entity::insert_many(services.by_ref().take(ROWS_PER_STATEMENT))
                .exec_without_returning(txn)
                .await?;
        }
        let mut events = events.into_iter().peekable();
        while events.peek().is_some() {
            change_log::Entity::insert_many(events.by_ref().take(ROWS_PER_STATEMENT))
                .exec_without_returning(txn)
                .await?;
        }
        Ok(applied)
    }
}

pub(crate) fn site_row(record: SiteRecord, body: String) -> sites::ActiveModel {
    let SiteRecord { site, h3_cell, etag, update_time, origin_seq } = record;
    let (search_name, search_text) = hubdir_core::search::site_keys(&site);
    sites::ActiveModel {
        name: Set(site.name.to_string()),
        origin: Set(site.name.origin().to_string()),
        site_id: Set(site.name.site_id().to_string()),
        display_name: Set(site.display_name),
        kind: Set(site.kind.code().to_owned()),
        operator: Set(site.operator),
        country_code: Set(site.country.to_string()),
        latitude: Set(site.location.latitude()),
        longitude: Set(site.location.longitude()),
        // H3 indexes leave the top bit clear, so they fit in an i64.
        h3_cell: Set(h3_cell as i64),
        status: Set(site.status.code().to_owned()),
        body: Set(body),
        etag: Set(etag),
        update_time_us: Set(to_micros(update_time)),
        origin_seq: Set(origin_seq as i64),
        search_name: Set(search_name),
        search_text: Set(search_text),
    }
}
