//! Recording measurements: history rows, each site's latest, and STATUS events.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Duration, Utc};
use hubdir_core::connectivity::{Measurement, StatusSummary};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QuerySelect};

use super::{json, parse};
use crate::chunked::{chunks, columns, insert_all};
use crate::entity::{connectivity_history, connectivity_latest, sites};
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

impl Store {
    /// Records measurements (each with the status it gives, worked out by the caller against
    /// its benchmark) in one transaction: history rows, each site's latest (an older
    /// measurement never replaces a newer one), and a STATUS event in the site's origin's
    /// change log when the state or class changes or the last event is `refresh` old.
    #[tracing::instrument(level = "debug", name = "store.record_measurements", skip_all)]
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
