//! Writes: sites and their change-log events, in one transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hubdir_core::{Site, SiteName, SiteRecord};
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};

use crate::chunked::{chunks, insert_all};
use crate::entity::{change_log, site_services, sites};
use crate::reads::sites_by_name;
use crate::sequencer::{Local, Owned};
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
    /// Concurrent calls share one commit (`group_commit`); each still succeeds or fails alone.
    #[tracing::instrument(level = "debug", name = "store.write", skip_all)]
    pub async fn write(&self, writes: Vec<Write>) -> Result<Vec<Applied>, StoreError> {
        self.writer.submit(writes, self.owned.clone(), self.signer.clone()).await
    }
}

/// What one call to [`Store::write`] gets back.
pub(crate) type Answer = Result<Vec<Applied>, StoreError>;

/// The calls of one group commit, in one transaction: their origins locked once, the sites
/// they name read once, each call planned in memory against the stored rows and the calls
/// before it, then every accepted call written with a few multi-row statements. A call whose
/// precondition fails (or whose origin this store may not write) is refused alone: its seqs
/// are given back before the next call takes any, so the log stays gapless. `Err` is an
/// error of the whole group, which then wrote nothing.
pub(crate) async fn write_group(
    txn: &DatabaseTransaction,
    calls: &[Vec<Write>],
    owned: &Owned,
    signer: Option<&dyn EventSigner>,
) -> Result<Vec<Answer>, StoreError> {
    let writes = || calls.iter().flatten();
    let origins = writes().map(|w| w.change.name().origin().clone()).collect();
    let mut seqs = Local::lock(txn, owned, origins).await?;
    // Read the clock only once the origins are ours: a writer that waited for the lock
    // gets a later update_time as well as a later seq.
    let now_us = to_micros(chrono::Utc::now());
    let initial = sites_by_name(txn, writes().map(|w| w.change.name().to_string()).collect()).await?;

    let mut group = Plan::default();
    let mut current = HashMap::new();
    let answers = calls
        .iter()
        .map(|call| {
            seqs.require_all(call.iter().map(|w| w.change.name().origin()))?;
            let mark = seqs.mark();
            let planned = plan(call, &initial, &current, &mut seqs, now_us, signer);
            let (call_plan, reached) = planned.inspect_err(|_| seqs.rewind(&mark))?;
            Ok(group.absorb(call_plan, reached, &mut current))
        })
        .collect();
    group.execute(txn).await?;
    seqs.finish(txn).await?;
    Ok(answers)
}

/// What a call (or a whole group of calls) does, worked out in memory before any statement
/// runs.
#[derive(Default)]
struct Plan {
    applied: Vec<Applied>,
    events: Vec<change_log::ActiveModel>,
    /// Stored rows to remove (sites updated or deleted).
    remove: BTreeSet<String>,
    /// Rows to insert: each changed site's final state, with its JSON body.
    insert: BTreeMap<String, (SiteRecord, String)>,
}

/// The state each name a call touched has reached (`None`: deleted).
type Reached = HashMap<String, Option<SiteRecord>>;

/// Checks every precondition of one call and works out the outcome of each of its writes, in
/// order, as if each saw the ones before it: `initial` holds the stored rows, `before` the
/// state the group's earlier calls reached. Fails on the first unmet precondition.
fn plan(
    writes: &[Write],
    initial: &HashMap<String, SiteRecord>,
    before: &Reached,
    seqs: &mut Local,
    now_us: i64,
    signer: Option<&dyn EventSigner>,
) -> Result<(Plan, Reached), StoreError> {
    let mut plan = Plan::default();
    let mut current = Reached::new();
    for Write { change, precondition } in writes {
        let name = change.name().to_string();
        let state =
            current.get(&name).or_else(|| before.get(&name)).cloned().unwrap_or_else(|| initial.get(&name).cloned());
        match (precondition, &state) {
            (Precondition::Absent, Some(_)) => return Err(StoreError::AlreadyExists(name)),
            (Precondition::Exists | Precondition::Etag(_), None) => return Err(StoreError::NotFound(name)),
            (Precondition::Etag(expected), Some(record)) if &record.etag != expected => {
                return Err(StoreError::EtagMismatch { name, expected: expected.clone() });
            }
            _ => {}
        }
        match change {
            Change::Upsert(site) => {
                let (body, etag) = site.json_and_etag();
                if let Some(record) = state.as_ref().filter(|r| r.etag == etag) {
                    plan.applied.push(Applied::Unchanged(record.clone()));
                    continue;
                }
                let (seq, epoch) = seqs.next(site.name.origin())?;
                let record = crate::stored_record((**site).clone(), etag, crate::from_micros(now_us), seq)?;
                let event = EventToSign {
                    origin: record.site.name.origin().as_str(),
                    epoch,
                    seq,
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
                    plan.applied.push(Applied::AlreadyAbsent(site_name.clone()));
                    continue;
                }
                let (seq, epoch) = seqs.next(site_name.origin())?;
                let event = EventToSign {
                    origin: site_name.origin().as_str(),
                    epoch,
                    seq,
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
                plan.applied.push(Applied::Deleted { name: site_name.clone(), seq });
            }
        }
    }
    Ok((plan, current))
}

impl Plan {
    /// Adds an accepted call's plan to the group's, and the states it reached to `current`;
    /// returns what the call's writes did.
    fn absorb(&mut self, call: Plan, reached: Reached, current: &mut Reached) -> Vec<Applied> {
        let Plan { applied, events, remove, insert } = call;
        self.events.extend(events);
        self.remove.extend(remove);
        for (name, state) in reached {
            if state.is_none() {
                self.insert.remove(&name);
            }
            current.insert(name, state);
        }
        self.insert.extend(insert);
        applied
    }

    /// Runs the plan as a few multi-row statements, building each statement's rows as it
    /// goes (no second copy of the whole batch).
    async fn execute(self, txn: &DatabaseTransaction) -> Result<(), StoreError> {
        let Plan { applied: _, events, remove, insert } = self;
        remove_sites(txn, remove).await?;
        insert_sites(txn, insert.into_values()).await?;
        insert_all(txn, events).await
    }
}

/// Deletes the named sites' rows and their services.
pub(crate) async fn remove_sites(
    txn: &DatabaseTransaction,
    names: impl IntoIterator<Item = String>,
) -> Result<(), StoreError> {
    for chunk in chunks(1, names) {
        site_services::Entity::delete_many()
            .filter(site_services::Column::SiteName.is_in(chunk.iter().map(String::as_str)))
            .exec(txn)
            .await?;
        sites::Entity::delete_many().filter(sites::Column::Name.is_in(chunk)).exec(txn).await?;
    }
    Ok(())
}

/// Inserts sites (each with its JSON body) and their services.
pub(crate) async fn insert_sites(
    txn: &DatabaseTransaction,
    records: impl Iterator<Item = (SiteRecord, String)>,
) -> Result<(), StoreError> {
    let mut services = Vec::new();
    let rows =
        records.map(|(record, body)| {
            let name = record.site.name.to_string();
            services.extend(record.site.services.iter().map(|s| site_services::ActiveModel {
                site_name: Set(name.clone()),
                service: Set(s.code().to_owned()),
            }));
            site_row(record, body)
        });
    insert_all(txn, rows).await?;
    insert_all(txn, services).await
}

fn site_row(record: SiteRecord, body: String) -> sites::ActiveModel {
    let SiteRecord { site, h3_cell, etag, update_time, origin_seq } = record;
    let (search_name, search_text) = hubdir_core::search::site_keys(&site);
    let site_key = hubdir_core::lookup::key(&hubdir_core::lookup::site_subject(&site.name));
    let operator_key = hubdir_core::lookup::key(&hubdir_core::lookup::operator_subject(&site.operator));
    let postcode = hubdir_core::search::postcode_key(&site.address.postal_code);
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
        h3_cell: Set(h3_cell.get() as i64),
        status: Set(site.status.code().to_owned()),
        body: Set(body),
        etag: Set(etag),
        update_time_us: Set(to_micros(update_time)),
        origin_seq: Set(origin_seq as i64),
        search_name: Set(search_name),
        search_text: Set(search_text),
        postcode: Set(postcode),
        site_key: Set(site_key),
        operator_key: Set(operator_key),
    }
}
