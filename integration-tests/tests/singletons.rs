//! Work that runs once per node, however many replicas it has: the federation follower runs
//! in the process holding its lease (a PostgreSQL advisory lock); when that process is
//! killed with SIGKILL, a replica standing by takes over and the node keeps following.

#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use hubdir_proto::v1::CreateSiteRequest;
use hubdir_proto::v1::registry_service_client::RegistryServiceClient;
use support::{NodeProcess, bearer, library, pair};

/// Waits until the follower node's database (shared by its replicas) holds `name`.
async fn wait_for_site(store: &hubdir_store::Store, name: &str, logs: impl Fn() -> String) {
    let name: hubdir_core::SiteName = name.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.get_site(&name).await.unwrap().is_none() {
        assert!(Instant::now() < deadline, "{name} never arrived; logs:\n{}", logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follower_runs_in_one_replica_and_another_takes_over_after_kill_9() {
    let Some(db) = hubdir_store::testing::TestDb::new(hubdir_store::testing::Backend::Postgres).await else { return };
    // `fr` (two processes on one PostgreSQL schema) follows `zw`.
    let nodes = pair::start("[store]\nlease_retry_secs = 1\n", "http", |_, _| String::new(), (None, Some(&db.url)));
    nodes.follower.wait_for_log("lease taken", Duration::from_secs(30));
    let standby = NodeProcess::start_in(
        &nodes.follower.dir,
        "hubdir-federation",
        &["--node-id", "fr"],
        Some(&db.url),
        "127.0.0.1:0",
    );
    standby.wait_for_log("standing by", Duration::from_secs(30));

    let store = hubdir_store::Store::connect(&db.url).await.unwrap();
    let mut registry = RegistryServiceClient::connect(format!("http://{}", nodes.leader.address)).await.unwrap();
    registry.create_site(bearer(&nodes.writer, CreateSiteRequest { site: Some(library("before")) })).await.unwrap();
    wait_for_site(&store, "sites/zw/before", || nodes.follower.logs().join("\n")).await;
    let taken = |node: &NodeProcess| node.logs().iter().filter(|l| l.contains("lease taken")).count();
    assert_eq!(taken(&standby), 0, "both replicas followed at once:\n{}", standby.logs().join("\n"));

    // The holder dies without a word; the replica standing by takes over.
    let _ = nodes.follower.kill();
    standby.wait_for_log("lease taken", Duration::from_secs(30));
    registry.create_site(bearer(&nodes.writer, CreateSiteRequest { site: Some(library("after")) })).await.unwrap();
    wait_for_site(&store, "sites/zw/after", || standby.logs().join("\n")).await;
    assert_eq!(taken(&standby), 1);

    let (status, logs) = standby.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", logs.join("\n"));
}
