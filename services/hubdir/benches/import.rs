//! Import throughput: the India Post file into SQLite and PostgreSQL through hubdir's store
//! (validated sites, change log, services), next to the raw speed of the same rows on the
//! same machine in the same run: a prepared-statement loop in one transaction (SQLite) and
//! `COPY` (PostgreSQL). The ratio is the figure that survives a noisy machine.
//!
//! cargo bench -p hubdir --bench import
//!   HUBDIR_BENCH_INDIA   the India Post CSV (default ../shared/data/india-post/india_post_offices.csv)
//!   HUBDIR_BENCH_POSTGRES_URL   PostgreSQL to measure on (skipped, and said so, when unset)

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use hubdir_core::Site;
use hubdir_store::{Change, Precondition, Store, Write};
use sea_orm::sqlx::{self, Connection as _};

#[allow(dead_code)] // The zw sites are for the write benchmarks.
mod baseline;

const CHUNK: usize = 1000;

/// The allocator the `hubdir` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn say(line: String) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn sites(file: &std::path::Path) -> Vec<Site> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mapping = hubdir_import::Mapping::load(&root.join("examples/mappings/india-post.toml")).expect("mapping");
    let started = Instant::now();
    let mut seen = std::collections::HashSet::new();
    let sites: Vec<Site> = hubdir_import::records(file, &mapping)
        .expect("source")
        .filter_map(|r| r.ok().and_then(|record| mapping.site(&record).ok().map(|(site, _)| site)))
        .filter(|site| seen.insert(site.name.clone()))
        .collect();
    let secs = started.elapsed().as_secs_f64();
    say(format!(
        "read+map+validate: {} valid sites in {secs:.2} s ({:.0} rows/s)",
        sites.len(),
        sites.len() as f64 / secs
    ));
    sites
}

async fn through_store(url: &str, sites: &[Site]) -> f64 {
    let store = Store::connect(url).await.expect("store");
    let started = Instant::now();
    for chunk in sites.chunks(CHUNK) {
        let writes = chunk
            .iter()
            .map(|s| Write { change: Change::Upsert(Box::new(s.clone())), precondition: Precondition::None })
            .collect();
        store.write(writes).await.expect("write");
    }
    sites.len() as f64 / started.elapsed().as_secs_f64()
}

/// The columns hubdir stores for a site, as plain values.
fn row(site: &Site) -> [String; 15] {
    let cell = hubdir_geo::site_cell(site.location).map_or(0, |c| c.get() as i64);
    [
        site.name.to_string(),
        site.name.origin().to_string(),
        site.name.site_id().to_string(),
        site.display_name.clone(),
        site.kind.code().to_owned(),
        site.operator.clone(),
        site.country.to_string(),
        site.location.latitude().to_string(),
        site.location.longitude().to_string(),
        cell.to_string(),
        site.status.code().to_owned(),
        serde_json::to_string(site).unwrap_or_default(),
        site.content_etag(),
        "0".into(),
        "1".into(),
    ]
}

const RAW_TABLE: &str = "CREATE TABLE raw_sites (name TEXT PRIMARY KEY, origin TEXT, site_id TEXT, display_name TEXT, \
    kind TEXT, operator TEXT, country_code TEXT, latitude DOUBLE PRECISION, longitude DOUBLE PRECISION, h3_cell BIGINT, \
    status TEXT, body TEXT, etag TEXT, update_time_us BIGINT, origin_seq BIGINT)";

async fn raw_sqlite(path: &std::path::Path, sites: &[Site]) -> f64 {
    let mut conn = baseline::sqlite(path, RAW_TABLE).await;
    let rows: Vec<[String; 15]> = sites.iter().map(row).collect();
    let started = Instant::now();
    let mut tx = conn.begin().await.expect("begin");
    for r in &rows {
        let mut q = sqlx::query("INSERT INTO raw_sites VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
        for v in r {
            q = q.bind(v.as_str());
        }
        q.execute(&mut *tx).await.expect("insert");
    }
    tx.commit().await.expect("commit");
    rows.len() as f64 / started.elapsed().as_secs_f64()
}

async fn raw_copy(url: &str, sites: &[Site]) -> f64 {
    let mut conn = baseline::postgres(url, RAW_TABLE).await;
    let escape = |v: &str| v.replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n").replace('\r', "\\r");
    let rows: Vec<[String; 15]> = sites.iter().map(row).collect();
    let started = Instant::now();
    let mut copy = conn.copy_in_raw("COPY raw_sites FROM STDIN").await.expect("copy");
    let mut buffer = String::new();
    for chunk in rows.chunks(CHUNK) {
        buffer.clear();
        for r in chunk {
            buffer.push_str(&r.iter().map(|v| escape(v)).collect::<Vec<_>>().join("\t"));
            buffer.push('\n');
        }
        copy.send(buffer.as_bytes()).await.expect("send");
    }
    copy.finish().await.expect("finish");
    rows.len() as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let file = std::env::var_os("HUBDIR_BENCH_INDIA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/data/india-post/india_post_offices.csv"));
    if !file.exists() {
        say(format!("SKIPPED import benchmark: {} not found (set HUBDIR_BENCH_INDIA)", file.display()));
        return;
    }
    let sites = sites(&file);
    let dir = tempfile::tempdir().expect("tempdir");

    let hubdir = through_store(&format!("sqlite://{}", dir.path().join("hubdir.db").display()), &sites).await;
    let raw = raw_sqlite(&dir.path().join("raw.db"), &sites).await;
    say(format!(
        "sqlite: hubdir {hubdir:.0} rows/s, raw prepared inserts in one transaction {raw:.0} rows/s, ratio {:.2}",
        hubdir / raw
    ));

    match std::env::var("HUBDIR_BENCH_POSTGRES_URL") {
        Err(_) => say("SKIPPED PostgreSQL import benchmark: HUBDIR_BENCH_POSTGRES_URL is unset".into()),
        Ok(base) => {
            let hubdir = through_store(&baseline::fresh_schema(&base, "hubdir_bench_store").await, &sites).await;
            let copy = raw_copy(&baseline::fresh_schema(&base, "hubdir_bench_copy").await, &sites).await;
            say(format!("postgres: hubdir {hubdir:.0} rows/s, raw COPY {copy:.0} rows/s, ratio {:.2}", hubdir / copy));
        }
    }
}
