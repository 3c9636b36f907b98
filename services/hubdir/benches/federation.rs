//! Federation: how long a new follower takes to receive a whole origin from a leader over
//! loopback gRPC (a snapshot), next to the receiver's own local bulk load of the same rows in
//! the same run; then the delay from a commit on the leader to the site being found by
//! FindNearest on the follower, under a steady write load from concurrent writers.
//!
//! HUBDIR_BENCH_SITES=1000000 HUBDIR_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo bench -p hubdir --bench federation
//!
//! Both nodes run in this process, each with its own database, talking real gRPC on
//! 127.0.0.1 with federation.sync tokens and pinned keys, through the same code as
//! `hubdir serve`. Peak memory (VmHWM) is for the process, so it bounds both sides together;
//! the follower's DiscoveryService (whose index holds every site) starts after the snapshot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use hubdir_auth::dev::{TokenClaims, generate_ed25519, issue};
use hubdir_auth::{AuthConfig, IssuerConfig, KeyConfig};
use hubdir_federation_core::{NodeIdentity, OriginSigner};
use hubdir_node::config::PeerConfig;
use hubdir_node::{Config, NodeContext};
use hubdir_proto::v1::discovery_service_client::DiscoveryServiceClient;
use hubdir_proto::v1::{FindNearestRequest, LatLng};
use hubdir_store::{Precondition, Store, Write};
use tokio::net::TcpListener;

#[allow(dead_code)] // The PostgreSQL schema and the zw sites are what is needed here.
mod baseline;

const BATCH: usize = 1_000;
const WRITES_PER_SECOND: u64 = 1_000;
const LOAD_SECONDS: u64 = 10;

fn location(i: usize) -> (f64, f64) {
    baseline::zw_location(i)
}

fn site(i: usize) -> Write {
    baseline::zw_site(i, Precondition::None)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Auth that trusts one fresh key, and a federation.sync token signed by it.
fn peer_auth(dir: &std::path::Path) -> (AuthConfig, String) {
    let (private_key, public_key) = generate_ed25519().expect("key");
    let public_key_file = dir.join("issuer.pub.pem");
    std::fs::write(&public_key_file, public_key).expect("write key");
    let auth = AuthConfig {
        issuers: vec![IssuerConfig {
            issuer: "bench".into(),
            audience: "hubdir".into(),
            origins: vec![],
            keys: vec![KeyConfig { kid: "bench".into(), algorithm: "EdDSA".into(), public_key_file }],
        }],
        ..AuthConfig::default()
    };
    let now = Utc::now().timestamp();
    let claims = TokenClaims {
        iss: "bench".into(),
        aud: "hubdir".into(),
        sub: "follower".into(),
        iat: now,
        exp: now + 24 * 3600,
        scope: "federation.sync".into(),
        origin: None,
        operator: None,
        sites: vec![],
    };
    (auth, issue(private_key.as_bytes(), "bench", &claims).expect("token"))
}

async fn serve(ctx: NodeContext, mounts: &'static [hubdir_node::Mount]) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { hubdir_node::server::serve(ctx, mounts, listener, std::future::pending()).await });
    address
}

async fn run(label: &str, leader_url: &str, follower_url: &str, sites: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let identity = Arc::new(NodeIdentity::load_or_create("zw", &dir.path().join("zw.key")).expect("key"));
    let leader = Store::connect(leader_url).await.expect("leader store");
    let leader = Arc::new(leader.with_signer(Arc::new(OriginSigner::new(identity.clone()))));

    // The receiver's own local bulk load of the same rows: the baseline.
    let started = Instant::now();
    for chunk in (0..sites).collect::<Vec<_>>().chunks(BATCH) {
        leader.write(chunk.iter().map(|i| site(*i)).collect()).await.expect("bulk load");
    }
    let bulk = started.elapsed().as_secs_f64();

    let (auth, token) = peer_auth(dir.path());
    let leader_config = Config { auth: auth.clone(), ..Config::default() };
    let leader_ctx = NodeContext::new(leader_config, leader.clone()).expect("context").with_identity(identity.clone());
    let leader_address = serve(leader_ctx, &[hubdir_federation::MOUNT]).await;

    let key_file = dir.path().join("zw.pub.pem");
    std::fs::write(&key_file, identity.public_key().to_public_key_pem(LineEnding::LF).expect("pem")).expect("pin");
    let token_file = dir.path().join("zw.token");
    std::fs::write(&token_file, &token).expect("token");
    let mut follower_config = Config { auth, ..Config::default() };
    follower_config.node.id = "fr".parse().expect("origin");
    follower_config.federation.peers = vec![PeerConfig {
        node_id: "zw".into(),
        endpoint: format!("http://{leader_address}"),
        public_key_file: key_file,
        origins: vec![],
        token_file,
    }];
    let follower = Arc::new(Store::connect(follower_url).await.expect("follower store"));
    let rss_before = peak_rss_mib();
    let started = Instant::now();
    let follower_ctx = NodeContext::new(follower_config, follower.clone()).expect("context");
    let _ = serve(follower_ctx.clone(), &[hubdir_federation::MOUNT]).await;
    let origin = "zw".parse().expect("origin");
    let mut changes = follower.watch_changes();
    while follower.last_seq(&origin).await.expect("seq") < sites as u64 {
        let _ = tokio::time::timeout(Duration::from_millis(100), changes.changed()).await;
    }
    let snapshot = started.elapsed().as_secs_f64();
    let rss_after = peak_rss_mib();
    println!(
        "{label}: {sites} sites. local bulk load {bulk:.1} s ({:.0}/s); snapshot to a new follower {snapshot:.1} s \
         ({:.0}/s) = {:.2}x the local load; process peak RSS {rss_before:.0} -> {rss_after:.0} MiB",
        sites as f64 / bulk,
        sites as f64 / snapshot,
        snapshot / bulk
    );

    // Propagation: the follower's DiscoveryService (on the same store, so its index wakes on
    // the follower's commits); writes at a steady rate; for every tenth, the time until the
    // follower's FindNearest at the site's place returns it.
    let follower_address = serve(follower_ctx, &[hubdir_discovery::MOUNT]).await;
    let mut client = DiscoveryServiceClient::connect(format!("http://{follower_address}")).await.expect("client");
    // The follower's index loads its sites in the background: wait until it answers.
    let last = sites - 1;
    while !found(&mut client, last).await {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Open loop, as concurrent clients: each write is sent at its tick without waiting for
    // the writes before it, so writes in flight together share a commit (group commit).
    let mut delays = Vec::new();
    let mut writers = Vec::new();
    let interval = Duration::from_micros(1_000_000 / WRITES_PER_SECOND);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let writes = (WRITES_PER_SECOND * LOAD_SECONDS) as usize;
    let started = Instant::now();
    for n in 0..writes {
        tick.tick().await;
        let i = sites + n;
        let (leader, mut client) = (leader.clone(), client.clone());
        writers.push(tokio::spawn(async move {
            leader.write(vec![site(i)]).await.expect("write");
            let committed = Instant::now();
            if n % 10 != 0 {
                return (committed, None);
            }
            while !found(&mut client, i).await {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            (committed, Some(committed.elapsed()))
        }));
    }
    let mut last_commit = started;
    for writer in writers {
        let (committed, delay) = writer.await.expect("writer");
        last_commit = last_commit.max(committed);
        delays.extend(delay.map(|delay| delay.as_secs_f64() * 1000.0));
    }
    // Writes committed per second, from the first tick to the last commit.
    let rate = writes as f64 / (last_commit - started).as_secs_f64();
    delays.sort_by(f64::total_cmp);
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
    println!(
        "{label}: propagation at {rate:.0} writes/s: commit on the leader -> FindNearest on the follower \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
        at(0.5),
        at(0.99),
        at(1.0),
        delays.len()
    );
}

async fn found(client: &mut DiscoveryServiceClient<tonic::transport::Channel>, i: usize) -> bool {
    let (latitude, longitude) = location(i);
    let request = FindNearestRequest {
        location: Some(LatLng { latitude, longitude }),
        max_results: 1,
        max_distance_meters: 0.0,
        filter: None,
        view: 0,
    };
    client.find_nearest(request).await.is_ok_and(|r| {
        r.into_inner().results.first().and_then(|r| r.site.as_ref()).is_some_and(|s| s.name == format!("sites/zw/s{i}"))
    })
}

#[tokio::main]
async fn main() {
    let sites: usize = std::env::var("HUBDIR_BENCH_SITES").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    run("SQLite", &sqlite("leader.db"), &sqlite("follower.db"), sites).await;
    match std::env::var("HUBDIR_BENCH_POSTGRES_URL") {
        Ok(base) => {
            let leader = baseline::fresh_schema(&base, "hubdir_bench_fed_leader").await;
            let follower = baseline::fresh_schema(&base, "hubdir_bench_fed_follower").await;
            run("PostgreSQL", &leader, &follower, sites).await;
        }
        Err(_) => println!("PostgreSQL: skipped (HUBDIR_BENCH_POSTGRES_URL unset)"),
    }
}
