//! Peak memory of `SummarizeConnectivity` over a country-year: 1,000 sites reporting every
//! hour for 365 days (8,760,000 raw measurements) in a SQLite file, next to a baseline in the
//! same run: the same rows read back whole, as the summary did before it streamed them.
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
    let kept = (peak_kib().saturating_sub(before), timer.elapsed());
    assert_eq!((read as usize, whole.len()), (rows, rows));
    drop(whole);

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("| what | peak resident growth | time |");
    println!("|---|---:|---:|");
    println!("| summary, streamed (this code) | {:.1} MiB | {:.1} s |", mib(streamed.0), streamed.1.as_secs_f64());
    println!("| baseline: the same rows kept whole | {:.1} MiB | {:.1} s |", mib(kept.0), kept.1.as_secs_f64());
    println!("| ratio streamed / whole | {:.3} | |", streamed.0 as f64 / kept.0.max(1) as f64);
}
