//! The daily roll-up: raw measurements older than the retention become one row per site
//! and day, and the metrics read both.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use crate::entity::{connectivity_daily, connectivity_history};
use crate::{Store, StoreError, to_micros};

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

/// Rows read at once by [`Store::for_each_in_window`] for a summary.
pub const SAMPLES_PER_PAGE: u64 = 10_000;

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

    /// Hands every raw measurement of `sites` observed in `[start, end)` to `on_sample`, then
    /// every daily roll-up of the UTC days wholly inside it to `on_day`, reading `page` rows
    /// at a time, site by site along the `(site_name, observed_at_us)` index: a summary over
    /// a country-year holds one page, not the year. Both are read from one snapshot (a read
    /// transaction, REPEATABLE READ on PostgreSQL), so a roll-up running meanwhile can neither
    /// count a day twice nor lose it. Returns how many of each there were.
    pub async fn for_each_in_window(
        &self,
        sites: &[String],
        (start, end): (DateTime<Utc>, DateTime<Utc>),
        page: u64,
        mut on_sample: impl FnMut(Sample) + Send,
        mut on_day: impl FnMut(connectivity_daily::Model) + Send,
    ) -> Result<(u64, u64), StoreError> {
        let page = Ord::max(page, 1);
        let txn = match self.db.get_database_backend() {
            sea_orm::DbBackend::Postgres => {
                self.db
                    .begin_with_config(
                        Some(sea_orm::IsolationLevel::RepeatableRead),
                        Some(sea_orm::AccessMode::ReadOnly),
                    )
                    .await?
            }
            _ => self.db.begin().await?,
        };
        let (start_us, end_us) = (to_micros(start), to_micros(end));
        let first_day = start_us.div_euclid(MICROS_PER_DAY) + i64::from(start_us % MICROS_PER_DAY != 0);
        let last_day = end_us.div_euclid(MICROS_PER_DAY); // exclusive
        let (mut samples, mut days) = (0, 0);
        for site in sites {
            use connectivity_history::Column as H;
            let mut after: Option<(i64, i64)> = None;
            loop {
                let mut query = connectivity_history::Entity::find()
                    .filter(H::SiteName.eq(site.as_str()))
                    .filter(H::ObservedAtUs.gte(start_us))
                    .filter(H::ObservedAtUs.lt(end_us));
                if let Some((time, id)) = after {
                    query = query.filter(
                        Condition::any()
                            .add(H::ObservedAtUs.gt(time))
                            .add(Condition::all().add(H::ObservedAtUs.eq(time)).add(H::Id.gt(id))),
                    );
                }
                let rows = query.order_by_asc(H::ObservedAtUs).order_by_asc(H::Id).limit(page).all(&txn).await?;
                let full = rows.len() as u64 == page;
                after = rows.last().map(|r| (r.observed_at_us, r.id));
                for r in rows {
                    samples += 1;
                    on_sample(Sample {
                        site: r.site_name,
                        online: r.online,
                        download_mbps: r.download_mbps,
                        upload_mbps: r.upload_mbps,
                        latency_ms: r.latency_ms,
                    });
                }
                if !full {
                    break;
                }
            }
            use connectivity_daily::Column as D;
            let mut after_day = first_day - 1;
            loop {
                let rows = connectivity_daily::Entity::find()
                    .filter(D::SiteName.eq(site.as_str()))
                    .filter(D::Day.gt(after_day))
                    .filter(D::Day.lt(last_day))
                    .order_by_asc(D::Day)
                    .limit(page)
                    .all(&txn)
                    .await?;
                let full = rows.len() as u64 == page;
                for row in rows {
                    days += 1;
                    after_day = row.day;
                    on_day(row);
                }
                if !full {
                    break;
                }
            }
        }
        txn.commit().await?;
        Ok((samples, days))
    }
}
