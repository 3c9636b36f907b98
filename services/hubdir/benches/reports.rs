//! Connectivity reports accepted per second, into SQLite and PostgreSQL, next to a baseline
//! in the same run: the same history columns through sqlx prepared inserts in one
//! transaction (SQLite) and through `COPY` (PostgreSQL).
//!
//! HUBDIR_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p hubdir --bench reports
//!
//! 2,000 sites; 100,000 measurements in messages of 500, as agents stream them, through
//! `Store::record_measurements` (history row, latest per site, change-log events for state
//! changes) after classification, which is what `ReportStatus` does once a message is
//! decoded and checked. One site in ten changes state within each message.

use std::time::Instant;

use chrono::{Duration, Utc};
use hubdir_core::connectivity::{Benchmark, Measurement, Source, StatusSummary, Technology};
use hubdir_core::{Kind, SiteInput};
use hubdir_store::{Change, Precondition, Store, Write};
use sea_orm::sqlx::{self, Connection as _};

#[allow(dead_code)] // The zw sites are for the write benchmarks.
mod baseline;

const SITES: usize = 2_000;
const MEASUREMENTS: usize = 100_000;
const PER_MESSAGE: usize = 500;

fn measurements() -> Vec<Measurement> {
    let start = Utc::now() - Duration::hours(24);
    (0..MEASUREMENTS)
        .map(|i| Measurement {
            site: format!("sites/zw/s{}", i % SITES).parse().expect("site name"),
            observed_at: start + Duration::milliseconds(i as i64 * 500),
            online: !(i / SITES).is_multiple_of(10) || !i.is_multiple_of(10),
            download_mbps: Some((i % 97) as f64),
            upload_mbps: Some((i % 13) as f64),
            latency_ms: Some(20.0 + (i % 50) as f64),
            jitter_ms: None,
            packet_loss_ratio: Some(0.0),
            technology: Technology::Fibre,
            public_wifi_access_points: Some(2),
            public_computers: Some(4),
            power_backup: Some(true),
            source: Source::Agent,
            idempotency_key: format!("m{i}"),
        })
        .collect()
}

async fn through_store(url: &str, all: &[Measurement]) -> f64 {
    let store = Store::connect(url).await.expect("store");
    let sites = (0..SITES)
        .map(|i| {
            let site = SiteInput {
                name: format!("sites/zw/s{i}"),
                display_name: format!("Site {i}"),
                kind: Some(Kind::PostOffice),
                country_code: "ZW".into(),
                location: Some((-17.0 - i as f64 / 1000.0, 31.0)),
                time_zone: "Africa/Harare".into(),
                ..SiteInput::default()
            }
            .validate()
            .expect("site");
            Write { change: Change::Upsert(Box::new(site)), precondition: Precondition::None }
        })
        .collect();
    store.write(sites).await.expect("sites");
    let benchmark = Benchmark::default();
    let started = Instant::now();
    for message in all.chunks(PER_MESSAGE) {
        let items = message.iter().map(|m| (m.clone(), StatusSummary::of(m, &benchmark, Duration::hours(1)))).collect();
        store.record_measurements(items, Duration::minutes(15)).await.expect("record");
    }
    all.len() as f64 / started.elapsed().as_secs_f64()
}

const RAW_TABLE: &str = "CREATE TABLE raw_history (site_name TEXT, idempotency_key TEXT, online BOOLEAN, \
    download_mbps DOUBLE PRECISION, upload_mbps DOUBLE PRECISION, latency_ms DOUBLE PRECISION, \
    packet_loss_ratio DOUBLE PRECISION, technology TEXT, source TEXT, observed_at_us BIGINT, received_at_us BIGINT, \
    UNIQUE (site_name, idempotency_key))";

fn row(m: &Measurement) -> [String; 11] {
    let number = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    [
        m.site.to_string(),
        m.idempotency_key.clone(),
        m.online.to_string(),
        number(m.download_mbps),
        number(m.upload_mbps),
        number(m.latency_ms),
        number(m.packet_loss_ratio),
        "\"Fibre\"".into(),
        "\"Agent\"".into(),
        m.observed_at.timestamp_micros().to_string(),
        Utc::now().timestamp_micros().to_string(),
    ]
}

async fn raw_sqlite(path: &std::path::Path, all: &[Measurement]) -> f64 {
    let mut conn = baseline::sqlite(path, RAW_TABLE).await;
    let rows: Vec<[String; 11]> = all.iter().map(row).collect();
    let started = Instant::now();
    for message in rows.chunks(PER_MESSAGE) {
        let mut tx = conn.begin().await.expect("begin");
        for r in message {
            let mut q = sqlx::query("INSERT INTO raw_history VALUES (?,?,?,?,?,?,?,?,?,?,?)");
            for v in r {
                q = q.bind(v.as_str());
            }
            q.execute(&mut *tx).await.expect("insert");
        }
        tx.commit().await.expect("commit");
    }
    rows.len() as f64 / started.elapsed().as_secs_f64()
}

async fn raw_copy(url: &str, all: &[Measurement]) -> f64 {
    let mut conn = baseline::postgres(url, RAW_TABLE).await;
    let rows: Vec<[String; 11]> = all.iter().map(row).collect();
    let started = Instant::now();
    for message in rows.chunks(PER_MESSAGE) {
        let mut copy = conn.copy_in_raw("COPY raw_history FROM STDIN (FORMAT csv)").await.expect("copy");
        let mut buffer = String::new();
        for r in message {
            buffer.push_str(
                &r.join(",").replace("\"Fibre\"", "\"\"\"Fibre\"\"\"").replace("\"Agent\"", "\"\"\"Agent\"\"\""),
            );
            buffer.push('\n');
        }
        copy.send(buffer.as_bytes()).await.expect("send");
        copy.finish().await.expect("finish");
    }
    rows.len() as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let all = measurements();
    let dir = tempfile::tempdir().expect("tempdir");
    let hubdir = through_store(&format!("sqlite://{}", dir.path().join("hubdir.db").display()), &all).await;
    let raw = raw_sqlite(&dir.path().join("raw.db"), &all).await;
    println!(
        "sqlite: hubdir {hubdir:.0} measurements/s, raw prepared inserts (a transaction per message) {raw:.0}/s, ratio {:.2}",
        hubdir / raw
    );
    match std::env::var("HUBDIR_BENCH_POSTGRES_URL") {
        Err(_) => println!("SKIPPED PostgreSQL: HUBDIR_BENCH_POSTGRES_URL is unset"),
        Ok(base) => {
            let hubdir = through_store(&baseline::fresh_schema(&base, "hubdir_bench_reports").await, &all).await;
            let copy = raw_copy(&baseline::fresh_schema(&base, "hubdir_bench_reports_copy").await, &all).await;
            println!(
                "postgres: hubdir {hubdir:.0} measurements/s, raw COPY (one per message) {copy:.0}/s, ratio {:.2}",
                hubdir / copy
            );
        }
    }
}
