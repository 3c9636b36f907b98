//! `SummarizeConnectivity`: metrics over the sites of a scope and a time window, from raw
//! measurements and, for days already rolled up, their daily rows.
//!
//! Memory is bounded whatever the window: measurements are read a page at a time and folded
//! into fixed-size accumulators, never kept. Uptime is the share of measurements taken while
//! the line was up (agents report at a steady pace, so it stands for time). Medians are the
//! mean of the middle two for an even count; the 10th percentile is nearest-rank. They come
//! from a histogram of buckets 0.1% wide that keeps each bucket's smallest and largest value:
//! exact when the value sought is alone in its bucket (or all of its bucket's values are
//! equal), otherwise within 0.1%. A rolled-up day enters as its own median (or 10th
//! percentile), weighted by its number of values: an approximation for windows past the
//! retention period. A site meets the benchmark of its country when the median of its
//! download figures in the window reaches the benchmark's `good` threshold; that is decided
//! exactly from four numbers per site (see [`SiteMedian`]).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use hubdir_node::config::ConnectivityConfig;
use hubdir_proto::v1::SummarizeConnectivityResponse;
use hubdir_store::entity::connectivity_daily;
use hubdir_store::{Sample, Store, StoreError};

/// Buckets are `ln(value) / STEP` wide (0.1%); zero and below share one bucket.
const STEP: f64 = 0.000_999_500_333; // ln(1.001)

/// A bucket's count and the smallest and largest value that fell in it.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    count: u64,
    min: f64,
    max: f64,
}

/// A weighted distribution of non-negative values in at most a few tens of thousands of
/// buckets (values from 0.001 to 10^6 span about 20,700), whatever the number of values.
#[derive(Debug, Default)]
struct Distribution {
    buckets: BTreeMap<i32, Bucket>,
    total: u64,
}

impl Distribution {
    fn add(&mut self, value: f64, weight: u64) {
        if weight == 0 || !value.is_finite() {
            return;
        }
        let key = if value > 0.0 { (value.ln() / STEP).floor() as i32 } else { i32::MIN };
        let bucket = self.buckets.entry(key).or_insert(Bucket { count: 0, min: value, max: value });
        bucket.count += weight;
        bucket.min = bucket.min.min(value);
        bucket.max = bucket.max.max(value);
        self.total += weight;
    }

    fn extend_weighted(&mut self, value: Option<f64>, weight: u64) {
        if let Some(value) = value {
            self.add(value, weight);
        }
    }

    /// The value of 1-based `rank` in sorted order: exact when its bucket holds one distinct
    /// value, else the middle of the bucket's range (within 0.1%).
    fn at_rank(&self, rank: u64) -> Option<f64> {
        let mut seen = 0;
        for bucket in self.buckets.values() {
            seen += bucket.count;
            if seen >= rank {
                return Some(if rank == seen { bucket.max } else { (bucket.min + bucket.max) / 2.0 });
            }
        }
        None
    }

    fn median(&self) -> Option<f64> {
        let n = self.total;
        match n {
            0 => None,
            _ if n % 2 == 1 => self.at_rank(n / 2 + 1),
            _ => Some((self.at_rank(n / 2)? + self.at_rank(n / 2 + 1)?) / 2.0),
        }
    }

    /// Nearest rank: the smallest value with at least `p` of the values at or below it.
    fn percentile(&self, p: f64) -> Option<f64> {
        let rank = ((p * self.total as f64).ceil() as u64).max(1);
        self.at_rank(rank)
    }
}

/// Whether a site's median download reaches a threshold `good`, from four numbers: how many
/// values, how many reach `good`, the largest below it and the smallest at or above it. For an
/// odd count the median reaches `good` when more than half do; for an even count, when more
/// than half do, or when exactly half do and the middle two (the largest below and the
/// smallest at or above) average to `good` or more.
#[derive(Debug, Clone, Copy)]
struct SiteMedian {
    good: f64,
    count: u64,
    reaching: u64,
    largest_below: f64,
    smallest_reaching: f64,
}

impl SiteMedian {
    fn new(good: f64) -> SiteMedian {
        SiteMedian { good, count: 0, reaching: 0, largest_below: f64::NEG_INFINITY, smallest_reaching: f64::INFINITY }
    }

    fn add(&mut self, value: f64, weight: u64) {
        if weight == 0 || !value.is_finite() {
            return;
        }
        self.count += weight;
        if value >= self.good {
            self.reaching += weight;
            self.smallest_reaching = self.smallest_reaching.min(value);
        } else {
            self.largest_below = self.largest_below.max(value);
        }
    }

    fn meets(&self) -> bool {
        let (n, k) = (self.count, self.reaching);
        match n {
            0 => false,
            _ if n % 2 == 1 => k > n / 2,
            _ => k > n / 2 || (k == n / 2 && (self.largest_below + self.smallest_reaching) / 2.0 >= self.good),
        }
    }
}

/// The running sums of one summary.
struct Accumulator<'a> {
    config: &'a ConnectivityConfig,
    sites: &'a HashMap<String, String>,
    measurements: i64,
    online: i64,
    download: Distribution,
    download_p10: Distribution,
    upload: Distribution,
    upload_p10: Distribution,
    latency: Distribution,
    /// Every site with data in the window.
    per_site: HashMap<String, SiteMedian>,
}

impl<'a> Accumulator<'a> {
    fn new(config: &'a ConnectivityConfig, sites: &'a HashMap<String, String>) -> Accumulator<'a> {
        Accumulator {
            config,
            sites,
            measurements: 0,
            online: 0,
            download: Distribution::default(),
            download_p10: Distribution::default(),
            upload: Distribution::default(),
            upload_p10: Distribution::default(),
            latency: Distribution::default(),
            per_site: HashMap::new(),
        }
    }

    /// Counts `site` as having data, and its download figure (if any) towards its median.
    /// The site's name is copied once, when first seen, not per measurement.
    fn add_to_site(&mut self, site: &str, download: Option<f64>, weight: u64) {
        if !self.per_site.contains_key(site) {
            let country = self.sites.get(site).map(String::as_str).unwrap_or_default();
            let good = self.config.benchmark_for(country).good_mbps;
            self.per_site.insert(site.to_owned(), SiteMedian::new(good));
        }
        if let (Some(median), Some(value)) = (self.per_site.get_mut(site), download) {
            median.add(value, weight);
        }
    }

    fn add_sample(&mut self, s: &Sample) {
        self.measurements += 1;
        self.online += i64::from(s.online);
        self.download.extend_weighted(s.download_mbps, 1);
        self.download_p10.extend_weighted(s.download_mbps, 1);
        self.upload.extend_weighted(s.upload_mbps, 1);
        self.upload_p10.extend_weighted(s.upload_mbps, 1);
        self.latency.extend_weighted(s.latency_ms, 1);
        self.add_to_site(&s.site, s.download_mbps, 1);
    }

    fn add_day(&mut self, d: &connectivity_daily::Model) {
        let weight = |count: i64| u64::try_from(count).unwrap_or(0);
        self.measurements += d.measurements;
        self.online += d.online_count;
        for (median, p10, count, to, to_p10) in [
            (d.download_median, d.download_p10, d.download_count, &mut self.download, &mut self.download_p10),
            (d.upload_median, d.upload_p10, d.upload_count, &mut self.upload, &mut self.upload_p10),
        ] {
            to.extend_weighted(median, weight(count));
            to_p10.extend_weighted(p10, weight(count));
        }
        self.latency.extend_weighted(d.latency_median, weight(d.latency_count));
        self.add_to_site(&d.site_name, d.download_median, weight(d.download_count));
    }

    fn finish(self) -> SummarizeConnectivityResponse {
        let meeting = self.per_site.values().filter(|site| site.meets()).count();
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let (sites, with_data) = (self.sites.len(), self.per_site.len());
        SummarizeConnectivityResponse {
            site_count: sites as i64,
            sites_without_data_count: (sites - with_data.min(sites)) as i64,
            uptime_ratio: ratio(self.online as f64, self.measurements as f64),
            median_download_mbps: self.download.median().unwrap_or(0.0),
            p10_download_mbps: self.download_p10.percentile(0.1).unwrap_or(0.0),
            median_upload_mbps: self.upload.median().unwrap_or(0.0),
            p10_upload_mbps: self.upload_p10.percentile(0.1).unwrap_or(0.0),
            median_latency_ms: self.latency.median().unwrap_or(0.0),
            meeting_benchmark_ratio: ratio(meeting as f64, with_data as f64),
        }
    }
}

/// Sums the metrics of `sites` (name → country) over `[start, end)`, reading the store a
/// page at a time.
pub async fn summarize(
    store: &Store,
    config: &ConnectivityConfig,
    sites: &HashMap<String, String>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<SummarizeConnectivityResponse, StoreError> {
    let names: Vec<String> = sites.keys().cloned().collect();
    // Both callbacks fold into the same sums (one at a time: the store calls them in turn).
    let sums = std::sync::Mutex::new(Accumulator::new(config, sites));
    let sum = || sums.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let page = hubdir_store::SAMPLES_PER_PAGE;
    store.for_each_in_window(&names, (start, end), page, |s| sum().add_sample(&s), |d| sum().add_day(&d)).await?;
    Ok(sums.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()).finish())
}

#[cfg(test)]
fn compute(
    config: &ConnectivityConfig,
    sites: &HashMap<String, String>,
    samples: &[Sample],
    daily: &[connectivity_daily::Model],
) -> SummarizeConnectivityResponse {
    let mut sums = Accumulator::new(config, sites);
    samples.iter().for_each(|s| sums.add_sample(s));
    daily.iter().for_each(|d| sums.add_day(d));
    sums.finish()
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

    proptest::proptest! {
        /// The four numbers decide a site's benchmark exactly as the sorted values would.
        #[test]
        fn a_sites_median_is_judged_exactly(values in proptest::collection::vec(0u32..200, 1..40), good in 1u32..200) {
            let values: Vec<f64> = values.into_iter().map(|v| f64::from(v) / 2.0).collect();
            let good = f64::from(good) / 2.0;
            let mut site = SiteMedian::new(good);
            values.iter().for_each(|v| site.add(*v, 1));
            let exact = hubdir_core::connectivity::median(&mut values.clone()).unwrap() >= good;
            proptest::prop_assert_eq!(site.meets(), exact);
        }

        /// The histogram's median and 10th percentile are within 0.1% of the exact ones, and
        /// exact for values that differ by more than that.
        #[test]
        fn histogram_quantiles_are_within_a_tenth_of_a_percent(
            values in proptest::collection::vec(0.001f64..10_000.0, 1..300),
        ) {
            let mut distribution = Distribution::default();
            values.iter().for_each(|v| distribution.add(*v, 1));
            let median = hubdir_core::connectivity::median(&mut values.clone()).unwrap();
            let p10 = hubdir_core::connectivity::percentile(&mut values.clone(), 0.1).unwrap();
            let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 1e-12;
            proptest::prop_assert!(close(distribution.median().unwrap(), median), "{} vs {median}", distribution.median().unwrap());
            proptest::prop_assert!(close(distribution.percentile(0.1).unwrap(), p10));
            let spread: Vec<f64> = (0..values.len()).map(|i| 1.01f64.powi(i as i32)).collect();
            let mut exact = Distribution::default();
            spread.iter().for_each(|v| exact.add(*v, 1));
            proptest::prop_assert_eq!(exact.median(), hubdir_core::connectivity::median(&mut spread.clone()));
        }
    }
}
