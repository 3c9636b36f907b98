//! `SummarizeConnectivity`: metrics over the sites of a scope and a time window, from raw
//! measurements and, for days already rolled up, their daily rows.
//!
//! Uptime is the share of measurements taken while the line was up (agents report at a
//! steady pace, so it stands for time). Medians are the mean of the middle two for an even
//! count; the 10th percentile is nearest-rank. A rolled-up day enters as its own median (or
//! 10th percentile), weighted by its number of values: exact while the window lies within the
//! retention period, an approximation beyond it. A site meets the benchmark of its country
//! when the median of its download figures in the window reaches the benchmark's `good`
//! threshold.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hubdir_core::connectivity::{median, percentile};
use hubdir_node::config::ConnectivityConfig;
use hubdir_proto::v1::SummarizeConnectivityResponse;
use hubdir_store::entity::connectivity_daily;
use hubdir_store::{Sample, Store, StoreError};

/// Values of one metric: raw values, and from daily rows their median and 10th percentile,
/// each weighted by the day's number of values.
#[derive(Default)]
struct Values {
    raw: Vec<f64>,
    daily_medians: Vec<(f64, i64)>,
    daily_p10s: Vec<(f64, i64)>,
}

/// The raw values with each daily figure repeated as often as the values it stands for.
fn expand(raw: &[f64], weighted: &[(f64, i64)]) -> Vec<f64> {
    let mut all = raw.to_vec();
    for (value, weight) in weighted {
        all.extend(std::iter::repeat_n(*value, usize::try_from(*weight).unwrap_or(0)));
    }
    all
}

impl Values {
    fn add_day(&mut self, median: Option<f64>, p10: Option<f64>, count: i64) {
        self.daily_medians.extend(median.map(|v| (v, count)));
        self.daily_p10s.extend(p10.map(|v| (v, count)));
    }

    fn median(&self) -> Option<f64> {
        median(&mut expand(&self.raw, &self.daily_medians))
    }

    fn p10(&self) -> Option<f64> {
        percentile(&mut expand(&self.raw, &self.daily_p10s), 0.1)
    }
}

/// Sums the metrics of `sites` (name → country) over `[start, end)`.
pub async fn summarize(
    store: &Store,
    config: &ConnectivityConfig,
    sites: &HashMap<String, String>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<SummarizeConnectivityResponse, StoreError> {
    let names: Vec<String> = sites.keys().cloned().collect();
    let samples = store.samples(&names, start, end).await?;
    let daily = store.daily_rollups(&names, start, end).await?;
    Ok(compute(config, sites, &samples, &daily))
}

fn compute(
    config: &ConnectivityConfig,
    sites: &HashMap<String, String>,
    samples: &[Sample],
    daily: &[connectivity_daily::Model],
) -> SummarizeConnectivityResponse {
    let (mut measurements, mut online) = (0i64, 0i64);
    let (mut download, mut upload, mut latency) = (Values::default(), Values::default(), Values::default());
    let mut per_site: HashMap<&str, Values> = HashMap::new();
    let mut with_data: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for s in samples {
        measurements += 1;
        online += i64::from(s.online);
        with_data.insert(&s.site);
        download.raw.extend(s.download_mbps);
        upload.raw.extend(s.upload_mbps);
        latency.raw.extend(s.latency_ms);
        per_site.entry(&s.site).or_default().raw.extend(s.download_mbps);
    }
    for d in daily {
        measurements += d.measurements;
        online += d.online_count;
        with_data.insert(&d.site_name);
        download.add_day(d.download_median, d.download_p10, d.download_count);
        upload.add_day(d.upload_median, d.upload_p10, d.upload_count);
        latency.add_day(d.latency_median, None, d.latency_count);
        per_site.entry(&d.site_name).or_default().add_day(d.download_median, None, d.download_count);
    }
    let meeting = per_site
        .iter()
        .filter(|(site, values)| {
            let country = sites.get(**site).map(String::as_str).unwrap_or_default();
            values.median().is_some_and(|m| m >= config.benchmark_for(country).good_mbps)
        })
        .count();
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    SummarizeConnectivityResponse {
        site_count: sites.len() as i64,
        sites_without_data_count: (sites.len() - with_data.len().min(sites.len())) as i64,
        uptime_ratio: ratio(online as f64, measurements as f64),
        median_download_mbps: download.median().unwrap_or(0.0),
        p10_download_mbps: download.p10().unwrap_or(0.0),
        median_upload_mbps: upload.median().unwrap_or(0.0),
        p10_upload_mbps: upload.p10().unwrap_or(0.0),
        median_latency_ms: latency.median().unwrap_or(0.0),
        meeting_benchmark_ratio: ratio(meeting as f64, with_data.len() as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(site: &str, online: bool, download: Option<f64>, latency: Option<f64>) -> Sample {
        Sample {
            site: site.into(),
            online,
            download_mbps: download,
            upload_mbps: download.map(|d| d / 10.0),
            latency_ms: latency,
        }
    }

    /// Worked by hand: three sites, one without data.
    ///
    /// - A (ZW): online 10, 20, 30, 40 Mbit/s and one offline report; latencies 30, 50.
    /// - B (ZW): online 100 Mbit/s; latency 10.
    /// - C (KE): nothing.
    ///
    /// Six reports, five online: uptime 5/6. Downloads 10, 20, 30, 40, 100: median 30, p10
    /// (nearest rank, ceil(0.5) = 1st) 10. Uploads a tenth of that: 3 and 1. Latencies 10, 30,
    /// 50: median 30. A's median download is 25 (the mean of 20 and 30): good (≥ 20); B's is
    /// 100: good. Both sites with data meet the benchmark: ratio 1. With a ZW benchmark of
    /// 50 Mbit/s only B does: 0.5.
    #[test]
    fn a_hand_computed_example() {
        let sites: HashMap<String, String> =
            [("A", "ZW"), ("B", "ZW"), ("C", "KE")].iter().map(|(s, c)| (s.to_string(), c.to_string())).collect();
        let samples = vec![
            sample("A", true, Some(10.0), Some(30.0)),
            sample("A", true, Some(20.0), None),
            sample("A", true, Some(30.0), Some(50.0)),
            sample("A", true, Some(40.0), None),
            sample("A", false, None, None),
            sample("B", true, Some(100.0), Some(10.0)),
        ];
        let config = ConnectivityConfig::default();
        let summary = compute(&config, &sites, &samples, &[]);
        assert_eq!(summary.site_count, 3);
        assert_eq!(summary.sites_without_data_count, 1);
        assert!((summary.uptime_ratio - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!((summary.median_download_mbps, summary.p10_download_mbps), (30.0, 10.0));
        assert_eq!((summary.median_upload_mbps, summary.p10_upload_mbps), (3.0, 1.0));
        assert_eq!(summary.median_latency_ms, 30.0);
        assert_eq!(summary.meeting_benchmark_ratio, 1.0);

        let mut strict = ConnectivityConfig::default();
        strict
            .countries
            .insert("ZW".into(), hubdir_core::connectivity::Benchmark { good_mbps: 50.0, moderate_mbps: 5.0 });
        assert_eq!(compute(&strict, &sites, &samples, &[]).meeting_benchmark_ratio, 0.5);
    }

    /// A rolled-up day counts as its median (or 10th percentile) once per value it stands for:
    /// one raw report of 40 Mbit/s and a day of three reports with median 20 and 10th
    /// percentile 10 give a median of 20 (40, 20, 20, 20) and a 10th percentile of 10.
    #[test]
    fn rolled_up_days_count_by_their_weight() {
        let sites: HashMap<String, String> = [("A".to_string(), "ZW".to_string())].into_iter().collect();
        let day = connectivity_daily::Model {
            site_name: "A".into(),
            day: 20_000,
            measurements: 3,
            online_count: 2,
            download_count: 3,
            download_median: Some(20.0),
            download_p10: Some(10.0),
            upload_count: 0,
            upload_median: None,
            upload_p10: None,
            latency_count: 0,
            latency_median: None,
        };
        let summary = compute(&ConnectivityConfig::default(), &sites, &[sample("A", true, Some(40.0), None)], &[day]);
        assert_eq!(summary.uptime_ratio, 0.75);
        assert_eq!((summary.median_download_mbps, summary.p10_download_mbps), (20.0, 10.0));
        assert_eq!(summary.meeting_benchmark_ratio, 1.0);
        assert_eq!(summary.sites_without_data_count, 0);
    }
}
