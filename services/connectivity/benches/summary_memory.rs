//! Peak memory of `SummarizeConnectivity` over a country-year: 1,000 sites reporting every
//! hour for 365 days (8,760,000 raw measurements) in a SQLite file, next to a baseline in the
//! same run: the summary as it was computed before it streamed, on the same rows through the
//! same reader, with the same figures out (every row kept, each metric's values collected
//! and sorted for exact medians); the two answers are compared.
//!
//! cargo bench -p hubdir-connectivity --bench summary_memory [-- SITES HOURS]
//!
//! Peak resident memory is the kernel's `VmHWM`, reset (`/proc/self/clear_refs` 5) before
//! each measured step, so the rows' generation does not count. Linux only.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use hubdir_node::config::ConnectivityConfig;
use hubdir_store::Store;
use sea_orm::ConnectionTrait;

fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number of kB")
}

fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak resident size");
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (sites, hours) = (args.first().copied().unwrap_or(1_000), args.get(1).copied().unwrap_or(8_760));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("year.db").display())).await.expect("store");
    let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("a time");
    let start_us = start.timestamp_micros();
    let generated = Instant::now();
    // Rows made by SQLite itself: one per site and hour, a tenth of them offline.
    let sql = format!(
        "WITH RECURSIVE site(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM site WHERE i < {last_site}), \
         hour(h) AS (SELECT 0 UNION ALL SELECT h + 1 FROM hour WHERE h < {last_hour}) \
         INSERT INTO connectivity_history (site_name, idempotency_key, online, download_mbps, upload_mbps, \
           latency_ms, technology, source, observed_at_us, received_at_us) \
         SELECT 'sites/zw/s' || i, 'h' || h, (i + h) % 10 != 0, (i * 7 + h * 13) % 200 + 0.5, \
           (i + h) % 40 + 0.25, 20 + (i + h) % 80, 'FIBRE', 'AGENT', {start_us} + h * 3600000000, \
           {start_us} + h * 3600000000 FROM site, hour",
        last_site = sites - 1,
        last_hour = hours - 1,
    );
    store.connection().execute_unprepared(&sql).await.expect("generate the year");
    let rows = sites * hours;
    println!("{rows} measurements of {sites} sites generated in {:.1} s", generated.elapsed().as_secs_f64());

    let names: HashMap<String, String> = (0..sites).map(|i| (format!("sites/zw/s{i}"), "ZW".to_owned())).collect();
    let list: Vec<String> = names.keys().cloned().collect();
    let end = start + chrono::Duration::hours(hours as i64);
    let config = ConnectivityConfig::default();

    reset_peak();
    let before = peak_kib();
    let timer = Instant::now();
    let summary = hubdir_connectivity::metrics::summarize(&store, &config, &names, start, end).await.expect("summary");
    let streamed = (peak_kib().saturating_sub(before), timer.elapsed());
    println!(
        "summary: median download {:.2} Mbit/s, uptime {:.3}, meeting {:.3}",
        summary.median_download_mbps, summary.uptime_ratio, summary.meeting_benchmark_ratio
    );

    reset_peak();
    let before = peak_kib();
    let timer = Instant::now();
    let mut whole = Vec::new();
    let (read, _) = store
        .for_each_in_window(&list, (start, end), hubdir_store::SAMPLES_PER_PAGE, |s| whole.push(s), |_| {})
        .await
        .expect("rows");
    let exact = exact_summary(&whole, &names, &config);
    let kept = (peak_kib().saturating_sub(before), timer.elapsed());
    assert_eq!((read as usize, whole.len()), (rows, rows));
    drop(whole);
    let within = |a: f64, b: f64| (a - b).abs() <= b.abs() * 0.001;
    assert!(within(summary.median_download_mbps, exact.0), "{} vs {}", summary.median_download_mbps, exact.0);
    assert!(within(summary.p10_download_mbps, exact.1), "{} vs {}", summary.p10_download_mbps, exact.1);
    assert_eq!(summary.meeting_benchmark_ratio, exact.2);
    println!("the exact summary agrees: median {:.2}, p10 {:.2}, meeting {:.3}", exact.0, exact.1, exact.2);

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("| what | peak resident growth | time |");
    println!("|---|---:|---:|");
    println!("| summary, streamed (this code) | {:.1} MiB | {:.1} s |", mib(streamed.0), streamed.1.as_secs_f64());
    println!(
        "| baseline: the rows kept whole, exact medians | {:.1} MiB | {:.1} s |",
        mib(kept.0),
        kept.1.as_secs_f64()
    );
    let ratio = |a: f64, b: f64| a / b.max(f64::MIN_POSITIVE);
    println!(
        "| ratio streamed / whole | {:.3} | {:.2} |",
        ratio(streamed.0 as f64, kept.0 as f64),
        ratio(streamed.1.as_secs_f64(), kept.1.as_secs_f64())
    );
}

/// The summary as computed before it streamed: every value of each metric collected, sorted
/// for its median and 10th percentile, and each site's downloads for its benchmark. Returns
/// (median download, p10 download, share of sites with data meeting the benchmark).
fn exact_summary(
    rows: &[hubdir_store::Sample],
    sites: &HashMap<String, String>,
    config: &ConnectivityConfig,
) -> (f64, f64, f64) {
    use hubdir_core::connectivity::{median, percentile};
    let mut download: Vec<f64> = rows.iter().filter_map(|r| r.download_mbps).collect();
    let mut upload: Vec<f64> = rows.iter().filter_map(|r| r.upload_mbps).collect();
    let mut latency: Vec<f64> = rows.iter().filter_map(|r| r.latency_ms).collect();
    let mut per_site: HashMap<&str, Vec<f64>> = HashMap::new();
    for r in rows {
        per_site.entry(&r.site).or_default().extend(r.download_mbps);
    }
    let meeting = per_site
        .iter_mut()
        .map(|(site, values)| {
            let good = config.benchmark_for(sites.get(*site).map(String::as_str).unwrap_or_default()).good_mbps;
            median(values).is_some_and(|m| m >= good)
        })
        .filter(|meets| *meets)
        .count();
    let _ = (median(&mut upload), percentile(&mut upload, 0.1), median(&mut latency));
    let median_download = median(&mut download).unwrap_or(0.0);
    let p10_download = percentile(&mut download, 0.1).unwrap_or(0.0);
    (median_download, p10_download, meeting as f64 / per_site.len().max(1) as f64)
}
