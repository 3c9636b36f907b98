//! The daily roll-up: raw measurements older than the retention become one row per site
//! and day, and the metrics read both.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::chunked::chunks;
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

/// Rows read at once by [`Store::for_each_sample`] and [`Store::for_each_daily_rollup`].
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

    /// Hands each raw measurement of `sites` observed in `[start, end)` to `each`, reading
    /// [`SAMPLES_PER_PAGE`] rows at a time: a summary over a country-year holds one page, not
    /// the year. Returns how many there were.
    pub async fn for_each_sample(
        &self,
        sites: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        mut each: impl FnMut(Sample) + Send,
    ) -> Result<u64, StoreError> {
        let mut count = 0;
        for chunk in chunks(1, sites.iter()) {
            let mut after = i64::MIN;
            loop {
                let rows = connectivity_history::Entity::find()
                    .filter(connectivity_history::Column::SiteName.is_in(chunk.iter().cloned()))
                    .filter(connectivity_history::Column::ObservedAtUs.gte(to_micros(start)))
                    .filter(connectivity_history::Column::ObservedAtUs.lt(to_micros(end)))
                    .filter(connectivity_history::Column::Id.gt(after))
                    .order_by_asc(connectivity_history::Column::Id)
                    .limit(SAMPLES_PER_PAGE)
                    .all(&self.db)
                    .await?;
                let Some(last) = rows.last() else { break };
                after = last.id;
                for r in rows {
                    count += 1;
                    each(Sample {
                        site: r.site_name,
                        online: r.online,
                        download_mbps: r.download_mbps,
                        upload_mbps: r.upload_mbps,
                        latency_ms: r.latency_ms,
                    });
                }
            }
        }
        Ok(count)
    }

    /// Hands each daily roll-up of `sites` for the UTC days wholly inside `[start, end)` to
    /// `each`, a page at a time.
    pub async fn for_each_daily_rollup(
        &self,
        sites: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        mut each: impl FnMut(connectivity_daily::Model) + Send,
    ) -> Result<u64, StoreError> {
        let first = to_micros(start).div_euclid(MICROS_PER_DAY) + i64::from(to_micros(start) % MICROS_PER_DAY != 0);
        let last = to_micros(end).div_euclid(MICROS_PER_DAY); // exclusive
        let mut count = 0;
        for chunk in chunks(1, sites.iter()) {
            let mut after: Option<(String, i64)> = None;
            loop {
                let mut query = connectivity_daily::Entity::find()
                    .filter(connectivity_daily::Column::SiteName.is_in(chunk.iter().cloned()))
                    .filter(connectivity_daily::Column::Day.gte(first))
                    .filter(connectivity_daily::Column::Day.lt(last));
                if let Some((site, day)) = &after {
                    query = query.filter(
                        sea_orm::Condition::any().add(connectivity_daily::Column::SiteName.gt(site.clone())).add(
                            sea_orm::Condition::all()
                                .add(connectivity_daily::Column::SiteName.eq(site.clone()))
                                .add(connectivity_daily::Column::Day.gt(*day)),
                        ),
                    );
                }
                let rows = query
                    .order_by_asc(connectivity_daily::Column::SiteName)
                    .order_by_asc(connectivity_daily::Column::Day)
                    .limit(SAMPLES_PER_PAGE)
                    .all(&self.db)
                    .await?;
                let Some(end_row) = rows.last() else { break };
                after = Some((end_row.site_name.clone(), end_row.day));
                for row in rows {
                    count += 1;
                    each(row);
                }
            }
        }
        Ok(count)
    }
}
