//! Connectivity measurements: raw history, the latest per site, the change-log events that
//! tell followers about state changes, and the quarantine of refused measurements.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use hubdir_core::SiteName;
use hubdir_core::connectivity::{Measurement, StatusSummary};
use sea_orm::sea_query::{ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::chunked::{chunks, columns, insert_all};
use crate::entity::{connectivity_daily, connectivity_history, connectivity_latest, connectivity_quarantine, sites};
use crate::sequencer::Local;
use crate::signing::{EventBody, EventToSign, event_row};
use crate::{Store, StoreError, from_micros, to_micros};

/// What recording one measurement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored in the history; `latest` if it became the site's latest status, `logged` if
    /// that changed the state or class (or refreshed it) and so entered the change log.
    Accepted { latest: bool, logged: bool },
    /// Its (site, idempotency key) was already stored: nothing changed.
    Duplicate,
    /// The site does not exist here: nothing stored.
    UnknownSite,
    /// The site is another node's (its origin is applied from peers): nothing stored.
    NotOwned,
}

/// A refused measurement kept for an operator to inspect. Stored truncated (see
/// [`QUARANTINE_FIELD_BYTES`]): a refused request never costs more than a few KB to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    /// Who sent it: the token's subject.
    pub principal: String,
    /// The site it was filed under: empty when the sender may not report for the site it
    /// named, so nobody can file fakes under another's site.
    pub site: String,
    pub idempotency_key: String,
    /// `CODE: explanation`.
    pub reason: String,
    /// The measurement as received (JSON), if it could be read at all.
    pub body: String,
    pub received_at: DateTime<Utc>,
}

/// The most bytes kept of each field of a refused measurement, and of its body.
pub const QUARANTINE_FIELD_BYTES: usize = 256;
pub const QUARANTINE_BODY_BYTES: usize = 2048;

/// `text` cut to at most `max` bytes at a character boundary, marked when cut.
pub(crate) fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max.saturating_sub(3);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

/// The latest status of a site, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Latest {
    /// The measurement that gave it; `None` for a status a peer announced (measurements stay
    /// with the node that received them).
    pub measurement: Option<Measurement>,
    pub summary: StatusSummary,
}

/// Which of `names` are stored sites (names only: no site is read).
async fn existing_sites(txn: &DatabaseTransaction, names: &[String]) -> Result<HashSet<String>, StoreError> {
    let mut found = HashSet::new();
    for chunk in chunks(1, names.iter()) {
        let rows: Vec<String> = sites::Entity::find()
            .select_only()
            .column(sites::Column::Name)
            .filter(sites::Column::Name.is_in(chunk.iter().cloned()))
            .into_tuple()
            .all(txn)
            .await?;
        found.extend(rows);
    }
    Ok(found)
}

fn history_row(m: &Measurement, now_us: i64) -> connectivity_history::ActiveModel {
    connectivity_history::ActiveModel {
        site_name: Set(m.site.to_string()),
        idempotency_key: Set(m.idempotency_key.clone()),
        online: Set(m.online),
        download_mbps: Set(m.download_mbps),
        upload_mbps: Set(m.upload_mbps),
        latency_ms: Set(m.latency_ms),
        jitter_ms: Set(m.jitter_ms),
        packet_loss_ratio: Set(m.packet_loss_ratio),
        technology: Set(json(&m.technology)),
        source: Set(json(&m.source)),
        observed_at_us: Set(to_micros(m.observed_at)),
        received_at_us: Set(now_us),
        ..Default::default()
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    // Plain structs of numbers, strings and enums always serialise.
    serde_json::to_string(value).unwrap_or_default()
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

impl Store {
    /// Records measurements (each with the status it gives, worked out by the caller against
    /// its benchmark) in one transaction: history rows, each site's latest (an older
    /// measurement never replaces a newer one), and a STATUS event in the site's origin's
    /// change log when the state or class changes or the last event is `refresh` old.
    pub async fn record_measurements(
        &self,
        items: Vec<(Measurement, StatusSummary)>,
        refresh: Duration,
    ) -> Result<Vec<Recorded>, StoreError> {
        let (_sqlite_turn, txn) = self.begin_write().await?;
        let names: Vec<String> = items.iter().map(|(m, _)| m.site.to_string()).collect();
        let mut existing = existing_sites(&txn, &names).await?;
        // Only this node's own sites report here: another origin's status travels in its
        // origin's signed log.
        let origins = items.iter().filter(|(m, _)| existing.contains(&m.site.to_string()));
        let mut seqs = Local::lock(&txn, &self.owned, origins.map(|(m, _)| m.site.origin().clone()).collect()).await?;
        let mut foreign = HashSet::new();
        for (m, _) in &items {
            if seqs.refusal(m.site.origin()).is_some() && existing.remove(&m.site.to_string()) {
                foreign.insert(m.site.to_string());
            }
        }
        let now_us = to_micros(Utc::now());

        let mut latest: HashMap<String, Option<connectivity_latest::Model>> = HashMap::new();
        for chunk in chunks(1, names.iter()) {
            for row in connectivity_latest::Entity::find()
                .filter(connectivity_latest::Column::SiteName.is_in(chunk.iter().cloned()))
                .all(&txn)
                .await?
            {
                latest.insert(row.site_name.clone(), Some(row));
            }
        }

        // History rows in multi-row statements; the database says which were new.
        let rows: Vec<connectivity_history::ActiveModel> = items
            .iter()
            .filter(|(m, _)| existing.contains(&m.site.to_string()))
            .map(|(m, _)| history_row(m, now_us))
            .collect();
        let mut inserted: HashSet<(String, String)> = HashSet::new();
        for chunk in chunks(columns::<connectivity_history::Entity>(), rows) {
            let stored = connectivity_history::Entity::insert_many(chunk)
                .on_conflict(
                    OnConflict::columns([
                        connectivity_history::Column::SiteName,
                        connectivity_history::Column::IdempotencyKey,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_with_returning(&txn)
                .await;
            match stored {
                Ok(models) => inserted.extend(models.into_iter().map(|m| (m.site_name, m.idempotency_key))),
                Err(DbErr::RecordNotInserted) => {}
                Err(e) => return Err(e.into()),
            }
        }

        let mut outcomes = Vec::with_capacity(items.len());
        let mut changed: BTreeMap<String, (usize, Measurement, StatusSummary)> = BTreeMap::new();
        for (i, (m, summary)) in items.into_iter().enumerate() {
            let site = m.site.to_string();
            if foreign.contains(&site) {
                outcomes.push(Recorded::NotOwned);
                continue;
            }
            if !existing.contains(&site) {
                outcomes.push(Recorded::UnknownSite);
                continue;
            }
            // The first of repeated keys in one batch is the one stored.
            if !inserted.remove(&(site.clone(), m.idempotency_key.clone())) {
                outcomes.push(Recorded::Duplicate);
                continue;
            }
            let newest = changed
                .get(&site)
                .map(|(_, m, _)| m.observed_at)
                .or_else(|| latest.get(&site).cloned().flatten().map(|row| from_micros(row.observed_at_us)));
            let is_latest = newest.is_none_or(|t| m.observed_at > t);
            if is_latest {
                changed.insert(site, (i, m, summary));
            }
            outcomes.push(Recorded::Accepted { latest: is_latest, logged: false });
        }

        let mut events = Vec::new();
        let mut latest_rows = Vec::with_capacity(changed.len());
        for (site, (i, m, summary)) in changed {
            let previous = latest.get(&site).cloned().flatten();
            let logged_before: Option<StatusSummary> = previous
                .as_ref()
                .and_then(|row| row.logged_summary.as_deref())
                .map(|text| parse("logged status", text))
                .transpose()?;
            let log = summary.worth_logging(logged_before.as_ref(), refresh);
            if log {
                let (seq, epoch) = seqs.next(m.site.origin())?;
                let event = EventToSign {
                    origin: m.site.origin().as_str(),
                    epoch,
                    seq,
                    site_name: &site,
                    body: EventBody::Status(&summary),
                    time: from_micros(now_us),
                };
                events.push(event_row(self.signer.as_deref(), event, Some(json(&summary).into_bytes())));
                if let Some(Recorded::Accepted { logged, .. }) = outcomes.get_mut(i) {
                    *logged = true;
                }
            }
            let logged_summary = if log { Some(json(&summary)) } else { previous.and_then(|row| row.logged_summary) };
            let row = connectivity_latest::ActiveModel {
                site_name: Set(site),
                online: Set(m.online),
                download_mbps: Set(m.download_mbps),
                upload_mbps: Set(m.upload_mbps),
                latency_ms: Set(m.latency_ms),
                technology: Set(json(&m.technology)),
                public_wifi_access_points: Set(m
                    .public_wifi_access_points
                    .map(|n| i32::try_from(n).unwrap_or(i32::MAX))),
                public_computers: Set(m.public_computers.map(|n| i32::try_from(n).unwrap_or(i32::MAX))),
                power_backup: Set(m.power_backup),
                source: Set(json(&m.source)),
                observed_at_us: Set(to_micros(m.observed_at)),
                received_at_us: Set(now_us),
                measurement: Set(Some(json(&m))),
                summary: Set(Some(json(&summary))),
                logged_summary: Set(logged_summary),
            };
            latest_rows.push(row);
        }
        insert_all(&txn, events).await?;
        upsert_latest(&txn, latest_rows).await?;
        seqs.finish(&txn).await?;
        txn.commit().await?;
        self.notify_change();
        Ok(outcomes)
    }

    /// The country of each stored site among `names` (without reading the sites).
    pub async fn site_countries(&self, names: &[String]) -> Result<HashMap<String, String>, StoreError> {
        let mut found = HashMap::new();
        for chunk in chunks(1, names.iter()) {
            let rows: Vec<(String, String)> = sites::Entity::find()
                .select_only()
                .column(sites::Column::Name)
                .column(sites::Column::CountryCode)
                .filter(sites::Column::Name.is_in(chunk.iter().cloned()))
                .into_tuple()
                .all(&self.db)
                .await?;
            found.extend(rows);
        }
        Ok(found)
    }

    /// The latest status of a site, if it ever reported.
    pub async fn latest_status(&self, site: &SiteName) -> Result<Option<Latest>, StoreError> {
        let Some(row) = connectivity_latest::Entity::find_by_id(site.to_string()).one(&self.db).await? else {
            return Ok(None);
        };
        latest_from_row(row).map(Some)
    }

    /// Every site's latest status summary, for the discovery index's first load.
    pub async fn latest_summaries(&self) -> Result<Vec<(String, StatusSummary)>, StoreError> {
        connectivity_latest::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(|row| Some((row.site_name.clone(), row.summary?)))
            .map(|(site, text)| Ok((site, parse("status", &text)?)))
            .collect()
    }

    /// The latest status summaries of the named sites that have one.
    pub async fn latest_summaries_of(&self, names: &[String]) -> Result<HashMap<String, StatusSummary>, StoreError> {
        let mut found = HashMap::new();
        for chunk in chunks(1, names.iter()) {
            for row in connectivity_latest::Entity::find()
                .filter(connectivity_latest::Column::SiteName.is_in(chunk.iter().cloned()))
                .all(&self.db)
                .await?
            {
                if let Some(text) = &row.summary {
                    found.insert(row.site_name.clone(), parse("status", text)?);
                }
            }
        }
        Ok(found)
    }

    /// Keeps refused measurements, with their reasons, each field truncated.
    pub async fn quarantine(&self, items: Vec<Quarantined>) -> Result<(), StoreError> {
        let rows = items.into_iter().map(|q| connectivity_quarantine::ActiveModel {
            principal: Set(cut(q.principal, QUARANTINE_FIELD_BYTES)),
            site_name: Set(cut(q.site, QUARANTINE_FIELD_BYTES)),
            idempotency_key: Set(cut(q.idempotency_key, QUARANTINE_FIELD_BYTES)),
            reason: Set(cut(q.reason, QUARANTINE_FIELD_BYTES)),
            body: Set(cut(q.body, QUARANTINE_BODY_BYTES)),
            received_at_us: Set(to_micros(q.received_at)),
            ..Default::default()
        });
        insert_all(&self.db, rows).await
    }

    /// Drops refused measurements received before `before`, then the oldest beyond
    /// `max_rows`; returns how many went.
    pub async fn prune_quarantine(&self, before: DateTime<Utc>, max_rows: u64) -> Result<u64, StoreError> {
        let mut removed = connectivity_quarantine::Entity::delete_many()
            .filter(connectivity_quarantine::Column::ReceivedAtUs.lt(to_micros(before)))
            .exec(&self.db)
            .await?
            .rows_affected;
        let newest_dropped: Option<i64> = connectivity_quarantine::Entity::find()
            .select_only()
            .column(connectivity_quarantine::Column::Id)
            .order_by_desc(connectivity_quarantine::Column::Id)
            .offset(max_rows)
            .limit(1)
            .into_tuple()
            .one(&self.db)
            .await?;
        if let Some(id) = newest_dropped {
            removed += connectivity_quarantine::Entity::delete_many()
                .filter(connectivity_quarantine::Column::Id.lte(id))
                .exec(&self.db)
                .await?
                .rows_affected;
        }
        Ok(removed)
    }

    /// The most recent refused measurements, newest first, optionally for one site or of
    /// one sender.
    pub async fn list_quarantine(
        &self,
        site: Option<&str>,
        principal: Option<&str>,
        limit: u64,
    ) -> Result<Vec<Quarantined>, StoreError> {
        let mut select = connectivity_quarantine::Entity::find();
        if let Some(site) = site {
            select = select.filter(connectivity_quarantine::Column::SiteName.eq(site));
        }
        if let Some(principal) = principal {
            select = select.filter(connectivity_quarantine::Column::Principal.eq(principal));
        }
        Ok(select
            .order_by_desc(connectivity_quarantine::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| Quarantined {
                principal: row.principal,
                site: row.site_name,
                idempotency_key: row.idempotency_key,
                reason: row.reason,
                body: row.body,
                received_at: from_micros(row.received_at_us),
            })
            .collect())
    }
}

fn latest_from_row(row: connectivity_latest::Model) -> Result<Latest, StoreError> {
    let summary = row.summary.ok_or_else(|| StoreError::Corrupt(format!("status of {}", row.site_name)))?;
    let measurement = row.measurement.map(|m| parse("measurement", &m)).transpose()?;
    Ok(Latest { measurement, summary: parse("status", &summary)? })
}

/// Writes sites' latest statuses, replacing what each held.
pub(crate) async fn upsert_latest(
    txn: &DatabaseTransaction,
    rows: Vec<connectivity_latest::ActiveModel>,
) -> Result<(), StoreError> {
    use connectivity_latest::Column;
    for chunk in chunks(columns::<connectivity_latest::Entity>(), rows) {
        connectivity_latest::Entity::insert_many(chunk)
            .on_conflict(
                OnConflict::column(Column::SiteName)
                    .update_columns([
                        Column::Online,
                        Column::DownloadMbps,
                        Column::UploadMbps,
                        Column::LatencyMs,
                        Column::Technology,
                        Column::PublicWifiAccessPoints,
                        Column::PublicComputers,
                        Column::PowerBackup,
                        Column::Source,
                        Column::ObservedAtUs,
                        Column::ReceivedAtUs,
                        Column::Measurement,
                        Column::Summary,
                        Column::LoggedSummary,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// The figures of one raw measurement that the metrics use.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub site: String,
    pub online: bool,
    pub download_mbps: Option<f64>,
    pub upload_mbps: Option<f64>,
    pub latency_ms: Option<f64>,
}

/// What a roll-up did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RollUp {
    /// (site, day) rows written.
    pub days: u64,
    /// Raw measurements deleted.
    pub measurements: u64,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Sites per roll-up transaction: bounded memory and short transactions.
const SITES_PER_ROLL_UP: u64 = 100;

fn daily_row(site: &str, day: i64, rows: &[connectivity_history::Model]) -> connectivity_daily::ActiveModel {
    use hubdir_core::connectivity::{median, percentile};
    let mut download: Vec<f64> = rows.iter().filter_map(|r| r.download_mbps).collect();
    let mut upload: Vec<f64> = rows.iter().filter_map(|r| r.upload_mbps).collect();
    let mut latency: Vec<f64> = rows.iter().filter_map(|r| r.latency_ms).collect();
    connectivity_daily::ActiveModel {
        site_name: Set(site.to_owned()),
        day: Set(day),
        measurements: Set(rows.len() as i64),
        online_count: Set(rows.iter().filter(|r| r.online).count() as i64),
        download_count: Set(download.len() as i64),
        download_median: Set(median(&mut download)),
        download_p10: Set(percentile(&mut download, 0.1)),
        upload_count: Set(upload.len() as i64),
        upload_median: Set(median(&mut upload)),
        upload_p10: Set(percentile(&mut upload, 0.1)),
        latency_count: Set(latency.len() as i64),
        latency_median: Set(median(&mut latency)),
    }
}

impl Store {
    /// Rolls raw measurements of whole UTC days before `cutoff`'s day up into one row per
    /// site and day, and deletes them; a hundred sites per transaction, so an interrupted
    /// roll-up resumes where it stopped. A day rolled up twice (a late measurement arrived
    /// after the first roll-up) keeps its first medians and adds the counts.
    pub async fn roll_up(&self, cutoff: DateTime<Utc>) -> Result<RollUp, StoreError> {
        let cutoff_us = to_micros(cutoff).div_euclid(MICROS_PER_DAY) * MICROS_PER_DAY;
        let mut done = RollUp::default();
        loop {
            let sites: Vec<String> = connectivity_history::Entity::find()
                .select_only()
                .column(connectivity_history::Column::SiteName)
                .distinct()
                .filter(connectivity_history::Column::ObservedAtUs.lt(cutoff_us))
                .order_by_asc(connectivity_history::Column::SiteName)
                .limit(SITES_PER_ROLL_UP)
                .into_tuple()
                .all(&self.db)
                .await?;
            if sites.is_empty() {
                return Ok(done);
            }
            let (_sqlite_turn, txn) = self.begin_write().await?;
            let rows = connectivity_history::Entity::find()
                .filter(connectivity_history::Column::SiteName.is_in(sites.iter().cloned()))
                .filter(connectivity_history::Column::ObservedAtUs.lt(cutoff_us))
                .all(&txn)
                .await?;
            let mut by_day: BTreeMap<(String, i64), Vec<connectivity_history::Model>> = BTreeMap::new();
            for row in rows {
                let day = row.observed_at_us.div_euclid(MICROS_PER_DAY);
                by_day.entry((row.site_name.clone(), day)).or_default().push(row);
            }
            for ((site, day), rows) in &by_day {
                done.measurements += rows.len() as u64;
                done.days += 1;
                connectivity_daily::Entity::insert(daily_row(site, *day, rows))
                    .on_conflict(
                        OnConflict::columns([connectivity_daily::Column::SiteName, connectivity_daily::Column::Day])
                            .value(
                                connectivity_daily::Column::Measurements,
                                sea_orm::sea_query::Expr::col((
                                    connectivity_daily::Entity,
                                    connectivity_daily::Column::Measurements,
                                ))
                                .add(rows.len() as i64),
                            )
                            .value(
                                connectivity_daily::Column::OnlineCount,
                                sea_orm::sea_query::Expr::col((
                                    connectivity_daily::Entity,
                                    connectivity_daily::Column::OnlineCount,
                                ))
                                .add(rows.iter().filter(|r| r.online).count() as i64),
                            )
                            .to_owned(),
                    )
                    .exec_without_returning(&txn)
                    .await?;
            }
            connectivity_history::Entity::delete_many()
                .filter(connectivity_history::Column::SiteName.is_in(sites.iter().cloned()))
                .filter(connectivity_history::Column::ObservedAtUs.lt(cutoff_us))
                .exec(&txn)
                .await?;
            txn.commit().await?;
        }
    }

    /// The raw measurements of `sites` observed in `[start, end)`.
    pub async fn samples(
        &self,
        sites: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<Sample>, StoreError> {
        let mut out = Vec::new();
        for chunk in chunks(1, sites.iter()) {
            let rows = connectivity_history::Entity::find()
                .filter(connectivity_history::Column::SiteName.is_in(chunk.iter().cloned()))
                .filter(connectivity_history::Column::ObservedAtUs.gte(to_micros(start)))
                .filter(connectivity_history::Column::ObservedAtUs.lt(to_micros(end)))
                .all(&self.db)
                .await?;
            out.extend(rows.into_iter().map(|r| Sample {
                site: r.site_name,
                online: r.online,
                download_mbps: r.download_mbps,
                upload_mbps: r.upload_mbps,
                latency_ms: r.latency_ms,
            }));
        }
        Ok(out)
    }

    /// The daily roll-ups of `sites` for the UTC days wholly inside `[start, end)`.
    pub async fn daily_rollups(
        &self,
        sites: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<connectivity_daily::Model>, StoreError> {
        let first = to_micros(start).div_euclid(MICROS_PER_DAY) + i64::from(to_micros(start) % MICROS_PER_DAY != 0);
        let last = to_micros(end).div_euclid(MICROS_PER_DAY); // exclusive
        let mut out = Vec::new();
        for chunk in chunks(1, sites.iter()) {
            out.extend(
                connectivity_daily::Entity::find()
                    .filter(connectivity_daily::Column::SiteName.is_in(chunk.iter().cloned()))
                    .filter(connectivity_daily::Column::Day.gte(first))
                    .filter(connectivity_daily::Column::Day.lt(last))
                    .all(&self.db)
                    .await?,
            );
        }
        Ok(out)
    }
}
