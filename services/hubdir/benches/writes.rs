//! Durable single-site writes from concurrent clients: how many per second a node's store
//! commits with 1, 4, 16 and 64 writers, each waiting for its write to be durable before it
//! sends the next. One writer is the same-run baseline: every write pays its own disk flush,
//! as every write did before group commit. More writers share commits.
//!
//! HUBDIR_BENCH_SITES=100000 HUBDIR_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo bench -p hubdir --bench writes
//!
//! The store is a node's: it owns origin `zw` and signs every event with the node's key, on
//! SQLite (WAL, `synchronous=FULL`) and on PostgreSQL (its default `synchronous_commit=on`).
//! Before the sweep it holds HUBDIR_BENCH_SITES sites (default 100,000), written in batches.
//! Each write creates one new site (`Precondition::Absent`), as `CreateSite` does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hubdir_federation_core::{NodeIdentity, OriginSigner};
use hubdir_store::{Precondition, Store};

#[allow(dead_code)] // The PostgreSQL schema and the zw sites are what is needed here.
mod baseline;

const BATCH: usize = 1_000;
const WRITERS: [usize; 4] = [1, 4, 16, 64];
const SECONDS: u64 = 5;

async fn run(label: &str, url: &str, sites: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let identity = Arc::new(NodeIdentity::load_or_create("zw", &dir.path().join("zw.key")).expect("key"));
    let store = Store::connect(url).await.expect("store").owning(["zw".parse().expect("origin")]);
    let store = Arc::new(store.with_signer(Arc::new(OriginSigner::new(identity))));
    for chunk in (0..sites).collect::<Vec<_>>().chunks(BATCH) {
        store.write(chunk.iter().map(|i| baseline::zw_site(*i, Precondition::None)).collect()).await.expect("load");
    }
    let next = Arc::new(AtomicUsize::new(sites));
    let mut alone = None;
    for writers in WRITERS {
        let until = Instant::now() + Duration::from_secs(SECONDS);
        let tasks: Vec<_> = (0..writers)
            .map(|_| {
                let (store, next) = (store.clone(), next.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    while Instant::now() < until {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let started = Instant::now();
                        store.write(vec![baseline::zw_site(i, Precondition::Absent)]).await.expect("write");
                        latencies.push(started.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let started = Instant::now();
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.expect("writer"));
        }
        let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
        let ratio = rate / *alone.get_or_insert(rate);
        println!(
            "{label}: {writers:>2} writers: {rate:>6.0} durable single-site writes/s ({ratio:.2}x one writer); \
             per write p50 {:.1} ms, p99 {:.1} ms",
            at(0.5),
            at(0.99)
        );
    }
}

#[tokio::main]
async fn main() {
    let sites: usize = std::env::var("HUBDIR_BENCH_SITES").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    run("SQLite", &format!("sqlite://{}", dir.path().join("writes.db").display()), sites).await;
    match std::env::var("HUBDIR_BENCH_POSTGRES_URL") {
        Ok(base) => run("PostgreSQL", &baseline::fresh_schema(&base, "hubdir_bench_writes").await, sites).await,
        Err(_) => println!("PostgreSQL: skipped (HUBDIR_BENCH_POSTGRES_URL unset)"),
    }
}
